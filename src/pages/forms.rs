//! Page structs of the sign-up and password forms (askama). Like every page, they get the
//! catalog through `c.t` and catalog keys, never literal text.

use askama::Template;

use super::render::Chrome;

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
    pub roles: &'static str,
    pub status: &'static str,
    pub failures: u64,
    pub locked: bool,
}

#[derive(Template)]
#[template(path = "pages/admin.html")]
pub struct AdminPage {
    pub c: Chrome,
    pub members: Vec<MemberRow>,
    /// The address just unlocked, for the notice.
    pub unlocked: Option<String>,
}
