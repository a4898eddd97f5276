//! The stored audit trail, for the admin console's Security events, a member's recent
//! events and the overview's charts. The log (and `[log] audit_file`) stays the complete
//! record; this is the part an operator reads on the console: the last
//! `[log] audit_keep`, at most `[log] audit_keep_events` events, and per hour a
//! count of each kind of event for the charts (kept [`AUDIT_COUNTS_KEEP_MS`]).
//!
//! Records come in batches from the process's journal (`crate::journal`), never from a
//! request's own path, so a slow store delays the trail, not a login.

use super::timed_store;

use super::{Millis, StoreResult, UserId};

/// An hour, the charts' smallest bucket.
pub const AUDIT_HOUR_MS: Millis = 3_600_000;
/// How long the hourly counts are kept: the overview's seven days and the current one.
pub const AUDIT_COUNTS_KEEP_MS: Millis = 8 * 24 * AUDIT_HOUR_MS;
/// The most stored events Redis walks in one [`AuditStore::audit_page`] call without a
/// member (the page then ends early and `next` continues the walk).
pub const AUDIT_SCAN_BUDGET: usize = 5000;
/// How many of a member's most recent events Redis indexes for a search by member, and
/// as many of the events naming their address.
pub const AUDIT_MEMBER_KEEP: usize = 100;

/// One security event as stored: the fields of the log line an operator filters on, the
/// rest as a JSON object in `detail`. Never a secret (see `crate::audit`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditRecord {
    /// When it happened (the flow's `now`).
    pub at: Millis,
    /// The event's name (`login`, `ip_blocked`...).
    pub event: String,
    /// Who did it: `visitor`, `admin`, `org_admin`, `cli`, `system`.
    pub by: String,
    /// The administrator's user id, for `admin` and `org_admin`.
    pub admin: Option<String>,
    /// Whom it is about. A record naming only an `email` that is an account's address is
    /// found by a search for that member too, apart from their own events (so events
    /// others cause with an address cannot crowd its owner's out).
    pub user: Option<String>,
    pub email: Option<String>,
    /// The client address it came from.
    pub ip: Option<String>,
    /// The event's other fields (`{"count":3}`), a JSON object.
    pub detail: String,
}

/// A stored record and where a walk resumes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Opaque, ordered by arrival: newer entries have greater ids in their backend.
    pub id: String,
    pub record: AuditRecord,
}

/// A search of the stored trail, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only the events about this member or naming their address (on Redis, among the
    /// [`AUDIT_MEMBER_KEEP`] most recent of each).
    pub user: Option<UserId>,
    /// Only these kinds of event; empty: every kind.
    pub kinds: Vec<String>,
    /// Only events at or after this instant...
    pub from: Option<Millis>,
    /// ...and strictly before this one.
    pub until: Option<Millis>,
    /// Resume after this entry (the `next` of the previous page).
    pub before: Option<String>,
    pub limit: usize,
}

/// One page of an [`AuditQuery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Where the next page starts; `None` when nothing older matches.
    pub next: Option<String>,
}

/// How many events of one kind happened in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCount {
    /// The hour's start (a multiple of [`AUDIT_HOUR_MS`]).
    pub hour: Millis,
    pub event: String,
    pub count: u64,
}

/// What the stored trail keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditKeep {
    /// Events that happened before `now - keep_ms` are pruned...
    pub keep_ms: Millis,
    /// ...and the oldest beyond this many (Redis trims approximately, a little over).
    pub max_events: u64,
}

/// The start of the hour holding `at`.
pub fn audit_hour(at: Millis) -> Millis {
    at - at.rem_euclid(AUDIT_HOUR_MS)
}

timed_store! {
    pub trait AuditStore: Send + Sync {
        /// Stores `records` (in their order) and counts each in its hour, in one atomic
        /// step; trims to `keep.max_events`.
        async fn audit_append(&self, records: &[AuditRecord], keep: AuditKeep) -> StoreResult<()>;
        /// One page of matching events, newest first. A page may hold fewer than `limit`
        /// with a `next` (Redis looked at [`AUDIT_SCAN_BUDGET`] events): ask again.
        async fn audit_page(&self, query: &AuditQuery) -> StoreResult<AuditPage>;
        /// The hourly counts of the hours starting in `[from, until)`, every kind, in no
        /// particular order.
        async fn audit_counts(&self, from: Millis, until: Millis) -> StoreResult<Vec<AuditCount>>;
        /// Drops what `keep` no longer keeps at `now`, and hourly counts older than
        /// [`AUDIT_COUNTS_KEEP_MS`]. Returns how many events were dropped.
        async fn audit_prune(&self, keep: AuditKeep, now: Millis) -> StoreResult<u64>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_starts_on_a_multiple_of_an_hour() {
        assert_eq!(audit_hour(0), 0);
        assert_eq!(audit_hour(AUDIT_HOUR_MS - 1), 0);
        assert_eq!(audit_hour(5 * AUDIT_HOUR_MS + 7), 5 * AUDIT_HOUR_MS);
        assert_eq!(audit_hour(-1), -AUDIT_HOUR_MS);
    }
}
