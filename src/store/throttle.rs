//! Brute-force defence state: consecutive failed logins per account (and, apart, per
//! known device of that account), the devices that have signed in to an account, and
//! per-IP failure windows and blocks. Shared by every instance through the store; each
//! method is one atomic operation, so parallel attempts on several instances cannot slip
//! past a threshold.
//!
//! Attempts are counted *before* the password is checked and forgotten on success, so a
//! burst of parallel guesses gets at most `max` of them checked.

use super::timed_store;

use super::{DeviceId, Millis, StoreResult, UserId};

/// Whose consecutive login attempts are counted. Keyed by normalised address, not by
/// account, so an unknown address behaves exactly like a known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKey<'a> {
    /// Attempts on this address from devices that never signed in to it.
    Account(&'a str),
    /// Attempts on this address from one device that has signed in to it before.
    Device(&'a str, &'a DeviceId),
}

/// A client address blocked at some instant (the console's list, `vigile ip list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpBlock {
    /// The client key: an IPv4 address, or an IPv6 /64 (`2001:db8:1:2::/64`).
    pub ip: String,
    /// When the block started (0 for a block set by a Vigile that did not record it).
    pub blocked_at: Millis,
    /// When it ends.
    pub until: Millis,
}

/// The per-IP rule from `[lockout]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRule {
    /// Failures allowed in one window; the next attempt is refused and blocks the IP.
    pub max: u32,
    /// A window starts at the first counted attempt and lasts this long.
    pub window_ms: Millis,
    /// First block length; each further block within a day of the previous one's end
    /// lasts twice as long as the previous one, up to `max_block_ms`.
    pub block_ms: Millis,
    pub max_block_ms: Millis,
}

timed_store! {
    pub trait ThrottleStore: Send + Sync {
        /// Counts one attempt on `key` at `now` and returns the number of attempts since the
        /// last success or clear, this one included. An address's counters are forgotten
        /// [`ATTEMPT_MEMORY_MS`] after its last counted attempt, so addresses typed by
        /// attackers do not pile up forever (a lock left alone that long lifts itself).
        async fn attempt_begin(&self, key: AttemptKey<'_>, now: Millis) -> StoreResult<u64>;
        /// Current count, without counting (admin view).
        async fn attempts_of(&self, key: AttemptKey<'_>) -> StoreResult<u64>;
        /// The attempt succeeded: forgets `key`'s count.
        async fn attempts_clear(&self, key: AttemptKey<'_>) -> StoreResult<()>;
        /// Takes back one counted attempt (never below 0), keeping the failures before it:
        /// a right password whose login still waits for its second factor neither counts
        /// as a failure nor clears the earlier ones.
        async fn attempt_refund(&self, key: AttemptKey<'_>) -> StoreResult<()>;
        /// Forgets every count of `email`, the account's and its devices' (password reset,
        /// `vigile user unlock`). Returns how many counters were removed.
        async fn attempts_clear_all(&self, email: &str) -> StoreResult<u64>;

        /// Records that `device` signed in to `user` (successful password check).
        async fn device_remember(&self, user: &UserId, device: &DeviceId) -> StoreResult<()>;
        async fn device_known(&self, user: &UserId, device: &DeviceId) -> StoreResult<bool>;

        /// Counts one attempt from `ip` before it is checked. `Err(until)`: the address is
        /// blocked until that instant (nothing counted). If this attempt is beyond
        /// `rule.max` in the current window, the address is blocked now (as by `ip_block`)
        /// and `Err(until)` returned. Otherwise `Ok(count)`, this attempt included.
        async fn ip_attempt(
            &self,
            ip: &str,
            rule: &IpRule,
            now: Millis,
        ) -> StoreResult<Result<u64, Millis>>;
        /// The attempt succeeded: takes it back out of the window's count.
        async fn ip_refund(&self, ip: &str) -> StoreResult<()>;
        /// Blocks `ip` from `now` (no-op returning the current end if already blocked):
        /// `block_ms` doubled for each earlier block that ended less than a day ago, capped.
        /// Resets the window's count. Returns the block's end.
        async fn ip_block(&self, ip: &str, rule: &IpRule, now: Millis) -> StoreResult<Millis>;
        /// The end of the block on `ip` if one is active at `now`.
        async fn ip_blocked_until(&self, ip: &str, now: Millis) -> StoreResult<Option<Millis>>;
        /// Lifts a block and forgets the window and the repeat history. Returns whether a
        /// block was active at `now`.
        async fn ip_unblock(&self, ip: &str, now: Millis) -> StoreResult<bool>;
        /// Up to `limit` blocks in force at `now` (ending after it), the most recently
        /// started first (ties: by address). An index of blocks, never a scan of every
        /// address the store knows.
        async fn ip_blocks(&self, now: Millis, limit: usize) -> StoreResult<Vec<IpBlock>>;
    }
}

/// The block starting at `now` after `level` blocks in a row: its end, and until when the
/// repeat level is remembered (a day after that end).
pub fn next_block(rule: &IpRule, level: u32, now: Millis) -> (Millis, Millis) {
    let length = rule
        .block_ms
        .saturating_mul(1_i64 << level.min(40))
        .min(rule.max_block_ms.max(rule.block_ms.min(rule.max_block_ms)));
    let until = now.saturating_add(length);
    (until, until.saturating_add(REPEAT_MEMORY_MS))
}

/// How long an address's failed-attempt counters are kept after its last attempt.
pub const ATTEMPT_MEMORY_MS: Millis = 30 * 86_400_000;

/// A block ending less than this long before the next one makes the next one longer.
pub const REPEAT_MEMORY_MS: Millis = 86_400_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_double_up_to_the_cap() {
        let rule = IpRule {
            max: 3,
            window_ms: 1,
            block_ms: 15 * 60_000,
            max_block_ms: 86_400_000,
        };
        let lengths: Vec<_> = (0..9).map(|l| next_block(&rule, l, 0).0).collect();
        assert_eq!(lengths[0], 15 * 60_000);
        assert_eq!(lengths[1], 30 * 60_000);
        assert_eq!(lengths[6], 16 * 3_600_000);
        assert_eq!(lengths[7], 86_400_000, "capped at a day");
        assert_eq!(lengths[8], 86_400_000);
        assert_eq!(
            next_block(&rule, 0, 5).1,
            5 + 15 * 60_000 + REPEAT_MEMORY_MS
        );
    }
}
