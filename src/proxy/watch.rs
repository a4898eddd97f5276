//! Time limits on a proxied exchange, and the session behind a long-lived one.
//!
//! Pingora applies one read timeout to every upstream read of a request, head and body
//! alike, so it cannot tell "the application has not answered" (504 after
//! `first_byte_timeout`) from "a live feed is quiet" (an SSE stream or a WebSocket that
//! may rightly say nothing for minutes). Vigile turns Pingora's timeout off and keeps its
//! own clock per exchange: a small task that sleeps until the current limit and, when
//! it passes, shuts the upstream socket down. Pingora then sees the upstream close and
//! ends the exchange as it would on any upstream failure: 504 before the head, a closed
//! client connection after it (never an error page inside a started body).
//!
//! The same task asks every [`CHECK_EVERY`] whether the member's session still exists,
//! so a WebSocket, an event stream or a download of a session ended anywhere (logout,
//! revocation, device replaced, password reset, on any instance) is closed within
//! seconds rather than left open for as long as the client likes.
//!
//! The task works on its own duplicate of the upstream socket's descriptor: the socket
//! stays the one it watches even if Pingora closes its descriptor first (a raw number
//! could by then name another connection).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::app::App;
use crate::config::UpstreamSection;

/// How often a long-lived exchange asks whether its session still exists.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The limits of `[upstream]`, with "0s" read as none where it means that.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub first_byte: Duration,
    pub idle: Duration,
    pub sse_idle: Option<Duration>,
    pub websocket_idle: Option<Duration>,
}

impl Limits {
    pub fn new(up: &UpstreamSection) -> Self {
        let none_if_zero = |d: Duration| (!d.is_zero()).then_some(d);
        Self {
            first_byte: up.first_byte_timeout,
            idle: up.idle_timeout,
            sse_idle: none_if_zero(up.sse_idle_timeout),
            websocket_idle: none_if_zero(up.websocket_idle_timeout),
        }
    }

    fn of(&self, phase: Phase) -> Option<Duration> {
        match phase {
            Phase::AwaitingHead => Some(self.first_byte),
            Phase::Body => Some(self.idle),
            Phase::EventStream => self.sse_idle,
            Phase::Upgraded => self.websocket_idle,
        }
    }
}

/// Where the exchange is; each phase has its own limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// The request (and its body) going out, the head not back yet.
    AwaitingHead = 0,
    /// An ordinary response body.
    Body = 1,
    /// A `text/event-stream` response.
    EventStream = 2,
    /// A `101 Switching Protocols` connection (WebSocket).
    Upgraded = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Phase::Body,
            2 => Phase::EventStream,
            3 => Phase::Upgraded,
            _ => Phase::AwaitingHead,
        }
    }
}

/// Why the watch closed the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Closed {
    FirstByte = 1,
    Idle = 2,
    Revoked = 3,
}

/// The state the proxy phases update and the task reads.
struct Shared {
    started: Instant,
    phase: AtomicU8,
    /// Milliseconds from `started` to the last byte seen either way.
    activity_ms: AtomicU64,
    end: Mutex<End>,
    /// Wakes the task when the phase changes: its limit may now come sooner.
    phase_changed: tokio::sync::Notify,
}

/// How the exchange ended, decided once under the lock: the watch never shuts a socket
/// down after the exchange finished (Pingora may by then have lent the connection to
/// another request), and a finish waits for a shutdown in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    Finished,
    Closed(Closed),
}

impl Shared {
    fn last_activity(&self) -> Instant {
        self.started + Duration::from_millis(self.activity_ms.load(Ordering::Relaxed))
    }
}

/// One exchange's watch; dropping it (the request's end) stops the task and releases
/// its descriptor.
pub struct Watch {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The member's session to check while the exchange lasts.
pub struct SessionCheck {
    pub app: Arc<App>,
    pub token: String,
}

impl Watch {
    /// Starts watching the upstream connection `fd` (borrowed from Pingora for the length
    /// of this call). `None` when the descriptor cannot be duplicated (out of
    /// descriptors): the exchange then runs unwatched rather than failing.
    pub fn start(
        fd: RawFd,
        limits: Limits,
        session: Option<SessionCheck>,
        on_close: impl Fn(Closed) + Send + 'static,
    ) -> Option<Self> {
        // SAFETY: Pingora hands `fd` to `connected_to_upstream` while the connection is
        // open and owned by this request; it is only borrowed here to duplicate it.
        let socket = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .ok()?;
        let shared = Arc::new(Shared {
            started: Instant::now(),
            phase: AtomicU8::new(Phase::AwaitingHead as u8),
            activity_ms: AtomicU64::new(0),
            end: Mutex::new(End::Open),
            phase_changed: tokio::sync::Notify::new(),
        });
        let task = tokio::spawn(run(shared.clone(), socket, limits, session, on_close));
        Some(Self { shared, task })
    }

    /// A byte moved (request body out, response body in): the idle clock restarts.
    pub fn activity(&self) {
        let ms = self.shared.started.elapsed().as_millis() as u64;
        self.shared.activity_ms.store(ms, Ordering::Relaxed);
    }

    /// The response head arrived: from now on the limit is the phase's idle limit.
    pub fn head(&self, phase: Phase) {
        self.activity();
        self.shared.phase.store(phase as u8, Ordering::Relaxed);
        self.shared.phase_changed.notify_one();
    }

    /// The upstream response is complete: the connection may go back to Pingora's pool,
    /// so the watch must never touch it again. Call before the connection is released.
    pub fn finish(&self) {
        let mut end = self.shared.end.lock().unwrap_or_else(|p| p.into_inner());
        if *end == End::Open {
            *end = End::Finished;
        }
    }

    /// Whether (and why) the watch closed the exchange.
    pub fn closed(&self) -> Option<Closed> {
        match *self.shared.end.lock().unwrap_or_else(|p| p.into_inner()) {
            End::Closed(why) => Some(why),
            End::Open | End::Finished => None,
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    socket: OwnedFd,
    limits: Limits,
    session: Option<SessionCheck>,
    on_close: impl Fn(Closed),
) {
    let mut next_check = shared.started + CHECK_EVERY;
    loop {
        if *shared.end.lock().unwrap_or_else(|p| p.into_inner()) != End::Open {
            return;
        }
        let phase = Phase::from_u8(shared.phase.load(Ordering::Relaxed));
        let deadline = limits.of(phase).map(|l| shared.last_activity() + l);
        let wake = match (deadline, session.is_some()) {
            (Some(d), true) => d.min(next_check),
            (Some(d), false) => d,
            (None, true) => next_check,
            (None, false) => return,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            // A head after a long first-byte limit: judge again under the idle limit.
            _ = shared.phase_changed.notified() => continue,
        }
        let now = Instant::now();
        // The phase or the activity may have moved while asleep: judge on fresh values.
        let phase = Phase::from_u8(shared.phase.load(Ordering::Relaxed));
        if let Some(limit) = limits.of(phase) {
            if now >= shared.last_activity() + limit {
                let why = match phase {
                    Phase::AwaitingHead => Closed::FirstByte,
                    _ => Closed::Idle,
                };
                return close(&shared, &socket, why, &on_close);
            }
        }
        if let Some(check) = &session {
            if now >= next_check {
                if session_ended(check).await {
                    return close(&shared, &socket, Closed::Revoked, &on_close);
                }
                next_check = Instant::now() + CHECK_EVERY;
            }
        }
    }
}

/// Only a definite "no such session" ends the exchange: a store that cannot answer now
/// leaves an exchange that was authorised open until it can.
async fn session_ended(check: &SessionCheck) -> bool {
    let now = check.app.clock.now_ms();
    matches!(
        check.app.auth.still_valid(&check.token, now).await,
        Ok(false)
    )
}

fn close(shared: &Shared, socket: &OwnedFd, why: Closed, on_close: &impl Fn(Closed)) {
    {
        let mut end = shared.end.lock().unwrap_or_else(|p| p.into_inner());
        if *end != End::Open {
            return;
        }
        *end = End::Closed(why);
        // Both ways: Pingora's pending upstream read ends at once, and the application
        // sees the connection go (a WebSocket server frees its member's socket).
        // SAFETY: `socket` is this task's own descriptor, open until it is dropped.
        unsafe {
            libc::shutdown(socket.as_raw_fd(), libc::SHUT_RDWR);
        }
    }
    on_close(why);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    fn limits(first_byte_ms: u64, idle_ms: u64) -> Limits {
        Limits {
            first_byte: Duration::from_millis(first_byte_ms),
            idle: Duration::from_millis(idle_ms),
            sse_idle: None,
            websocket_idle: None,
        }
    }

    /// A connected pair: the watched end (ours) and the peer, whose read shows the close.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        (ours, peer)
    }

    fn closes(peer: &mut TcpStream) -> bool {
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        matches!(peer.read(&mut [0u8; 1]), Ok(0))
    }

    #[tokio::test(start_paused = true)]
    async fn no_head_within_first_byte_closes_as_first_byte() {
        let (ours, mut peer) = pair();
        let (tx, rx) = std::sync::mpsc::channel();
        let w = Watch::start(ours.as_raw_fd(), limits(1000, 60_000), None, move |c| {
            tx.send(c).unwrap();
        })
        .unwrap();
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert_eq!(w.closed(), None);
        tokio::time::sleep(Duration::from_millis(2)).await;
        tokio::task::yield_now().await;
        assert_eq!(w.closed(), Some(Closed::FirstByte));
        assert_eq!(rx.recv().unwrap(), Closed::FirstByte);
        assert!(closes(&mut peer));
    }

    #[tokio::test(start_paused = true)]
    async fn activity_pushes_the_idle_limit_and_streams_use_their_own() {
        let (ours, _peer) = pair();
        let mut l = limits(1000, 1000);
        l.sse_idle = None;
        let w = Watch::start(ours.as_raw_fd(), l, None, |_| {}).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        w.head(Phase::Body);
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(900)).await;
            w.activity();
        }
        assert_eq!(w.closed(), None, "each byte restarts the idle clock");
        w.head(Phase::EventStream);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(w.closed(), None, "sse_idle_timeout = 0s: never");
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_limit_applies_from_the_head_not_after_the_first_byte_limit() {
        let (ours, _peer) = pair();
        let w = Watch::start(ours.as_raw_fd(), limits(60_000, 1000), None, |_| {}).unwrap();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.head(Phase::Body);
        tokio::time::sleep(Duration::from_millis(1001)).await;
        tokio::task::yield_now().await;
        assert_eq!(
            w.closed(),
            Some(Closed::Idle),
            "closed at the idle limit, not at 60 s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_body_closes_as_idle() {
        let (ours, mut peer) = pair();
        let w = Watch::start(ours.as_raw_fd(), limits(60_000, 1000), None, |_| {}).unwrap();
        w.head(Phase::Body);
        tokio::time::sleep(Duration::from_millis(1001)).await;
        tokio::task::yield_now().await;
        assert_eq!(w.closed(), Some(Closed::Idle));
        assert!(closes(&mut peer));
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_exchange_is_never_closed() {
        let (ours, mut peer) = pair();
        let w = Watch::start(ours.as_raw_fd(), limits(1000, 1000), None, |_| {}).unwrap();
        w.head(Phase::Body);
        w.finish();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(w.closed(), None);
        peer.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert!(
            peer.read(&mut [0u8; 1]).is_err(),
            "still open: nothing read, no EOF"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_watch_stops_it() {
        let (ours, _peer) = pair();
        let w = Watch::start(ours.as_raw_fd(), limits(1000, 1000), None, |_| {
            panic!("must not fire after the exchange ended")
        })
        .unwrap();
        drop(w);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
