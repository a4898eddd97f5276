//! `[upstream] max_request_body` through the real binary (issue 16): a declared length past
//! the limit is answered 413 before anything reaches the upstream (the rest is never
//! read), a chunked body is counted as it comes and never reaches the upstream whole, a
//! body at the limit passes, and refusals are counted as
//! `vigile_requests_refused_total{reason="body_too_large"}`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::Router;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::gateway::{Gateway, GatewayBuilder};
use crate::common::http::{self, ACCEPT_HTML, ACCEPT_JSON};

/// The limit under test, and the configuration setting it (everything public: the limit
/// holds for anonymous and members alike, and needs no session to be seen).
const LIMIT: usize = 1024;
const CONFIG: &str = "[upstream]\nmax_request_body = \"1KiB\"\n\
                      [access]\npublic = [\"/**\"]\n\
                      [mail]\ntransport = \"log\"\n";

/// The refusals counter (README's metrics table: `vigile_requests_refused_total{reason}`).
const REFUSED: &str = "vigile_requests_refused_total{reason=\"body_too_large\"}";

/// Longest wait for an answer (a loaded CI box), never a performance claim.
const BOUND: Duration = Duration::from_secs(30);

/// What the upstream saw of request bodies, counted as the bytes arrived (so a body cut
/// half-way is seen too).
#[derive(Default)]
struct Seen {
    /// Requests whose head reached the upstream.
    requests: AtomicUsize,
    /// The most body bytes received on any one request.
    most_bytes: AtomicUsize,
    /// Requests whose body arrived whole.
    complete: AtomicUsize,
}

/// An upstream that reads each request body as a stream, counting its bytes, and answers
/// `got N` once it has it all.
async fn counting_upstream() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new().fallback(count_body).with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("counting upstream");
    });
    (url, seen)
}

async fn count_body(State(seen): State<Arc<Seen>>, body: Body) -> String {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let mut stream = body.into_data_stream();
    let mut got = 0;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                got += bytes.len();
                seen.most_bytes.fetch_max(got, Ordering::SeqCst);
            }
            Err(_) => return format!("cut after {got}"),
        }
    }
    seen.complete.fetch_add(1, Ordering::SeqCst);
    format!("got {got}")
}

async fn start() -> (Gateway, Arc<Seen>) {
    let (url, seen) = counting_upstream().await;
    let gw = GatewayBuilder::new(url).extra(CONFIG).start().await;
    (gw, seen)
}

/// Sends `head` (without its final blank line) and then `body` on a fresh connection,
/// ignoring write errors (the gateway may answer and close before taking it all), and
/// reads until the gateway closes the connection; returns what came back.
async fn raw_exchange(gw: &Gateway, head: &str, body: &[u8]) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port())).await.unwrap();
    let head = head.replace("HOST", &format!("127.0.0.1:{}", gw.port()));
    let mut request = format!("{head}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    let (mut reader, mut writer) = conn.split();
    let write = async {
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
    };
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(BOUND, async { tokio::join!(write, read) })
        .await
        .is_ok();
    let received = String::from_utf8_lossy(&received).into_owned();
    assert!(
        closed,
        "the connection was still open after {BOUND:?}; received: {received:?}"
    );
    received
}

/// Waits (up to 10 s) until the refusals counted read `want` (a counter may be bumped
/// just after the answer went out).
async fn refused_reaches(gw: &Gateway, want: f64) {
    let mut last = None;
    for _ in 0..200 {
        last = gw.metric(REFUSED).await;
        if last == Some(want) {
            return;
        }
        tokio::time::sleep(crate::common::POLL_INTERVAL).await;
    }
    panic!("{REFUSED} is {last:?}, expected {want}");
}

/// A chunked encoding of `total` bytes in chunks of at most `chunk`, with its last chunk.
fn chunked(total: usize, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'a', n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_past_the_limit_is_refused_before_the_upstream() {
    let (gw, seen) = start().await;
    let client = http::bare_client();
    let url = format!("{}/courses/1/upload", gw.url());

    // An API client: 413 with JSON it can act on.
    let resp = client
        .post(&url)
        .header("accept", ACCEPT_JSON)
        .header("content-type", "application/octet-stream")
        .body(vec![b'a'; 2 * LIMIT])
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer to a body over the limit: {e:?}"));
    assert_eq!(resp.status(), 413);
    let text = resp.text().await.unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(json["error"], "body_too_large", "{text}");

    // A browser's form upload: the gateway's page.
    let resp = client
        .post(&url)
        .header("accept", ACCEPT_HTML)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 2 * LIMIT])
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer to a body over the limit: {e:?}"));
    assert_eq!(resp.status(), 413);
    let content_type = http::header(&resp, "content-type").unwrap_or_default();
    let page = resp.text().await.unwrap();
    assert!(
        content_type.starts_with("text/html") && page.to_ascii_lowercase().contains("<html"),
        "a browser gets a page ({content_type}):\n{page}"
    );

    // The length alone decides: a head announcing 10 GiB is answered without its body
    // ever being sent.
    let answer = raw_exchange(
        &gw,
        "POST /courses/1/upload HTTP/1.1\r\nHost: HOST\r\nAccept: application/json\r\n\
         Content-Type: video/mp4\r\nContent-Length: 10737418240",
        b"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        0,
        "a refused request reached the upstream"
    );
    refused_reaches(&gw, 3.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_past_the_limit_never_reaches_the_upstream_whole() {
    let (gw, seen) = start().await;
    let answer = raw_exchange(
        &gw,
        "POST /courses/1/upload HTTP/1.1\r\nHost: HOST\r\nAccept: application/json\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked",
        &chunked(4 * LIMIT, 512),
    )
    .await;
    // Either the gateway answers 413, or (having forwarded the start) it closes the
    // connection; it never relays an upstream answer to a body it let through whole.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 413"),
        "past the limit, the answer is 413 or a closed connection:\n{answer}"
    );
    let most = seen.most_bytes.load(Ordering::SeqCst);
    assert!(
        most <= LIMIT,
        "the upstream received {most} bytes of a body over the {LIMIT}-byte limit"
    );
    assert_eq!(
        seen.complete.load(Ordering::SeqCst),
        0,
        "the upstream got the whole oversized body"
    );
    if answer.starts_with("HTTP/1.1 413") {
        refused_reaches(&gw, 1.0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_at_the_limit_passes() {
    let (gw, seen) = start().await;
    // With a length.
    let resp = http::bare_client()
        .post(format!("{}/courses/1/upload", gw.url()))
        .header("accept", ACCEPT_JSON)
        .body(vec![b'a'; LIMIT])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), format!("got {LIMIT}"));

    // Chunked.
    let answer = raw_exchange(
        &gw,
        "POST /courses/1/upload HTTP/1.1\r\nHost: HOST\r\nAccept: application/json\r\n\
         Transfer-Encoding: chunked",
        &chunked(LIMIT, 300),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(&format!("got {LIMIT}")), "{answer}");

    assert_eq!(seen.complete.load(Ordering::SeqCst), 2);
    assert_eq!(gw.metric(REFUSED).await.unwrap_or(0.0), 0.0);
}
