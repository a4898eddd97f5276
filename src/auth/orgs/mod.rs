//! Organisations (SPEC §6): a company registers itself in three steps ([`register`]), then
//! its super-admin and org admins manage its people ([`members`]).
//!
//! Form input is checked here into store values, each refusal naming its field so the
//! page can show it beside that field and keep what was typed. Who may do what is decided
//! on the acting member's account as the store has it now, never on a cached identity: a
//! demoted admin cannot act in the half second another instance still caches them.
//!
//! This module must never reveal whether an address has an account, nor log a password
//! or a link token.

pub mod members;
pub mod register;

use crate::edge::company_id::CompanyId;
use crate::edge::phone::{Phone, Region};
use crate::i18n::Tr;
use crate::store::OrgProfile;

use super::signup::Problem;

/// Longest company name and address accepted, in characters.
const MAX_COMPANY: usize = 200;
const MAX_ADDRESS: usize = 500;
/// Longest first or last name, in characters.
const MAX_NAME: usize = 100;

/// Why a field was refused: a catalog key, or a password problem (policy, mismatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    Key(&'static str),
    Password(Problem),
}

/// One refused field (its form name) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub field: &'static str,
    pub why: Why,
}

impl Refused {
    fn key(field: &'static str, key: &'static str) -> Self {
        Self {
            field,
            why: Why::Key(key),
        }
    }

    pub fn text(&self, t: &Tr) -> String {
        match &self.why {
            Why::Key(k) => t.get(k),
            Why::Password(p) => p.text(t),
        }
    }
}

/// The company fields of step 2 and of the profile form, as typed.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompanyForm<'a> {
    pub company: &'a str,
    pub id_type: &'a str,
    pub id_number: &'a str,
    pub phone: &'a str,
    pub address: &'a str,
}

/// Free text of 1..=`max` characters with no control or invisible characters
/// (`edge::name::is_hidden`; a newline is allowed where `multiline`), trimmed.
fn text(value: &str, max: usize, multiline: bool) -> Option<String> {
    let value = value.trim();
    let ok = !value.is_empty()
        && value.chars().count() <= max
        && value
            .chars()
            .all(|c| !crate::edge::name::is_hidden(c) || (multiline && (c == '\n' || c == '\r')));
    ok.then(|| value.replace("\r\n", "\n"))
}

/// Checks the company fields; every refusal is reported, not only the first.
pub fn check_company(form: &CompanyForm<'_>, region: Region) -> Result<OrgProfile, Vec<Refused>> {
    let mut refused = vec![];
    let company = text(form.company, MAX_COMPANY, false);
    if company.is_none() {
        refused.push(Refused::key("company", "org-company-invalid"));
    }
    let id = CompanyId::parse(form.id_type, form.id_number)
        .map_err(|e| {
            let field = if e.key() == "org-id-type-invalid" {
                "id_type"
            } else {
                "id_number"
            };
            refused.push(Refused::key(field, e.key()));
        })
        .ok();
    let phone = Phone::parse(form.phone, region)
        .map_err(|e| refused.push(Refused::key("phone", e.key())))
        .ok();
    let address = text(form.address, MAX_ADDRESS, true);
    if address.is_none() {
        refused.push(Refused::key("address", "org-address-invalid"));
    }
    match (company, id, phone, address) {
        (Some(company), Some(id), Some(phone), Some(address)) if refused.is_empty() => {
            Ok(OrgProfile {
                company,
                id_type: id.kind().as_str().to_string(),
                id_number: id.number().to_string(),
                phone: phone.as_str().to_string(),
                address,
            })
        }
        _ => Err(refused),
    }
}

/// The person's fields of step 3 and of the invitation form, as typed.
#[derive(Debug, Clone, Copy, Default)]
pub struct PersonForm<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub password: &'a str,
    pub confirm: &'a str,
}

/// Checks names and password; returns the full name ("First Last").
pub fn check_person(deps: &super::Deps, form: &PersonForm<'_>) -> Result<String, Vec<Refused>> {
    let mut refused = vec![];
    let first = text(form.first_name, MAX_NAME, false);
    if first.is_none() {
        refused.push(Refused::key("first_name", "org-name-invalid"));
    }
    let last = text(form.last_name, MAX_NAME, false);
    if last.is_none() {
        refused.push(Refused::key("last_name", "org-name-invalid"));
    }
    for problem in super::signup::check_password(deps, form.password, form.confirm) {
        let field = if problem == Problem::Mismatch {
            "confirm"
        } else {
            "password"
        };
        refused.push(Refused {
            field,
            why: Why::Password(problem),
        });
    }
    match (first, last) {
        (Some(first), Some(last)) if refused.is_empty() => Ok(format!("{first} {last}")),
        _ => Err(refused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_trimmed_bounded_and_single_line_unless_allowed() {
        assert_eq!(text("  Acme  ", 10, false).as_deref(), Some("Acme"));
        assert_eq!(text("   ", 10, false), None);
        assert_eq!(text("abcdefghijk", 10, false), None);
        assert_eq!(text("a\nb", 10, false), None);
        assert_eq!(text("a\r\nb", 10, true).as_deref(), Some("a\nb"));
        assert_eq!(text("a\u{0}b", 10, true), None);
    }

    #[test]
    fn company_refusals_name_each_field() {
        let region = Region::parse("FR").unwrap_or_else(|| unreachable!());
        let bad = CompanyForm {
            company: "",
            id_type: "siret",
            id_number: "73282932000075",
            phone: "12",
            address: "",
        };
        let fields: Vec<&str> = check_company(&bad, region)
            .unwrap_err()
            .iter()
            .map(|r| r.field)
            .collect();
        assert_eq!(fields, ["company", "id_number", "phone", "address"]);
        let good = CompanyForm {
            company: "Acme",
            id_type: "siret",
            id_number: "732 829 320 00074",
            phone: "06 12 34 56 78",
            address: "1 rue de la Paix\r\nParis",
        };
        let p = check_company(&good, region).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (p.id_number.as_str(), p.phone.as_str(), p.address.as_str()),
            ("73282932000074", "+33612345678", "1 rue de la Paix\nParis")
        );
    }
}
