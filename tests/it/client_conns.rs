//! Client connection limits through the real binary (issue 11): a header must arrive in
//! total within `header_timeout` however steadily it trickles, an idle keep-alive closes
//! after `keepalive_timeout`, a slow body after a complete header is not cut, and a flood
//! of idle or trickling sockets from one address is capped while another address is
//! served. The connection layer sits before the store, but the main cases still run on
//! both backends, as every case of the issue does.
//!
//! Every wait is bounded; durations are bounds on waiting, never performance claims.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::gateway::{Gateway, GatewayBuilder};
use crate::common::redis_server::RedisServer;
use crate::common::upstream::Upstream;

/// Short limits, so the tests wait seconds, not minutes.
const LIMITS: &str = r#"
[server]
header_timeout = "1s"
keepalive_timeout = "1s"
max_connections_per_ip = 100
"#;

/// Longest a test waits for the gateway to close a connection it should close.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// The upstream, the gateway on `backend`'s store, and the Redis server to keep alive.
async fn start(backend: Backend, extra: &str) -> (Upstream, Gateway, Option<RedisServer>) {
    let upstream = Upstream::start().await;
    let redis = match backend {
        Backend::Sqlite | Backend::Cluster => None,
        Backend::Redis => Some(RedisServer::start().await),
    };
    let mut builder = GatewayBuilder::new(upstream.url())
        .extra(LIMITS)
        .extra(extra);
    if let Some(r) = &redis {
        builder = builder.store(r.url());
    }
    (upstream, builder.start().await, redis)
}

/// A TCP connection to the gateway from source address `from` (any 127/8 address works
/// on Linux loopback).
async fn connect_from(gw: &Gateway, from: Ipv4Addr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], gw.port())))
        .await
}

/// Waits until the peer closes `stream` (EOF or reset), discarding anything it sends;
/// `false` if still open after `bound`.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sends `bytes` one at a time, `every` apart, until the peer closes the connection;
/// returns how long that took, or `None` if it was still open after `bound`.
async fn trickle_until_closed(
    stream: TcpStream,
    bytes: &[u8],
    every: Duration,
    bound: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let writer = async {
        for b in bytes.iter().cycle() {
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        }
        std::future::pending::<()>().await;
    };
    let reader = async {
        let mut buf = [0u8; 256];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let closed = tokio::time::timeout(bound, async {
        tokio::select! {
            () = reader => {}
            () = writer => {}
        }
    })
    .await;
    closed.ok().map(|()| start.elapsed())
}

/// Reads one HTTP/1.1 response (Content-Length or chunked body); returns status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(CLOSE_BOUND, stream.read(&mut buf))
            .await
            .expect("response head in time")
            .expect("read response");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().expect("status code");
    let body_done = |body: &[u8]| {
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse::<usize>().expect("content-length"))
        {
            body.len() >= len
        } else {
            body.ends_with(b"0\r\n\r\n")
        }
    };
    while !body_done(&data[head_end..]) {
        let n = tokio::time::timeout(CLOSE_BOUND, stream.read(&mut buf))
            .await
            .expect("response body in time")
            .expect("read body");
        assert!(n > 0, "closed mid-body");
        data.extend_from_slice(&buf[..n]);
    }
    (
        status,
        String::from_utf8_lossy(&data[head_end..]).into_owned(),
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: it\r\n\r\n")
}

async fn metric(gw: &Gateway, series: &str) -> f64 {
    gw.metric(series)
        .await
        .unwrap_or_else(|| panic!("{series} not exported"))
}

async fn a_trickled_header_is_cut_at_the_total_deadline(backend: Backend) {
    let (upstream, gw, _redis) = start(backend, "").await;
    let stream = connect_from(&gw, Ipv4Addr::LOCALHOST).await.unwrap();
    // A header that would be valid, one byte every 200 ms: each read comes far within any
    // per-read timeout, but the whole header would take seconds.
    let header = get("/catalog/trickle");
    let took = trickle_until_closed(
        stream,
        header.as_bytes(),
        Duration::from_millis(200),
        CLOSE_BOUND,
    )
    .await
    .expect("the gateway closed the trickling connection");
    assert!(
        took >= Duration::from_millis(900),
        "closed before header_timeout: {took:?}"
    );
    assert_eq!(upstream.count(), 0, "a partial request reached upstream");
    assert!(metric(&gw, "vigile_client_timeouts_total{phase=\"header\"}").await >= 1.0);

    // A client that opens a connection and says nothing is closed too.
    let mut silent = connect_from(&gw, Ipv4Addr::LOCALHOST).await.unwrap();
    assert!(closed_within(&mut silent, CLOSE_BOUND).await);

    // A whole request shorter than the HTTP/2 preface is answered, not held back while
    // the gateway waits to tell HTTP/1 from cleartext HTTP/2.
    let mut short = connect_from(&gw, Ipv4Addr::LOCALHOST).await.unwrap();
    short.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let (status, _) = read_response(&mut short).await;
    assert!(status > 0, "no answer to a short request");
}
both_backends!(a_trickled_header_is_cut_at_the_total_deadline);

async fn an_idle_keep_alive_is_closed_after_keepalive_timeout(backend: Backend) {
    let (upstream, gw, _redis) = start(backend, "").await;
    let mut stream = connect_from(&gw, Ipv4Addr::LOCALHOST).await.unwrap();
    // Two requests on one connection: keep-alive works...
    for path in ["/catalog/one", "/catalog/two"] {
        stream.write_all(get(path).as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut stream).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, format!("upstream saw {path}"));
    }
    // ...and a third one sent in two halves, the second after a pause shorter than
    // header_timeout, is still one request.
    let third = get("/catalog/three");
    let (a, b) = third.split_at(10);
    stream.write_all(a.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(b.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    assert_eq!(upstream.count(), 3);
    // Then idle: the gateway closes it.
    let idle_from = Instant::now();
    assert!(
        closed_within(&mut stream, CLOSE_BOUND).await,
        "idle keep-alive still open"
    );
    assert!(idle_from.elapsed() >= Duration::from_millis(900));
    assert!(metric(&gw, "vigile_client_timeouts_total{phase=\"keepalive\"}").await >= 1.0);
}
both_backends!(an_idle_keep_alive_is_closed_after_keepalive_timeout);

async fn a_slow_body_after_a_complete_header_is_not_cut(backend: Backend) {
    let (upstream, gw, _redis) = start(backend, "").await;
    let mut stream = connect_from(&gw, Ipv4Addr::LOCALHOST).await.unwrap();
    let body = "slow-upload-0123456789"; // 22 bytes, 100 ms apart: over 2 s
    let head = format!(
        "POST /catalog/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for b in body.bytes() {
        stream.write_all(&[b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "upload not slow"
    );
    let (status, answer) = read_response(&mut stream).await;
    assert_eq!(status, 200, "{answer}");
    let seen = upstream.last().expect("upload reached upstream");
    assert_eq!(seen.body, body);
    assert_eq!(
        metric(&gw, "vigile_client_timeouts_total{phase=\"header\"}").await,
        0.0
    );
}
both_backends!(a_slow_body_after_a_complete_header_is_not_cut);

/// Raises this process's open-file limit to its hard limit (the flood needs thousands).
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

async fn a_flood_from_one_address_leaves_others_served(backend: Backend) {
    const FLOOD: usize = 3000;
    const CAP: f64 = 100.0;
    let limit = raise_nofile();
    assert!(
        limit > FLOOD as u64 + 500,
        "open-file limit {limit} too low for the flood test"
    );
    // A longer header deadline than the other tests, so the admitted flood sockets stay
    // while the refused ones pile up and while the other client is served.
    let (upstream, gw, _redis) = start(backend, "[server]\nheader_timeout = \"3s\"\n").await;
    let flooder = Ipv4Addr::new(127, 0, 0, 3);
    let visitor = Ipv4Addr::new(127, 0, 0, 2);

    // Every flood socket reports whether the gateway closed it within the bound; half
    // stay silent, half trickle a header.
    let mut flood = JoinSet::new();
    for i in 0..FLOOD {
        let port = gw.port();
        flood.spawn(async move {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(IpAddr::V4(flooder), 0))?;
            // A full accept queue would make connect retry for minutes: bound it.
            let connect = socket.connect(SocketAddr::from(([127, 0, 0, 1], port)));
            let mut stream = tokio::time::timeout(CLOSE_BOUND, connect)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            let closed = if i % 2 == 0 {
                closed_within(&mut stream, Duration::from_secs(30)).await
            } else {
                let header = get("/catalog/flood");
                trickle_until_closed(
                    stream,
                    header.as_bytes(),
                    Duration::from_millis(200),
                    Duration::from_secs(30),
                )
                .await
                .is_some()
            };
            Ok::<bool, std::io::Error>(closed)
        });
    }

    // Meanwhile a visitor from another address, a fresh connection per request, is
    // answered every time; the open-connection gauge never passes the cap by more than
    // the visitor's own connection.
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(visitor))
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(CLOSE_BOUND)
        .build()
        .unwrap();
    let mut peak_open: f64 = 0.0;
    for n in 0..20 {
        let url = format!("{}/catalog/visitor/{n}", gw.url());
        let resp = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("visitor request {n} failed during the flood: {e}"));
        assert_eq!(resp.status(), 200, "visitor request {n}");
        assert_eq!(
            resp.text().await.unwrap(),
            format!("upstream saw /catalog/visitor/{n}")
        );
        peak_open = peak_open.max(metric(&gw, "vigile_client_connections_open").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        peak_open <= CAP + 2.0,
        "open connections reached {peak_open}"
    );
    assert!(metric(&gw, "vigile_client_connections_refused_total").await > 0.0);

    // Every flood socket is closed by the gateway within the bound.
    let mut still_open = 0;
    let mut connect_errors = 0;
    while let Some(res) = flood.join_next().await {
        match res.expect("flood task") {
            Ok(true) => {}
            Ok(false) => still_open += 1,
            Err(_) => connect_errors += 1,
        }
    }
    assert_eq!(still_open, 0, "flood sockets left open by the gateway");
    assert!(
        connect_errors < FLOOD / 10,
        "{connect_errors} flood sockets could not even connect"
    );
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| r.path != "/catalog/flood"),
        "a trickled flood header reached upstream"
    );
    // Nothing is left open once the flood is over.
    crate::common::poll_until("open connections back to zero", 200, || async {
        metric(&gw, "vigile_client_connections_open").await == 0.0
    })
    .await;
}
both_backends!(a_flood_from_one_address_leaves_others_served);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_without_its_preface_or_idle_is_closed() {
    let (_upstream, gw, _redis) = start(Backend::Sqlite, "").await;
    // Still served over cleartext HTTP/2.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .timeout(CLOSE_BOUND)
        .build()
        .unwrap();
    let r = h2
        .get(format!("{}/catalog/h2", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);

    // Half a preface, then nothing: cut at the header deadline.
    let mut half = connect_from(&gw, Ipv4Addr::LOCALHOST).await.unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert!(closed_within(&mut half, CLOSE_BOUND).await, "half preface");

    // A whole preface and SETTINGS, then no stream: closed once idle for keepalive_timeout.
    let mut idle = connect_from(&gw, Ipv4Addr::LOCALHOST).await.unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    assert!(closed_within(&mut idle, CLOSE_BOUND).await, "idle h2");
    assert!(metric(&gw, "vigile_client_timeouts_total{phase=\"header\"}").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_http2_without_its_preface_is_closed() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let (_upstream, gw, _redis) = start(
        Backend::Sqlite,
        &format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ),
    )
    .await;
    let port = gw.port();
    // A TLS client that negotiates h2 by ALPN, then sends nothing.
    let closed = tokio::task::spawn_blocking(move || {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let conn = rustls::ClientConnection::new(
            std::sync::Arc::new(config),
            "localhost".try_into().unwrap(),
        )
        .unwrap();
        let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(CLOSE_BOUND)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
        let mut buf = [0u8; 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {} // the server's SETTINGS
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true, // closed without close_notify, or reset
            }
        }
    })
    .await
    .unwrap();
    assert!(closed, "a TLS h2 connection without a preface stayed open");
    assert!(metric(&gw, "vigile_client_timeouts_total{phase=\"header\"}").await >= 1.0);
}
