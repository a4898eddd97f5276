//! The password policy from `[password]`. Returns every unmet rule, so a form can name
//! each one instead of failing on the first.

use crate::config::PasswordSection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmet {
    TooShort(usize),
    /// Longer than we are willing to hash.
    TooLong(usize),
    NoUpper,
    NoDigit,
    NoSymbol,
}

impl Unmet {
    /// Catalog key describing the rule.
    pub fn key(self) -> &'static str {
        match self {
            Unmet::TooShort(_) => "policy-too-short",
            Unmet::TooLong(_) => "policy-too-long",
            Unmet::NoUpper => "policy-no-upper",
            Unmet::NoDigit => "policy-no-digit",
            Unmet::NoSymbol => "policy-no-symbol",
        }
    }

    /// The rule in the reader's language.
    pub fn text(self, t: &crate::i18n::Tr) -> String {
        match self {
            Unmet::TooShort(n) => t.with(self.key(), &[("min", n.to_string())]),
            Unmet::TooLong(n) => t.with(self.key(), &[("max", n.to_string())]),
            _ => t.get(self.key()),
        }
    }
}

/// Every rule `[password]` imposes, to list them beside the field.
pub fn requirements(cfg: &PasswordSection) -> Vec<Unmet> {
    let mut rules = vec![Unmet::TooShort(cfg.min_length)];
    if cfg.require_upper {
        rules.push(Unmet::NoUpper);
    }
    if cfg.require_digit {
        rules.push(Unmet::NoDigit);
    }
    if cfg.require_symbol {
        rules.push(Unmet::NoSymbol);
    }
    rules
}

pub fn check(password: &str, cfg: &PasswordSection) -> Vec<Unmet> {
    let mut unmet = vec![];
    if password.chars().count() < cfg.min_length {
        unmet.push(Unmet::TooShort(cfg.min_length));
    }
    if cfg.require_upper && !password.chars().any(char::is_uppercase) {
        unmet.push(Unmet::NoUpper);
    }
    if cfg.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
        unmet.push(Unmet::NoDigit);
    }
    if cfg.require_symbol
        && !password
            .chars()
            .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
    {
        unmet.push(Unmet::NoSymbol);
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_unmet_rule() {
        let cfg = PasswordSection::default();
        assert_eq!(
            check("abc", &cfg),
            vec![
                Unmet::TooShort(10),
                Unmet::NoUpper,
                Unmet::NoDigit,
                Unmet::NoSymbol
            ]
        );
        assert!(check("Sufficient-1 pass", &cfg).is_empty());
        let lax = PasswordSection {
            min_length: 3,
            require_upper: false,
            require_digit: false,
            require_symbol: false,
            ..cfg
        };
        assert!(check("abc", &lax).is_empty());
    }
}
