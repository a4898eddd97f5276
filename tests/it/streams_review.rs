//! Regressions from the review of the upstream watch (issue 16), through the real binary
//! against raw TCP upstreams and clients:
//!
//! - an interim `100 Continue` (to `Expect: 100-continue`) does not end the watch: the
//!   first-byte limit still ends the exchange, and a member's stream opened that way is
//!   still closed when the session is revoked (that the client then gets a 504 rather
//!   than a bare close is a known gap, in an ignored test);
//! - a close by the watch is never retried on the next pooled connection: the upstream
//!   sees a slow request once, and the client its 504 at the limit;
//! - a response without a length cut by the idle limit does not end cleanly (no last
//!   chunk), and carries only the upstream's bytes;
//! - a client that stops reading a download is dropped after `idle_timeout`.
//!
//! Every wait is bounded; the bounds are the contract's "within N seconds", never
//! performance claims.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::consts::ANN;
use crate::common::gateway::{Gateway, GatewayBuilder};
use crate::common::http::{self, ACCEPT_HTML};
use crate::streams::{counter_reaches, signed_in};

/// Everything public: the timeout tests need no session.
const PUBLIC: &str = "[access]\npublic = [\"/**\"]\n";

/// No SMTP server in these tests: mails (new-device notices) go to the log.
const MAIL_LOG: &str = "[mail]\ntransport = \"log\"\n";

/// The first-byte limit under test, and the contract's bound on its 504 (the limit plus
/// a loaded CI box's slack).
const FIRST_BYTE_1S: &str = "[upstream]\nfirst_byte_timeout = \"1s\"\n";
const TIMEOUT_BOUND: Duration = Duration::from_secs(10);

/// Short first-byte and idle limits.
const SHORT_TIMEOUTS: &str = "[upstream]\nfirst_byte_timeout = \"1s\"\nidle_timeout = \"1s\"\n";

/// The contract's bound on closing a stream of a session that ended (it says ~3 s).
const REVOKE_BOUND: Duration = Duration::from_secs(5);

/// Longest wait for something that should come (a loaded CI box).
const RESPONSE_BOUND: Duration = Duration::from_secs(30);

/// The small body the `Expect: 100-continue` requests send.
const FORM: &[u8] = b"name=ann&course=rust";

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1 helpers
// ---------------------------------------------------------------------------------------

/// Reads one request head from `conn` (`buf` holds bytes already read past the previous
/// request); returns the head, leaving what follows it in `buf`. `None` at the end of the
/// connection.
async fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..at]).into_owned();
            buf.drain(..at + 4);
            return Some(head);
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The request line's target (`/path`) of a request head.
fn target_of(head: &str) -> String {
    head.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// The value of `name` (case-insensitive) in a head, if present.
fn header_of<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads a request body of the head's Content-Length (`buf` may already hold part of it);
/// returns whether it came whole.
async fn read_body_of(conn: &mut TcpStream, head: &str, buf: &mut Vec<u8>) -> bool {
    let want: usize = header_of(head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut chunk = [0u8; 8192];
    while buf.len() < want {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..want);
    true
}

/// Holds `conn` open, discarding what comes, until the peer closes it.
async fn hold(mut conn: TcpStream) {
    let mut chunk = [0u8; 8192];
    while matches!(conn.read(&mut chunk).await, Ok(n) if n > 0) {}
}

/// One response head at the start of `bytes`: its status and the length of the head
/// (blank line included).
fn head_at(bytes: &[u8]) -> Option<(u16, usize)> {
    let at = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let line = String::from_utf8_lossy(&bytes[..at]);
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, at + 4))
}

/// The final (non-interim) response head in `received`, past any `1xx` heads before
/// it: its status, the head's text and where the body starts.
fn final_head(received: &[u8]) -> Option<(u16, String, usize)> {
    let mut from = 0;
    loop {
        let (status, len) = head_at(&received[from..])?;
        if (100..200).contains(&status) && status != 101 {
            from += len;
            continue;
        }
        let head = String::from_utf8_lossy(&received[from..from + len]).into_owned();
        return Some((status, head, from + len));
    }
}

/// Reads from `conn` into `received` until `done(received)` holds, the connection ends
/// or `bound` passes; returns whether `done` held.
async fn read_until(
    conn: &mut TcpStream,
    received: &mut Vec<u8>,
    bound: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(bound, async {
        while !done(received) {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    done(received)
}

/// Reads from `conn` until it ends (EOF or reset); returns the bytes read and whether it
/// ended within `bound`.
async fn read_to_end_within(conn: &mut TcpStream, bound: Duration) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(bound, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (received, ended)
}

/// A POST of [`FORM`] to `path` with `Expect: 100-continue` (and `extra` header lines,
/// each ending in CRLF), sent whole at once, as curl does once its short wait for the
/// `100` passed.
async fn post_expecting_continue(gw: &Gateway, path: &str, extra: &str) -> TcpStream {
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port())).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: {ACCEPT_HTML}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n{extra}\r\n",
        gw.port(),
        FORM.len()
    )
    .into_bytes();
    request.extend_from_slice(FORM);
    conn.write_all(&request).await.unwrap();
    conn
}

/// Decodes a chunked body: the data, and whether its last (zero) chunk came.
fn dechunk(mut body: &[u8]) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return (data, false);
        };
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            panic!("not a chunk size: {size_text:?}");
        };
        body = &body[eol + 2..];
        if size == 0 {
            return (data, true);
        }
        let take = size.min(body.len());
        data.extend_from_slice(&body[..take]);
        if body.len() < size + 2 {
            return (data, false);
        }
        body = &body[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------
// Metrics and sessions
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Expect: 100-continue
// ---------------------------------------------------------------------------------------

/// What an `Expect: 100-continue` upstream saw.
#[derive(Default)]
struct Continued {
    /// Request heads received.
    requests: AtomicUsize,
    /// Request bodies received whole (after the `100`).
    bodies: AtomicUsize,
}

/// A raw upstream answering each request's head with `100 Continue`, reading its body,
/// then calling `then` with the connection (to answer, or not).
async fn continue_upstream<F, Fut>(then: F) -> (String, Arc<Continued>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Continued::default());
    let counts = seen.clone();
    let then = Arc::new(then);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counts = counts.clone();
            let then = then.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let Some(head) = read_head(&mut conn, &mut buf).await else {
                    return;
                };
                counts.requests.fetch_add(1, Ordering::SeqCst);
                if conn
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                if !read_body_of(&mut conn, &head, &mut buf).await {
                    return;
                }
                counts.bodies.fetch_add(1, Ordering::SeqCst);
                then(conn).await;
            });
        }
    });
    (url, seen)
}

/// Starts a gateway (first-byte limit 1 s) before an upstream that answers `100 Continue`,
/// takes the body and never sends its real head; POSTs to it with `Expect: 100-continue`.
/// Returns the gateway, what the client received until a final head came or the
/// connection ended (bounded by [`TIMEOUT_BOUND`]), and how long that took.
async fn post_to_a_silent_continue_upstream() -> (Gateway, Vec<u8>, Duration) {
    let (upstream, seen) = continue_upstream(hold).await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .extra(FIRST_BYTE_1S)
        .start()
        .await;
    let sent = Instant::now();
    let mut conn = post_expecting_continue(&gw, "/courses/rust/apply", "").await;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let ended = tokio::time::timeout(TIMEOUT_BOUND, async {
        while final_head(&received).is_none() {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    let waited = sent.elapsed();
    assert!(
        ended,
        "the exchange was still open {TIMEOUT_BOUND:?} after a 100 Continue and then \
         silence (no first-byte limit); received: {:?}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1, "sent up once");
    assert_eq!(seen.bodies.load(Ordering::SeqCst), 1, "the body went up");
    (gw, received, waited)
}

/// The upstream sends `100 Continue` and then never its real head: the first-byte limit
/// still ends the exchange. Before the fix the interim head ended the watch, and the
/// client waited for as long as the upstream liked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_continue_does_not_switch_the_first_byte_limit_off() {
    let (gw, received, waited) = post_to_a_silent_continue_upstream().await;
    assert!(
        waited < TIMEOUT_BOUND,
        "ended after {waited:?}; received: {:?}",
        String::from_utf8_lossy(&received)
    );
    if let Some((status, head, _)) = final_head(&received) {
        assert_eq!(status, 504, "{head}");
    }
    counter_reaches(
        &gw,
        "vigile_upstream_timeouts_total{phase=\"first_byte\"}",
        1.0,
    )
    .await;
}

/// The same, with the answer the contract gives a first-byte timeout: a 504 (an interim
/// head is not the response; HTTP allows the final head after it, and Pingora writes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_byte_timeout_after_a_100_continue_answers_504() {
    let (_gw, received, _) = post_to_a_silent_continue_upstream().await;
    let Some((status, head, _)) = final_head(&received) else {
        panic!(
            "the connection closed without a final answer; received: {:?}",
            String::from_utf8_lossy(&received)
        );
    };
    assert_eq!(status, 504, "{head}");
}

/// An event stream's head and `data: hello`, then `: beat` every 300 ms until the
/// gateway closes the connection.
async fn event_stream_forever(mut conn: TcpStream) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n\
                d\r\ndata: hello\n\n\r\n";
    if conn.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if conn.write_all(b"8\r\n: beat\n\n\r\n").await.is_err() {
            return;
        }
    }
}

/// A member's event stream opened by a POST with `Expect: 100-continue` is closed when the
/// session is revoked (before the fix the interim head ended the watch, session check
/// included: the stream outlived the revocation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_after_a_100_continue_is_closed_on_revoke() {
    let (upstream, seen) = continue_upstream(event_stream_forever).await;
    let gw = GatewayBuilder::new(upstream).extra(MAIL_LOG).start().await;
    let cookie = signed_in(&gw, ANN).await.1;
    let mut conn = post_expecting_continue(
        &gw,
        "/live/progress",
        &format!("Cookie: {cookie}\r\nAccept-Language: en\r\n"),
    )
    .await;

    // The stream is live: its head, first event and a heartbeat come.
    let mut received = Vec::new();
    let live = read_until(&mut conn, &mut received, RESPONSE_BOUND, |r| {
        final_head(r)
            .is_some_and(|(_, _, body)| String::from_utf8_lossy(&r[body..]).contains(": beat"))
    })
    .await;
    assert!(
        live,
        "the stream did not start; received: {:?}",
        String::from_utf8_lossy(&received)
    );
    let (status, head, _) = final_head(&received).unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    assert_eq!(seen.bodies.load(Ordering::SeqCst), 1, "the body went up");

    let out = gw.cli_async(&["user", "revoke", ANN, "--all"], None).await;
    assert!(
        out.status.success(),
        "vigile user revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked = Instant::now();
    let (_, ended) = read_to_end_within(&mut conn, REVOKE_BOUND).await;
    assert!(
        ended,
        "the stream was still open {:?} after `vigile user revoke`",
        revoked.elapsed()
    );
    counter_reaches(&gw, "vigile_streams_revoked_total", 1.0).await;
}

// ---------------------------------------------------------------------------------------
// No retry after a close by the watch
// ---------------------------------------------------------------------------------------

/// What the keep-alive upstream saw.
#[derive(Default)]
struct Served {
    /// Requests received per path.
    per_path: Mutex<HashMap<String, usize>>,
    /// Connections accepted.
    connections: AtomicUsize,
    /// For each request to `/slow/...`: how many requests its connection had served
    /// before (0: a fresh connection, more: a pooled one reused).
    slow_after: Mutex<Vec<usize>>,
}

/// A keep-alive upstream: `/slow/...` is never answered (the connection is held until
/// the gateway closes it); anything else is answered `ok` after 100 ms, on the same
/// connection as the requests before it.
async fn keep_alive_upstream() -> (String, Arc<Served>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(Served::default());
    let record = served.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            record.connections.fetch_add(1, Ordering::SeqCst);
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut before = 0;
                while let Some(head) = read_head(&mut conn, &mut buf).await {
                    let path = target_of(&head);
                    *record
                        .per_path
                        .lock()
                        .unwrap()
                        .entry(path.clone())
                        .or_default() += 1;
                    if path.starts_with("/slow/") {
                        record.slow_after.lock().unwrap().push(before);
                        hold(conn).await;
                        return;
                    }
                    before += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                                  Content-Length: 2\r\n\r\nok";
                    if conn.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, served)
}

/// With pooled connections to the upstream, a request the watch closes at the first-byte
/// limit is answered 504 at that limit and reaches the upstream once. Before the fix
/// Pingora took the close of a reused connection for a stale one and sent the GET again,
/// once per pooled connection, waiting the limit each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_closed_by_the_watch_is_not_sent_again() {
    let (upstream, served) = keep_alive_upstream().await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .extra(FIRST_BYTE_1S)
        .start()
        .await;
    // Warm the pool: rounds of concurrent keep-alive GETs (several upstream connections),
    // then sequential ones on them.
    let client = http::bare_client();
    for round in 0..3 {
        let gets = (0..4).map(|i| {
            let client = client.clone();
            let url = format!("{}/lessons/{round}-{i}", gw.url());
            async move { client.get(url).send().await.unwrap().status() }
        });
        for status in futures_util::future::join_all(gets).await {
            assert_eq!(status, 200);
        }
    }
    for i in 0..4 {
        let resp = client
            .get(format!("{}/lessons/seq-{i}", gw.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let warm = served.connections.load(Ordering::SeqCst);
    assert!(warm >= 1, "the warm-up reached the upstream");
    // Let the last connection go back to the pool.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let resp = tokio::time::timeout(
        RESPONSE_BOUND,
        client.get(format!("{}/slow/report", gw.url())).send(),
    )
    .await
    .expect("an answer within the bound")
    .unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status(), 504);
    let slow_after = served.slow_after.lock().unwrap().clone();
    let slow_count = served.per_path.lock().unwrap().get("/slow/report").copied();
    assert_eq!(
        slow_count,
        Some(1),
        "the slow request reached the upstream {slow_count:?} times (after {waited:?}, \
         {warm} pooled connections warmed, the requests before it on each connection: \
         {slow_after:?})"
    );
    assert!(
        slow_after.first().is_some_and(|n| *n > 0),
        "the slow request went on a fresh connection ({slow_after:?}): the pool was not \
         used, the case under test did not happen"
    );
    assert!(waited < TIMEOUT_BOUND, "answered after {waited:?}");
    counter_reaches(
        &gw,
        "vigile_upstream_timeouts_total{phase=\"first_byte\"}",
        1.0,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Responses cut by the watch
// ---------------------------------------------------------------------------------------

/// A raw upstream answering each request with a head without a length (the body ends when
/// the connection does), `sent` bytes of body, then silence with the connection open.
async fn unframed_stalling_upstream(sent: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_head(&mut conn, &mut buf).await.is_none() {
                    return;
                }
                let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                                   Connection: close\r\n\r\n"
                    .to_vec();
                answer.extend(std::iter::repeat_n(b'x', sent));
                if conn.write_all(&answer).await.is_err() {
                    return;
                }
                hold(conn).await;
            });
        }
    });
    url
}

/// A body without a length, cut by the idle limit, must not look complete to the client:
/// before the fix the watch's close was the body's normal end, and the gateway re-framed
/// it with a clean last chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unframed_body_cut_by_the_idle_limit_does_not_end_cleanly() {
    let sent = 100;
    let upstream = unframed_stalling_upstream(sent).await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .extra(SHORT_TIMEOUTS)
        .start()
        .await;
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port())).await.unwrap();
    let request = format!(
        "GET /exports/grades.bin HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: {ACCEPT_HTML}\r\n\r\n",
        gw.port()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    // Until the connection ends, or the body's last chunk comes (a clean end, after which
    // the gateway would keep the connection for the next request).
    let clean_end = |r: &[u8]| {
        final_head(r).is_some_and(|(_, head, at)| {
            head.to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
                && dechunk(&r[at..]).1
        })
    };
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let ended = tokio::time::timeout(RESPONSE_BOUND, async {
        while !clean_end(&received) {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    assert!(
        ended,
        "the gateway kept the connection open over {RESPONSE_BOUND:?}; received: {:?}",
        String::from_utf8_lossy(&received)
    );
    let (status, head, at) = final_head(&received).unwrap_or_else(|| {
        panic!(
            "no response head in {:?}",
            String::from_utf8_lossy(&received)
        )
    });
    assert_eq!(status, 200, "{head}");
    let lower = head.to_ascii_lowercase();
    let raw_body = &received[at..];
    let body = if lower.contains("transfer-encoding: chunked") {
        let (data, complete) = dechunk(raw_body);
        assert!(
            !complete,
            "the cut body ended with a clean last chunk: {:?}",
            String::from_utf8_lossy(raw_body)
        );
        data
    } else {
        assert!(
            !lower.contains("content-length"),
            "a length the upstream never gave: {head}"
        );
        raw_body.to_vec()
    };
    assert!(
        body.len() <= sent && body.iter().all(|b| *b == b'x'),
        "the body holds the upstream's bytes only: {:?}",
        String::from_utf8_lossy(&body)
    );
    counter_reaches(&gw, "vigile_upstream_timeouts_total{phase=\"idle\"}", 1.0).await;
}

/// A raw upstream answering each request with a download announcing 64 GiB, written 64 KiB
/// at a time for as long as the gateway takes it.
async fn huge_download_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_head(&mut conn, &mut buf).await.is_none() {
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\n\r\n",
                    HUGE
                );
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'v'; 64 * 1024];
                while conn.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    url
}

/// The length [`huge_download_upstream`] announces: more than a test could read.
const HUGE: u64 = 64 << 30;

/// How long the client below stops reading: several times `idle_timeout = "1s"`.
const STALL: Duration = Duration::from_secs(6);

/// A client that stops reading a download is dropped after `idle_timeout`: once it reads
/// again it gets what the buffers held and then the end of the connection, not the rest
/// of the download. The first-byte limit is left at its default (1 min): before the fix
/// the watch slept until that limit before judging the idle one, so the stalled
/// connection stayed open and the download streamed on once read again. (With a short
/// first-byte limit the watch's idle close dropped such a client before the fix too: this
/// test does not tell the new downstream write timeout from the watch.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped() {
    let upstream = huge_download_upstream().await;
    let gw = GatewayBuilder::new(upstream)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .extra("[upstream]\nidle_timeout = \"1s\"\n")
        .start()
        .await;
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port())).await.unwrap();
    let request = format!(
        "GET /videos/lesson3.mp4 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        gw.port()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let headed = read_until(&mut conn, &mut received, RESPONSE_BOUND, |r| {
        final_head(r).is_some()
    })
    .await;
    assert!(headed, "no head: {:?}", String::from_utf8_lossy(&received));
    let (status, head, _) = final_head(&received).unwrap();
    assert_eq!(status, 200, "{head}");

    // The viewer pauses without closing: nothing is read for a while.
    tokio::time::sleep(STALL).await;

    let resumed = Instant::now();
    let (rest, ended) = read_to_end_within(&mut conn, TIMEOUT_BOUND).await;
    let total = (received.len() + rest.len()) as u64;
    assert!(
        ended,
        "the connection was still open {:?} after reading resumed ({total} bytes read): \
         a client that stopped reading for {STALL:?} was not dropped",
        resumed.elapsed()
    );
    assert!(total < HUGE, "the whole download came ({total} bytes)");
}

// ---------------------------------------------------------------------------------------
// An upgrade answered before the request was even read (pingora#946)
// ---------------------------------------------------------------------------------------

/// A raw upstream that answers every connection with `101` the moment it is accepted
/// (before reading the request: the fastest application there can be), then echoes what
/// follows the request head. The bytes after the 101 are not WebSocket frames: the
/// gateway carries an upgraded connection's bytes without reading them.
async fn instant_upgrade_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = Vec::new();
                if read_head(&mut conn, &mut buf).await.is_none() {
                    return;
                }
                if conn.write_all(&buf).await.is_err() {
                    return;
                }
                let (mut rd, mut wr) = conn.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    url
}

/// The upstream's `101` used to race the end of the upgrade request's own empty body in
/// Pingora: when the 101 won, the tunnel was closed right after the handshake (the
/// client saw the 101, then the end of the connection). Each upgrade here gives the race
/// an even chance, so twenty in a row all carrying their bytes shows it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_answered_at_once_carries_bytes_both_ways() {
    let gw = GatewayBuilder::new(instant_upgrade_upstream().await)
        .extra(PUBLIC)
        .extra(MAIL_LOG)
        .start()
        .await;
    let addr = gw.url().trim_start_matches("http://").to_string();
    for n in 0..20 {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        let request = format!(
            "GET /tunnel HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let headed = read_until(&mut conn, &mut received, RESPONSE_BOUND, |r| {
            head_at(r).is_some()
        })
        .await;
        assert!(headed, "upgrade {n}: no head: {received:?}");
        let (status, len) = head_at(&received).unwrap();
        assert_eq!(status, 101, "upgrade {n}");
        received.drain(..len);
        let ping = format!("ping {n}");
        conn.write_all(ping.as_bytes()).await.unwrap();
        let echoed = read_until(&mut conn, &mut received, RESPONSE_BOUND, |r| {
            r.len() >= ping.len()
        })
        .await;
        assert!(
            echoed,
            "upgrade {n}: the tunnel ended before carrying {ping:?} back (got {:?})",
            String::from_utf8_lossy(&received)
        );
        assert_eq!(received, ping.as_bytes(), "upgrade {n}");
    }
}
