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
mod upstreams;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::app::App;
use crate::auth::Identity;
use crate::clock::Stopwatch;
use crate::i18n::Lang;
pub use client::is_trusted;
pub use decide::Decision;
use headers::{Forwarded, HeaderPlan};
pub use upstreams::{PoolService, Upstreams};

pub struct Gateway {
    app: Arc<App>,
    plan: HeaderPlan,
    tls: bool,
    upstreams: Upstreams,
    rewrite: rewrite::Rewriter,
}

impl Gateway {
    pub fn new(app: Arc<App>, upstreams: Upstreams) -> Self {
        let plan = HeaderPlan::new(&app.config.file.headers);
        let tls = app.config.file.server.tls_cert.is_some();
        let rewrite = rewrite::Rewriter::new(&app.config);
        Self {
            app,
            plan,
            tls,
            upstreams,
            rewrite,
        }
    }
}

/// Per-request state, filled by `request_filter` and read by the later phases.
pub struct RequestCtx {
    identity: Option<Arc<Identity>>,
    lang: Lang,
    forwarded: Option<Forwarded>,
    upstream_start: Option<Stopwatch>,
    started: Stopwatch,
    decision: &'static str,
    /// The `[[route]]` matched, by index (`None`: `[upstream]`).
    route: Option<usize>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            identity: None,
            lang: self.app.config.default_lang,
            forwarded: None,
            upstream_start: None,
            started: Stopwatch::start(),
            decision: "proxied",
            route: None,
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
        let now = self.app.clock.now_ms();
        let decided = decide::decide(&self.app, session, peer, self.tls, now).await;
        ctx.lang = decided.lang;
        ctx.forwarded = decided.forwarded;
        ctx.route = decided.route;
        match decided.decision {
            Decision::Forward(visitor) => {
                ctx.identity = visitor.identity().cloned();
                self.app
                    .metrics
                    .requests
                    .with_label_values(&["proxied"])
                    .inc();
                Ok(false)
            }
            Decision::Respond(reply, outcome) => {
                ctx.decision = outcome.label();
                self.app
                    .metrics
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
        let mut peer = self.upstreams.peer(ctx.route)?;
        let file = &self.app.config.file.upstream;
        peer.options.connection_timeout = Some(file.connect_timeout);
        peer.options.total_connection_timeout = Some(file.connect_timeout + Duration::from_secs(1));
        peer.options.read_timeout = Some(file.read_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
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
            self.app.cookies,
        )?;
        ctx.upstream_start = Some(Stopwatch::start());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        self.rewrite.response(upstream_response, ctx.route);
        if let Some(start) = ctx.upstream_start.take() {
            self.app
                .metrics
                .upstream_duration
                .observe(start.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        if session.response_written().is_some() {
            // The head (and maybe part of the body) already went out: whatever is written
            // now would be read as the upstream's bytes (an error page inside a download,
            // an SSE stream, a WebSocket). The connection is closed instead, so the client
            // sees a truncated response.
            if e.esource() == &ErrorSource::Upstream {
                tracing::warn!(error = %e, "upstream failed mid-response; connection closed");
                self.app.metrics.upstream_aborts.inc();
            }
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code == 502 || code == 504 {
            tracing::warn!(error = %e, "upstream unreachable");
            let reply = respond::bad_gateway(ctx.lang);
            if let Err(we) = respond::write(session, reply).await {
                tracing::debug!(error = %we, "could not send the 502 page");
            }
        } else if code > 0 {
            let _ = session.respond_error(code).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
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
