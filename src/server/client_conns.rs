//! Limits on client connections that Pingora does not impose (issue 11): its HTTP/1 read
//! timeout is per read (one byte every few seconds keeps a header read alive), a reused
//! keep-alive connection waits for its next request for ever, and one address may open
//! as many connections as the process has file descriptors. [`ClientConns`] sits between
//! the listener and the proxy and adds, per connection:
//!
//! - a cap on open connections per client address (an IPv6 /64 counts as one address,
//!   since one host gets a whole /64); `server.trusted_proxies` are exempt;
//! - a total deadline on each request header: from the connection's start for its first
//!   request, from the first byte of a later one;
//! - a limit on idleness between requests (HTTP/1.1 keep-alive here, HTTP/2 through
//!   Pingora's `h2_idle_timeout`).
//!
//! It must never limit a request once its header is in: bodies and responses may be slow.
//! "Header in" is reported by [`header_received`], called from the proxy's first phase.

mod addr;
mod watched;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, Sleep};

use addr::{AddrSlot, OpenPerAddr};

use crate::metrics::Metrics;

// https://datatracker.ietf.org/doc/html/rfc9113#section-3.4
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Pingora's initial request-header buffer size.
const FIRST_READ: usize = 4096;

tokio::task_local! {
    /// Set while an HTTP/1 request is processed: whether its header has been received.
    static HEADER_IN: Arc<AtomicBool>;
}

/// Tells the connection's header deadline that the request header is complete, so slow
/// bodies and responses are not cut. Call it from the first proxy phase. Outside an
/// HTTP/1 connection (HTTP/2 streams run in tasks of their own) it does nothing.
pub fn header_received() {
    let _ = HEADER_IN.try_with(|flag| flag.store(true, Ordering::Release));
}

/// The limits, from `[server]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// 0 = unlimited.
    pub max_per_addr: u32,
    /// Never capped (load balancers in front of Vigile).
    pub exempt: Vec<ipnet::IpNet>,
    /// Cleartext HTTP/2 with prior knowledge is accepted.
    pub h2c: bool,
}

/// A Pingora app wrapping the proxy app `A` (see the module doc).
pub struct ClientConns<A> {
    inner: Arc<A>,
    limits: Limits,
    open: Arc<OpenPerAddr>,
    metrics: Arc<Metrics>,
}

impl<A: HttpServerApp + Send + Sync + 'static> ClientConns<A> {
    pub fn new(inner: Arc<A>, limits: Limits, metrics: Arc<Metrics>) -> Self {
        let open = Arc::new(OpenPerAddr::new(limits.max_per_addr));
        Self {
            inner,
            limits,
            open,
            metrics,
        }
    }

    /// A slot for this peer, or `None` when its address is at the cap.
    fn admit(&self, peer: Option<IpAddr>) -> Option<AddrSlot> {
        match peer {
            Some(ip) if !crate::proxy::is_trusted(ip, &self.limits.exempt) => {
                self.open.try_open(ip)
            }
            // Unix sockets and trusted proxies: not capped.
            _ => Some(AddrSlot::unlimited()),
        }
    }

    async fn serve(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) {
        let header_deadline = Instant::now() + self.limits.header_timeout;
        let h2 = if stream.get_ssl_digest().is_some() {
            matches!(stream.selected_alpn_proto(), Some(ALPN::H2))
        } else if self.limits.h2c {
            // Pingora's own sniffing waits for 24 bytes without any timeout.
            match tokio::time::timeout_at(header_deadline, starts_with_h2_preface(&mut stream))
                .await
            {
                Ok(Ok(h2)) => h2,
                Ok(Err(_)) => return, // closed before sending anything useful
                Err(_) => return self.timed_out("header"),
            }
        } else {
            false
        };
        if h2 {
            self.serve_http2(stream, header_deadline, shutdown).await;
        } else {
            self.serve_http1(stream, header_deadline, shutdown).await;
        }
    }

    /// Pingora's HTTP/2 path, which closes a connection idle for `h2_idle_timeout` once
    /// the HTTP/2 handshake is done, but waits for the client's preface for ever: the
    /// connection is dropped if the preface has not been read by the header deadline.
    async fn serve_http2(
        self: &Arc<Self>,
        stream: Stream,
        header_deadline: Instant,
        shutdown: &ShutdownWatch,
    ) {
        let read = Arc::new(AtomicUsize::new(0));
        let stream: Stream = Box::new(watched::Watched::new(stream, read.clone()));
        let conn = ServerApp::process_new(&self.inner, stream, shutdown);
        tokio::pin!(conn);
        tokio::select! {
            biased;
            _ = &mut conn => {}
            () = tokio::time::sleep_until(header_deadline) => {
                if read.load(Ordering::Acquire) >= H2_PREFACE.len() {
                    conn.await;
                } else {
                    self.timed_out("header");
                }
            }
        }
    }

    /// Pingora's HTTP/1 keep-alive loop (pingora-core `apps/mod.rs`), with deadlines.
    ///
    /// The deadlines' timers, the "header in" flag and the wait for shutdown are made once
    /// per connection and moved on per request: a Tokio timer pushed later is a store, a
    /// new one an insertion into the timer wheel and a removal, and a fresh shutdown wait
    /// takes the lock every connection's wait shares (issue 17's hot path).
    async fn serve_http1(
        self: &Arc<Self>,
        stream: Stream,
        header_deadline: Instant,
        shutdown: &ShutdownWatch,
    ) {
        // Pingora's per-read limit while a header is read; ours is the total deadline.
        let keepalive_secs = self.limits.keepalive_timeout.as_secs().max(1);
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive((!*shutdown.borrow()).then_some(keepalive_secs));
        session.set_keepalive_reuses_remaining(
            self.inner
                .server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        let header_in = Arc::new(AtomicBool::new(false));
        let mut stopping = shutdown.clone();
        let header_timer = tokio::time::sleep_until(header_deadline);
        let idle_timer = tokio::time::sleep_until(header_deadline);
        // Like Pingora: idle connections close when the server shuts down.
        let stop = stopping.wait_for(|stop| *stop);
        tokio::pin!(header_timer, idle_timer, stop);
        loop {
            let request = Request {
                header_in: &header_in,
                deadline: header_timer.as_mut(),
            };
            let Some(reused) = self.one_request(session, request, shutdown).await else {
                return;
            };
            let (mut stream, settings) = reused.consume();
            if *shutdown.borrow() {
                return;
            }
            idle_timer
                .as_mut()
                .reset(Instant::now() + self.limits.keepalive_timeout);
            let idle = Idle {
                deadline: idle_timer.as_mut(),
                stop: stop.as_mut(),
            };
            let Some(first) = self.next_request_start(&mut stream, idle).await else {
                return;
            };
            header_timer
                .as_mut()
                .reset(Instant::now() + self.limits.header_timeout);
            header_in.store(false, Ordering::Release);
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            // Vigile does not enable pipelining, so no prefix was carried over: the bytes
            // just read are the start of the next request.
            session.set_pipelined_prefix(first);
            session.set_keepalive((!*shutdown.borrow()).then_some(keepalive_secs));
        }
    }

    /// One request through the proxy, dropped (connection closed) if its header is not in
    /// by the deadline; once it is, the request runs to its end whatever its length.
    async fn one_request(
        self: &Arc<Self>,
        session: ServerSession,
        Request {
            header_in,
            deadline,
        }: Request<'_>,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let request = HEADER_IN.scope(
            header_in.clone(),
            self.inner.process_new_http(session, shutdown),
        );
        tokio::pin!(request);
        tokio::select! {
            biased;
            reused = &mut request => reused,
            () = deadline => {
                if header_in.load(Ordering::Acquire) {
                    request.await
                } else {
                    self.timed_out("header");
                    None
                }
            }
        }
    }

    /// Waits (until the keep-alive deadline) for the next request on a reused connection
    /// and returns its first bytes; `None` when the connection should close.
    async fn next_request_start<F: Future>(
        &self,
        stream: &mut Stream,
        Idle { deadline, stop }: Idle<'_, F>,
    ) -> Option<BytesMut> {
        let mut buf = BytesMut::with_capacity(FIRST_READ);
        tokio::select! {
            biased;
            read = stream.read_buf(&mut buf) => match read {
                Ok(n) if n > 0 => Some(buf),
                _ => None, // the client closed it
            },
            () = deadline => {
                self.timed_out("keepalive");
                None
            }
            _ = stop => None,
        }
    }

    fn timed_out(&self, phase: &str) {
        self.metrics
            .client_timeouts
            .with_label_values(&[phase])
            .inc();
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for ClientConns<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let Some(_slot) = self.admit(peer) else {
            self.metrics.client_connections_refused.inc();
            tracing::debug!(peer = ?peer, "connection refused: too many open from this address");
            return None; // dropping the stream closes it
        };
        let _open = OpenGauge::new(&self.metrics.client_connections_open);
        self.serve(stream, shutdown).await;
        // The keep-alive loop lives here, so the connection is never handed back.
        None
    }

    async fn cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}

/// A request's header deadline, and the flag the proxy raises once the header is in.
struct Request<'a> {
    header_in: &'a Arc<AtomicBool>,
    deadline: Pin<&'a mut Sleep>,
}

/// What ends the wait between two requests: the keep-alive deadline or a shutdown.
struct Idle<'a, F> {
    deadline: Pin<&'a mut Sleep>,
    stop: Pin<&'a mut F>,
}

/// Counts a connection in the open gauge for as long as it lives (even if its task is
/// dropped at shutdown).
struct OpenGauge(prometheus::IntGauge);

impl OpenGauge {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Whether the stream opens with the HTTP/2 preface, reading no further than needed to
/// tell (a short HTTP/1 request must not wait for 24 bytes). The bytes are put back.
async fn starts_with_h2_preface(stream: &mut Stream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    for n in 1..=H2_PREFACE.len() {
        if !stream.try_peek(&mut buf[..n]).await? {
            // This stream cannot peek: Pingora then assumes h2c, and so do we.
            return Ok(true);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Raises the soft limit on open files to the hard limit, so that the per-address cap,
/// not descriptor exhaustion, is what stops a flood. Returns the limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}
