//! The lockout rules, as pure functions of counts the store keeps (after kanidm's
//! softlock): no clock and no I/O here, so every transition is unit tested.
//!
//! Per address (and apart, per device that has signed in to that address before):
//!
//! ```text
//!            attempt n = count before the password check, this attempt included
//!   ┌────────┐  n <= max, wrong password, n < max   ┌────────┐
//!   │  open  │ ───────────────────────────────────▶ │  open  │  (count kept)
//!   └────────┘                                      └────────┘
//!       │ n == max, wrong password                       │ right password (n <= max)
//!       ▼                                                ▼
//!   ┌────────┐  every attempt, right or wrong        count cleared, session opened
//!   │ locked │ ◀──── (n > max: refused unchecked)
//!   └────────┘
//!       │ password reset completed, or `vigile user unlock`
//!       ▼
//!     open (count cleared)
//! ```
//!
//! Unknown addresses follow the same machine (with nobody to mail), so "locked" reveals
//! nothing about which addresses have accounts. Attempts are counted before the check,
//! so parallel guesses never get more than `max` checked.
//!
//! Every typed address has its own exact counter, unknown ones too: counters shared
//! between addresses would lock an unknown address sooner than a known one, and so tell
//! them apart. What bounds their number is the client address: it is blocked after
//! `ip_max_failures` failures per window ([`client_key`]: an IPv6 /64 counts as one
//! client), and a blocked client's attempts are refused before any address is counted.

/// The client a failure window and block belong to: an IPv4 address, or the /64 network
/// of an IPv6 one (one subscriber holds a whole /64 and could rotate through it).
pub fn client_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Whether an attempt may be checked at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Refused without looking at the password.
    Locked,
}

pub fn gate(attempt: u64, max: u32) -> Gate {
    if max > 0 && attempt > u64::from(max) {
        Gate::Locked
    } else {
        Gate::Open
    }
}

/// What a wrong password does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Counted; more attempts are allowed.
    Counted,
    /// This failure was the last allowed: the account (or device) is locked from now on,
    /// and the owner is told (once: only this attempt has `n == max`).
    LockedNow,
}

pub fn after_failure(attempt: u64, max: u32) -> AfterFailure {
    if max > 0 && attempt >= u64::from(max) {
        AfterFailure::LockedNow
    } else {
        AfterFailure::Counted
    }
}

/// Whether an address is locked given its current count (admin view).
pub fn is_locked(count: u64, max: u32) -> bool {
    max > 0 && count >= u64::from(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_subscriber_is_one_client() {
        let key = |s: &str| client_key(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn the_sixth_failure_locks_and_later_attempts_are_refused() {
        let max = 6;
        for n in 1..=5 {
            assert_eq!(gate(n, max), Gate::Open);
            assert_eq!(after_failure(n, max), AfterFailure::Counted);
        }
        assert_eq!(gate(6, max), Gate::Open, "the 6th is still checked");
        assert_eq!(after_failure(6, max), AfterFailure::LockedNow);
        assert_eq!(gate(7, max), Gate::Locked);
        assert!(is_locked(6, max) && !is_locked(5, max));
    }

    #[test]
    fn zero_disables() {
        assert_eq!(gate(1000, 0), Gate::Open);
        assert_eq!(after_failure(1000, 0), AfterFailure::Counted);
        assert!(!is_locked(1000, 0));
    }
}
