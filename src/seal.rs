//! Secrets sealed at rest (TOTP seeds): ChaCha20-Poly1305 from ring under a 32-byte key
//! from the configuration, or derived with HKDF-SHA256 from the store-shared secret.
//!
//! The caller's context (the member id) is authenticated with each seal, so a sealed
//! value copied to another account in the store does not open there. Nonces are random
//! (96 bits): seals are rare (one per enrolment), far below where a repeat is plausible.
//!
//! Format: `v1.` + base64url(nonce || ciphertext || tag), without padding.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hkdf;

const PREFIX: &str = "v1.";
/// Fixed HKDF salt: the input is already a high-entropy secret, the salt only separates
/// Vigile's derivations from any other use of it (RFC 5869 §3.1).
const HKDF_SALT: &[u8] = b"vigile seal v1";

pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        // ring refuses only a key of the wrong length, which the type rules out.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte ChaCha20 key");
        Sealer {
            key: LessSafeKey::new(unbound),
        }
    }

    /// A key of its own for `purpose` (e.g. "totp"), from a secret shared by every
    /// instance on the store, so each can open what another sealed.
    pub fn derive(shared_secret: &[u8], purpose: &str) -> Self {
        let info = [purpose.as_bytes()];
        let mut key = [0u8; 32];
        // HKDF-SHA256 refuses only outputs over 255 x 32 bytes.
        #[allow(clippy::expect_used)]
        hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT)
            .extract(shared_secret)
            .expand(&info, &CHACHA20_POLY1305)
            .and_then(|okm| okm.fill(&mut key))
            .expect("32 bytes of HKDF-SHA256 output");
        Self::new(&key)
    }

    /// Encrypts `plaintext` bound to `context`; a fresh random nonce every time.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        crate::crypto::fill_random(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend_from_slice(plaintext);
        // Sealing fails only for inputs over 256 GiB.
        #[allow(clippy::expect_used)]
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut out[NONCE_LEN..],
            )
            .expect("plaintext within ChaCha20-Poly1305 limits");
        out.extend_from_slice(tag.as_ref());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The plaintext, or `None` if `sealed` is malformed, was sealed under another key or
    /// context, or was altered.
    pub fn open(&self, sealed: &str, context: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if raw.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&[7u8; 32])
    }

    #[test]
    fn round_trip() {
        let s = sealer();
        for plain in [&b""[..], b"seed", &[0xffu8; 300]] {
            let sealed = s.seal(plain, "member-1");
            assert!(sealed.starts_with("v1."));
            assert!(!sealed[3..].contains(['=', '+', '/']));
            assert_eq!(s.open(&sealed, "member-1").as_deref(), Some(plain));
        }
    }

    #[test]
    fn another_context_or_key_does_not_open() {
        let sealed = sealer().seal(b"seed", "member-1");
        assert_eq!(sealer().open(&sealed, "member-2"), None);
        assert_eq!(sealer().open(&sealed, ""), None);
        assert_eq!(Sealer::new(&[8u8; 32]).open(&sealed, "member-1"), None);
    }

    #[test]
    fn tampered_or_malformed_does_not_open() {
        let s = sealer();
        let sealed = s.seal(b"twenty bytes of seed", "m");
        let raw = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let bad = format!("v1.{}", URL_SAFE_NO_PAD.encode(bad));
            assert_eq!(s.open(&bad, "m"), None, "byte {i}");
        }
        let truncated = format!("v1.{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]));
        assert_eq!(s.open(&truncated, "m"), None);
        for bad in [
            "",
            "v1.",
            "v1.AAAA",
            "v2.",
            &sealed[3..],
            &format!("v2.{}", &sealed[3..]),
        ] {
            assert_eq!(s.open(bad, "m"), None, "{bad:?}");
        }
        assert_eq!(s.open(&format!("{sealed}!"), "m"), None);
    }

    #[test]
    fn nonces_differ_between_seals() {
        let s = sealer();
        let (a, b) = (s.seal(b"seed", "m"), s.seal(b"seed", "m"));
        assert_ne!(a, b);
        let nonce = |x: &str| URL_SAFE_NO_PAD.decode(&x[3..]).unwrap()[..NONCE_LEN].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
    }

    /// Sealed by an independent implementation (Python `cryptography`: HKDF-SHA256 with
    /// this salt and info "totp", ChaCha20-Poly1305, nonce 00..0b). Stored seeds must
    /// keep opening: a change to the derivation or the format fails here first.
    #[test]
    fn opens_a_known_seal() {
        let sealed = "v1.AAECAwQFBgcICQoLpXOhrs4iXchjBy0C-MHuRNKdVS7uc98SqA2zfCEPP2VDKqKW";
        let s = Sealer::derive(b"store-shared secret", "totp");
        assert_eq!(
            s.open(sealed, "member-42").as_deref(),
            Some(&b"12345678901234567890"[..])
        );
        assert_eq!(s.open(sealed, "member-43"), None);
    }

    #[test]
    fn derived_keys_depend_on_secret_and_purpose() {
        let sealed = Sealer::derive(b"shared secret", "totp").seal(b"seed", "m");
        let open =
            |secret: &[u8], purpose: &str| Sealer::derive(secret, purpose).open(&sealed, "m");
        assert_eq!(
            open(b"shared secret", "totp").as_deref(),
            Some(&b"seed"[..])
        );
        assert_eq!(open(b"shared secret", "other"), None);
        assert_eq!(open(b"another secret", "totp"), None);
        assert_eq!(
            format!("{:?}", Sealer::derive(b"shared secret", "totp")),
            "Sealer(..)"
        );
    }
}
