//! The Pingora `ProxyHttp` implementation: classify the request, decide, then either
//! answer it here (Vigile's pages, redirects, errors) or forward it with identity headers.
//!
//! Shared state lives in [`Gateway`] (an `Arc<App>`), per-request state in [`RequestCtx`].
//! Every response Vigile itself produces goes through `respond::write` (one place).

mod client;
mod decide;
mod edge;
mod headers;
mod respond;
mod rewrite;
mod upstream_sockets;
mod upstreams;
mod watch;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::app::{App, Live};
use crate::auth::Identity;
use crate::clock::Stopwatch;
use crate::i18n::Lang;
use crate::metrics::Metrics;
use crate::store::{Millis, TokenDigest};
pub use client::is_trusted;
pub use decide::Decision;
use headers::{Forwarded, HeaderPlan};
use respond::Failure;
pub use upstreams::{PoolService, Upstreams};
use watch::{Closed, Limits, Phase, Watch, Watches};

pub struct Gateway {
    /// The `App` for new requests (a reload replaces it); each request reads it once.
    live: Arc<Live>,
    /// Shared by every `App` a reload builds.
    metrics: Arc<Metrics>,
    /// `vigile_requests_total{decision="proxied"}`, looked up once rather than per request.
    proxied: prometheus::IntCounter,
    plan: HeaderPlan,
    tls: bool,
    upstreams: Upstreams,
    rewrite: rewrite::Rewriter,
    limits: Limits,
    watches: Arc<Watches>,
    max_body: u64,
}

impl Gateway {
    pub fn new(live: Arc<Live>, upstreams: Upstreams) -> Result<Self, String> {
        let app = live.get();
        let plan = HeaderPlan::new(&app.config.file.headers)?;
        let tls = app.config.file.server.tls_cert.is_some();
        let rewrite = rewrite::Rewriter::new(&app.config);
        let limits = Limits::new(&app.config.file.upstream);
        let max_body = app.config.file.upstream.max_request_body.as_u64();
        let watches = Watches::new(limits, session_ended(&app), on_close(&app));
        Ok(Self {
            proxied: app.metrics.requests.with_label_values(&["proxied"]),
            metrics: app.metrics.clone(),
            live,
            plan,
            tls,
            upstreams,
            rewrite,
            limits,
            watches,
            max_body,
        })
    }
}

/// Per-request state, filled by `request_filter` and read by the later phases.
pub struct RequestCtx {
    /// The `App` this request runs with, from start to end (a reload does not change it).
    app: Arc<App>,
    identity: Option<Arc<Identity>>,
    lang: Lang,
    forwarded: Option<Forwarded>,
    upstream_start: Option<Stopwatch>,
    started: Stopwatch,
    /// The request's time (unix ms), read once in `request_filter`.
    now: Millis,
    decision: &'static str,
    /// The `[[route]]` matched, by index (`None`: `[upstream]`).
    route: Option<usize>,
    /// The forwarded member's session, for the watch's session check.
    session: Option<TokenDigest>,
    /// Time limits and session check of the upstream exchange (see `watch`).
    watch: Option<Watch>,
    /// Request body bytes read so far, against `upstream.max_request_body`.
    body_read: u64,
    /// The upstream answered 101: what follows is a WebSocket, not a request body.
    upgraded: bool,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        let app = self.live.get();
        RequestCtx {
            lang: app.config.default_lang,
            app,
            identity: None,
            forwarded: None,
            upstream_start: None,
            started: Stopwatch::start(),
            now: 0,
            decision: "proxied",
            route: None,
            session: None,
            watch: None,
            body_read: 0,
            upgraded: false,
        }
    }

    async fn early_request_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        // The header is in: the connection's header deadline no longer applies.
        crate::server::client_conns::header_received();
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        // The request's one reading of the clock; pages and flows are given it.
        let now = ctx.app.clock.now_ms();
        ctx.now = now;
        let decided = decide::decide(&ctx.app, session, peer, self.tls, now).await;
        ctx.lang = decided.lang;
        ctx.forwarded = decided.forwarded;
        ctx.route = decided.route;
        ctx.session = decided.session;
        match decided.decision {
            Decision::Forward(visitor) => {
                let declared = ctx.forwarded.as_ref().and_then(|f| f.declared_length);
                if declared.is_some_and(|n| n > self.max_body) {
                    // Refused on the declared length, before a byte of the body is read.
                    self.refuse_body(session, ctx).await?;
                    return Ok(true);
                }
                // A client that stops reading its response holds it no longer than an
                // upstream that stops sending would.
                session.set_write_timeout(Some(self.limits.idle));
                // Moved, not cloned: a shared count written from every worker thread.
                ctx.identity = visitor.into_identity();
                self.proxied.inc();
                Ok(false)
            }
            Decision::Respond(reply, outcome) => {
                ctx.decision = outcome.label();
                self.metrics
                    .requests
                    .with_label_values(&[outcome.label()])
                    .inc();
                respond::write(session, reply).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        self.upstreams.peer(ctx.route, ctx.now).await
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // A retry on a new connection replaces (and stops) the previous watch.
        let connection = digest.and_then(|d| d.socket_digest.as_ref());
        ctx.watch = self.watches.start(fd, connection, ctx.session);
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let Some(chunk) = body else { return Ok(()) };
        if let Some(w) = &ctx.watch {
            w.activity();
        }
        if !ctx.upgraded {
            ctx.body_read += chunk.len() as u64;
            if ctx.body_read > self.max_body {
                // A chunked body past the limit: stop here, before this chunk goes out.
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body too large");
            }
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let Some(fwd) = &ctx.forwarded else {
            // request_filter always sets it before forwarding; refuse rather than leak.
            return Error::e_explain(ErrorType::InternalError, "forwarding facts missing");
        };
        self.plan.apply(
            upstream_request,
            ctx.identity.as_deref(),
            fwd,
            ctx.app.cookies,
        )?;
        ctx.upstream_start = Some(Stopwatch::start());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        if (100..200).contains(&status) && status != 101 {
            // `100 Continue` and other interim answers: the real head is still to come,
            // and so are the limits and the session check that go with it.
            return Ok(());
        }
        self.rewrite.response(upstream_response, ctx.route);
        if let Some(start) = ctx.upstream_start.take() {
            self.metrics
                .upstream_duration
                .observe(start.elapsed().as_secs_f64());
        }
        let phase = response_phase(upstream_response);
        ctx.upgraded = phase == Phase::Upgraded;
        if let Some(w) = &ctx.watch {
            w.head(phase);
            if !has_body(session.req_header(), upstream_response) {
                // No body will follow (so no end-of-body call): the exchange ends here.
                w.finish();
            }
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        if let Some(w) = &ctx.watch {
            if end_of_stream {
                if w.closed().is_some() {
                    // A response without a length ends when the upstream closes, which
                    // is what the watch did: the client must see it cut, not complete.
                    return Error::e_explain(ErrorType::ReadError, "closed by the watch");
                }
                // Before Pingora may hand the connection to another request.
                w.finish();
            } else {
                w.activity();
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let closed = ctx.watch.as_ref().and_then(Watch::closed);
        let done = FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
        if is_client_abort(e) {
            // A video seek, a closed tab: nothing to answer and nothing wrong upstream.
            tracing::debug!(error = %brief(e), "client went away");
            self.metrics.client_aborts.inc();
            return done;
        }
        // A forwarded `100 Continue` is not the response: a final head can still follow.
        // A `101` is, though informational: what follows it is the upgraded protocol's.
        let started = ctx.upgraded
            || session
                .response_written()
                .is_some_and(|head| !head.status.is_informational());
        if started {
            // The head (and maybe part of the body) already went out: whatever is written
            // now would be read as the upstream's bytes (an error page inside a download,
            // an SSE stream, a WebSocket). The connection is closed instead (an HTTP/2
            // stream is reset), so the client sees a truncated response.
            match closed {
                Some(Closed::Revoked) => tracing::info!("session ended; its open response closed"),
                Some(_) => tracing::info!("upstream idle past its limit; response closed"),
                None if e.esource() == &ErrorSource::Upstream => {
                    tracing::warn!(error = %brief(e), "upstream failed mid-response; connection closed");
                    self.metrics.upstream_aborts.inc();
                }
                None => tracing::warn!(error = %brief(e), "response failed after its head"),
            }
            return done;
        }
        let failure = match (closed, e.etype()) {
            (_, ErrorType::HTTPStatus(413)) => Some(Failure::TooLarge),
            (Some(Closed::FirstByte | Closed::Idle), _) => Some(Failure::Timeout),
            (_, ErrorType::ConnectTimedout) => {
                self.metrics
                    .upstream_timeouts
                    .with_label_values(&["connect"])
                    .inc();
                Some(Failure::Timeout)
            }
            (_, ErrorType::ReadTimedout | ErrorType::WriteTimedout) => Some(Failure::Timeout),
            // The session ended while the application was still thinking: as if it had
            // ended just before, the member signs in again.
            (Some(Closed::Revoked), _) => Some(Failure::Unreachable),
            _ if e.esource() == &ErrorSource::Upstream => Some(Failure::Unreachable),
            _ => None,
        };
        let Some(failure) = failure else {
            let code = match e.etype() {
                ErrorType::HTTPStatus(code) => *code,
                _ if e.esource() == &ErrorSource::Downstream => 400,
                _ => 500,
            };
            tracing::warn!(error = %brief(e), code, "request failed");
            let _ = session.respond_error(code).await;
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        };
        match failure {
            Failure::TooLarge => tracing::info!("request body over upstream.max_request_body; 413"),
            Failure::Timeout => tracing::warn!(error = %brief(e), "upstream timed out; 504"),
            Failure::Unreachable => tracing::warn!(error = %brief(e), "upstream unreachable; 502"),
        }
        if let Err(we) = self.answer(session, ctx, failure).await {
            tracing::debug!(error = %we, "could not send the error page");
        }
        FailToProxy {
            error_code: failure.status().as_u16(),
            can_reuse_downstream: false,
        }
    }

    /// Pingora retries an idempotent request whose reused connection closed before any
    /// byte, taking it for a stale pooled connection; a close by the watch (a limit, an
    /// ended session) must end the exchange instead of sending the request again.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let watched = ctx.watch.as_ref().and_then(Watch::closed).is_some();
        if watched
            || !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    /// `fail_to_proxy` logs each failure itself, at the level it deserves (a client that
    /// went away is not an ERROR); Pingora's own line would repeat it.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, _error: &Error) -> bool {
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        // The exchange is over: stop its watch now rather than when the context goes.
        ctx.watch = None;
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        tracing::debug!(
            target: "access",
            method = %session.req_header().method,
            path = session.req_header().uri.path(),
            status,
            decision = ctx.decision,
            request_id = ctx.forwarded.as_ref().map(|f| f.request_id.as_str()),
            ms = ctx.started.elapsed().as_millis() as u64,
            error = e.map(|e| e.to_string()),
        );
    }
}

impl Gateway {
    /// 413 for a body declared larger than `upstream.max_request_body`; the connection
    /// is not kept (the unread body would be taken for the next request).
    async fn refuse_body(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        ctx.decision = "body_too_large";
        self.answer(session, ctx, Failure::TooLarge).await
    }

    /// Answers a forwarded request that got no response from upstream (or was refused
    /// for its size): a page or JSON, on a connection that is then closed (part of a
    /// request body may be unread), said so that the client does not send its next
    /// request on it.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        failure: Failure,
    ) -> Result<()> {
        if failure == Failure::TooLarge {
            self.metrics
                .refused
                .with_label_values(&["body_too_large"])
                .inc();
        }
        let html = decide::wants_html(&http::Method::GET, &session.req_header().headers);
        session.set_keepalive(None);
        let reply = failure.reply(ctx.lang, &ctx.app.config, html);
        respond::write(session, reply).await
    }
}

/// The watch's question for a long-lived member exchange: has its session ended? Only a
/// definite "no such session" says yes.
fn session_ended(app: &Arc<App>) -> watch::SessionEnded {
    let app = app.clone();
    Box::new(move |session| {
        let app = app.clone();
        Box::pin(async move {
            let now = app.clock.now_ms();
            matches!(app.auth.still_valid(&session, now).await, Ok(false))
        })
    })
}

/// Counts what the watch closed.
fn on_close(app: &Arc<App>) -> watch::OnClose {
    let app = app.clone();
    Box::new(move |why| {
        let m = &app.metrics;
        match why {
            Closed::FirstByte => m.upstream_timeouts.with_label_values(&["first_byte"]).inc(),
            Closed::Idle => m.upstream_timeouts.with_label_values(&["idle"]).inc(),
            Closed::Revoked => m.streams_revoked.inc(),
        }
    })
}

/// Which idle limit the response's body falls under.
fn response_phase(resp: &ResponseHeader) -> Phase {
    if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
        return Phase::Upgraded;
    }
    let event_stream = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/event-stream"));
    if event_stream {
        Phase::EventStream
    } else {
        Phase::Body
    }
}

/// Whether a body follows this final head (RFC 9112 6.3): not for HEAD, 204, 304 or a
/// zero length without Transfer-Encoding. (Interim 1xx heads never get here; 101 is
/// followed by the upgraded connection.)
fn has_body(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    let status = resp.status.as_u16();
    if req.method == http::Method::HEAD || status == 204 || status == 304 {
        return false;
    }
    if resp.headers.contains_key(http::header::TRANSFER_ENCODING) {
        // Chunks frame the body whatever Content-Length says.
        return true;
    }
    // Read as a number, as Pingora reads it (`00` and `+0` are an empty body too).
    let length = resp
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    length != Some(0)
}

/// The client closed or broke its connection mid-request.
fn is_client_abort(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
        )
}

/// An error for the logs: where and what, and the system's reason (connection refused,
/// reset...), but not Pingora's context, which can quote the upstream's raw bytes (a
/// malformed head echoing identity headers).
fn brief(e: &Error) -> String {
    let mut line = format!("{} {}", e.esource().as_str(), e.etype().as_str());
    if let Some(io) = e.root_cause().downcast_ref::<std::io::Error>() {
        line.push_str(": ");
        line.push_str(&io.to_string());
    }
    line
}
