//! Untrusted input becomes a typed value here, once, at the edge of the gateway: the request
//! path ([`path::CanonicalPath`]), the Host authority ([`host::Authority`]), email
//! addresses ([`email::Email`]), organisation identifications ([`company_id::CompanyId`]:
//! SIRET, VAT, other), members' display names ([`name::DisplayName`]), phone numbers ([`phone::Phone`], E.164) and one-time codes
//! ([`code::Code`]). Everything downstream
//! works on these types and never re-parses the strings.
//!
//! Each parser refuses what two common readers could understand differently rather than
//! guessing, and each has property tests attacking it.

pub mod code;
pub mod company_id;
pub mod day;
pub mod email;
pub mod header_name;
pub mod host;
pub mod name;
pub mod path;
pub mod phone;
