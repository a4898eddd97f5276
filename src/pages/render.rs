//! One askama struct per page and the single function that turns a template into a
//! [`Reply`]. Templates get the catalog (`c.t`), never literal strings.

use askama::Template;
use http::StatusCode;

use super::Reply;
use crate::i18n::{Lang, Tr};
use crate::routes::Route;

/// What the shared layout needs on every page: catalog, language switch target,
/// who is signed in (for the header and its logout button).
pub struct Chrome {
    pub t: Tr,
    pub lang: &'static str,
    /// URL-encoded path+query of this page, for the language switch's `rd`.
    pub here: String,
    pub user: Option<String>,
    pub csrf: String,
}

impl Chrome {
    pub fn new(lang: Lang, here: &str, user: Option<String>, csrf: String) -> Self {
        Self {
            t: lang.tr(),
            lang: lang.code(),
            here: form_urlencoded::byte_serialize(here.as_bytes()).collect(),
            user,
            csrf,
        }
    }
}

#[derive(Template)]
#[template(path = "pages/login.html")]
pub struct LoginPage {
    pub c: Chrome,
    pub rd: String,
    pub email: String,
    /// Catalog key of the message to show above the form, if any.
    pub error: Option<&'static str>,
    pub notice: Option<&'static str>,
    /// The activation-resend page for this address (offered when not activated yet).
    pub resend_url: String,
    pub signup_open: bool,
    /// Companies may register themselves (`orgs.registration`).
    pub register_open: bool,
}

#[derive(Template)]
#[template(path = "pages/message.html")]
pub struct MessagePage {
    pub c: Chrome,
    pub title: String,
    pub message: String,
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "pages/account.html")]
pub struct AccountPage {
    pub c: Chrome,
    pub name: String,
    pub email: String,
    pub groups: String,
    pub session_id: String,
    pub notice: Option<&'static str>,
    /// Offers the link to the admin page.
    pub admin: bool,
    pub devices: Vec<super::forms::DeviceRow>,
    /// "N of your M allowed devices are signed in", in the reader's language.
    pub devices_intro: String,
    /// The preferred language saved on the account ("" when none was chosen).
    pub lang: &'static str,
    /// What the profile form refused, in the reader's language.
    pub profile_error: Option<String>,
    /// What the password form refused, in the reader's language.
    pub password_problems: Vec<String>,
    /// The configured password rules, in the reader's language.
    pub rules: Vec<String>,
}

#[derive(Template)]
#[template(path = "pages/dev_mail.html")]
pub struct DevMailPage {
    pub c: Chrome,
    /// Newest first.
    pub mails: Vec<crate::mail::SentMail>,
}

#[derive(Template)]
#[template(path = "pages/dev_sms.html")]
pub struct DevSmsPage {
    pub c: Chrome,
    /// Newest first.
    pub texts: Vec<crate::mail::SentMail>,
}

/// Renders `page` as an HTML reply. A template error is a bug: logged, answered 500.
pub fn page(status: StatusCode, page: &impl Template) -> Reply {
    match page.render() {
        Ok(html) => Reply::html(status, html),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            Reply::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "internal error",
            )
        }
    }
}

/// A page with a title, one message and an optional link: errors (403, 404, 502, 503)
/// and simple confirmations. `title`/`message`/`link label` are catalog keys.
pub fn message(
    status: StatusCode,
    lang: Lang,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Reply {
    message_text(status, lang, title, lang.tr().get(message), link)
}

/// [`message`] with a text already in the reader's language (a message with arguments).
pub fn message_text(
    status: StatusCode,
    lang: Lang,
    title: &str,
    text: String,
    link: Option<(&str, &str)>,
) -> Reply {
    let t = lang.tr();
    let p = MessagePage {
        c: Chrome::new(lang, "/", None, String::new()),
        title: t.get(title),
        message: text,
        link: link.map(|(href, label)| (href.to_string(), t.get(label))),
    };
    page(status, &p)
}

/// Signed in, but without the role the path or page needs: a 403 page.
pub fn forbidden(lang: Lang) -> Reply {
    message(
        StatusCode::FORBIDDEN,
        lang,
        "forbidden-title",
        "forbidden-message",
        Some(("/", "back-home")),
    )
}

/// Password hashing has no room for this request (a storm of guesses): a 503 page with a
/// short `Retry-After`, as the queue it waited for drains in well under a second.
pub fn busy(lang: Lang) -> Reply {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        lang,
        "busy-title",
        "busy-message",
        None,
    )
    .with_header(http::header::RETRY_AFTER, BUSY_RETRY_AFTER.into())
}

/// Seconds a shed request is told to wait ([`busy`]).
pub const BUSY_RETRY_AFTER: &str = "2";

/// The store cannot be reached: a 503 page with `Retry-After` (fail closed).
pub fn unavailable(lang: Lang) -> Reply {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        lang,
        "unavailable-title",
        "unavailable-message",
        None,
    )
    .with_header(http::header::RETRY_AFTER, "5".into())
}
