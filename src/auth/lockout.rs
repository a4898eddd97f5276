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
//! Counters of unknown addresses are not kept per typed address: an attacker typing a
//! million made-up addresses would make the store keep a million counters for a month.
//! They share [`unknown_counter`]'s fixed set of counters (`lockout.unknown_buckets`),
//! picked by a keyed hash of the address, so their memory is bounded whatever is typed,
//! and nobody without the gateway secret can choose two addresses that share one.

/// The counter an address without an account is counted under: one of `buckets`, by an
/// HMAC of the address under the gateway secret. Never a valid address (no `@`).
pub fn unknown_counter(secret: &[u8], email: &str, buckets: u32) -> String {
    use base64::Engine;
    let mac = crate::crypto::hmac_b64(secret, &["unknown-address-attempts", email]);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(mac)
        .unwrap_or_default();
    // The MAC's first 32 bits: uniform.
    let first: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 4]);
    format!("#unknown:{}", u32::from_be_bytes(first) % buckets.max(1))
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
    fn unknown_addresses_share_a_bounded_set_of_counters() {
        let key = b"gateway secret";
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            let c = unknown_counter(key, &format!("made-up-{i}@example.org"), 64);
            assert!(c.starts_with("#unknown:") && !c.contains('@'));
            seen.insert(c);
        }
        assert_eq!(
            seen.len(),
            64,
            "2000 addresses fill exactly the 64 counters"
        );
        // Stable for one secret, different under another.
        let a = unknown_counter(key, "x@example.org", 1 << 20);
        assert_eq!(a, unknown_counter(key, "x@example.org", 1 << 20));
        assert_ne!(a, unknown_counter(b"other", "x@example.org", 1 << 20));
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
