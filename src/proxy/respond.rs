//! Writes a [`Reply`] downstream: the only place Vigile builds a response itself.

use http::StatusCode;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::json;

use crate::config::Config;
use crate::i18n::Lang;
use crate::pages::{render, Reply};

pub async fn write(session: &mut Session, reply: Reply) -> pingora::Result<()> {
    let head_only = session.req_header().method == http::Method::HEAD;
    let mut header = ResponseHeader::build(reply.status, Some(reply.headers.len() + 1))?;
    for (name, value) in reply.headers {
        header.append_header(name, value)?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, reply.body.len().to_string())?;
    let empty = reply.body.is_empty() || head_only;
    session
        .write_response_header(Box::new(header), empty)
        .await?;
    if !empty {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

/// Why a forwarded request got no answer from upstream: a page for a browser, JSON with
/// a stable `error` for an API client (the same split as the login redirect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 502: the application refused the connection or broke it before answering.
    Unreachable,
    /// 504: no connection or no response head in time.
    Timeout,
    /// 413: the request body is over `upstream.max_request_body`.
    TooLarge,
}

impl Failure {
    pub fn status(self) -> StatusCode {
        match self {
            Failure::Unreachable => StatusCode::BAD_GATEWAY,
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    pub fn reply(self, lang: Lang, config: &Config, html: bool) -> Reply {
        let (error, title, message) = match self {
            Failure::Unreachable => ("bad_gateway", "bad-gateway-title", "bad-gateway-message"),
            Failure::Timeout => (
                "upstream_timeout",
                "gateway-timeout-title",
                "gateway-timeout-message",
            ),
            Failure::TooLarge => (
                "body_too_large",
                "body-too-large-title",
                "body-too-large-message",
            ),
        };
        if html {
            render::error(self.status(), lang, config, title, message, None)
        } else {
            Reply::json(self.status(), &json!({ "error": error }))
        }
    }
}
