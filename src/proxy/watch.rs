//! Time limits on a proxied exchange, and the session behind a long-lived one.
//!
//! Pingora applies one read timeout to every upstream read of a request, head and body
//! alike, so it cannot tell "the application has not answered" (504 after
//! `first_byte_timeout`) from "a live feed is quiet" (an SSE stream or a WebSocket that
//! may rightly say nothing for minutes). Vigile turns Pingora's timeout off and keeps its
//! own clock per exchange. When a limit passes it shuts the upstream socket down; Pingora
//! then sees the upstream close and ends the exchange as it would on any upstream
//! failure: 504 before the head, a closed client connection after it (never an error
//! page inside a started body).
//!
//! Every [`CHECK_EVERY`] a long-lived exchange also asks whether the member's session
//! still exists, so a WebSocket, an event stream or a download of a session ended
//! anywhere (logout, revocation, device replaced, password reset, on any instance) is
//! closed within seconds rather than left open for as long as the client likes.
//!
//! One task per gateway ([`Watches`]) looks at every open exchange each [`TICK`], rather
//! than a task and a timer per exchange: nearly every exchange ends long before any limit,
//! and for those the watch costs a registration and a removal, not a task's life (issue
//! 17's hot path). A limit is therefore enforced up to one tick late.
//!
//! Each exchange is watched through a duplicate of the upstream socket's descriptor, one
//! per upstream connection (`upstream_sockets`): the socket stays the one it watches even
//! if Pingora closes its descriptor first (a raw number could by then name another
//! connection).

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pingora::protocols::SocketDigest;
use tokio::time::Instant;

use super::upstream_sockets::UpstreamSockets;
use crate::config::UpstreamSection;
use crate::store::TokenDigest;

/// How often a long-lived exchange asks whether its session still exists.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// How often the open exchanges are looked at: how late a limit may be enforced.
pub const TICK: Duration = Duration::from_millis(100);

/// Registrations are spread over this many locks, so the worker threads adding and
/// removing exchanges seldom meet.
const SHARDS: usize = 16;

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

/// Whether this session (by its token's digest) has definitely ended. Only a definite "no such
/// session" should answer `true`: a store that cannot answer now leaves an exchange that
/// was authorised open until it can.
pub type SessionEnded =
    Box<dyn Fn(TokenDigest) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Told once for each exchange the watch closes (metrics).
pub type OnClose = Box<dyn Fn(Closed) + Send + Sync>;

/// Exchange ids are a counter: spreading them needs one multiplication, not SipHash
/// (which the per-request registration paid for nothing). For keys no client chooses.
#[derive(Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Registry = HashMap<u64, Arc<Shared>, std::hash::BuildHasherDefault<IdHasher>>;

/// The open exchanges of one gateway, and the task that keeps their limits.
pub struct Watches {
    limits: Limits,
    shards: [Mutex<Registry>; SHARDS],
    next_id: AtomicU64,
    ticking: AtomicBool,
    session_ended: SessionEnded,
    on_close: OnClose,
    sockets: UpstreamSockets,
}

/// The state the proxy phases update and the ticker reads.
struct Shared {
    started: Instant,
    phase: AtomicU8,
    /// Milliseconds from `started` to the last byte seen either way.
    activity_ms: AtomicU64,
    end: Mutex<End>,
    /// The watch's duplicate of the upstream socket (shared with the other exchanges of
    /// the same connection, one at a time).
    socket: Arc<OwnedFd>,
    /// The member's session, for exchanges forwarded with an identity.
    session: Option<TokenDigest>,
    /// Milliseconds from `started` at which the session is next asked about.
    next_check_ms: AtomicU64,
    /// A session check is in flight (never two at once for one exchange).
    checking: AtomicBool,
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
        // Milliseconds since `started`: never past what an Instant can hold.
        self.started + Duration::from_millis(self.activity_ms.load(Ordering::Relaxed))
    }

    fn end(&self) -> std::sync::MutexGuard<'_, End> {
        self.end.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_open(&self) -> bool {
        *self.end() == End::Open
    }
}

/// What a tick found due for one exchange.
enum Due {
    Close(Closed),
    Check,
}

impl Watches {
    pub fn new(limits: Limits, session_ended: SessionEnded, on_close: OnClose) -> Arc<Self> {
        Arc::new(Self {
            limits,
            shards: std::array::from_fn(|_| Mutex::new(Registry::default())),
            next_id: AtomicU64::new(0),
            ticking: AtomicBool::new(false),
            session_ended,
            on_close,
            sockets: UpstreamSockets::default(),
        })
    }

    /// Starts watching the upstream connection `fd` (borrowed from Pingora for the length
    /// of this call; `connection` is its socket digest), with the member's session cookie
    /// when there is one. `None` when the descriptor cannot be duplicated (out of
    /// descriptors): the exchange then runs unwatched rather than failing. Call from
    /// within the Tokio runtime: the first call starts the ticker there.
    pub fn start(
        self: &Arc<Self>,
        fd: RawFd,
        connection: Option<&Arc<SocketDigest>>,
        session: Option<TokenDigest>,
    ) -> Option<Watch> {
        let socket = self.sockets.get(fd, connection)?;
        let shared = Arc::new(Shared {
            started: Instant::now(),
            phase: AtomicU8::new(Phase::AwaitingHead as u8),
            activity_ms: AtomicU64::new(0),
            end: Mutex::new(End::Open),
            socket,
            session,
            next_check_ms: AtomicU64::new(CHECK_EVERY.as_millis() as u64),
            checking: AtomicBool::new(false),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Keyed by the id without its shard's bits, so the map's buckets all get used.
        self.shard(id).insert(id / SHARDS as u64, shared.clone());
        if !self.ticking.swap(true, Ordering::AcqRel) {
            tokio::spawn(tick(Arc::downgrade(self)));
        }
        Some(Watch {
            shared,
            id,
            watches: self.clone(),
        })
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, Registry> {
        self.shards[id as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Exchanges being watched (tests: none is left behind).
    #[cfg(test)]
    fn len(&self) -> usize {
        (0..SHARDS as u64).map(|i| self.shard(i).len()).sum()
    }

    /// One look at every open exchange: closes those past their limit and starts the
    /// session checks that are due. Locks are held only to collect.
    fn sweep(self: &Arc<Self>, now: Instant) {
        self.sockets.sweep();
        let mut due = Vec::new();
        for shard in &self.shards {
            let map = shard.lock().unwrap_or_else(|p| p.into_inner());
            due.extend(
                map.values()
                    .filter_map(|s| self.due(s, now).map(|d| (s.clone(), d))),
            );
        }
        for (shared, what) in due {
            match what {
                Due::Close(why) => self.close(&shared, why),
                Due::Check => self.check(shared),
            }
        }
    }

    fn due(&self, s: &Shared, now: Instant) -> Option<Due> {
        // Acquire: the activity `head` stored before the phase is seen with it.
        let phase = Phase::from_u8(s.phase.load(Ordering::Acquire));
        // A limit too far to be represented (a configured "500000000000y") is no limit.
        let deadline = self
            .limits
            .of(phase)
            .and_then(|limit| s.last_activity().checked_add(limit));
        if let Some(deadline) = deadline {
            if now >= deadline {
                return Some(Due::Close(match phase {
                    Phase::AwaitingHead => Closed::FirstByte,
                    _ => Closed::Idle,
                }));
            }
        }
        let check_at = s.started.checked_add(Duration::from_millis(
            s.next_check_ms.load(Ordering::Relaxed),
        ));
        (s.session.is_some()
            && check_at.is_some_and(|at| now >= at)
            && !s.checking.load(Ordering::Acquire))
        .then_some(Due::Check)
    }

    /// Asks the store about the exchange's session, off the ticker (a slow store must not
    /// hold the other exchanges' limits). The question holds the exchange weakly: one
    /// that ends meanwhile is released at once (its socket with it), and a store that
    /// does not answer within [`CHECK_EVERY`] leaves the stream open until the next try.
    fn check(self: &Arc<Self>, shared: Arc<Shared>) {
        let Some(session) = shared.session else {
            return;
        };
        if !shared.is_open() || shared.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let watches = Arc::downgrade(self);
        let ended = (self.session_ended)(session);
        let checking = Checking(Arc::downgrade(&shared));
        tokio::spawn(async move {
            let ended = tokio::time::timeout(CHECK_EVERY, ended).await == Ok(true);
            let (Some(shared), Some(watches)) = (checking.0.upgrade(), watches.upgrade()) else {
                return;
            };
            if ended {
                watches.close(&shared, Closed::Revoked);
            }
            drop(checking);
        });
    }

    fn close(&self, shared: &Shared, why: Closed) {
        {
            let mut end = shared.end();
            if *end != End::Open {
                return;
            }
            *end = End::Closed(why);
            // Both ways: Pingora's pending upstream read ends at once, and the application
            // sees the connection go (a WebSocket server frees its member's socket).
            // SAFETY: `socket` is this exchange's own descriptor, open until it is dropped.
            unsafe {
                libc::shutdown(shared.socket.as_raw_fd(), libc::SHUT_RDWR);
            }
        }
        (self.on_close)(why);
    }
}

/// A session check in flight: however it ends (answer, timeout, panic, runtime
/// shutdown), the next is scheduled [`CHECK_EVERY`] later.
struct Checking(Weak<Shared>);

impl Drop for Checking {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            let next = shared.started.elapsed() + CHECK_EVERY;
            shared
                .next_check_ms
                .store(next.as_millis() as u64, Ordering::Relaxed);
            shared.checking.store(false, Ordering::Release);
        }
    }
}

/// Marks the ticker gone when its task ends, however it ends, so that the next exchange
/// starts another: one failure must not leave every later exchange without limits.
struct Ticking(Weak<Watches>);

impl Drop for Ticking {
    fn drop(&mut self) {
        if let Some(watches) = self.0.upgrade() {
            if std::thread::panicking() {
                tracing::error!(
                    "the upstream watch's ticker failed; the next exchange restarts it"
                );
            }
            watches.ticking.store(false, Ordering::Release);
        }
    }
}

/// The ticker: one per [`Watches`], ending with it.
async fn tick(watches: Weak<Watches>) {
    let _ticking = Ticking(watches.clone());
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(watches) = watches.upgrade() else {
            return;
        };
        watches.sweep(Instant::now());
    }
}

/// One exchange's watch; dropping it (the request's end) stops watching and releases its
/// descriptor.
pub struct Watch {
    shared: Arc<Shared>,
    id: u64,
    watches: Arc<Watches>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Whatever a tick in progress holds, the socket is not touched again.
        self.finish();
        self.watches
            .shard(self.id)
            .remove(&(self.id / SHARDS as u64));
    }
}

impl Watch {
    /// A byte moved (request body out, response body in): the idle clock restarts.
    pub fn activity(&self) {
        let ms = self.shared.started.elapsed().as_millis() as u64;
        self.shared.activity_ms.store(ms, Ordering::Relaxed);
    }

    /// The response head arrived: from now on the limit is the phase's idle limit.
    pub fn head(&self, phase: Phase) {
        self.activity();
        self.shared.phase.store(phase as u8, Ordering::Release);
    }

    /// The upstream response is complete: the connection may go back to Pingora's pool,
    /// so the watch must never touch it again. Call before the connection is released.
    pub fn finish(&self) {
        let mut end = self.shared.end();
        if *end == End::Open {
            *end = End::Finished;
        }
    }

    /// Whether (and why) the watch closed the exchange.
    pub fn closed(&self) -> Option<Closed> {
        match *self.shared.end() {
            End::Closed(why) => Some(why),
            End::Open | End::Finished => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;

    fn limits(first_byte_ms: u64, idle_ms: u64) -> Limits {
        Limits {
            first_byte: Duration::from_millis(first_byte_ms),
            idle: Duration::from_millis(idle_ms),
            sse_idle: None,
            websocket_idle: None,
        }
    }

    /// Watches whose sessions never end, reporting closes on the channel.
    fn watches(l: Limits) -> (Arc<Watches>, mpsc::Receiver<Closed>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let w = Watches::new(
            l,
            Box::new(|_| Box::pin(async { false })),
            Box::new(move |c| tx.lock().unwrap().send(c).unwrap()),
        );
        (w, rx)
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

    /// Nothing to read and no end of stream: the watch did not shut the socket down.
    fn stays_open(peer: &mut TcpStream) -> bool {
        peer.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        peer.read(&mut [0u8; 1]).is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn no_head_within_first_byte_closes_as_first_byte_within_a_tick() {
        let (ours, mut peer) = pair();
        let (ws, rx) = watches(limits(1000, 60_000));
        let w = ws.start(ours.as_raw_fd(), None, None).unwrap();
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert_eq!(w.closed(), None);
        tokio::time::sleep(TICK + Duration::from_millis(2)).await;
        assert_eq!(w.closed(), Some(Closed::FirstByte));
        assert_eq!(rx.try_recv().unwrap(), Closed::FirstByte);
        assert!(closes(&mut peer));
    }

    #[tokio::test(start_paused = true)]
    async fn activity_pushes_the_idle_limit_and_streams_use_their_own() {
        let (ours, _peer) = pair();
        let (ws, rx) = watches(limits(1000, 1000));
        let w = ws.start(ours.as_raw_fd(), None, None).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        w.head(Phase::Body);
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(850)).await;
            w.activity();
        }
        assert_eq!(w.closed(), None, "each byte restarts the idle clock");
        w.head(Phase::EventStream);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(w.closed(), None, "sse_idle_timeout = 0s: never");
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_limit_applies_from_the_head_not_after_the_first_byte_limit() {
        let (ours, _peer) = pair();
        let (ws, _rx) = watches(limits(60_000, 1000));
        let w = ws.start(ours.as_raw_fd(), None, None).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.head(Phase::Body);
        tokio::time::sleep(Duration::from_millis(1000) + TICK + Duration::from_millis(1)).await;
        assert_eq!(
            w.closed(),
            Some(Closed::Idle),
            "closed at the idle limit, not at 60 s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_body_closes_as_idle() {
        let (ours, mut peer) = pair();
        let (ws, _rx) = watches(limits(60_000, 1000));
        let w = ws.start(ours.as_raw_fd(), None, None).unwrap();
        w.head(Phase::Body);
        tokio::time::sleep(Duration::from_millis(1000) + TICK + Duration::from_millis(1)).await;
        assert_eq!(w.closed(), Some(Closed::Idle));
        assert!(closes(&mut peer));
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_exchange_is_never_closed() {
        let (ours, mut peer) = pair();
        let (ws, rx) = watches(limits(1000, 1000));
        let w = ws.start(ours.as_raw_fd(), None, None).unwrap();
        w.head(Phase::Body);
        w.finish();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(w.closed(), None);
        assert!(rx.try_recv().is_err());
        assert!(stays_open(&mut peer), "still open: nothing read, no EOF");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_watch_is_forgotten_and_never_fires() {
        let (ours, mut peer) = pair();
        let (ws, rx) = watches(limits(1000, 1000));
        let watched: Vec<Watch> = (0..40)
            .map(|_| ws.start(ours.as_raw_fd(), None, None).unwrap())
            .collect();
        assert_eq!(ws.len(), 40);
        drop(watched);
        assert_eq!(ws.len(), 0, "nothing is kept for an exchange that ended");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(rx.try_recv().is_err(), "no close after the exchange ended");
        assert!(stays_open(&mut peer), "the socket was left alone");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_session_closes_its_stream_at_the_next_check_and_only_then() {
        let (ours, mut peer) = pair();
        let asked = Arc::new(AtomicU64::new(0));
        let ended_after = 3; // the third question finds the session gone
        let counter = asked.clone();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let ws = Watches::new(
            limits(60_000, 60_000),
            Box::new(move |session| {
                assert_eq!(session, TokenDigest::of("cookie"));
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                Box::pin(async move { n >= ended_after })
            }),
            Box::new(move |c| tx.lock().unwrap().send(c).unwrap()),
        );
        let w = ws
            .start(ours.as_raw_fd(), None, Some(TokenDigest::of("cookie")))
            .unwrap();
        w.head(Phase::Upgraded);
        tokio::time::sleep(CHECK_EVERY * 2 + Duration::from_millis(50)).await;
        assert_eq!(asked.load(Ordering::SeqCst), 2, "asked every CHECK_EVERY");
        assert_eq!(w.closed(), None, "a live session keeps its stream");
        tokio::time::sleep(CHECK_EVERY + TICK * 2).await;
        assert_eq!(w.closed(), Some(Closed::Revoked));
        assert_eq!(rx.try_recv().unwrap(), Closed::Revoked);
        assert!(closes(&mut peer));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_store_is_asked_once_at_a_time_and_does_not_hold_other_limits() {
        let (slow, _p1) = pair();
        let (quiet, mut p2) = pair();
        let in_flight = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let (f, m) = (in_flight.clone(), most.clone());
        let ws = Watches::new(
            limits(60_000, 3_000),
            Box::new(move |_| {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let f = f.clone();
                Box::pin(async move {
                    struct Done(Arc<AtomicU64>);
                    impl Drop for Done {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    let _done = Done(f);
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    true
                })
            }),
            Box::new(|_| {}),
        );
        let streaming = ws
            .start(slow.as_raw_fd(), None, Some(TokenDigest::of("cookie")))
            .unwrap();
        streaming.head(Phase::Upgraded);
        let body = ws.start(quiet.as_raw_fd(), None, None).unwrap();
        body.head(Phase::Body);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(most.load(Ordering::SeqCst), 1, "one question at a time");
        assert_eq!(
            streaming.closed(),
            None,
            "a store that does not answer ends nothing"
        );
        assert_eq!(body.closed(), Some(Closed::Idle), "the tick went on");
        assert!(closes(&mut p2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_decided_just_before_the_exchange_ended_does_nothing() {
        let (ours, mut peer) = pair();
        let (ws, rx) = watches(limits(1000, 1000));
        let w = ws.start(ours.as_raw_fd(), None, None).unwrap();
        // What a sweep holds when the exchange ends under it.
        let held = w.shared.clone();
        drop(w);
        ws.close(&held, Closed::Idle);
        assert!(rx.try_recv().is_err(), "nothing reported");
        assert!(stays_open(&mut peer), "the socket was left alone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_ticker_is_started_again_by_the_next_exchange() {
        let (a, _pa) = pair();
        let (b, mut pb) = pair();
        let fired = Arc::new(AtomicU64::new(0));
        let count = fired.clone();
        let ws = Watches::new(
            limits(1000, 1000),
            Box::new(|_| Box::pin(async { false })),
            Box::new(move |_| {
                if count.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("a failure inside the ticker");
                }
            }),
        );
        let first = ws.start(a.as_raw_fd(), None, None).unwrap();
        tokio::time::sleep(Duration::from_millis(1000) + TICK * 2).await;
        assert_eq!(first.closed(), Some(Closed::FirstByte));
        let second = ws.start(b.as_raw_fd(), None, None).unwrap();
        tokio::time::sleep(Duration::from_millis(1000) + TICK * 2).await;
        assert_eq!(
            second.closed(),
            Some(Closed::FirstByte),
            "limits still kept"
        );
        assert_eq!(fired.load(Ordering::SeqCst), 2);
        assert!(closes(&mut pb));
    }
}
