//! A real HTTP server standing in for the protected application. It answers `200` with
//! `upstream saw {path}` to every method and path, and records each request (method,
//! path and query, every header with duplicates, body) so tests can check exactly what
//! the gateway forwarded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One request as the upstream received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/course/1?page=2`.
    pub path: String,
    /// Header name (lower-cased) to its values, in arrival order, duplicates kept.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Body, decoded lossily as UTF-8.
    pub body: String,
}

impl RecordedRequest {
    /// First value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Every value of header `name` (any case); empty when absent.
    pub fn header_all(&self, name: &str) -> &[String] {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.contains_key(&name.to_ascii_lowercase())
    }

    /// The cookies in the `Cookie` header(s) as (name, value) pairs.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.header_all("cookie")
            .iter()
            .flat_map(|line| line.split(';'))
            .filter_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                Some((name.trim().to_string(), value.trim().to_string()))
            })
            .collect()
    }
}

type Log = Arc<Mutex<Vec<RecordedRequest>>>;

/// The recording upstream. Stops on [`Upstream::stop`] or when dropped.
pub struct Upstream {
    addr: SocketAddr,
    log: Log,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let log: Log = Arc::default();
        let app = Router::new().fallback(record).with_state(log.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .expect("upstream server failed");
        });
        Upstream {
            addr,
            log,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.lock().unwrap().clone()
    }

    /// Number of requests received so far.
    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The most recent request, if any.
    pub fn last(&self) -> Option<RecordedRequest> {
        self.log.lock().unwrap().last().cloned()
    }

    /// First value of header `name` (any case) on the most recent request.
    pub fn last_header(&self, name: &str) -> Option<String> {
        self.last().and_then(|r| r.header(name).map(str::to_string))
    }

    /// Forgets the requests recorded so far.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Stops the server: the listening socket is closed and idle keep-alive connections
    /// (e.g. the gateway's pool) are shut down, so the next proxied request finds nothing
    /// listening. Waits (bounded) for in-flight requests to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(joined) => joined.expect("upstream task panicked"),
                Err(_) => panic!("upstream did not shut down within 10 s"),
            }
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // Graceful shutdown finishes on its own on the test's runtime (or with it).
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn record(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> String {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &headers {
        map.entry(name.as_str().to_ascii_lowercase())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let path = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    log.lock().unwrap().push(RecordedRequest {
        method: method.as_str().to_string(),
        path,
        headers: map,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    // `/slow/MS`: answers after MS milliseconds (a request in flight during a shutdown).
    if let Some(ms) = uri
        .path()
        .strip_prefix("/slow/")
        .and_then(|m| m.parse().ok())
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    format!("upstream saw {}", uri.path())
}
