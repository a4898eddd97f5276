//! One askama struct per page and the single function that turns a template into a
//! [`Reply`]. Templates get the catalog (`c.t`), never literal strings.

use askama::Template;
use http::StatusCode;

use super::Reply;
use crate::config::Config;
use crate::i18n::{Lang, Tr};
use crate::routes::Route;

/// What the shared layout needs on every page: catalog, language switch target,
/// the site's name, who is signed in (for the header and its logout button), and on the
/// pages where a member may need help, the support address.
pub struct Chrome {
    pub t: Tr,
    pub lang: &'static str,
    /// URL-encoded path+query of this page, for the language switch's `rd`.
    pub here: String,
    /// `site.name`, or the catalog's "Members area" in this language.
    pub site: String,
    pub user: Option<String>,
    pub csrf: String,
    /// The "Contact us" line under the page's content; `None` shows nothing.
    pub support: Option<Support>,
}

/// `site.support_email` as a page shows it: the address (escaped by askama like any
/// text) and its `mailto:` link.
pub struct Support {
    pub email: String,
    pub mailto: String,
}

impl Chrome {
    pub fn new(
        lang: Lang,
        config: &Config,
        here: &str,
        user: Option<String>,
        csrf: String,
    ) -> Self {
        let t = lang.tr();
        let site = match config.file.site.name.as_str() {
            "" => t.get("site-name"),
            name => name.to_string(),
        };
        Self {
            t,
            lang: lang.code(),
            here: form_urlencoded::byte_serialize(here.as_bytes()).collect(),
            site,
            user,
            csrf,
            support: None,
        }
    }

    /// Shows the "Contact us" line, when `site.support_email` is set.
    pub fn with_support(mut self, config: &Config) -> Self {
        self.support = config.support_email.as_ref().map(|e| Support {
            email: e.to_string(),
            mailto: e.mailto(),
        });
        self
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

/// A page with a title, one message and an optional link: simple confirmations.
/// `title`/`message`/`link label` are catalog keys. Errors use [`error`].
pub fn message(
    status: StatusCode,
    lang: Lang,
    config: &Config,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Reply {
    message_text(status, lang, config, title, lang.tr().get(message), link)
}

/// [`message`] with a text already in the reader's language (a message with arguments).
pub fn message_text(
    status: StatusCode,
    lang: Lang,
    config: &Config,
    title: &str,
    text: String,
    link: Option<(&str, &str)>,
) -> Reply {
    let c = Chrome::new(lang, config, "/", None, String::new());
    message_page(status, c, title, text, link)
}

/// An error page (403, 404, 410, 429, 502, 503...): [`message`] with the support
/// address's "Contact us" line when `site.support_email` is set.
pub fn error(
    status: StatusCode,
    lang: Lang,
    config: &Config,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Reply {
    message_with_support(status, lang, config, title, lang.tr().get(message), link)
}

/// [`message_text`] with the "Contact us" line when `site.support_email` is set: error
/// pages, and the pages of a member who may need help (password recovery).
pub fn message_with_support(
    status: StatusCode,
    lang: Lang,
    config: &Config,
    title: &str,
    text: String,
    link: Option<(&str, &str)>,
) -> Reply {
    let c = Chrome::new(lang, config, "/", None, String::new()).with_support(config);
    message_page(status, c, title, text, link)
}

fn message_page(
    status: StatusCode,
    c: Chrome,
    title: &str,
    text: String,
    link: Option<(&str, &str)>,
) -> Reply {
    let t = c.t;
    let p = MessagePage {
        c,
        title: t.get(title),
        message: text,
        link: link.map(|(href, label)| (href.to_string(), t.get(label))),
    };
    page(status, &p)
}

/// Signed in, but without the role the path or page needs: a 403 page.
pub fn forbidden(lang: Lang, config: &Config) -> Reply {
    error(
        StatusCode::FORBIDDEN,
        lang,
        config,
        "forbidden-title",
        "forbidden-message",
        Some(("/", "back-home")),
    )
}

/// Password hashing has no room for this request (a storm of guesses): a 503 page with a
/// short `Retry-After`, as the queue it waited for drains in well under a second.
pub fn busy(lang: Lang, config: &Config) -> Reply {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        lang,
        config,
        "busy-title",
        "busy-message",
        None,
    )
    .with_header(http::header::RETRY_AFTER, BUSY_RETRY_AFTER.into())
}

/// Seconds a shed request is told to wait ([`busy`]).
pub const BUSY_RETRY_AFTER: &str = "2";

/// The store cannot be reached: a 503 page with `Retry-After` (fail closed).
pub fn unavailable(lang: Lang, config: &Config) -> Reply {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        lang,
        config,
        "unavailable-title",
        "unavailable-message",
        None,
    )
    .with_header(http::header::RETRY_AFTER, "5".into())
}
