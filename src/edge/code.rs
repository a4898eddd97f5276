//! One-time codes as typed by a member (`code` fields): exactly six ASCII digits, read
//! through the spaces, dashes and no-break spaces people put in when copying "123 456"
//! from a mail or a text message. Anything else (letters, other digits such as `٣` or
//! fullwidth `３`, more or fewer digits) is refused rather than guessed at.

use std::fmt;

/// Longest input looked at: six digits and generous separators.
const MAX_INPUT: usize = 32;

/// Six ASCII digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    pub fn parse(input: &str) -> Option<Code> {
        if input.len() > MAX_INPUT {
            return None;
        }
        let mut digits = String::with_capacity(6);
        for c in input.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '\t' | '\u{A0}' | '\u{202F}' => {}
                _ => return None,
            }
        }
        (digits.len() == 6).then_some(Code(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// A code is a secret while it is valid: never printed whole.
impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(******)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_usual_spellings_read_the_same() {
        for raw in ["123456", " 123 456 ", "123-456", "12 34 56", "123\u{A0}456"] {
            assert_eq!(
                Code::parse(raw).map(|c| c.0),
                Some("123456".into()),
                "{raw:?}"
            );
        }
        for raw in [
            "",
            "12345",
            "1234567",
            "12345a",
            "１２３４５６",
            "١٢٣٤٥٦",
            "123+456",
        ] {
            assert_eq!(Code::parse(raw), None, "{raw:?}");
        }
        let code = Code::parse("123456").map(|c| format!("{c:?}"));
        assert_eq!(code.as_deref(), Some("Code(******)"));
    }

    proptest! {
        #[test]
        fn a_code_is_six_ascii_digits_or_nothing(s in "\\PC{0,40}") {
            if let Some(c) = Code::parse(&s) {
                prop_assert_eq!(c.as_str().len(), 6);
                prop_assert!(c.as_str().bytes().all(|b| b.is_ascii_digit()));
                let digits: String = s.chars().filter(char::is_ascii_digit).collect();
                prop_assert_eq!(digits.as_str(), c.as_str());
            }
        }

        #[test]
        fn every_six_digit_number_reads_back(n in 0u32..1_000_000) {
            let s = format!("{n:06}");
            prop_assert_eq!(Code::parse(&s).map(|c| c.0), Some(s));
        }
    }
}
