//! The operator's listener: `/metrics` (Prometheus text), `/healthz` (the process answers)
//! and `/readyz` (the store answers too; load balancers stop sending traffic while it fails).

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::app::App;

pub struct OpsEndpoints {
    app: Arc<App>,
}

impl OpsEndpoints {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = r.body().len();
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, len.into());
    r
}

#[async_trait]
impl ServeHttp for OpsEndpoints {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" => {
                // The gauge is also refreshed in the background; a scrape gets it exact
                // (or, with the store down, the last value).
                let count = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    self.app.store.session_count(self.app.clock.now_ms()),
                )
                .await;
                if let Ok(Ok(n)) = count {
                    self.app.metrics.sessions_active.set(n as i64);
                }
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.app.metrics.render(),
                )
            }
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let check = super::background::check_store(&self.app);
                let ping = tokio::time::timeout(std::time::Duration::from_secs(2), check).await;
                match ping {
                    // Serving, but the operator must keep seeing why it is unsafe.
                    Ok(Ok(())) if self.app.store.eviction_unsafe() => reply(
                        StatusCode::OK,
                        "text/plain",
                        b"ready (unsafe: the store may evict keys; store.allow_eviction is set)\n"
                            .to_vec(),
                    ),
                    Ok(Ok(())) => reply(StatusCode::OK, "text/plain", b"ready\n".to_vec()),
                    Ok(Err(e)) if self.app.store.eviction_unsafe() => reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        format!("store refused: {e}\n").into_bytes(),
                    ),
                    _ => reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        b"store unreachable\n".to_vec(),
                    ),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
