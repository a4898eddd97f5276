//! Email addresses, parsed once where they enter (forms, CLI, configuration) into an
//! [`Email`]: the one spelling used for account uniqueness, lookups, rate-limit keys and
//! SMTP `RCPT TO`.
//!
//! Two inputs that a person would read as the same address must give the same `Email`, and
//! nothing a mail server would refuse (or read differently) may get through. So:
//!
//! 1. The input is trimmed, then NFKC-normalised as a whole, so fullwidth and other
//!    compatibility forms (`ａｎａ＠ＥＸＡＭＰＬＥ.com`) become their plain letters.
//! 2. Anything in Unicode's Other or Separator categories (controls, format characters such
//!    as the soft hyphen U+00AD, zero-width and bidi controls, spaces) is refused, before
//!    and after normalising: IDNA would silently drop some of them, and an address that
//!    hides characters is a lookalike, not a typo to repair.
//! 3. The local part is lower-cased and must then be ASCII. Quoted local parts
//!    (`"a b"@example.com`) and non-ASCII local parts (which need SMTPUTF8) are refused:
//!    almost no member has one, and they are where mail servers disagree.
//! 4. The domain goes through IDNA (UTS 46, strict STD3 rules, DNS lengths) to its
//!    lower-case ASCII (punycode) form, and needs at least one dot. Address literals
//!    (`a@[127.0.0.1]`) are refused.
//! 5. lettre's [`Address`] (after the `email_address` crate) makes the final RFC 5321
//!    syntax check; lengths follow RFC 5321 (local part 64, address 254 octets).
//!
//! Case-folding the local part is a choice for uniqueness (RFC 5321 lets a server treat
//! `Ana` and `ana` as two mailboxes; no common one does). Addresses stored before this
//! parser existed were trimmed and lower-cased ASCII, so they keep their spelling.
//!
//! This module must never repair an address by dropping characters: it normalises
//! spellings of the same characters, or it refuses.

use std::fmt;

use lettre::address::AddressError;
use lettre::Address;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Longest input looked at, in bytes, before any work (a form field or a CLI argument).
pub const MAX_INPUT: usize = 1024;
/// RFC 5321 4.5.3.1.1.
const MAX_LOCAL: usize = 64;
/// RFC 5321 4.5.3.1.3: a path is at most 256 octets including its angle brackets.
const MAX_ADDRESS: usize = 254;

/// A parsed, normalised email address: lower-case ASCII `local@domain`, accepted by
/// lettre, without quotes, spaces or controls. Only [`Email::parse`] makes one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

/// Why an address was refused. [`EmailError::key`] names the catalog message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("no address given")]
    Empty,
    #[error("the address is too long")]
    TooLong,
    #[error("the address has no @, or nothing before or after it")]
    MissingPart,
    #[error("the address contains a space, an invisible or a control character")]
    Invisible,
    #[error("quoted local parts are not accepted")]
    Quoted,
    #[error("the part before @ has characters a mail address cannot have")]
    LocalPart,
    #[error("the part after @ is not a domain name")]
    Domain,
}

impl EmailError {
    /// Catalog key of the explanation shown under the field.
    pub fn key(self) -> &'static str {
        match self {
            EmailError::Empty => "email-error-empty",
            EmailError::TooLong => "email-error-too-long",
            EmailError::MissingPart => "email-error-missing",
            EmailError::Invisible => "email-error-invisible",
            EmailError::Quoted => "email-error-quoted",
            EmailError::LocalPart => "email-error-local",
            EmailError::Domain => "email-error-domain",
        }
    }
}

/// Controls (Cc), format characters (Cf: soft hyphen, zero-width, bidi), surrogates,
/// private use and unassigned code points (C*), and every space or separator (Z*).
fn hidden(c: char) -> bool {
    matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Other | GeneralCategoryGroup::Separator
    )
}

impl Email {
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        if input.len() > MAX_INPUT {
            return Err(EmailError::TooLong);
        }
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().any(hidden) {
            return Err(EmailError::Invisible);
        }
        // NFKC can make spaces or controls out of other characters (U+00A8 is a space
        // and a combining mark): checked again.
        let normal: String = trimmed.nfkc().collect();
        if normal.chars().any(hidden) {
            return Err(EmailError::Invisible);
        }
        let (local, domain) = normal.rsplit_once('@').ok_or(EmailError::MissingPart)?;
        if local.is_empty() || domain.is_empty() {
            return Err(EmailError::MissingPart);
        }
        if local.contains('"') {
            return Err(EmailError::Quoted);
        }
        let local = local.to_lowercase();
        if !local.is_ascii() {
            return Err(EmailError::LocalPart);
        }
        if local.len() > MAX_LOCAL {
            return Err(EmailError::TooLong);
        }
        if domain.starts_with('[') {
            return Err(EmailError::Domain);
        }
        let domain = idna::domain_to_ascii_strict(domain).map_err(|_| EmailError::Domain)?;
        if !domain.contains('.') {
            return Err(EmailError::Domain);
        }
        let address = Address::new(&local, &domain).map_err(|e| match e {
            AddressError::InvalidDomain => EmailError::Domain,
            _ => EmailError::LocalPart,
        })?;
        let text = address.to_string();
        if text.len() > MAX_ADDRESS {
            return Err(EmailError::TooLong);
        }
        Ok(Email(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// A `mailto:` URI for this address (RFC 6068): every byte but letters, digits,
    /// `-._~` and the `@` percent-encoded, so characters an address may hold (`?`, `#`,
    /// `&`, `%`, `/`, `+`...) cannot start a query or fragment or be read as a space.
    /// Still to be HTML-escaped where it is written (askama does).
    pub fn mailto(&self) -> String {
        const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~')
            .remove(b'@');
        format!(
            "mailto:{}",
            percent_encoding::utf8_percent_encode(&self.0, KEEP)
        )
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Email {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Email::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(raw: &str) -> String {
        match Email::parse(raw) {
            Ok(e) => e.into_string(),
            Err(e) => panic!("{raw:?} refused: {e}"),
        }
    }

    #[test]
    fn plain_addresses_are_lower_cased_and_trimmed() {
        assert_eq!(ok("ana@example.com"), "ana@example.com");
        assert_eq!(ok("  Zoe@Example.COM \n"), "zoe@example.com");
        assert_eq!(
            ok("first.last+tag@sub.example.org"),
            "first.last+tag@sub.example.org"
        );
        assert_eq!(ok("o'neil_x-y@example.co.uk"), "o'neil_x-y@example.co.uk");
    }

    #[test]
    fn mailto_encodes_what_a_uri_would_read_otherwise() {
        let to = |raw: &str| Email::parse(raw).unwrap().mailto();
        assert_eq!(to("help@school.example"), "mailto:help@school.example");
        assert_eq!(
            to("a+b&c?d#e%f/g'h=i@example.com"),
            "mailto:a%2Bb%26c%3Fd%23e%25f%2Fg%27h%3Di@example.com"
        );
    }

    #[test]
    fn lookalikes_become_the_same_address() {
        for raw in [
            "ana@ＥＸＡＭＰＬＥ.com",
            "ａｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ",
            "ANA@example.com",
            "ana@example\u{3002}com",
            "\u{FF21}na@example.com",
        ] {
            assert_eq!(ok(raw), "ana@example.com", "{raw:?}");
        }
        // The Kelvin sign and the long s are compatibility forms of k and s.
        assert_eq!(ok("\u{212A}\u{17F}@example.com"), "ks@example.com");
    }

    #[test]
    fn international_domains_become_punycode() {
        assert_eq!(ok("ana@Bücher.example"), "ana@xn--bcher-kva.example");
        assert_eq!(ok("ana@xn--bcher-kva.example"), "ana@xn--bcher-kva.example");
        assert_eq!(ok("ana@BÜCHER.example"), "ana@xn--bcher-kva.example");
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for raw in [
            "ana\u{AD}@example.com",
            "ana@exa\u{AD}mple.com",
            "an\u{200B}a@example.com",
            "ana@example\u{200D}.com",
            "\u{202E}ana@example.com",
            "ana\u{2066}@example.com",
            "ana@example.com\u{FEFF}x",
            "an a@example.com",
            "ana@exam ple.com",
            "ana\u{3000}x@example.com",
            "ana\u{0}@example.com",
            "ana\r\n@example.com",
            "ana\u{7F}@example.com",
            "ana\u{E000}@example.com",
            "ana\u{A8}@example.com",
        ] {
            assert_eq!(Email::parse(raw), Err(EmailError::Invisible), "{raw:?}");
        }
    }

    #[test]
    fn html_and_other_junk_is_refused() {
        for (raw, why) in [
            (
                "<script>alert(1)</script>@example.com",
                EmailError::LocalPart,
            ),
            ("ana@<script>.com", EmailError::Domain),
            ("\"a;b\"@example.com", EmailError::Quoted),
            ("\"ana\"@example.com", EmailError::Quoted),
            ("ana(comment)@example.com", EmailError::LocalPart),
            ("a,b@example.com", EmailError::LocalPart),
            ("a..b@example.com", EmailError::LocalPart),
            (".ana@example.com", EmailError::LocalPart),
            ("ana.@example.com", EmailError::LocalPart),
            ("a@b@example.com", EmailError::LocalPart),
            ("josé@example.com", EmailError::LocalPart),
            ("ana@localhost", EmailError::Domain),
            ("ana@[127.0.0.1]", EmailError::Domain),
            ("ana@example.com.", EmailError::Domain),
            ("ana@-example.com", EmailError::Domain),
            ("ana@exa_mple.com", EmailError::Domain),
            ("ana@.example.com", EmailError::Domain),
            ("not-an-address", EmailError::MissingPart),
            ("@example.com", EmailError::MissingPart),
            ("ana@", EmailError::MissingPart),
            ("   ", EmailError::Empty),
            ("", EmailError::Empty),
        ] {
            assert_eq!(Email::parse(raw), Err(why), "{raw:?}");
        }
    }

    #[test]
    fn lengths_follow_rfc_5321() {
        let local = "a".repeat(64);
        assert!(Email::parse(&format!("{local}@example.com")).is_ok());
        assert_eq!(
            Email::parse(&format!("a{local}@example.com")),
            Err(EmailError::TooLong)
        );
        let label = "b".repeat(60);
        let long = format!("{local}@{label}.{label}.{label}.example.com");
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
        assert_eq!(
            Email::parse(&"x".repeat(MAX_INPUT + 1)),
            Err(EmailError::TooLong)
        );
    }

    /// Characters an attacker would try: ASCII, specials, lookalikes, invisibles, IDN.
    fn tricky_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => proptest::char::range('a', 'z'),
            2 => proptest::char::range('A', 'Z'),
            1 => proptest::char::range('0', '9'),
            2 => proptest::sample::select(vec![
                '.', '-', '_', '+', '@', '"', '<', '>', '(', ')', ',', ';', ':', '\\', '[',
                ']', ' ', '\t', '\n', '\'', '/', '!', '%', '&', '=', '?', '~', '`',
            ]),
            2 => proptest::sample::select(vec![
                '\u{AD}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}',
                '\u{202E}', '\u{2066}', '\u{061C}', '\u{180E}', '\u{3000}', '\u{A0}',
                '\u{FF20}', '\u{FF0E}', '\u{3002}', '\u{FF21}', '\u{FF45}', '\u{212A}',
                '\u{17F}', '\u{FB00}', '\u{2474}', '\u{A8}', 'é', 'ü', 'ß', 'İ', 'ı',
                'Ω', 'а', 'е', 'о', '\u{301}', '\u{E000}',
            ]),
            1 => any::<char>(),
        ]
    }

    fn tricky_address() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(tricky_char(), 0..12),
            proptest::collection::vec(tricky_char(), 0..8),
            proptest::sample::select(vec![".com", ".example", ".ＣＯＭ", "", ".xn--bcher-kva"]),
        )
            .prop_map(|(l, d, tld)| {
                let l: String = l.into_iter().collect();
                let d: String = d.into_iter().collect();
                format!("{l}@{d}{tld}")
            })
    }

    /// Lookalike spellings of an ASCII address: fullwidth letters, upper case.
    fn variant(address: &str, seed: &[bool]) -> String {
        address
            .chars()
            .zip(seed.iter().cycle())
            .map(|(c, &wide)| match (c, wide) {
                ('a'..='z', true) => char::from_u32(c as u32 - 'a' as u32 + 0xFF41).unwrap_or(c),
                ('a'..='z', false) => c.to_ascii_uppercase(),
                ('@', true) => '\u{FF20}',
                _ => c,
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn accepted_addresses_are_clean_and_stable(raw in tricky_address()) {
            if let Ok(email) = Email::parse(&raw) {
                let s = email.as_str();
                prop_assert!(s.is_ascii(), "{s:?}");
                prop_assert!(!s.chars().any(|c| c.is_ascii_control() || c.is_whitespace()), "{s:?}");
                prop_assert!(!s.contains(['<', '>', '"', '\\', '(', ')', ',', ';', '[', ']']), "{s:?}");
                prop_assert_eq!(s.to_lowercase(), s);
                prop_assert_eq!(s.matches('@').count(), 1);
                prop_assert!(s.parse::<Address>().is_ok(), "lettre refuses {s:?}");
                prop_assert!(s.len() <= MAX_ADDRESS);
                prop_assert_eq!(Email::parse(s), Ok(email.clone()), "not idempotent");
            }
        }

        #[test]
        fn surrounding_whitespace_does_not_matter(raw in tricky_address()) {
            prop_assert_eq!(Email::parse(&format!(" \u{3000}{raw}\t\n")), Email::parse(&raw));
        }

        #[test]
        fn lookalike_spellings_parse_to_the_same_email(
            local in "[a-z0-9]{1,6}([._+-][a-z0-9]{1,4}){0,2}",
            // Not `ab--c`: IDNA reserves hyphens in the third and fourth places.
            domain in "[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,4})?\\.(com|org|example)",
            seed in proptest::collection::vec(any::<bool>(), 1..8),
            at in any::<proptest::sample::Index>(),
        ) {
            let plain = format!("{local}@{domain}");
            let email = Email::parse(&plain);
            prop_assert_eq!(email.as_ref().map(Email::as_str), Ok(plain.as_str()));
            let variant = variant(&plain, &seed);
            prop_assert_eq!(Email::parse(&variant), email.clone(), "{}", variant);
            // An invisible character anywhere is refused, never dropped.
            let mut hidden = plain.clone();
            let cut = hidden.char_indices().nth(at.index(plain.len())).map_or(0, |(i, _)| i);
            hidden.insert(cut, '\u{AD}');
            prop_assert_eq!(Email::parse(&hidden), Err(EmailError::Invisible));
        }

        #[test]
        fn any_string_never_panics(raw in "\\PC{0,80}") {
            let _ = Email::parse(&raw);
        }
    }
}
