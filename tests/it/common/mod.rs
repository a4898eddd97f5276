//! Fixtures shared by the integration tests: real processes and real sockets, every one
//! on a free port and torn down on Drop, so tests can run in parallel in any order.
//!
//! - [`backend`]: the two store backends, `both_backends!` to run a test on each, and the
//!   whole stack a gateway test runs against (upstream, store, SMTP server, gateway).
//! - [`catalog`]: the message ids of the catalogs (no page may show one).
//! - [`consts`]: accounts, passwords and durations several test files share.
//! - [`records`]: users and sessions the store contract tests plant directly.
//! - [`cluster`], [`cluster_pool`]: a real three-master Redis Cluster, and the ones
//!   the store behaviour tests lease, emptied, from one test to the next.
//! - [`redis_server`]: a real `redis-server` on a free port.
//! - [`smtp`]: a real SMTP server (aiosmtpd) that keeps and parses what it receives.
//! - [`sms_sink`]: a real HTTP server standing in for an SMS provider, recording each call.
//! - [`upstream`]: a recording HTTP server standing in for the protected application.
//! - [`gateway`]: the real `vigile` binary, configured in a temporary directory.
//! - [`http`]: reqwest clients that behave like a browser that does not follow redirects.
//! - [`relay`]: a TCP relay that can hold a client's bytes at a chosen point (a store
//!   lookup), to see what the gateway answered before that step happened.
//! - [`ws`]: a WebSocket client (connect with a member's cookies, echo, wait for a close).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod backend;
pub mod browser;
pub mod catalog;
pub mod cluster;
pub mod cluster_pool;
pub mod consts;
pub mod gateway;
pub mod http;
pub mod records;
pub mod redis_server;
pub mod relay;
pub mod sentinel;
pub mod sms_sink;
pub mod smtp;
pub mod upstream;
pub mod ws;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

/// Pause between two tries of [`poll_until`] / [`poll_for`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released),
/// and never handed out before in this run. A fixture that stops and restarts on its port,
/// or a Redis Sentinel that keeps calling a killed master's address, must never reach
/// another test's server there: a Sentinel turns whatever answers on a failed master's
/// port into a replica of the new one (`REPLICAOF`, then `CLIENT KILL`), wiping it.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// A port on 127.0.0.1 that refuses every connection for as long as this value lives: bound
/// without listening, so no other fixture can be given it (a port merely free a moment ago
/// was, once, taken by a parallel test's server and answered 200).
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind 127.0.0.1:0");
        let port = socket.local_addr().expect("local_addr").port();
        RefusingPort {
            _socket: socket,
            port,
        }
    }
}

/// Retries `check` until it returns `true`, sleeping [`POLL_INTERVAL`] between tries;
/// panics after `max_tries`. For waiting on a process to become ready, never as a timing
/// assertion.
pub async fn poll_until<F, Fut>(what: &str, max_tries: u32, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_for(what, max_tries, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Waits until `check` holds, trying every 100 ms for at most `within` (for processes that
/// form a whole: a Sentinel set, a Cluster); panics naming `what`, with `logs()`.
pub async fn until_within<F, Fut>(what: &str, within: Duration, check: F, logs: impl Fn() -> String)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting until {what}; logs:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`poll_until`], but the check yields a value once ready, which is returned.
pub async fn poll_for<T, F, Fut>(what: &str, max_tries: u32, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for attempt in 0..max_tries.max(1) {
        if let Some(value) = check().await {
            return value;
        }
        if attempt + 1 < max_tries {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    panic!(
        "gave up waiting for {what} after {max_tries} tries ({:?} apart)",
        POLL_INTERVAL
    );
}
