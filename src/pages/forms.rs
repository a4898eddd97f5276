//! Page structs of the sign-up and password forms (askama). Like every page, they get the
//! catalog through `c.t` and catalog keys, never literal text.

use askama::Template;

use super::render::Chrome;
use crate::{i18n::Lang, routes::Route};

#[derive(Template)]
#[template(path = "pages/signup.html")]
pub struct SignupPage {
    pub c: Chrome,
    pub email: String,
    /// "fr" / "en": the language selected in the form.
    pub lang: &'static str,
    /// Each refused rule, already in the reader's language.
    pub problems: Vec<String>,
    /// The rules, listed under the password field.
    pub rules: Vec<String>,
    pub invite_only: bool,
}

/// One email field and a button: activation resend, forgotten password.
#[derive(Template)]
#[template(path = "pages/email_form.html")]
pub struct EmailFormPage {
    pub c: Chrome,
    /// Catalog keys.
    pub title: &'static str,
    pub intro: &'static str,
    pub submit: &'static str,
    pub action: &'static str,
    pub email: String,
    /// Why the address was refused, in the reader's language.
    pub error: Option<String>,
    /// A remark under the form (recovery needs a confirmed address), in that language.
    pub note: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/reset.html")]
pub struct ResetPage {
    pub c: Chrome,
    pub token: String,
    /// For password managers (hidden username field).
    pub email: String,
    /// "Choose a new password for ADDRESS", in the reader's language.
    pub intro: String,
    pub problems: Vec<String>,
    pub rules: Vec<String>,
}

/// One account on the admin page.
pub struct MemberRow {
    pub email: String,
    pub name: String,
    pub roles: &'static str,
    pub status: &'static str,
    pub failures: u64,
    pub locked: bool,
}

/// One campaign on the admin page.
pub struct CampaignRow {
    pub id: String,
    pub started: String,
    pub by: String,
    pub scope: String,
    pub channels: String,
    pub progress: crate::auth::campaign::Progress,
}

/// `/_vigile/admin/member?email=`: one member's devices and own device cap.
#[derive(Template)]
#[template(path = "pages/admin_member.html")]
pub struct AdminMemberPage {
    pub c: Chrome,
    pub nav: super::console::Nav,
    pub email: String,
    /// The member's own cap, empty when the site's applies.
    pub own_cap: String,
    pub site_cap: u32,
    pub devices: Vec<DeviceRow>,
    pub contact: ContactView,
    /// "TOTP, passkey" or "none", in the page's language.
    pub factors: String,
    pub has_factors: bool,
    /// Consecutive failed logins on the account, and whether that locks it.
    pub failures: u64,
    pub locked: bool,
    /// Their most recent security events.
    pub events: Vec<super::console_events::EventRow>,
    pub notice: Option<&'static str>,
    pub error: Option<&'static str>,
}

/// A member's contact state on their console page, in the reader's language.
pub struct ContactView {
    /// "Confirmed on 2026-01-02 03:04 UTC (activation link)", or "Not confirmed".
    pub email_state: String,
    pub email_confirmed: bool,
    /// The mobile number (E.164), if the account has one.
    pub mobile: Option<String>,
    pub mobile_state: String,
    pub mobile_confirmed: bool,
}

/// One signed-in device, as the account, device-choice and admin pages list it.
pub struct DeviceRow {
    /// Session id (the public handle, not the cookie secret).
    pub id: String,
    /// "Chrome on Windows".
    pub label: String,
    /// Catalog key of the device type.
    pub kind: &'static str,
    pub ip: String,
    pub since: String,
    pub last_seen: String,
    /// The browser looking at the page.
    pub current: bool,
}

/// `/_vigile/verify`: the code mailed when a login went over the device cap.
#[derive(Template)]
#[template(path = "pages/verify.html")]
pub struct VerifyPage {
    pub c: Chrome,
    /// Already in the reader's language.
    pub error: Option<String>,
    pub notice: Option<&'static str>,
}

/// `/_vigile/devices/choose`: which device the new one replaces.
#[derive(Template)]
#[template(path = "pages/choose.html")]
pub struct ChoosePage {
    pub c: Chrome,
    /// "Your account can be signed in on N devices...", in the reader's language.
    pub intro: String,
    pub devices: Vec<DeviceRow>,
    /// Devices to pick for the new one to fit (more than one if the cap was lowered).
    pub excess: usize,
    pub error: Option<String>,
}
