//! The second-factor pages' data: `/2fa` (a login's second step) and `/account/2fa` (the
//! member's factors), and the enrolment forms both show.

use askama::Template;

use crate::auth::twofactor::enrol::TotpShown;
use crate::i18n::Lang;
use crate::pages::render::Chrome;
use crate::routes::Route;

/// Enrolment: the choices offered, and the one in progress.
pub struct EnrolView {
    /// Where the forms post (`/2fa` or `/account/2fa`).
    pub action: Route,
    /// `(action, label)` of each way to add a factor now.
    pub choices: Vec<(&'static str, String)>,
    pub totp: Option<TotpShown>,
    /// `navigator.credentials.create` options (JSON), during a passkey registration.
    pub webauthn: Option<String>,
    /// "email" or "sms" while their code is awaited.
    pub code_method: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "pages/twofactor.html")]
pub struct TwoFactorPage {
    pub c: Chrome,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// Passed (after enrolling at login): recovery codes shown once, then "Continue".
    pub passed: bool,
    pub recovery_codes: Vec<String>,
    /// No usable factor: enrol one first.
    pub enrol: Option<EnrolView>,
    /// The method shown: totp, webauthn, email, sms or recovery.
    pub method: &'static str,
    pub code_label: String,
    pub code_sent: bool,
    pub passkey_options: Option<String>,
    /// `(method, label)` of the others.
    pub others: Vec<(&'static str, String)>,
    /// Days a trusted device skips this step; 0 hides the box.
    pub trust_days: u64,
    pub trust_label: String,
}

/// One factor in the member's list.
pub struct FactorRow {
    pub id: String,
    pub method: &'static str,
    pub label: String,
    pub name: String,
    pub added: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "pages/account_twofactor.html")]
pub struct AccountTwoFactorPage {
    pub c: Chrome,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// The password must be typed again first.
    pub locked: bool,
    pub factors: Vec<FactorRow>,
    pub recovery_left: String,
    pub recovery_codes: Vec<String>,
    pub trusted: usize,
    pub enrol: EnrolView,
}
