//! SPEC section 4, step by step: what to do with one request. Returns a [`Decision`];
//! the caller writes the response or forwards.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use pingora::proxy::Session;
use serde_json::json;

use super::client::{client_ip, is_trusted};
use super::edge::Edge;
use super::headers::Forwarded;
use super::RequestCtx;
use crate::access::Access;
use crate::app::App;
use crate::auth::Identity;
use crate::edge::host::Authority;
use crate::i18n::Lang;
use crate::pages::{self, rd, render, PageRequest, Reply};

/// A unique id per request for logs and `X-Request-Id`: a random per-process prefix and a
/// counter (ids need to be unique, not secret; no syscall on the hot path).
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| crate::crypto::random_token(6));
    format!("{prefix}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Largest request body Vigile reads for its own forms.
const MAX_FORM_BODY: usize = 64 * 1024;

pub enum Decision {
    /// Send upstream (identity, if any, is in the ctx).
    Forward,
    /// Answer here; `label` is the `vigile_requests_total{decision}` value.
    Respond { reply: Reply, label: &'static str },
}

fn respond(reply: Reply, label: &'static str) -> Decision {
    Decision::Respond { reply, label }
}

/// A navigation by a browser (gets a redirect to the login page) rather than an API call
/// (gets a 401 JSON body it can act on). Browsers name `text/html` explicitly when they
/// navigate; `*/*` alone is what curl, fetch() and HTTP libraries send, so it is an API call.
fn wants_html(method: &Method, headers: &http::HeaderMap) -> bool {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return false;
    }
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(mode) = header("sec-fetch-mode") {
        if mode != "navigate" {
            return false;
        }
    }
    if header("x-requested-with").is_some() {
        return false;
    }
    header("accept").is_some_and(|accept| {
        accept.split(',').any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    == Some(0.0)
            });
            !q_zero && matches!(media.as_str(), "text/html" | "application/xhtml+xml")
        })
    })
}

pub async fn decide(
    app: &Arc<App>,
    session: &mut Session,
    peer: IpAddr,
    tls: bool,
    hosts: &[Authority],
    ctx: &mut RequestCtx,
) -> Decision {
    let cfg = &app.config;
    let req = session.req_header();
    let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    let cookies = app.cookies.read(&req.headers);
    ctx.lang = Lang::negotiate(
        cookies.lang.as_deref(),
        header("accept-language"),
        cfg.default_lang,
    );

    let xff: Vec<&str> = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let client = client_ip(peer, &xff, &cfg.trusted_proxies);
    let peer_trusted = is_trusted(peer, &cfg.trusted_proxies);
    let edge = match Edge::read(req, hosts) {
        Ok(edge) => edge,
        Err(why) => {
            tracing::debug!(reason = %why, "request refused at the edge");
            app.metrics.refused.with_label_values(&[why.label()]).inc();
            let reply = render::message(
                StatusCode::BAD_REQUEST,
                ctx.lang,
                "bad-request-title",
                "bad-request-message",
                Some(("/", "back-home")),
            );
            return respond(reply, "page");
        }
    };
    let target = edge.target.wire();
    let path = &edge.target.path;
    ctx.forwarded = Some(Forwarded::new(
        peer,
        peer_trusted,
        Some(xff.join(", ")).filter(|s| !s.is_empty()).as_deref(),
        tls,
        &edge,
        request_id(),
    ));

    // The request's one reading of the clock.
    let now = app.clock.now_ms();
    let identity: Result<Option<Arc<Identity>>, ()> = match &cookies.session {
        None => Ok(None),
        Some(token) => app.auth.identify(token, now).await.map_err(|_| ()),
    };

    // A cookie whose session is gone: was it ended by another device? (Only asked for
    // such stale cookies, which are cleared right after.)
    let signed_out = match (&cookies.session, &identity) {
        (Some(token), Ok(None)) => app
            .store
            .signed_out(&crate::store::TokenHash::of(token), now)
            .await
            .ok()
            .flatten(),
        _ => None,
    };

    if path.is_vigile() {
        let method = req.method.clone();
        let headers = req.headers.clone();
        let query = req.uri.query().unwrap_or("").to_string();
        let body = if method == Method::POST {
            match read_body(session).await {
                Some(b) => b,
                None => {
                    let reply = Reply::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "text/plain; charset=utf-8",
                        "request body too large",
                    );
                    return respond(reply, "page");
                }
            }
        } else {
            Bytes::new()
        };
        let page = PageRequest {
            method: &method,
            path: path.as_str(),
            query: &query,
            headers: &headers,
            cookies: &cookies,
            body,
            client_ip: client,
            identity,
            signed_out,
            lang: ctx.lang,
            now,
        };
        let reply = pages::handle(app, page).await;
        // A 429 from Vigile's pages is a blocked IP or a rate limit.
        let label = if reply.status == http::StatusCode::TOO_MANY_REQUESTS {
            "blocked"
        } else {
            "page"
        };
        return respond(reply, label);
    }

    let access = cfg.access.classify(path);
    let stale_cookie = cookies.session.is_some() && matches!(identity, Ok(None));
    match (access, identity) {
        (Access::Public, identity) => {
            ctx.identity = identity.ok().flatten();
            Decision::Forward
        }
        (_, Err(())) => respond(render::unavailable(ctx.lang), "unavailable"),
        (_, Ok(None)) => {
            let mut reply = if wants_html(&req.method, &req.headers) {
                let mut url = rd::login_url(&target);
                if let Some(why) = signed_out {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str("signed_out=");
                    url.push_str(why.as_str());
                }
                Reply::redirect(StatusCode::FOUND, &url)
            } else {
                let mut body = json!({"error": "unauthenticated", "login_url": "/_vigile/login"});
                if let Some(why) = signed_out {
                    body["signed_out"] = why.as_str().into();
                }
                Reply::json(StatusCode::UNAUTHORIZED, &body)
            };
            if stale_cookie {
                reply = reply.with_cookie(app.cookies.clear_session());
            }
            let label = if reply.status == StatusCode::FOUND {
                "login_redirect"
            } else {
                "unauthorized"
            };
            respond(reply, label)
        }
        (Access::Admin, Ok(Some(id))) if !id.admin => {
            let reply = render::message(
                StatusCode::FORBIDDEN,
                ctx.lang,
                "forbidden-title",
                "forbidden-message",
                Some(("/", "back-home")),
            );
            respond(reply, "forbidden")
        }
        (_, Ok(Some(id))) => {
            ctx.identity = Some(id);
            Decision::Forward
        }
    }
}

/// Reads a form body, `None` if it exceeds [`MAX_FORM_BODY`].
async fn read_body(session: &mut Session) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_FORM_BODY {
                    return None;
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Some(buf.freeze()),
            Err(e) => {
                tracing::debug!(error = %e, "could not read request body");
                return Some(Bytes::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn browsers_versus_api_clients() {
        let nav = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(&Method::GET, &h(&[("accept", nav)])));
        assert!(wants_html(&Method::HEAD, &h(&[("accept", "text/html")])));
        assert!(!wants_html(&Method::GET, &h(&[("accept", "*/*")])));
        assert!(!wants_html(&Method::POST, &h(&[("accept", nav)])));
        assert!(!wants_html(
            &Method::GET,
            &h(&[("accept", "application/json")])
        ));
        assert!(!wants_html(&Method::GET, &h(&[])));
        assert!(!wants_html(
            &Method::GET,
            &h(&[("accept", "text/html;q=0")])
        ));
        assert!(!wants_html(
            &Method::GET,
            &h(&[("accept", nav), ("sec-fetch-mode", "cors")])
        ));
        assert!(!wants_html(
            &Method::GET,
            &h(&[("accept", "*/*"), ("x-requested-with", "XMLHttpRequest")])
        ));
    }
}
