//! Long-lived and failing responses through the real binary (issue 16), against real
//! upstreams started here: an axum app serving Server-Sent Events and a WebSocket echo, and
//! raw TCP upstreams that stay silent, stall mid-body or crash mid-body.
//!
//! - Timeouts: a first-byte timeout answers 504 (a page for browsers, JSON for API
//!   clients); an idle body after the head is cut with nothing but the upstream's bytes;
//!   SSE streams and WebSockets outlive the first-byte and idle timeouts.
//! - A session's open WebSocket or SSE stream is closed within seconds of that session
//!   ending (logout, `vigile user revoke`), on whichever instance holds the stream.
//! - An HTTP/2 download cut mid-body ends in an error or a short body, never HTML.
//! - A client closing mid-download is counted as a client abort, not logged as an error.
//!
//! Every wait is bounded; the bounds are the contract's "within N seconds", never
//! performance claims.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use reqwest::cookie::CookieStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::common::consts::{ANN, BOSS, PW};
use crate::common::gateway::{Gateway, GatewayBuilder};
use crate::common::http::{self, ACCEPT_HTML};
use crate::common::poll_for;
use crate::common::redis_server::RedisServer;
use crate::common::ws::{self, Ws};

/// Everything public: the timeout tests need no session.
const PUBLIC: &str = "[access]\npublic = [\"/**\"]\n";

/// No SMTP server in these tests: mails (new-device notices) go to the log.
const MAIL_LOG: &str = "[mail]\ntransport = \"log\"\n";

/// Short first-byte and idle timeouts: a quiet stream outlives both several times over.
const SHORT_TIMEOUTS: &str = "[upstream]\nfirst_byte_timeout = \"1s\"\nidle_timeout = \"1s\"\n";

/// How long a stream is left quiet in the "outlives the timeouts" tests: three times
/// the short timeouts above.
const QUIET: Duration = Duration::from_secs(3);

/// The contract's bound on closing a stream of a session that ended (it says ~3 s).
const REVOKE_BOUND: Duration = Duration::from_secs(5);

/// Longest wait for a whole response that should come (a loaded CI box).
const RESPONSE_BOUND: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Upstreams
// ---------------------------------------------------------------------------------------

/// An axum upstream on a free port, serving:
/// - `/sse/quiet` (any prefix): `data: one`, then three seconds of silence, `data: two`, end;
/// - `/sse/live`: `data: hello`, then a comment line every 300 ms, forever;
/// - `/ws`: a WebSocket echoing every text and binary message.
///
/// Returns its URL; it serves for as long as the test's runtime lives.
async fn stream_upstream() -> String {
    stream_upstream_with_cue().await.0
}

/// [`stream_upstream`], also serving `/sse/cue`: `data: one`, then `data: two` once the
/// test pulls the returned cue (never on a timer), then the end.
async fn stream_upstream_with_cue() -> (String, Arc<Notify>) {
    let cue = Arc::new(Notify::new());
    let app = Router::new()
        .route("/sse/quiet", get(sse_quiet))
        .route("/sse/live", get(sse_live))
        .route("/sse/cue", get(sse_cue))
        .route("/ws", get(ws_echo))
        .with_state(cue.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("stream upstream");
    });
    (url, cue)
}

fn event_stream(body: Body) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body)
        .unwrap()
}

async fn sse_quiet() -> Response {
    let events = futures_util::stream::unfold(0u8, |step| async move {
        let chunk: &'static [u8] = match step {
            0 => b"data: one\n\n",
            1 => {
                tokio::time::sleep(QUIET).await;
                b"data: two\n\n"
            }
            _ => return None,
        };
        Some((Ok::<_, Infallible>(Bytes::from_static(chunk)), step + 1))
    });
    event_stream(Body::from_stream(events))
}

async fn sse_cue(State(cue): State<Arc<Notify>>) -> Response {
    let events = futures_util::stream::unfold(0u8, move |step| {
        let cue = cue.clone();
        async move {
            let chunk: &'static [u8] = match step {
                0 => b"data: one\n\n",
                1 => {
                    cue.notified().await;
                    b"data: two\n\n"
                }
                _ => return None,
            };
            Some((Ok::<_, Infallible>(Bytes::from_static(chunk)), step + 1))
        }
    });
    event_stream(Body::from_stream(events))
}

async fn sse_live() -> Response {
    let events = futures_util::stream::unfold(0u64, |n| async move {
        let chunk: &'static [u8] = if n == 0 {
            b"data: hello\n\n"
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            b": beat\n\n"
        };
        Some((Ok::<_, Infallible>(Bytes::from_static(chunk)), n + 1))
    });
    event_stream(Body::from_stream(events))
}

async fn ws_echo(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            match message {
                WsMessage::Text(_) | WsMessage::Binary(_) => {
                    if socket.send(message).await.is_err() {
                        return;
                    }
                }
                WsMessage::Close(_) => return,
                WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            }
        }
    })
}

/// A raw upstream that accepts connections, reads the requests and never answers.
/// Returns its URL and the number of connections it accepted.
async fn silent_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (url, accepted)
}

/// How long the raw upstreams "think" before answering, as any application does: the
/// answer comes well after the gateway started waiting for it.
const THINKING: Duration = Duration::from_millis(500);

/// A raw upstream answering every request, after [`THINKING`], with a head announcing
/// `announced` bytes and `sent` of them in the same write, then nothing more until `cue`
/// is pulled (never, if it is not); after the cue, the rest of the body. The connection is
/// held open until the peer closes it.
async fn stalling_upstream(announced: usize, sent: usize) -> (String, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cue = Arc::new(Notify::new());
    let pulled = cue.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let pulled = pulled.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = conn.read(&mut buf).await;
                tokio::time::sleep(THINKING).await;
                let mut first = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {announced}\r\n\r\n"
                )
                .into_bytes();
                first.extend(std::iter::repeat_n(b'x', sent));
                let _ = conn.write_all(&first).await;
                let _ = conn.flush().await;
                tokio::select! {
                    _ = pulled.notified() => {
                        let _ = conn.write_all(&vec![b'y'; announced - sent]).await;
                    }
                    _ = async {
                        while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                    } => return,
                }
                while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (url, cue)
}

/// A raw upstream answering every request with a 256 MiB download, written 64 KiB at a
/// time for as long as the gateway takes it.
async fn endless_download_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n\
                            Content-Length: 268435456\r\n\r\n";
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'v'; 64 * 1024];
                for _ in 0..4096 {
                    if conn.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

/// A client without an overall timeout (a stream may rightly last longer than any bound a
/// test would give a whole response); every wait on it is bounded by the test itself.
fn stream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Sends a raw HTTP/1.1 GET for `path` and reads until the gateway closes the connection
/// (bounded by [`RESPONSE_BOUND`]); returns the bytes received.
async fn raw_get_to_close(gw: &Gateway, path: &str) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port())).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: {ACCEPT_HTML}\r\n\r\n",
        gw.port()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let read = tokio::time::timeout(RESPONSE_BOUND, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the gateway kept the connection open over {RESPONSE_BOUND:?}; received so far: {:?}",
        String::from_utf8_lossy(&received)
    );
    received
}

/// The head and the body of a raw response.
fn split_response(received: &[u8]) -> (String, Vec<u8>) {
    let at = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no response head in {:?}",
                String::from_utf8_lossy(received)
            )
        });
    (
        String::from_utf8_lossy(&received[..at]).into_owned(),
        received[at + 4..].to_vec(),
    )
}

/// Reads `resp`'s body until it ends (cleanly or not) or `bound` passes; returns the bytes
/// read, the error that ended it if any, and whether it ended within `bound`.
async fn read_body(
    resp: &mut reqwest::Response,
    bound: Duration,
) -> (Vec<u8>, Option<String>, bool) {
    let mut body = Vec::new();
    let mut error = None;
    let ended = tokio::time::timeout(bound, async {
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => return,
                Err(e) => {
                    error = Some(format!("{e:?}"));
                    return;
                }
            }
        }
    })
    .await
    .is_ok();
    (body, error, ended)
}

/// Signs `email` (made a member here) in on `gw`; returns the browser-like client and the
/// `Cookie` header it sends to the gateway (session and device cookies).
pub(crate) async fn signed_in(gw: &Gateway, email: &str) -> (reqwest::Client, String) {
    gw.add_user(email, PW, false);
    sign_in(gw, email).await
}

/// Signs `email` (an existing account, password [`PW`]) in on `gw` from a fresh browser
/// (a new device); returns it and the `Cookie` header it sends (session and device).
pub(crate) async fn sign_in(gw: &Gateway, email: &str) -> (reqwest::Client, String) {
    let (client, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    http::login_ok(&client, &gw.url(), email, PW).await;
    let url: reqwest::Url = gw.url().parse().unwrap();
    let cookie = jar
        .cookies(&url)
        .expect("cookies after login")
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("vigile_session="), "{cookie}");
    (client, cookie)
}

/// Logs out through the account page's form, as the member would; asserts it worked.
async fn logout(client: &reqwest::Client, gw: &Gateway) {
    let account = http::get_page(client, &format!("{}/_vigile/account", gw.url())).await;
    let csrf = http::csrf_from(&account);
    let resp = http::post_form(
        client,
        &format!("{}/_vigile/logout", gw.url()),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(resp.status(), 303, "logout");
}

/// A value of a counter, 0 when the series is absent.
pub(crate) async fn counter(gw: &Gateway, series: &str) -> f64 {
    gw.metric(series).await.unwrap_or(0.0)
}

/// Waits (up to 10 s) until `series` on `gw` reads `want`; panics with the last value.
pub(crate) async fn counter_reaches(gw: &Gateway, series: &str, want: f64) {
    let mut last = 0.0;
    for _ in 0..200 {
        last = counter(gw, series).await;
        if last == want {
            return;
        }
        tokio::time::sleep(crate::common::POLL_INTERVAL).await;
    }
    panic!("{series} is {last}, expected {want}");
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_stream_quiet_longer_than_the_timeouts_keeps_its_events() {
    let upstream = stream_upstream().await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .extra(SHORT_TIMEOUTS)
        .start()
        .await;
    let mut resp = tokio::time::timeout(
        RESPONSE_BOUND,
        stream_client()
            .get(format!("{}/sse/quiet", gw.url()))
            .header("accept", "text/event-stream")
            .send(),
    )
    .await
    .expect("the stream's head within the bound")
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        http::header(&resp, "content-type").as_deref(),
        Some("text/event-stream")
    );
    let (body, error, ended) = read_body(&mut resp, RESPONSE_BOUND).await;
    let body = String::from_utf8_lossy(&body);
    assert!(ended, "the stream never ended; got {body:?}");
    assert_eq!(
        body, "data: one\n\ndata: two\n\n",
        "both events, nothing else (ended by error: {error:?})"
    );
    assert_eq!(error, None, "the stream ended in an error");
    assert_eq!(
        counter(&gw, "vigile_upstream_timeouts_total{phase=\"idle\"}").await,
        0.0
    );
}

/// An event is the client's as soon as the upstream sent it, not when the stream next
/// speaks: the second event is sent only once the client has read the first. Both when
/// the head and the first event leave the upstream apart (axum) and in one write (as a
/// buffering server sends them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_event_reaches_the_client_before_the_stream_speaks_again() {
    let (upstream, cue) = stream_upstream_with_cue().await;
    first_event_passes_before_the_cue(upstream, cue, "/sse/cue").await;
    let (upstream, cue) = one_write_sse_upstream().await;
    first_event_passes_before_the_cue(upstream, cue, "/feed").await;
}

/// A raw upstream answering an event stream: its head and `data: one` in a single write,
/// then `data: two` and the end once the returned cue is pulled.
async fn one_write_sse_upstream() -> (String, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cue = Arc::new(Notify::new());
    let pulled = cue.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let pulled = pulled.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let first = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                             Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n\
                             b\r\ndata: one\n\n\r\n";
                let _ = conn.write_all(first.as_bytes()).await;
                pulled.notified().await;
                let _ = conn.write_all(b"b\r\ndata: two\n\n\r\n0\r\n\r\n").await;
                while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (url, cue)
}

async fn first_event_passes_before_the_cue(upstream: String, cue: Arc<Notify>, path: &str) {
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .start()
        .await;
    let mut resp = tokio::time::timeout(
        RESPONSE_BOUND,
        stream_client()
            .get(format!("{}{path}", gw.url()))
            .header("accept", "text/event-stream")
            .send(),
    )
    .await
    .expect("the stream's head within the bound")
    .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = Vec::new();
    let first = tokio::time::timeout(RESPONSE_BOUND, async {
        while !body.ends_with(b"data: one\n\n") {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                other => panic!("the stream ended before its first event: {other:?}"),
            }
        }
    })
    .await;
    assert!(
        first.is_ok(),
        "{path}: the first event, sent by the upstream, did not reach the client within \
         {RESPONSE_BOUND:?} (held by the gateway until the stream speaks again?); got {:?}",
        String::from_utf8_lossy(&body)
    );
    cue.notify_one();
    let (rest, error, ended) = read_body(&mut resp, RESPONSE_BOUND).await;
    assert!(ended && error.is_none(), "the stream's end: {error:?}");
    assert_eq!(String::from_utf8_lossy(&rest), "data: two\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_byte_timeout_answers_504_a_page_or_json() {
    let (upstream, accepted) = silent_upstream().await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .extra("[upstream]\nfirst_byte_timeout = \"1s\"\n")
        .start()
        .await;
    let client = http::bare_client();

    // A browser navigating: the gateway's page.
    let resp = http::get(&client, &format!("{}/lessons/1", gw.url()), true).await;
    assert_eq!(resp.status(), 504);
    let content_type = http::header(&resp, "content-type").unwrap_or_default();
    let page = resp.text().await.unwrap();
    assert!(
        content_type.starts_with("text/html") && page.to_ascii_lowercase().contains("<html"),
        "a browser gets an HTML page ({content_type}):\n{page}"
    );
    assert!(
        !page.contains("gateway-timeout-title"),
        "the page shows a message id, not its text:\n{page}"
    );

    // An API call: JSON it can act on.
    let resp = http::get(&client, &format!("{}/api/progress", gw.url()), false).await;
    assert_eq!(resp.status(), 504);
    let content_type = http::header(&resp, "content-type").unwrap_or_default();
    let text = resp.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(json["error"], "upstream_timeout", "{text}");

    // It was the upstream's silence, not a refused connection.
    assert!(
        accepted.load(Ordering::SeqCst) >= 2,
        "the upstream was reached"
    );
    counter_reaches(
        &gw,
        "vigile_upstream_timeouts_total{phase=\"first_byte\"}",
        2.0,
    )
    .await;
}

/// `idle_timeout` applies from the head on, even though the first-byte limit (60 s by
/// default) was the one running while the application thought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_body_is_cut_with_only_the_upstreams_bytes() {
    let (announced, sent) = (1000, 100);
    let (upstream, _never) = stalling_upstream(announced, sent).await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .extra("[upstream]\nidle_timeout = \"1s\"\n")
        .start()
        .await;
    let received = raw_get_to_close(&gw, "/files/notes.pdf").await;
    let (head, body) = split_response(&received);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.len() == sent && body.iter().all(|b| *b == b'x'),
        "the body is the upstream's {sent} bytes and nothing else: {:?}",
        String::from_utf8_lossy(&body)
    );
    counter_reaches(&gw, "vigile_upstream_timeouts_total{phase=\"idle\"}", 1.0).await;
    assert_eq!(
        counter(&gw, "vigile_upstream_timeouts_total{phase=\"first_byte\"}").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_quiet_longer_than_the_timeouts_survives() {
    let upstream = stream_upstream().await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .extra(SHORT_TIMEOUTS)
        .start()
        .await;
    let mut socket = ws::connect(&ws::ws_url(&gw.url(), "/ws"), None).await;
    ws::echo(&mut socket, "before the silence").await;
    // The silence is what is tested: three times both timeouts, no frame either way.
    tokio::time::sleep(QUIET).await;
    ws::echo(&mut socket, "after the silence").await;
    ws::echo(&mut socket, "and once more").await;
    assert_eq!(
        counter(&gw, "vigile_upstream_timeouts_total{phase=\"idle\"}").await,
        0.0
    );
    assert_eq!(
        counter(&gw, "vigile_upstream_timeouts_total{phase=\"first_byte\"}").await,
        0.0
    );
}

// ---------------------------------------------------------------------------------------
// Streams of ended sessions
// ---------------------------------------------------------------------------------------

/// Waits for `socket` to be closed within [`REVOKE_BOUND`] of `since`.
async fn closed_after(socket: &mut Ws, since: Instant, what: &str) {
    let left = REVOKE_BOUND.saturating_sub(since.elapsed());
    assert!(
        ws::closed_within(socket, left).await,
        "{what}: the WebSocket was still open {REVOKE_BOUND:?} after its session ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_closed_when_its_session_ends() {
    let upstream = stream_upstream().await;
    let gw = GatewayBuilder::new(upstream).extra(MAIL_LOG).start().await;
    let url = ws::ws_url(&gw.url(), "/ws");
    let (ann, ann_cookie) = signed_in(&gw, ANN).await;
    let (_boss, boss_cookie) = signed_in(&gw, BOSS).await;
    // The WebSocket is a member path: without a session the handshake is refused.
    let anonymous = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(
        anonymous.is_err(),
        "an anonymous WebSocket was let through to a member path"
    );
    let mut ann_ws = ws::connect(&url, Some(&ann_cookie)).await;
    let mut boss_ws = ws::connect(&url, Some(&boss_cookie)).await;
    ws::echo(&mut ann_ws, "ann here").await;
    ws::echo(&mut boss_ws, "boss here").await;

    // Ann logs out: her WebSocket closes, the other member's stays.
    logout(&ann, &gw).await;
    closed_after(&mut ann_ws, Instant::now(), "after logout").await;
    ws::echo(&mut boss_ws, "still here").await;
    counter_reaches(&gw, "vigile_streams_revoked_total", 1.0).await;

    // An admin ends the other member's sessions from the command line.
    let out = gw.cli_async(&["user", "revoke", BOSS, "--all"], None).await;
    assert!(
        out.status.success(),
        "vigile user revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    closed_after(&mut boss_ws, Instant::now(), "after `vigile user revoke`").await;
    counter_reaches(&gw, "vigile_streams_revoked_total", 2.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_closes_the_websocket_held_by_another() {
    let upstream = stream_upstream().await;
    let redis = RedisServer::start().await;
    let a = GatewayBuilder::new(upstream.clone())
        .name("A")
        .store(redis.url())
        .extra(MAIL_LOG)
        .start()
        .await;
    let b = GatewayBuilder::new(upstream)
        .name("B")
        .share_store_with(&a)
        .extra(MAIL_LOG)
        .start()
        .await;
    // Cookies are per host, not port: the session from A is sent to B as well.
    let (ann, cookie) = signed_in(&a, ANN).await;
    let mut socket = ws::connect(&ws::ws_url(&b.url(), "/ws"), Some(&cookie)).await;
    ws::echo(&mut socket, "through B").await;

    logout(&ann, &a).await;
    closed_after(&mut socket, Instant::now(), "logout on A, stream on B").await;
    counter_reaches(&b, "vigile_streams_revoked_total", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_stream_is_closed_when_its_session_ends() {
    let upstream = stream_upstream().await;
    let gw = GatewayBuilder::new(upstream).extra(MAIL_LOG).start().await;
    let (ann, cookie) = signed_in(&gw, ANN).await;
    let mut resp = tokio::time::timeout(
        RESPONSE_BOUND,
        stream_client()
            .get(format!("{}/sse/live", gw.url()))
            .header("accept", "text/event-stream")
            .header("cookie", &cookie)
            .send(),
    )
    .await
    .expect("the stream's head within the bound")
    .unwrap();
    assert_eq!(resp.status(), 200);
    // The stream is live: its first event and heartbeats come.
    let mut seen = Vec::new();
    let started = Instant::now();
    while !String::from_utf8_lossy(&seen).contains(": beat") {
        assert!(started.elapsed() < RESPONSE_BOUND, "no events: {seen:?}");
        let chunk = tokio::time::timeout(RESPONSE_BOUND, resp.chunk())
            .await
            .expect("an event")
            .expect("the stream is open")
            .expect("the stream is open");
        seen.extend_from_slice(&chunk);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("data: hello\n\n"));

    logout(&ann, &gw).await;
    let (_, _, ended) = read_body(&mut resp, REVOKE_BOUND).await;
    assert!(
        ended,
        "the SSE stream was still open {REVOKE_BOUND:?} after logout"
    );
    counter_reaches(&gw, "vigile_streams_revoked_total", 1.0).await;
}

// ---------------------------------------------------------------------------------------
// Failures after the head
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_download_cut_mid_body_arrives_short_without_html() {
    let (announced, sent) = (1 << 20, 300 * 1024);
    let upstream = crate::upstream_failures::cut_upstream(announced, sent).await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .start()
        .await;
    // Cleartext HTTP/2 with prior knowledge (h2c), as the gateway serves without TLS.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let mut resp = tokio::time::timeout(
        RESPONSE_BOUND,
        h2.get(format!("{}/videos/lesson1.mp4", gw.url()))
            .header("accept", ACCEPT_HTML)
            .send(),
    )
    .await
    .expect("the head within the bound")
    .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let (body, error, ended) = read_body(&mut resp, RESPONSE_BOUND).await;
    assert!(ended, "the stream was neither finished nor reset");
    let upstreams = body.iter().take_while(|b| **b == b'x').count();
    assert!(
        upstreams == body.len() && body.len() <= sent,
        "after {upstreams} bytes of the upstream's, the body holds something else: {:?}",
        String::from_utf8_lossy(&body[upstreams..])
            .chars()
            .take(200)
            .collect::<String>()
    );
    assert!(
        error.is_some() || body.len() < announced,
        "the download cannot look complete"
    );
    counter_reaches(&gw, "vigile_upstream_aborts_total", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_closing_mid_download_is_counted_as_an_abort() {
    let upstream = endless_download_upstream().await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .start()
        .await;
    let before = counter(&gw, "vigile_client_aborts_total").await;
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port())).await.unwrap();
    let request = format!(
        "GET /videos/lesson2.mp4 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        gw.port()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    // Some of the video, then the viewer seeks away: the connection is dropped with
    // unread data (a reset).
    let mut received = 0;
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(RESPONSE_BOUND, async {
        while received < 256 * 1024 {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "the download ended early");
            received += n;
        }
    })
    .await
    .expect("the download's first 256 KiB");
    drop(conn);

    let aborts = poll_for("the client abort counted", 200, || async {
        let now = counter(&gw, "vigile_client_aborts_total").await;
        (now > before).then_some(now)
    })
    .await;
    assert_eq!(aborts, before + 1.0, "one abort, counted once");
    // Logged at debug, not as an error (a video seek is routine).
    let logs = gw.logs();
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "a client abort logged as an error:\n{}",
        errors.join("\n")
    );
}
