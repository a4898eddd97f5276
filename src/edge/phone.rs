//! Phone numbers, parsed once where they enter (registration form, contact page) into a
//! [`Phone`]: the E.164 spelling (`+33612345678`) stored, compared and sent to the SMS
//! gateway.
//!
//! The reading is the `phonenumber` crate's (a port of Google's libphonenumber with its
//! metadata): national input is read in the site's region ([`Region`], `site.phone_region`),
//! so `06 12 34 56 78` is `+33612345678` in France, and input with `+` or an international
//! prefix (`00` in France) is read in the country it names. The number must be one the
//! metadata calls valid (a real range of some country), not merely the right length.
//!
//! Around the crate:
//!
//! - The input is capped at [`MAX_INPUT`] bytes before the crate sees it, and the crate runs
//!   under `catch_unwind`: it has panicked on crafted input before (GHSA-whhr-7f2w-qqj2,
//!   GHSA-mjw4-jj88-v687), and a panic is a refusal here. (This needs `panic = "unwind"`,
//!   the default; the panic hook still prints the panic.)
//! - Only digits, one leading `+`, and the separators people write (spaces, no-break
//!   spaces, `-`, `.`, `/`, parentheses) are let through; all but parentheses reach the
//!   crate as plain spaces (it reads a dash in the first group as RFC 3966 syntax).
//!   libphonenumber would also read letters (`1-800-FLOWERS`, but also a mistyped `O` as
//!   the 6 key), extensions (`ext. 12`, which E.164 has no room for) and `tel:` URIs: all
//!   refused rather than turned into some number.
//! - A number written with its country code is read with that country's rules, not the
//!   default region's: given a default region, the crate strips that region's national
//!   prefix from it, so `+39 06 6981 2345` (Rome) would lose its 0 in region FR. Input
//!   with `+` is parsed without a default region, and input with the region's
//!   international prefix (`00 39 06 …`) is parsed again that way, in its `+` form.
//!
//! A stored E.164 string re-parses to the same `Phone` in any region.

use std::fmt;
use std::panic;

use phonenumber::country::{Id, Source};
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, PhoneNumber};

/// Longest input looked at, in bytes, before any work: 15 digits (E.164's maximum), a
/// `+` or an international prefix, and separators.
pub const MAX_INPUT: usize = 32;

/// The country a national number (without `+` or international prefix) is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region(Id);

impl Region {
    /// The default `site.phone_region`.
    pub const FR: Region = Region(Id::FR);

    /// A CLDR two-letter region the phone metadata knows (`FR`, `gb`); `None` otherwise.
    pub fn parse(s: &str) -> Option<Region> {
        let s = s.trim();
        if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let id: Id = s.to_ascii_uppercase().parse().ok()?;
        // The crate looks the default region up and unwraps: only regions it has.
        DATABASE.by_id(id.as_ref())?;
        Some(Region(id))
    }

    pub fn id(self) -> Id {
        self.0
    }
}

impl Default for Region {
    fn default() -> Self {
        Region::FR
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

/// A valid phone number in E.164: `+`, then 7 to 15 digits. Only [`Phone::parse`] makes
/// one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

/// Why a number was refused. [`PhoneError::key`] names the catalog message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("no phone number given")]
    Empty,
    #[error("the phone number is too long")]
    TooLong,
    #[error("not a valid phone number")]
    Invalid,
    #[error("not a number that receives text messages")]
    NotMobile,
}

impl PhoneError {
    /// Catalog key of the explanation shown under the field.
    pub fn key(self) -> &'static str {
        match self {
            PhoneError::Empty => "phone-empty",
            PhoneError::TooLong => "phone-too-long",
            PhoneError::Invalid => "phone-invalid",
            PhoneError::NotMobile => "phone-not-mobile",
        }
    }
}

impl Phone {
    pub fn parse(input: &str, default_region: Region) -> Result<Phone, PhoneError> {
        if input.len() > MAX_INPUT {
            return Err(PhoneError::TooLong);
        }
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let text = plain_spelling(trimmed).ok_or(PhoneError::Invalid)?;
        let e164 = panic::catch_unwind(|| e164(&text, default_region))
            .ok()
            .flatten()
            .ok_or(PhoneError::Invalid)?;
        if !is_e164(&e164) {
            return Err(PhoneError::Invalid);
        }
        Ok(Phone(e164))
    }

    /// A number for text messages: like [`Phone::parse`], and refused when the metadata
    /// says it is a kind that cannot receive them (fixed line, freephone, premium rate,
    /// shared cost, company, emergency, voicemail numbers). Numbers it cannot tell from a
    /// mobile (`FixedLineOrMobile` in North America), personal, VoIP and pager numbers pass.
    pub fn parse_mobile(input: &str, default_region: Region) -> Result<Phone, PhoneError> {
        use phonenumber::Type;
        let phone = Phone::parse(input, default_region)?;
        let kind = panic::catch_unwind(|| {
            phonenumber::parse(None, phone.as_str())
                .ok()
                .map(|n| n.number_type(&DATABASE))
        })
        .ok()
        .flatten()
        .ok_or(PhoneError::Invalid)?;
        match kind {
            Type::FixedLine
            | Type::TollFree
            | Type::PremiumRate
            | Type::SharedCost
            | Type::Uan
            | Type::Emergency
            | Type::Voicemail
            | Type::ShortCode
            | Type::StandardRate => Err(PhoneError::NotMobile),
            _ => Ok(phone),
        }
    }

    /// The country the number belongs to, by the metadata (`None` for numbers shared by
    /// several countries that it cannot tell apart).
    pub fn region(&self) -> Option<Region> {
        panic::catch_unwind(|| {
            phonenumber::parse(None, self.as_str())
                .ok()
                .and_then(|n| n.country().id())
        })
        .ok()
        .flatten()
        .map(Region)
    }

    /// The E.164 spelling: `+33612345678`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({:?})", self.0)
    }
}

impl AsRef<str> for Phone {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The input with every separator but parentheses as a plain space, if it only has digits,
/// separators and at most one `+` before every digit. The crate reads some separators
/// itself, not always as one: `+79-000000000` is an RFC 3966 number to it (country code
/// 79, refused) where `+79 000000000` is Russian; and it does not know the narrow no-break
/// space.
fn plain_spelling(s: &str) -> Option<String> {
    let mut plus = false;
    let mut digit = false;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let keep = match c {
            '0'..='9' => {
                digit = true;
                c
            }
            '+' if !plus && !digit => {
                plus = true;
                c
            }
            '(' | ')' => c,
            ' ' | '-' | '.' | '/' | '\u{A0}' | '\u{202F}' => ' ',
            _ => return None,
        };
        out.push(keep);
    }
    digit.then_some(out)
}

/// The crate's reading of `text` as E.164, if it calls the number valid. May panic (the
/// crate's own bugs): run under `catch_unwind`.
fn e164(text: &str, region: Region) -> Option<String> {
    let number = read(text, region)?;
    if !phonenumber::is_valid(&number) || number.extension().is_some() {
        return None;
    }
    Some(number.format().mode(Mode::E164).to_string())
}

/// Parses with the default region; a number that names another country is parsed again
/// with that country's rules (see the module documentation).
fn read(text: &str, region: Region) -> Option<PhoneNumber> {
    if text.contains('+') {
        return phonenumber::parse(None, text).ok();
    }
    let number = phonenumber::parse(Some(region.0), text).ok()?;
    let home = DATABASE.by_id(region.0.as_ref())?;
    if number.code().source() != Source::Idd || number.code().value() == home.country_code() {
        return Some(number);
    }
    // Written with the region's international prefix (`00 39 …` in France): the same
    // digits after that prefix, with `+`.
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let idd = home.international_prefix()?.find(&digits)?;
    if idd.start() != 0 {
        return None;
    }
    phonenumber::parse(None, format!("+{}", &digits[idd.end()..])).ok()
}

/// `+` then 7 to 15 ASCII digits, the first not 0.
fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

#[cfg(test)]
mod tests;
