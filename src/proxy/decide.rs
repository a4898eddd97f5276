//! SPEC section 4 in small steps: read the request's facts (refusing what is ambiguous),
//! find the visitor, then route it: one of Vigile's pages, or the access rules. Returns a
//! [`Decided`]; the caller stores its facts in the request context and writes the
//! response or forwards. Nothing here writes to the context or to the socket.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use serde_json::json;

use super::client::{client_ip, is_trusted};
use super::edge::{Edge, EdgeError};
use super::headers::Forwarded;
use crate::access::Access;
use crate::app::App;
use crate::auth::Visitor;
use crate::config::route_for;
use crate::i18n::Lang;
use crate::pages::cookies::RequestCookies;
use crate::pages::{self, rd, render, PageRequest, Reply};
use crate::routes::Route;
use crate::store::{AuthLevel, Millis, SignedOut, TokenDigest};

/// A unique id per request for logs and `X-Request-Id`: a random prefix per thread and a
/// counter (ids need to be unique, not secret; no syscall on the hot path, and no counter
/// written from every worker thread).
fn request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static PREFIX: String = crate::crypto::random_token(6);
        static COUNTER: Cell<u64> = const { Cell::new(0) };
    }
    let n = COUNTER.with(|c| {
        let n = c.get();
        c.set(n.wrapping_add(1));
        n
    });
    PREFIX.with(|prefix| prefixed_hex(prefix, n))
}

/// `{prefix}-{n:x}`, written by hand: the formatting machinery cost more than the rest
/// of [`request_id`] (bench/instructions).
fn prefixed_hex(prefix: &str, n: u64) -> String {
    let digits = (64 - (n | 1).leading_zeros()).div_ceil(4);
    let mut id = String::with_capacity(prefix.len() + 1 + digits as usize);
    id.push_str(prefix);
    id.push('-');
    for i in (0..digits).rev() {
        let nibble = (n >> (i * 4)) & 0xf;
        id.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
    id
}

/// The header a trusted proxy in front names the client in.
static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// Largest request body Vigile reads for its own forms.
const MAX_FORM_BODY: usize = 64 * 1024;

pub enum Decision {
    /// Send upstream, with the visitor's identity when it is a member.
    Forward(Visitor),
    /// Answer here.
    Respond(Reply, Outcome),
}

/// What an answer given here was, for `vigile_requests_total{decision}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// One of Vigile's pages (or a request refused before any rule).
    Page,
    /// A blocked address or a rate limit on Vigile's pages.
    Blocked,
    LoginRedirect,
    Unauthorized,
    Forbidden,
    /// The store is down and the path is protected.
    Unavailable,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Page => "page",
            Outcome::Blocked => "blocked",
            Outcome::LoginRedirect => "login_redirect",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// The decision and the request facts the later phases need.
pub struct Decided {
    pub decision: Decision,
    pub lang: Lang,
    /// Set once the request passed the edge checks (always when forwarding).
    pub forwarded: Option<Forwarded>,
    /// The `[[route]]` the path matched, by index (`None`: `[upstream]`).
    pub route: Option<usize>,
    /// The session of a member whose request is forwarded, by its token's digest: a long
    /// response is closed when that session ends (see `watch`).
    pub session: Option<TokenDigest>,
}

/// The request as Vigile understands it, read once.
struct Facts {
    lang: Lang,
    cookies: RequestCookies,
    client: IpAddr,
    edge: Edge,
    forwarded: Forwarded,
}

impl Facts {
    fn read(
        app: &App,
        req: &RequestHeader,
        peer: IpAddr,
        tls: bool,
    ) -> (Lang, Result<Self, EdgeError>) {
        let cfg = &app.config;
        let cookies = app.cookies.read(&req.headers);
        let accept_language = req
            .headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let lang = Lang::negotiate(cookies.lang.as_deref(), accept_language, cfg.default_lang);
        let mut edge = match Edge::read(req, &cfg.allowed_hosts) {
            Ok(edge) => edge,
            Err(why) => return (lang, Err(why)),
        };
        let xff: Vec<&[u8]> = req
            .headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect();
        // Passed on as received (what is not text shows as U+FFFD); nearly every request
        // has none, and then nothing is joined or copied.
        let chain = (!xff.is_empty()).then(|| {
            String::from_utf8(xff.join(&b", "[..]))
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        });
        let forwarded = Forwarded::new(
            peer,
            is_trusted(peer, &cfg.trusted_proxies),
            chain.as_deref().filter(|s| !s.is_empty()),
            tls,
            &mut edge,
            request_id(),
        );
        let facts = Facts {
            lang,
            client: client_ip(peer, &xff, &cfg.trusted_proxies),
            cookies,
            edge,
            forwarded,
        };
        (lang, Ok(facts))
    }
}

pub async fn decide(
    app: &Arc<App>,
    session: &mut Session,
    peer: IpAddr,
    tls: bool,
    now: Millis,
) -> Decided {
    let (lang, facts) = Facts::read(app, session.req_header(), peer, tls);
    let facts = match facts {
        Ok(facts) => facts,
        Err(why) => {
            return Decided {
                decision: refused(app, lang, why),
                lang,
                forwarded: None,
                route: None,
                session: None,
            }
        }
    };
    // The token is hashed once: the cache lookup, and the watch's later session checks.
    let digest = facts.cookies.session.as_deref().map(TokenDigest::of);
    let (visitor, signed_out) = find_visitor(app, digest.as_ref(), now).await;
    // Vigile's own pages never match a route.
    let (decision, route) = if facts.edge.target.path.is_vigile() {
        // Boxed: the pages' state is large, and would otherwise be part of (and copied
        // with) every proxied request's future.
        let page = Box::pin(page(app, session, &facts, visitor, signed_out, now));
        (page.await, None)
    } else {
        let route = route_for(&app.config.routes, &facts.edge.target.path);
        let req = session.req_header();
        (
            apply_rules(app, req, &facts, route, visitor, signed_out),
            route,
        )
    };
    let session = match &decision {
        Decision::Forward(Visitor::Member(_)) => digest,
        _ => None,
    };
    let Facts {
        mut forwarded,
        edge,
        ..
    } = facts;
    if let Some(target) = app.config.upstream_target(route, &edge.target) {
        forwarded.target = Some(target);
    }
    if let Some(r) = route.and_then(|i| app.config.routes.get(i)) {
        forwarded.prefix = r.forwarded_prefix.clone();
    }
    Decided {
        decision,
        lang,
        forwarded: Some(forwarded),
        route,
        session,
    }
}

/// A request whose framing is ambiguous: 400 before any rule.
fn refused(app: &App, lang: Lang, why: EdgeError) -> Decision {
    tracing::debug!(reason = %why, "request refused at the edge");
    app.metrics.refused.with_label_values(&[why.label()]).inc();
    let reply = render::error(
        StatusCode::BAD_REQUEST,
        lang,
        &app.config,
        "bad-request-title",
        "bad-request-message",
        Some(("/", "back-home")),
    );
    Decision::Respond(reply, Outcome::Page)
}

/// Who the session cookie belongs to; for a cookie whose session is gone, whether another
/// device ended it (only asked for such stale cookies, which are cleared right after).
async fn find_visitor(
    app: &App,
    digest: Option<&TokenDigest>,
    now: Millis,
) -> (Visitor, Option<SignedOut>) {
    let Some(digest) = digest else {
        return (Visitor::Anonymous, None);
    };
    match app.auth.identify_digest(digest, now).await {
        Ok(Some(id)) => (Visitor::Member(id), None),
        Ok(None) => {
            let why = app
                .store
                .signed_out(&digest.hash(), now)
                .await
                .ok()
                .flatten();
            (Visitor::Anonymous, why)
        }
        Err(_) => (Visitor::StoreDown, None),
    }
}

/// One of Vigile's own pages: read the form body, then hand over to `pages`.
async fn page(
    app: &Arc<App>,
    session: &mut Session,
    facts: &Facts,
    visitor: Visitor,
    signed_out: Option<SignedOut>,
    now: Millis,
) -> Decision {
    let req = session.req_header();
    let method = req.method.clone();
    let headers = req.headers.clone();
    let mut body_too_large = false;
    let body = if method == Method::POST {
        // A whole form within the header deadline: a stalled body must not hold the page.
        let route = Route::parse(facts.edge.target.path.as_str());
        let admin = visitor.identity().is_some_and(|i| i.admin);
        let limits = BodyLimits::for_page(route, admin, app.config.file.server.header_timeout);
        match read_body(session, &limits).await {
            Ok(b) => b,
            // Read to its end: the page can say so, and the browser will read it.
            Err(BodyError::TooLarge { drained: true }) if limits.drain > 0 => {
                body_too_large = true;
                Bytes::new()
            }
            Err(e) => {
                let status = e.status();
                let reason = status.canonical_reason().unwrap_or("refused");
                let reply = Reply::new(status, "text/plain; charset=utf-8", reason);
                return Decision::Respond(reply, Outcome::Page);
            }
        }
    } else {
        Bytes::new()
    };
    let page = PageRequest {
        method: &method,
        path: facts.edge.target.path.as_str(),
        query: facts.edge.target.query.as_deref().unwrap_or(""),
        headers: &headers,
        cookies: &facts.cookies,
        body,
        body_too_large,
        client_ip: facts.client,
        visitor,
        signed_out,
        lang: facts.lang,
        now,
    };
    let answered = pages::handle(app, page).await;
    let outcome = if answered.blocked {
        Outcome::Blocked
    } else {
        Outcome::Page
    };
    Decision::Respond(answered.reply, outcome)
}

/// SPEC 4.3 to 4.6: the access rules on the canonical path: the matched route's own
/// `[route.access]` when it has one, else `[access]`.
fn apply_rules(
    app: &App,
    req: &RequestHeader,
    facts: &Facts,
    route: Option<usize>,
    visitor: Visitor,
    signed_out: Option<SignedOut>,
) -> Decision {
    let path = &facts.edge.target.path;
    let rules = route
        .and_then(|i| app.config.routes.get(i))
        .and_then(|r| r.access.as_ref())
        .unwrap_or(&app.config.access);
    let mut access = rules.classify(path);
    let path_needs = rules.needs_second_factor(path);
    if path_needs {
        access = access.max(Access::Member);
    }
    // A role `required_for` names needs it on every protected path, whatever opened the
    // session (an activation link, a registration, a session from before the setting).
    let second_factor = |id: &crate::auth::Identity| {
        let file = &app.config.file;
        access != Access::Public
            && (path_needs
                || crate::auth::twofactor::required_for_roles(file, id.admin, id.org_role()))
    };
    match (access, visitor) {
        (Access::Public, visitor) => Decision::Forward(visitor),
        (_, Visitor::StoreDown) => Decision::Respond(
            render::unavailable(facts.lang, &app.config),
            Outcome::Unavailable,
        ),
        (_, Visitor::Anonymous) => login_needed(app, req, facts, signed_out),
        (access, Visitor::Member(id)) if !access.admits(id.admin, id.org_role()) => {
            Decision::Respond(
                render::forbidden(facts.lang, &app.config),
                Outcome::Forbidden,
            )
        }
        (_, Visitor::Member(id)) if id.level < AuthLevel::SecondFactor && second_factor(&id) => {
            second_factor_needed(req, facts)
        }
        (_, member) => Decision::Forward(member),
    }
}

/// A member signed in with the password alone on a path that needs the second factor:
/// browsers go to `/2fa` (step-up), then back; API clients get a 401 they can act on.
fn second_factor_needed(req: &RequestHeader, facts: &Facts) -> Decision {
    let page = Route::TwoFactor.path();
    if wants_html(&req.method, &req.headers) {
        let rd = facts.edge.target.wire();
        let url = Route::TwoFactor.with_query(&[("rd", &rd)]);
        Decision::Respond(
            Reply::redirect(StatusCode::FOUND, &url),
            Outcome::LoginRedirect,
        )
    } else {
        let body = json!({"error": "second_factor_required", "url": page});
        Decision::Respond(
            Reply::json(StatusCode::UNAUTHORIZED, &body),
            Outcome::Unauthorized,
        )
    }
}

/// No valid session on a protected path: browsers go to the login page, API clients get
/// a 401 they can act on; a stale cookie is cleared, saying why it ended.
fn login_needed(
    app: &App,
    req: &RequestHeader,
    facts: &Facts,
    signed_out: Option<SignedOut>,
) -> Decision {
    let login = Route::Login.path();
    let (mut reply, outcome) = if wants_html(&req.method, &req.headers) {
        let mut url = rd::login_url(&facts.edge.target.wire());
        if let Some(why) = signed_out {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("signed_out=");
            url.push_str(why.as_str());
        }
        (
            Reply::redirect(StatusCode::FOUND, &url),
            Outcome::LoginRedirect,
        )
    } else {
        let mut body = json!({"error": "unauthenticated", "login_url": login});
        if let Some(why) = signed_out {
            body["signed_out"] = why.as_str().into();
        }
        (
            Reply::json(StatusCode::UNAUTHORIZED, &body),
            Outcome::Unauthorized,
        )
    };
    if facts.cookies.session.is_some() {
        reply = reply.with_cookie(app.cookies.clear_session());
    }
    Decision::Respond(reply, outcome)
}

/// A navigation by a browser (gets a redirect to the login page) rather than an API call
/// (gets a 401 JSON body it can act on). Browsers name `text/html` explicitly when they
/// navigate; `*/*` alone is what curl, fetch() and HTTP libraries send, so it is an API call.
pub(super) fn wants_html(method: &Method, headers: &http::HeaderMap) -> bool {
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

/// How much of a page's request body is read, and for how long.
struct BodyLimits {
    /// Past this many bytes the body is refused (413).
    max: usize,
    /// A refused body is still read (and thrown away) up to this many bytes, so the page
    /// can answer and the browser, still sending, reads the answer; 0: not at all.
    drain: usize,
    deadline: Duration,
}

impl BodyLimits {
    /// A form's limits; an admin's file upload to the console gets the upload's
    /// ([`pages::console_import`]). Anyone else posting there gets a form's, so only an
    /// administrator can make the gateway read a large body.
    fn for_page(route: Option<Route>, admin: bool, header_timeout: Duration) -> Self {
        let upload = matches!(route, Some(Route::AdminImport | Route::AdminImportConfirm));
        if upload && admin {
            BodyLimits {
                max: pages::console_import::MAX_BODY,
                drain: pages::console_import::MAX_DRAIN,
                deadline: header_timeout.max(pages::console_import::UPLOAD_DEADLINE),
            }
        } else {
            BodyLimits {
                max: MAX_FORM_BODY,
                drain: 0,
                deadline: header_timeout,
            }
        }
    }
}

/// Why a page's body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// Over the limit; `drained` when it was read to its end nonetheless.
    TooLarge {
        drained: bool,
    },
    Stalled,
}

impl BodyError {
    fn status(self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Stalled => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// Reads a form body within `limits`: too large past `max` (read on to `drain` to tell
/// whether it ends there), stalled past the deadline.
async fn read_body(session: &mut Session, limits: &BodyLimits) -> Result<Bytes, BodyError> {
    let read = async {
        let mut buf = BytesMut::new();
        let mut over = 0usize;
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if over > 0 => {
                    over = over.saturating_add(chunk.len());
                    if over > limits.drain {
                        return Err(BodyError::TooLarge { drained: false });
                    }
                }
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > limits.max {
                        over = buf.len() + chunk.len();
                        buf = BytesMut::new();
                        if over > limits.drain {
                            return Err(BodyError::TooLarge { drained: false });
                        }
                        continue;
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) if over > 0 => return Err(BodyError::TooLarge { drained: true }),
                Ok(None) => return Ok(buf.freeze()),
                Err(_) if over > 0 => return Err(BodyError::TooLarge { drained: false }),
                Err(e) => {
                    tracing::debug!(error = %e, "could not read request body");
                    return Ok(Bytes::new());
                }
            }
        }
    };
    tokio::time::timeout(limits.deadline, read)
        .await
        .unwrap_or(Err(BodyError::Stalled))
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

    #[test]
    fn request_ids_are_the_prefix_and_the_counter_in_hex() {
        for n in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            256,
            0xdead_beef,
            u64::MAX >> 4,
            u64::MAX,
        ] {
            assert_eq!(prefixed_hex("Ab3", n), format!("Ab3-{n:x}"), "{n}");
        }
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert_eq!(
            a.rsplit_once('-').map(|p| p.0),
            b.rsplit_once('-').map(|p| p.0)
        );
        // Another thread counts on its own, under a prefix of its own.
        let other = std::thread::spawn(request_id).join().unwrap();
        assert_ne!(
            other.rsplit_once('-').map(|p| p.0),
            a.rsplit_once('-').map(|p| p.0)
        );
    }
}
