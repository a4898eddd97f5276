//! Vigile's own pages under `/_vigile/`: one handler per [`Route`](crate::routes::Route),
//! each taking the page context (a [`PageRequest`]: plain data, no Pingora types) and
//! returning `Result<Reply, PageError>`; [`PageError`] renders every refusal in one place.
//! The proxy writes the reply; nothing here touches a socket.

pub mod console;
pub mod console_events;
pub mod console_import;
pub mod console_ops;
pub mod console_pages;
pub mod contact_page;
pub mod cookies;
mod csrf;
pub mod error;
pub mod fields;
pub mod forms;
mod handlers;
pub mod org_pages;
pub mod rd;
pub mod render;
pub mod twofactor_page;

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::app::App;
use crate::auth::Visitor;
use crate::i18n::{Lang, Tr};
use cookies::RequestCookies;
pub use error::PageError;
pub use handlers::Answered;

/// Everything a page handler may look at.
pub struct PageRequest<'a> {
    pub method: &'a Method,
    /// Canonical, percent-decoded path, starting with `/_vigile`.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub cookies: &'a RequestCookies,
    pub body: Bytes,
    /// The body was over its limit (read to its end and thrown away): only the upload
    /// pages get one, to say the file is too large.
    pub body_too_large: bool,
    pub client_ip: IpAddr,
    /// Who is asking (a member, anonymous, or unknown because the store is down).
    pub visitor: Visitor,
    /// The session cookie names a session that was ended by another device: why.
    pub signed_out: Option<crate::store::SignedOut>,
    pub lang: Lang,
    /// When the proxy read the request: pages and flows take this time, never the clock.
    pub now: crate::store::Millis,
}

impl PageRequest<'_> {
    pub fn tr(&self) -> Tr {
        self.lang.tr()
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn user_agent(&self) -> String {
        self.headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    /// The form fields of a urlencoded POST body.
    pub fn form(&self) -> Form {
        Form(
            form_urlencoded::parse(&self.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
}

pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of a repeated field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A complete response to write downstream.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(http::HeaderName, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![(http::header::CONTENT_TYPE, content_type.to_string())],
            body: body.into(),
        }
    }

    pub fn html(status: StatusCode, body: String) -> Self {
        Self::new(status, "text/html; charset=utf-8", body)
    }

    pub fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        Self::new(status, "application/json", value.to_string())
    }

    /// 303 See Other: after a form POST the browser GETs the target.
    pub fn see_other(location: &str) -> Self {
        Self::redirect(StatusCode::SEE_OTHER, location)
    }

    pub fn redirect(status: StatusCode, location: &str) -> Self {
        let mut r = Self::new(status, "text/plain; charset=utf-8", Bytes::new());
        r.headers
            .push((http::header::LOCATION, location.to_string()));
        r
    }

    pub fn with_cookie(mut self, set_cookie: String) -> Self {
        self.headers.push((http::header::SET_COOKIE, set_cookie));
        self
    }

    pub fn with_header(mut self, name: http::HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Routes a `/_vigile/...` request to its page.
pub async fn handle(app: &std::sync::Arc<App>, req: PageRequest<'_>) -> Answered {
    handlers::dispatch(app, req).await
}
