//! A member's display name as typed on the account page: trimmed, 1 to 200 characters,
//! no control characters, and none of the invisible characters that reorder or hide text
//! (Unicode's format characters: bidirectional marks, overrides and isolates, zero-width
//! characters, the soft hyphen, tags, the byte-order mark; line and paragraph separators;
//! private-use characters), so a name shown to an admin or sent upstream reads as what it
//! is. [`is_hidden`] is the same rule for names typed elsewhere (organisation forms, the
//! command line, imports).

use std::fmt;

/// Longest name kept, in characters.
pub const MAX_CHARS: usize = 200;

#[derive(Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// Whether `c` is a control, format (Unicode category Cf), separator other than the
/// space (Zl, Zp) or private-use character: nothing a name needs, and each can hide or
/// reorder what a reader sees.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{AD}' | '\u{600}'..='\u{605}' | '\u{61C}' | '\u{6DD}' | '\u{70F}'
            | '\u{890}'..='\u{891}' | '\u{8E2}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}' | '\u{E0001}' | '\u{E0020}'..='\u{E007F}'
            | '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{10FFFF}')
}

impl DisplayName {
    pub fn parse(input: &str) -> Option<DisplayName> {
        let name = input.trim();
        let ok =
            !name.is_empty() && name.chars().count() <= MAX_CHARS && !name.chars().any(is_hidden);
        ok.then(|| DisplayName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DisplayName").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_people_type_are_kept_trimmed() {
        for (raw, kept) in [
            ("Ann Lee", "Ann Lee"),
            ("  Zoé d'Arc-Dupont ", "Zoé d'Arc-Dupont"),
            ("李小龍", "李小龍"),
        ] {
            assert_eq!(DisplayName::parse(raw).map(|n| n.0), Some(kept.into()));
        }
    }

    #[test]
    fn empty_hidden_or_overlong_names_are_refused() {
        let long = "a".repeat(MAX_CHARS + 1);
        for raw in [
            "",
            "   ",
            "Ann\nLee",
            "Ann\u{0}",
            "evil\u{202E}gnp.exe",
            "a\u{200B}b",
            "\u{FEFF}Ann",
            "Ann\u{61C}Lee",
            "soft\u{AD}hyphen",
            "line\u{2028}break",
            "tag\u{E0041}",
            "private\u{E000}",
            long.as_str(),
        ] {
            assert_eq!(DisplayName::parse(raw), None, "{raw:?}");
        }
        assert!(DisplayName::parse(&"é".repeat(MAX_CHARS)).is_some());
    }

    proptest! {
        #[test]
        fn a_kept_name_is_trimmed_bounded_and_visible(raw in "\\PC{0,250}") {
            if let Some(name) = DisplayName::parse(&raw) {
                let s = name.as_str();
                prop_assert_eq!(s, s.trim());
                prop_assert!(!s.is_empty() && s.chars().count() <= MAX_CHARS);
                prop_assert!(!s.chars().any(is_hidden));
                // Parsing what was kept keeps it as is.
                prop_assert_eq!(DisplayName::parse(s), Some(name.clone()));
            }
        }

        #[test]
        fn any_hidden_character_refuses_the_name(
            a in "[a-z]{1,20}",
            c in prop::sample::select(vec!['\u{7}', '\u{202D}', '\u{2066}', '\u{200D}', '\u{FEFF}']),
            b in "[a-z]{1,20}",
        ) {
            let raw = format!("{a}{c}{b}");
            prop_assert!(DisplayName::parse(&raw).is_none());
        }
    }
}
