//! The one place Vigile reads the time. Flows never ask for it: they take `now` as a
//! parameter, read once at the edge (one reading per request in the proxy, per tick in
//! a background task, per command in the CLI), so tests drive expiries and lockouts by
//! passing times instead of sleeping.
//!
//! `clippy.toml` bans `SystemTime::now`, `Instant::now` and `thread::sleep` everywhere
//! else; this module must never grow logic that depends on the time it reads.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::Millis;

/// A source of wall-clock time, in unix milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
}

/// What [`crate::app::App`] and the background tasks hold.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the clock itself
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
            .unwrap_or(0)
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The system clock's time, for tests and the audit file's write time (banned elsewhere
/// in `clippy.toml`): flows take `now` as a parameter, edges read `app.clock`.
pub fn now_ms() -> Millis {
    SystemClock.now_ms()
}

/// How long something took, for metrics and logs: monotonic, never a time of day, so it
/// cannot leak into a decision.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods)] // latency measurement needs the monotonic clock
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A time in unix milliseconds as RFC 3339 (UTC, milliseconds), for logs.
pub fn rfc3339(ms: Millis) -> String {
    let since_epoch = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(UNIX_EPOCH + since_epoch).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_system_clock_reads_unix_milliseconds() {
        let now = SystemClock.now_ms();
        assert!(now > 1_600_000_000_000, "{now}");
        assert!(system().now_ms() >= now);
    }

    #[test]
    fn a_stopwatch_never_runs_backwards() {
        let watch = Stopwatch::start();
        assert!(watch.elapsed() <= watch.elapsed());
    }
}
