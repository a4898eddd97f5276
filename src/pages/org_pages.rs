//! Page structs of the organisation pages (askama): registration, the organisation's own
//! page and billing, joining by invitation, and the site admin's view of one organisation.

use askama::Template;

use super::fields::Fields;
use super::render::Chrome;
use crate::{i18n::Lang, routes::Route};

#[derive(Template)]
#[template(path = "pages/register.html")]
pub struct RegisterPage {
    pub c: Chrome,
    /// 1, 2 or 3.
    pub step: u8,
    /// "Step 2 of 3", in the reader's language.
    pub step_text: String,
    pub f: Fields,
    pub token: String,
    /// The address from step 1 (step 3 shows it read-only).
    pub email: String,
    pub lang: &'static str,
    pub rules: Vec<String>,
}

/// One member on the organisation page.
pub struct OrgMemberRow {
    pub id: String,
    pub email: String,
    pub name: String,
    /// "member", "org-admin", "org-super-admin".
    pub role: &'static str,
    pub role_key: &'static str,
    /// The viewer may remove this member.
    pub removable: bool,
}

pub struct OrgInviteRow {
    pub email: String,
    pub until: String,
}

/// The profile as shown (values already checked when stored).
pub struct OrgView {
    pub company: String,
    pub id_number: String,
    pub phone: String,
    pub address: String,
}

#[derive(Template)]
#[template(path = "pages/org.html")]
pub struct OrgPage {
    pub c: Chrome,
    pub org: OrgView,
    pub id_type_key: &'static str,
    pub role_key: &'static str,
    pub is_super: bool,
    pub manages: bool,
    /// The profile form (super-admin).
    pub f: Fields,
    pub invite_form: Fields,
    pub members: Vec<OrgMemberRow>,
    pub invites: Vec<OrgInviteRow>,
    /// "3 of 25 seats used".
    pub seats_text: String,
}

#[derive(Template)]
#[template(path = "pages/org_billing.html")]
pub struct OrgBillingPage {
    pub c: Chrome,
    pub company: String,
    pub plan: String,
    pub seats_text: String,
}

#[derive(Template)]
#[template(path = "pages/org_join.html")]
pub struct OrgJoinPage {
    pub c: Chrome,
    /// "Join COMPANY".
    pub title: String,
    pub token: String,
    pub email: String,
    pub lang: &'static str,
    pub f: Fields,
    pub rules: Vec<String>,
}

/// One organisation on the admin page.
pub struct OrgRow {
    pub id: String,
    pub company: String,
    pub super_admin: String,
    pub members: u64,
    pub seats_used: u32,
    pub seats: u32,
}

#[derive(Template)]
#[template(path = "pages/admin_org.html")]
pub struct AdminOrgPage {
    pub c: Chrome,
    pub nav: super::console::Nav,
    pub id: String,
    pub company: String,
    pub super_admin: String,
    pub members: u64,
    pub seats_text: String,
    /// The form's values: empty = the site's default.
    pub seats: String,
    pub default_seats: u32,
    pub plan: String,
    pub max_devices: String,
    pub notice: Option<&'static str>,
    pub error: Option<&'static str>,
}
