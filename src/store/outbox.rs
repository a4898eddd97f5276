//! The durable outbox: every mail and text message is written here before any attempt to
//! send it, so a message the SMTP server or SMS provider cannot take now (or a gateway
//! crash) loses nothing. One sender task per channel claims due messages of its channel,
//! sends them, then deletes them or schedules a retry; a slow SMS provider never holds
//! mail back. (A text message is an [`OutboxMail`] on [`Channel::Mobile`]: `to` is the
//! E.164 number, `text` the message, `subject` and `html` empty.)
//!
//! Claiming leases a mail: it is hidden from other claimers (other instances) until the
//! lease ends, and comes back by itself if its sender dies mid-send.
//!
//! A mail the server refuses for good (SMTP 5xx: no such mailbox, say) is moved to the
//! failed mails: never claimed again, listed for admins, and purged [`FAILED_KEEP_MS`]
//! after it failed. Its bodies are not kept (they carry single-use links).

use super::timed_store;

use super::{Channel, Millis, StoreResult};

/// How long a failed mail stays listed before `sweep` purges it: 30 days.
pub const FAILED_KEEP_MS: Millis = 30 * 86_400_000;

/// Sent messages are counted per channel in windows this long (an hour)...
pub const SENT_WINDOW_MS: Millis = 3_600_000;
/// ...and [`OutboxStore::outbox_sent_count`] adds up this many of them, the current one
/// included: the last 24 hours, to the hour.
pub const SENT_WINDOWS: i64 = 24;

/// The starts of the windows `outbox_sent_count(now)` adds up, oldest first, and when a
/// window starting at the last of them may be forgotten (the end of the window + a day).
pub fn sent_windows(now: Millis) -> (Vec<Millis>, Millis) {
    let (current, end) = super::counters::window(now, SENT_WINDOW_MS);
    let starts = (0..SENT_WINDOWS)
        .rev()
        .map(|back| current.saturating_sub(back.saturating_mul(SENT_WINDOW_MS)))
        .collect();
    (starts, end.saturating_add(SENT_WINDOWS * SENT_WINDOW_MS))
}

/// One mail, fully rendered (subject and both bodies in the recipient's language).
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxMail {
    /// Random, unique (see [`OutboxMail::new_id`]).
    pub id: String,
    /// Mail or text message: which sender takes it.
    pub channel: Channel,
    /// What the mail is (`activation`, `password_reset`...): the `kind` label of
    /// `vigile_mail_total`, and logged instead of the content.
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub created_at: Millis,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be claimed before this instant.
    pub next_attempt: Millis,
    /// Why the last attempt failed (for admins; never holds the mail's content).
    pub last_error: Option<String>,
}

impl OutboxMail {
    pub fn new_id() -> String {
        crate::crypto::random_token(16)
    }
}

// The bodies carry single-use links: Debug shows who and what, never the content.
impl std::fmt::Debug for OutboxMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxMail")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("kind", &self.kind)
            .field("to", &self.to)
            .field("created_at", &self.created_at)
            .field("attempts", &self.attempts)
            .field("next_attempt", &self.next_attempt)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

/// A mail the server refused for good, as admins see it (no bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMail {
    pub id: String,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub created_at: Millis,
    /// Attempts made, the refused one included.
    pub attempts: u32,
    pub failed_at: Millis,
    /// The server's answer to the last attempt.
    pub last_error: String,
}

timed_store! {
    pub trait OutboxStore: Send + Sync {
        /// Adds a mail (due at its `next_attempt`). `StoreError::Conflict` if the id exists.
        async fn outbox_push(&self, mail: &OutboxMail) -> StoreResult<()>;
        /// Claims up to `limit` messages of `channel` due at `now` (`next_attempt <= now`),
        /// earliest due first, and leases them: their `next_attempt` becomes
        /// `now + lease_ms`, so no other claimer gets them meanwhile. Atomic across instances.
        async fn outbox_claim(
            &self,
            channel: Channel,
            now: Millis,
            lease_ms: Millis,
            limit: usize,
        ) -> StoreResult<Vec<OutboxMail>>;
        /// The mail is done with, unsent (its content expired): removes it. Returns
        /// whether it was there.
        async fn outbox_done(&self, id: &str) -> StoreResult<bool>;
        /// The message was sent at `now`: removes it and, in the same atomic step, counts
        /// it in its channel's window (see [`sent_windows`]). Returns whether it was there
        /// (a message removed meanwhile is not counted twice).
        async fn outbox_sent(&self, id: &str, now: Millis) -> StoreResult<bool>;
        /// Messages of `channel` sent in the last 24 hours (to the hour) before `now`.
        async fn outbox_sent_count(&self, channel: Channel, now: Millis) -> StoreResult<u64>;
        /// "Retry now": a waiting message due later becomes due at `now` (one due already
        /// is left as it is). Returns whether the message is waiting. A message leased by
        /// a sender at that very moment may then be sent twice: a duplicate, never a loss.
        async fn outbox_due_now(&self, id: &str, now: Millis) -> StoreResult<bool>;
        /// The attempt failed: `attempts += 1`, `last_error = error`, due again at
        /// `next_attempt`. Returns whether the mail was there.
        async fn outbox_retry(&self, id: &str, next_attempt: Millis, error: &str) -> StoreResult<bool>;
        /// Every mail still waiting, earliest due first (admin view, tests).
        async fn outbox_list(&self) -> StoreResult<Vec<OutboxMail>>;
        /// How many messages are waiting (both channels), without reading them.
        async fn outbox_waiting(&self) -> StoreResult<u64>;
        /// The server refused the mail for good: in one atomic step it leaves the waiting
        /// mails (never claimed again) and becomes a [`FailedMail`] with `attempts + 1`,
        /// `failed_at` and `error`. Returns whether the mail was there.
        async fn outbox_fail(&self, id: &str, failed_at: Millis, error: &str) -> StoreResult<bool>;
        /// Up to `limit` failed mails, most recently failed first. `sweep(now)` purges those
        /// failed at or before `now - FAILED_KEEP_MS`.
        async fn outbox_failed(&self, limit: usize) -> StoreResult<Vec<FailedMail>>;
    }
}
