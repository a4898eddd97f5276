//! The demo course site: what an operator's application looks like behind Vigile. Each
//! page lists the identity headers it received, so a visitor sees exactly what the
//! gateway vouches for (and that forged ones never arrive). The live lesson page
//! ([`LIVE_PAGE`]) talks to the live server ([`super::live`]) from an inline script.
//!
//! Vigile puts no policy of its own on the site's pages: the site sends its own CSP, with
//! a fresh nonce per page for its one inline style and script.

use askama::Template;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::live;
use crate::crypto::random_token;
use crate::i18n::{Lang, Tr};
use crate::routes::Route;

/// The members' live lesson: the lesson chat and the progress feed.
pub const LIVE_PAGE: &str = "/courses/rust/live";

pub struct DemoSite {
    default: Lang,
}

impl DemoSite {
    pub fn new(default: Lang) -> Self {
        Self { default }
    }
}

#[derive(Template)]
#[template(path = "demo/page.html")]
struct DemoPage {
    t: Tr,
    lang: &'static str,
    heading: String,
    text: String,
    headers: Vec<(String, String)>,
    signed_in: bool,
    /// The CSP nonce of the page's inline style and script.
    nonce: String,
    live: Option<LivePanel>,
}

/// What the live page's script needs, read from `data-` attributes (no text in the script).
struct LivePanel {
    chat: &'static str,
    progress: &'static str,
    /// UTF-16 units the message box takes: at most 4 bytes each in UTF-8, so a full box
    /// stays under the chat's message bound.
    max_chars: usize,
    /// "Lesson {lesson}: {watched}% watched" in the page's language, filled in by the script.
    lesson_text: String,
}

impl LivePanel {
    fn new(t: &Tr) -> Self {
        LivePanel {
            chat: live::CHAT,
            progress: live::PROGRESS,
            max_chars: live::MAX_MESSAGE_BYTES / 4,
            lesson_text: t.with(
                "demo-live-lesson",
                &[
                    ("lesson", "{lesson}".to_string()),
                    ("watched", "{watched}".to_string()),
                ],
            ),
        }
    }
}

/// The site's own policy: only its own resources, the inline style and script by nonce,
/// and connections (the chat's `ws:` included) to its own origin.
fn csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

#[async_trait]
impl ServeHttp for DemoSite {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let get = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
        let cookie_lang = get("cookie").and_then(|c| {
            c.split(';')
                .filter_map(|p| p.trim().strip_prefix("vigile_lang="))
                .next()
                .map(str::to_string)
        });
        let lang = Lang::negotiate(cookie_lang.as_deref(), get("accept-language"), self.default);
        let t = lang.tr();
        let path = req.uri.path();
        let (status, heading, text) = match path {
            LIVE_PAGE => (StatusCode::OK, t.get("demo-live"), t.get("demo-live-intro")),
            "/" => (StatusCode::OK, t.get("demo-title"), t.get("demo-intro")),
            p if p.starts_with("/catalog") => {
                (StatusCode::OK, t.get("demo-catalog"), t.get("demo-public"))
            }
            p if p.starts_with("/courses") => {
                (StatusCode::OK, t.get("demo-course"), t.get("demo-members"))
            }
            p if p.starts_with("/admin") => (
                StatusCode::OK,
                t.get("demo-admin-link"),
                t.get("demo-admin"),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                t.get("not-found-title"),
                t.get("not-found-message"),
            ),
        };
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("remote-"))
            // Account data is UTF-8 (a name with accents): shown as sent.
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let nonce = random_token(16);
        let page = DemoPage {
            live: (path == LIVE_PAGE).then(|| LivePanel::new(&t)),
            nonce,
            t,
            lang: lang.code(),
            heading,
            text,
            signed_in: !headers.is_empty(),
            headers,
        };
        let body = page
            .render()
            .unwrap_or_else(|e| format!("template error: {e}"));
        let mut r = Response::new(body.into_bytes());
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Ok(policy) = http::HeaderValue::from_str(&csp(&page.nonce)) {
            r.headers_mut()
                .insert(http::header::CONTENT_SECURITY_POLICY, policy);
        }
        let len = r.body().len();
        r.headers_mut()
            .insert(http::header::CONTENT_LENGTH, len.into());
        r
    }
}
