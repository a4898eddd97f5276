//! TOTP (RFC 6238) for authenticator apps: the secret, the `otpauth://` URL and its QR
//! code, and the check of a typed code. The one-time-password arithmetic is totp-rs's;
//! this module adds what it leaves to callers: single use of a step (RFC 6238 §5.2),
//! time as a parameter, and a URL that survives any issuer name.
//!
//! Parameters are fixed to what every authenticator app assumes (SHA1, 6 digits, 30 s);
//! some apps accept other values in the URL and silently use these instead.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Secret, Totp};

const DIGITS: u8 = 6;
const STEP_SECS: u64 = 30;
/// Steps of clock drift accepted either way (RFC 6238 §5.2 recommends one).
const SKEW: u64 = 1;
/// 160 bits, the size RFC 4226 §4 recommends and apps expect.
const SECRET_LEN: usize = 20;

/// A member's TOTP seed. Debug never shows it; it is stored only sealed (`crate::seal`).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_LEN];
        crate::crypto::fill_random(&mut bytes);
        TotpSecret(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        TotpSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding: what apps take when the secret is typed.
    pub fn base32(&self) -> String {
        Secret::from(self.0.as_slice()).to_base32()
    }

    fn totp(&self) -> Totp {
        // Not `build()`: it refuses seeds under 128 bits, and a seed read back from the
        // store must still be checkable. The fixed parameters are the valid ones.
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.as_slice())
            .build_noncompliant()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// RFC 3986 unreserved characters stay; everything else is %-encoded (a space is `%20`:
/// some apps show a form-encoded `+` literally).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Apps split the label on the first `:` (some after decoding `%3A`), so a colon in the
/// issuer or account would move text from one to the other: colons are dropped.
fn label_part(s: &str) -> String {
    let cleaned: String = s.chars().filter(|&c| c != ':').collect();
    cleaned.trim().to_owned()
}

/// The key URI apps scan: `otpauth://totp/Issuer:account?secret=..&issuer=..&...`.
/// An empty issuer leaves only the account in the label and no `issuer` parameter.
pub fn otpauth_url(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = label_part(issuer);
    let account = utf8_percent_encode(&label_part(account), COMPONENT).to_string();
    let params = format!(
        "secret={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        secret.base32()
    );
    if issuer.is_empty() {
        return format!("otpauth://totp/{account}?{params}");
    }
    let issuer = utf8_percent_encode(&issuer, COMPONENT).to_string();
    format!("otpauth://totp/{issuer}:{account}?{params}&issuer={issuer}")
}

/// Longer text would make a code too dense to scan from a screen: refused before encoding.
const QR_MAX_BYTES: usize = 1024;

/// `text` as an inline `<svg>` (no XML declaration), about 200 px, black on white with
/// the four-module quiet zone scanners need. Text too long for a QR code gives an empty
/// white square: the page also shows the secret as text.
pub fn qr_svg(text: &str) -> String {
    use qrcode::render::svg;
    let code = (text.len() <= QR_MAX_BYTES)
        .then(|| qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok())
        .flatten();
    let Some(code) = code else {
        tracing::warn!(bytes = text.len(), "text too long for a QR code");
        return concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200" "#,
            r##"viewBox="0 0 200 200"><rect width="200" height="200" fill="#fff"/></svg>"##
        )
        .to_owned();
    };
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // The renderer writes a standalone document; HTML wants the element alone.
    match image.find("<svg") {
        Some(start) => image[start..].to_owned(),
        None => image,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    /// Right code for `step` (store it as the member's last used step).
    Valid {
        step: u64,
    },
    /// Right code, but for a step already used or earlier: refused.
    Replayed,
    Wrong,
}

fn step_at(now_ms: i64) -> u64 {
    // Before 1970 there is nothing to match; treat it as the epoch rather than fail.
    u64::try_from(now_ms.div_euclid(1000)).unwrap_or(0) / STEP_SECS
}

fn code_for_step(totp: &Totp, step: u64) -> String {
    totp.generate(step.saturating_mul(STEP_SECS)).to_string()
}

/// Checks a typed code at `now_ms` against the current step and one either side. A code
/// is single-use: it is valid only for a step after `last_step`. Spaces are ignored
/// ("123 456" as apps show it); anything but six digits then is wrong.
pub fn check(secret: &TotpSecret, code: &str, now_ms: i64, last_step: Option<u64>) -> TotpCheck {
    if code.len() > 32 {
        return TotpCheck::Wrong;
    }
    let typed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if typed.len() != usize::from(DIGITS) || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return TotpCheck::Wrong;
    }
    let totp = secret.totp();
    let now = step_at(now_ms);
    // Every step in the window is compared, matching or not, so the time taken does not
    // say which one matched. If two match (one chance in 10^6), the latest wins: it is
    // the one that blocks the most replays once stored.
    let mut matched: Option<u64> = None;
    for step in now.saturating_sub(SKEW)..=now.saturating_add(SKEW) {
        let expected = code_for_step(&totp, step);
        if bool::from(expected.as_bytes().ct_eq(typed.as_bytes())) {
            matched = Some(step);
        }
    }
    match matched {
        None => TotpCheck::Wrong,
        Some(step) if last_step.is_some_and(|last| step <= last) => {
            // An earlier step of the window may match too, but never a later one than
            // `step`, so nothing valid is left.
            TotpCheck::Replayed
        }
        Some(step) => TotpCheck::Valid { step },
    }
}

/// The code an app shows at `now_ms` (tests and the demo).
pub fn code_at(secret: &TotpSecret, now_ms: i64) -> String {
    code_for_step(&secret.totp(), step_at(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 6238 appendix B's SHA1 seed.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc6238_sha1_vectors_truncated_to_six_digits() {
        // Appendix B gives 8 digits; 6 digits are the same value mod 10^6, its last six.
        let vectors: [(i64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (secs, eight) in vectors {
            assert_eq!(
                code_at(&rfc_secret(), secs * 1000),
                eight[2..],
                "T = {secs}"
            );
        }
    }

    const T: i64 = 1_700_000_000_000; // a step boundary plus 20 s
    fn step(ms: i64) -> u64 {
        (ms / 1000) as u64 / 30
    }

    #[test]
    fn one_step_of_drift_either_way_is_accepted_two_are_not() {
        let s = rfc_secret();
        for (offset, accepted) in [
            (-60_000, false),
            (-30_000, true),
            (0, true),
            (30_000, true),
            (60_000, false),
        ] {
            let code = code_at(&s, T + offset);
            let got = check(&s, &code, T, None);
            if accepted {
                assert_eq!(
                    got,
                    TotpCheck::Valid {
                        step: step(T + offset)
                    },
                    "{offset}"
                );
            } else {
                assert_eq!(got, TotpCheck::Wrong, "{offset}");
            }
        }
    }

    #[test]
    fn a_step_is_used_once_and_earlier_steps_are_refused() {
        let s = rfc_secret();
        let now = step(T);
        let code = code_at(&s, T);
        assert_eq!(
            check(&s, &code, T, Some(now - 1)),
            TotpCheck::Valid { step: now }
        );
        assert_eq!(check(&s, &code, T, Some(now)), TotpCheck::Replayed);
        assert_eq!(check(&s, &code, T + 15_000, Some(now)), TotpCheck::Replayed);
        let earlier = code_at(&s, T - 30_000);
        assert_eq!(check(&s, &earlier, T, Some(now)), TotpCheck::Replayed);
        let later = code_at(&s, T + 30_000);
        assert_eq!(
            check(&s, &later, T, Some(now)),
            TotpCheck::Valid { step: now + 1 }
        );
    }

    #[test]
    fn typed_forms() {
        let s = rfc_secret();
        let code = code_at(&s, T);
        let spaced = format!(" {} {} ", &code[..3], &code[3..]);
        assert_eq!(
            check(&s, &spaced, T, None),
            TotpCheck::Valid { step: step(T) }
        );
        for bad in ["", "12345", "1234567", "+12345", "12a456", "１２３４５６"] {
            assert_eq!(check(&s, bad, T, None), TotpCheck::Wrong, "{bad:?}");
        }
        assert_eq!(check(&s, &"1".repeat(1000), T, None), TotpCheck::Wrong);
    }

    #[test]
    fn secrets_are_random_and_never_printed() {
        let a = TotpSecret::generate();
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a, TotpSecret::generate());
        assert_eq!(format!("{a:?}"), "TotpSecret(..)");
        assert_eq!(a.base32().len(), 32);
        assert!(!a.base32().contains('='));
        assert_eq!(rfc_secret().base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn otpauth_url_round_trips_through_totp_rs() {
        let s = TotpSecret::generate();
        let url = otpauth_url(&s, "Acme: Courses & Co", "ana+2fa@example.com");
        assert!(
            url.starts_with("otpauth://totp/Acme%20Courses%20%26%20Co:ana%2B2fa%40example.com?")
        );
        assert!(url.contains("&issuer=Acme%20Courses%20%26%20Co"));
        assert!(url.contains("algorithm=SHA1&digits=6&period=30"));
        let parsed = Totp::from_url(&url).unwrap();
        assert_eq!(parsed.secret().as_bytes(), s.as_bytes());
        assert_eq!(parsed.issuer(), Some("Acme Courses & Co"));
        assert_eq!(parsed.account_name(), "ana+2fa@example.com");
        assert_eq!(parsed.digits(), 6);
        assert_eq!(parsed.step(), 30);
        assert_eq!(parsed.generate(1_700_000_000).to_string(), code_at(&s, T));
    }

    #[test]
    fn otpauth_url_without_issuer() {
        let s = rfc_secret();
        assert_eq!(
            otpauth_url(&s, " ", "ana@example.com"),
            "otpauth://totp/ana%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn qr_svg_is_an_inline_element() {
        let url = otpauth_url(&rfc_secret(), "Vigile demo", "ana@example.com");
        let svg = qr_svg(&url);
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
        assert!(svg.contains("<path") && svg.contains("<rect"));
        assert!(svg.contains(r##"fill="#000""##) && svg.contains(r##"fill="#fff""##));
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((200..300).contains(&width), "{width}");
        assert_eq!(svg, qr_svg(&url));
        assert_ne!(svg, qr_svg("otpauth://totp/other"));
        let fallback = qr_svg(&"x".repeat(5000));
        assert!(fallback.starts_with("<svg") && !fallback.contains("<path"));
    }

    proptest! {
        #[test]
        fn the_shown_code_is_valid_once(
            seed in proptest::collection::vec(any::<u8>(), 20),
            t in 0i64..=i64::MAX,
        ) {
            let s = TotpSecret::from_bytes(seed);
            let now = (t / 1000) as u64 / 30;
            let got = check(&s, &code_at(&s, t), t, None);
            // The next step could show the same code by chance (10^-6); the later wins.
            let TotpCheck::Valid { step } = got else { panic!("{got:?}") };
            prop_assert!(step == now || step == now + 1);
            prop_assert_eq!(check(&s, &code_at(&s, t), t, Some(step)), TotpCheck::Replayed);
            if now > 0 {
                prop_assert_eq!(check(&s, &code_at(&s, t), t, Some(now - 1)), got);
            }
        }

        #[test]
        fn any_code_is_valid_replayed_or_wrong_as_its_step_says(
            seed in proptest::collection::vec(any::<u8>(), 16..=32),
            t in 0i64..4_102_444_800_000,
            // 0..=4: the code of a step from two before to two after; 5: random digits.
            pick in 0u64..=5,
            random in 0u32..1_000_000,
            last_delta in proptest::option::of(-3i64..=3),
        ) {
            let s = TotpSecret::from_bytes(seed);
            let now = (t / 1000) as u64 / 30;
            let typed = if pick < 5 {
                code_at(&s, ((now + pick).saturating_sub(2) * 30_000) as i64)
            } else {
                format!("{random:06}")
            };
            let last = last_delta.map(|d| now.saturating_add_signed(d));
            // Oracle: the latest step of the window whose code is the typed one.
            let matched = (now.saturating_sub(1)..=now + 1)
                .filter(|&st| code_at(&s, st as i64 * 30_000) == typed)
                .max();
            let expected = match matched {
                None => TotpCheck::Wrong,
                Some(st) if last.is_some_and(|l| st <= l) => TotpCheck::Replayed,
                Some(st) => TotpCheck::Valid { step: st },
            };
            prop_assert_eq!(check(&s, &typed, t, last), expected);
        }
    }
}
