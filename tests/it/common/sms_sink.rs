//! A real HTTP server standing in for an SMS provider: axum on a free port of 127.0.0.1,
//! served on the test's tokio runtime and stopped on Drop. The gateway's `http`
//! transport posts to [`SmsSink::url`]; every call is recorded (method, path, headers,
//! body, the status answered) and, when the body is JSON with `to` and `text` (the
//! default `http_body`), those two values are read from it.
//!
//! It answers `200` unless told to fail: [`SmsSink::fail_next`] makes the next calls
//! answer `500`, a provider outage the outbox must ride out. Waits ([`wait_delivered`],
//! [`code_for`]) are woken by each call and panic after [`WAIT`] listing what arrived,
//! so a missing text fails the test loudly instead of hanging it.
//!
//! [`wait_delivered`]: SmsSink::wait_delivered
//! [`code_for`]: SmsSink::code_for
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use tokio::sync::{oneshot, Notify};

/// How long [`SmsSink::wait_delivered`] and [`SmsSink::code_for`] wait (the outbox
/// retries and a loaded box included).
pub const WAIT: Duration = Duration::from_secs(15);

/// One call the provider received, answered or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsCall {
    pub method: String,
    /// Path and query, e.g. `/send`.
    pub path: String,
    /// (lower-cased name, value) in arrival order, duplicates kept.
    pub headers: Vec<(String, String)>,
    /// The body, decoded lossily as UTF-8.
    pub body: String,
    /// The status the sink answered (`200`, or `500` for a call made to fail).
    pub answered: u16,
    /// `to` of a JSON body; "" when the body is not JSON with a string `to`.
    pub to: String,
    /// `text` of a JSON body; "" when the body is not JSON with a string `text`.
    pub text: String,
}

impl SmsCall {
    /// First value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn delivered(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<SmsCall>>,
    /// Calls still to answer `500`.
    failing: Mutex<usize>,
    /// Woken after each call is recorded.
    arrived: Notify,
}

/// The provider. Stops when dropped.
pub struct SmsSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl SmsSink {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start() -> SmsSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMS sink on 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .expect("SMS sink server failed");
        });
        SmsSink {
            addr,
            shared,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT/send`, for `[sms] http_url`.
    pub fn url(&self) -> String {
        format!("http://{}/send", self.addr)
    }

    /// The next `n` calls are answered `500` (replaces what was left of an earlier count).
    pub fn fail_next(&self, n: usize) {
        *self.shared.failing.lock().unwrap() = n;
    }

    /// Every call received so far, oldest first, refused ones included.
    pub fn calls(&self) -> Vec<SmsCall> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The calls answered 2xx, oldest first: the texts a member would have received.
    pub fn delivered(&self) -> Vec<SmsCall> {
        self.calls()
            .into_iter()
            .filter(SmsCall::delivered)
            .collect()
    }

    /// Waits until at least `n` texts were delivered and returns them all; panics after
    /// [`WAIT`] with the calls received.
    pub async fn wait_delivered(&self, n: usize) -> Vec<SmsCall> {
        self.wait_for(&format!("{n} delivered SMS"), |_| {
            let delivered = self.delivered();
            (delivered.len() >= n).then_some(delivered)
        })
        .await
    }

    /// Waits for a text delivered to `to` and returns the code of the newest one: the
    /// only run of exactly 6 ASCII digits in its text. Panics if none arrives within
    /// [`WAIT`], or if that text holds no such run or several.
    pub async fn code_for(&self, to: &str) -> String {
        let sms = self
            .wait_for(&format!("an SMS delivered to {to}"), |_| {
                self.delivered().into_iter().rev().find(|c| c.to == to)
            })
            .await;
        let codes = six_digit_runs(&sms.text);
        assert_eq!(
            codes.len(),
            1,
            "expected exactly one 6-digit code in the newest SMS to {to}, found {codes:?} in {:?}",
            sms.text
        );
        codes[0].clone()
    }

    /// Retries `check` after each call received until it yields, or panics after [`WAIT`].
    async fn wait_for<T>(&self, what: &str, check: impl Fn(&Self) -> Option<T>) -> T {
        let deadline = tokio::time::sleep(WAIT);
        tokio::pin!(deadline);
        loop {
            // Registered before the check, so a call landing in between still wakes us.
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(found) = check(self) {
                return found;
            }
            tokio::select! {
                () = &mut deadline => break,
                () = arrived => {}
            }
        }
        if let Some(found) = check(self) {
            return found;
        }
        let calls: Vec<String> = self
            .calls()
            .iter()
            .map(|c| format!("  {} {} → {}: {}", c.method, c.path, c.answered, c.body))
            .collect();
        panic!(
            "the SMS sink did not get {what} within {WAIT:?}; {} call(s):\n{}",
            calls.len(),
            calls.join("\n")
        );
    }
}

impl Drop for SmsSink {
    fn drop(&mut self) {
        // Graceful shutdown finishes on its own on the test's runtime (or with it).
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let fail = {
        let mut failing = shared.failing.lock().unwrap();
        let fail = *failing > 0;
        *failing = failing.saturating_sub(1);
        fail
    };
    let (status, answer) = if fail {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "provider failure (fail_next)",
        )
    } else {
        (StatusCode::OK, r#"{"status":"queued"}"#)
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    let field = |key: &str| {
        json.as_ref()
            .and_then(|j| j.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let call = SmsCall {
        method: method.as_str().to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string()),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        to: field("to"),
        text: field("text"),
        body,
        answered: status.as_u16(),
    };
    shared.calls.lock().unwrap().push(call);
    shared.arrived.notify_waiters();
    (status, answer)
}

/// The maximal runs of ASCII digits that are exactly 6 long.
pub fn six_digit_runs(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 6)
        .map(str::to_string)
        .collect()
}
