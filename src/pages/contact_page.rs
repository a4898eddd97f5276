//! The contact page's view: the member's email and mobile, what is confirmed, the codes
//! waiting, and where "Later" goes.

use askama::Template;

use super::render::Chrome;
use crate::i18n::Lang;
use crate::routes::Route;

/// One channel's section.
pub struct ChannelView {
    /// The value in the field: the address or number waiting for its code, else the
    /// account's.
    pub value: String,
    pub confirmed: bool,
    /// A code was sent and is still valid: the code form is shown, with this sentence
    /// ("A code was sent to …").
    pub pending: Option<String>,
    /// Asked of this member (campaign or site rule).
    pub asked: bool,
    /// Why the last post about this channel was refused.
    pub error: Option<String>,
    /// Why the code was refused.
    pub code_error: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/contact.html")]
pub struct ContactPage {
    pub c: Chrome,
    pub rd: String,
    /// Why the password typed to change the login address was refused.
    pub password_error: Option<String>,
    pub email: ChannelView,
    /// `None` when mobile numbers are neither asked nor possible (no SMS transport).
    pub mobile: Option<ChannelView>,
    pub notice: Option<String>,
    /// Everything asked is confirmed.
    pub done: bool,
    /// Recovery needs a confirmed address, and where to write without one.
    pub recovery: String,
}

/// The page a mailed link leads to.
#[derive(Template)]
#[template(path = "pages/contact_link.html")]
pub struct ContactLinkPage {
    pub c: Chrome,
    /// "ADDRESS is confirmed".
    pub done: String,
}
