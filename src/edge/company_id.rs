//! An organisation's identification from the registration form (`id_type`, `id_number`),
//! parsed once into a [`CompanyId`]: the one spelling stored, shown to the organisation's
//! admins and compared when looking for a company already registered.
//!
//! Three kinds, chosen by the form's `id_type`:
//!
//! - **SIRET** (`siret`): 14 digits once spaces are removed, with a valid Luhn key. La Poste
//!   is the one exception INSEE documents: all its establishments share the SIREN
//!   356000000, too many for the Luhn numbering, so a SIRET starting with 356000000 is also
//!   valid when the sum of its 14 digits is a multiple of 5 (its head office,
//!   35600000000048, passes Luhn). Stored as the 14 digits.
//! - **VAT** (`vat`): a country prefix then that country's format from [`VAT_FORMATS`]
//!   (the 27 EU countries as VIES lists them, EL for Greece, XI for Northern Ireland, and
//!   GB, CH, NO). Spaces, dots and dashes are dropped, letters upper-cased. Only format is
//!   checked, except for France, whose two-digit key is computed from the SIREN. Stored
//!   as prefix and number, upper case, no separators (`FR40303265045`).
//! - **Other** (`other`): free text for every other identification, trimmed, 1 to 100
//!   characters, without control or invisible characters. Stored as typed.
//!
//! Two spellings of the same number give the same `CompanyId`; this module never repairs a
//! number (no digit is dropped or guessed) and checks only what the number itself says: a
//! VAT number that has the right shape may still not be registered (VIES would tell).

use std::fmt;

use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// Longest SIRET or VAT input looked at, in bytes, before any work.
pub const MAX_NUMBER_INPUT: usize = 64;
/// Longest free-text identification, in characters once trimmed.
pub const MAX_OTHER_CHARS: usize = 100;
/// Longest free-text input looked at, in bytes, before any work (100 characters of up to
/// 4 bytes each, with room for surrounding spaces).
const MAX_OTHER_INPUT: usize = 512;

/// La Poste's SIREN; see the module documentation.
const LA_POSTE_SIREN: &str = "356000000";

/// VAT number formats by country prefix, after the European Commission's VIES format list
/// ("VIES VAT number validation", FAQ: the structure of VAT numbers), plus GB (HMRC's
/// formats, also used behind XI), CH (the UID, `CHE` + 9 digits) and NO (the organisation
/// number). The shape describes what follows the two-letter prefix, item by item: a count
/// (`9`, or a range `2-10`, default 1) then a class: `d` a digit, `a` a letter, `x` a
/// letter or a digit, `[+*]` one of the listed characters, or an upper-case letter standing
/// for itself. So `U8d` is `U` then 8 digits, `9dB2d` is 9 digits, `B`, 2 digits.
pub const VAT_FORMATS: &[(&str, &[&str])] = &[
    ("AT", &["U8d"]),
    ("BE", &["[01]9d"]),
    ("BG", &["9-10d"]),
    ("CY", &["8da"]),
    ("CZ", &["8-10d"]),
    ("DE", &["9d"]),
    ("DK", &["8d"]),
    ("EE", &["9d"]),
    ("EL", &["9d"]),
    // First and last characters letters or digits, but not both digits.
    ("ES", &["a7dx", "d7da"]),
    ("FI", &["8d"]),
    // Two key characters then the SIREN; a numeric key is checked (see `french_key_ok`).
    ("FR", &["2x9d"]),
    ("HR", &["11d"]),
    ("HU", &["8d"]),
    // Old style (digit, letter or + or *, 5 digits, letter); new (7 digits, 1 or 2 letters).
    ("IE", &["da5da", "d[+*]5da", "7d1-2a"]),
    ("IT", &["11d"]),
    ("LT", &["9d", "12d"]),
    ("LU", &["8d"]),
    ("LV", &["11d"]),
    ("MT", &["8d"]),
    ("NL", &["9dB2d"]),
    ("PL", &["10d"]),
    ("PT", &["9d"]),
    ("RO", &["2-10d"]),
    ("SE", &["12d"]),
    ("SI", &["8d"]),
    ("SK", &["10d"]),
    // Standard, branch, government department, health authority.
    ("XI", &["9d", "12d", "GD3d", "HA3d"]),
    ("GB", &["9d", "12d", "GD3d", "HA3d"]),
    ("CH", &["E9d"]),
    ("NO", &["9d"]),
];

/// Words written after a number that are not part of it, dropped before the shape check so
/// that `CHE-123.456.789 TVA` and `CHE123456789` are one company: Switzerland's "VAT" in
/// German, French, Italian and Romansh, Norway's VAT-register mark.
const VAT_SUFFIXES: &[(&str, &[&str])] =
    &[("CH", &["MWST", "TVA", "IVA", "TPV"]), ("NO", &["MVA"])];

/// The form's `id_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdType {
    Siret,
    Vat,
    Other,
}

impl IdType {
    /// The form value (`siret`, `vat`, `other`), exactly.
    pub fn parse(s: &str) -> Option<IdType> {
        match s {
            "siret" => Some(IdType::Siret),
            "vat" => Some(IdType::Vat),
            "other" => Some(IdType::Other),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IdType::Siret => "siret",
            IdType::Vat => "vat",
            IdType::Other => "other",
        }
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed organisation identification. Only [`CompanyId::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompanyId {
    kind: IdType,
    number: String,
}

/// Why an identification was refused. [`CompanyIdError::key`] names the catalog message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompanyIdError {
    #[error("no identification number given")]
    Empty,
    #[error("unknown identification type")]
    Type,
    #[error("not a SIRET: 14 digits with a valid check key")]
    Siret,
    #[error("not a VAT number of a known country in its format")]
    Vat,
    #[error("the identification is longer than 100 characters or has control characters")]
    Other,
}

impl CompanyIdError {
    /// Catalog key of the explanation shown under the field.
    pub fn key(self) -> &'static str {
        match self {
            CompanyIdError::Empty => "org-id-empty",
            CompanyIdError::Type => "org-id-type-invalid",
            CompanyIdError::Siret => "org-id-siret-invalid",
            CompanyIdError::Vat => "org-id-vat-invalid",
            CompanyIdError::Other => "org-id-other-invalid",
        }
    }
}

impl CompanyId {
    pub fn parse(id_type: &str, id_number: &str) -> Result<CompanyId, CompanyIdError> {
        let kind = IdType::parse(id_type).ok_or(CompanyIdError::Type)?;
        let (cap, too_long) = match kind {
            IdType::Siret => (MAX_NUMBER_INPUT, CompanyIdError::Siret),
            IdType::Vat => (MAX_NUMBER_INPUT, CompanyIdError::Vat),
            IdType::Other => (MAX_OTHER_INPUT, CompanyIdError::Other),
        };
        if id_number.len() > cap {
            return Err(too_long);
        }
        let trimmed = id_number.trim();
        if trimmed.is_empty() {
            return Err(CompanyIdError::Empty);
        }
        let number = match kind {
            IdType::Siret => siret(trimmed)?,
            IdType::Vat => vat(trimmed)?,
            IdType::Other => other(trimmed)?,
        };
        Ok(CompanyId { kind, number })
    }

    pub fn kind(&self) -> IdType {
        self.kind
    }

    /// The normalised number: 14 digits, `FR40303265045`, or the trimmed free text.
    pub fn number(&self) -> &str {
        &self.number
    }
}

impl fmt::Display for CompanyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)
    }
}

/// Spaces people type or paste inside numbers: plain, no-break, narrow no-break.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\u{A0}' | '\u{202F}')
}

fn siret(input: &str) -> Result<String, CompanyIdError> {
    let digits: String = input.chars().filter(|&c| !is_space(c)).collect();
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CompanyIdError::Siret);
    }
    let la_poste = digits.starts_with(LA_POSTE_SIREN) && digit_sum(&digits).is_multiple_of(5);
    if luhn_ok(&digits) || la_poste {
        Ok(digits)
    } else {
        Err(CompanyIdError::Siret)
    }
}

/// Luhn: from the right, every second digit doubled (less 9 when over 9), sum ends in 0.
/// `digits` must be ASCII digits.
fn luhn_ok(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match (i % 2 == 1, d * 2) {
                (false, _) => d,
                (true, twice) if twice > 9 => twice - 9,
                (true, twice) => twice,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn digit_sum(digits: &str) -> u32 {
    digits.bytes().map(|b| u32::from(b - b'0')).sum()
}

fn vat(input: &str) -> Result<String, CompanyIdError> {
    let compact: String = input
        .chars()
        .filter(|&c| !is_space(c) && c != '.' && c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !compact.is_ascii() || compact.len() < 2 {
        return Err(CompanyIdError::Vat);
    }
    let (prefix, rest) = compact.split_at(2);
    let (prefix, shapes) = VAT_FORMATS
        .iter()
        .find(|(p, _)| *p == prefix)
        .ok_or(CompanyIdError::Vat)?;
    let rest = VAT_SUFFIXES
        .iter()
        .filter(|(p, _)| p == prefix)
        .flat_map(|(_, words)| words.iter())
        .find_map(|word| rest.strip_suffix(word))
        .unwrap_or(rest);
    if !shapes
        .iter()
        .any(|shape| shape_matches(shape, rest.as_bytes()))
    {
        return Err(CompanyIdError::Vat);
    }
    if *prefix == "FR" && !french_key_ok(rest) {
        return Err(CompanyIdError::Vat);
    }
    Ok(format!("{prefix}{rest}"))
}

/// French VAT: two key characters then the 9-digit SIREN. A numeric key must equal
/// (12 + 3 × (SIREN mod 97)) mod 97. Numbers issued with a letter in the key (the
/// "new-style" numbers) use a computation the tax administration does not publish: they
/// are accepted on their shape alone. `rest` has already matched `2x9d`.
fn french_key_ok(rest: &str) -> bool {
    let (key, siren) = rest.split_at(2);
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    match (key.parse::<u64>(), siren.parse::<u64>()) {
        (Ok(key), Ok(siren)) => key == (12 + 3 * (siren % 97)) % 97,
        _ => false,
    }
}

/// Which characters one shape item takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class<'a> {
    Digit,
    Letter,
    LetterOrDigit,
    OneOf(&'a [u8]),
    Exactly(u8),
}

impl Class<'_> {
    fn takes(self, b: u8) -> bool {
        match self {
            Class::Digit => b.is_ascii_digit(),
            Class::Letter => b.is_ascii_uppercase(),
            Class::LetterOrDigit => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Class::OneOf(set) => set.contains(&b),
            Class::Exactly(c) => b == c,
        }
    }
}

/// One shape item: between `min` and `max` characters of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item<'a> {
    min: usize,
    max: usize,
    class: Class<'a>,
}

/// Reads a shape of [`VAT_FORMATS`]; `None` if it is not written in the shape language
/// (a test checks the table's shapes all are).
fn shape_items(shape: &str) -> Option<Vec<Item<'_>>> {
    let s = shape.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    let count = |i: &mut usize| -> Option<usize> {
        let start = *i;
        while s.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        std::str::from_utf8(&s[start..*i]).ok()?.parse().ok()
    };
    while i < s.len() {
        let (min, max) = match count(&mut i) {
            None => (1, 1),
            Some(min) if s.get(i) == Some(&b'-') => {
                i += 1;
                (min, count(&mut i)?)
            }
            Some(n) => (n, n),
        };
        if min == 0 || max < min {
            return None;
        }
        let class = match *s.get(i)? {
            b'd' => Class::Digit,
            b'a' => Class::Letter,
            b'x' => Class::LetterOrDigit,
            b'[' => {
                let len = s[i..].iter().position(|&b| b == b']')?;
                let set = &s[i + 1..i + len];
                if set.is_empty() {
                    return None;
                }
                i += len;
                Class::OneOf(set)
            }
            c if c.is_ascii_uppercase() => Class::Exactly(c),
            _ => return None,
        };
        i += 1;
        items.push(Item { min, max, class });
    }
    Some(items)
}

fn shape_matches(shape: &str, s: &[u8]) -> bool {
    shape_items(shape).is_some_and(|items| items_match(&items, s))
}

/// Whether `s` is exactly `items`; tries the longest run first and backs off (inputs are
/// at most [`MAX_NUMBER_INPUT`] bytes and shapes have at most one range).
fn items_match(items: &[Item<'_>], s: &[u8]) -> bool {
    let Some((first, rest)) = items.split_first() else {
        return s.is_empty();
    };
    let run = s
        .iter()
        .take(first.max)
        .take_while(|&&b| first.class.takes(b))
        .count();
    run >= first.min && (first.min..=run).rev().any(|n| items_match(rest, &s[n..]))
}

/// Controls, format characters (bidi overrides, zero-width), private use, unassigned, and
/// line or paragraph separators: nothing a company's identifier is written with, and what
/// would make an admin page show something other than what is stored.
fn hidden(c: char) -> bool {
    c.general_category_group() == GeneralCategoryGroup::Other
        || matches!(
            c.general_category(),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
        )
}

fn other(input: &str) -> Result<String, CompanyIdError> {
    if input.chars().count() > MAX_OTHER_CHARS || input.chars().any(hidden) {
        return Err(CompanyIdError::Other);
    }
    Ok(input.to_owned())
}

#[cfg(test)]
mod tests;
