//! The demo course site: what an operator's application looks like behind Vigile. Each
//! page lists the identity headers it received, so a visitor sees exactly what the
//! gateway vouches for (and that forged ones never arrive).

use askama::Template;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::i18n::{Lang, Tr};
use crate::routes::Route;

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
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let page = DemoPage {
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
        let len = r.body().len();
        r.headers_mut()
            .insert(http::header::CONTENT_LENGTH, len.into());
        r
    }
}
