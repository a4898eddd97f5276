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

/// A waiting message as the console lists it: who, what, when and the last answer, never
/// its bodies (they hold single-use links).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingMail {
    pub id: String,
    pub channel: Channel,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub created_at: Millis,
    pub attempts: u32,
    pub next_attempt: Millis,
    pub last_error: Option<String>,
}

/// Which of the waiting messages a [`WaitingQuery`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Due at `now` (`next_attempt <= now`): waiting for a sender to take them.
    Now,
    /// Due after `now`: refused for now and waiting for their next attempt (or being sent
    /// at this moment, leased by a sender).
    Later,
}

/// Where a page of waiting messages resumes: after the message with this `next_attempt`
/// and `id`, in the order (`next_attempt`, `id`) both backends claim and list in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCursor {
    pub next_attempt: Millis,
    pub id: String,
}

impl WaitingCursor {
    /// As a URL parameter: `NEXT_ATTEMPT.ID`.
    pub fn to_param(&self) -> String {
        format!("{}.{}", self.next_attempt, self.id)
    }

    /// A parameter made by [`to_param`](Self::to_param); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let (at, id) = s.split_once('.')?;
        let shaped = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        shaped.then_some(())?;
        Some(WaitingCursor {
            next_attempt: at.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// A page of waiting messages (both channels together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingQuery {
    pub due: Due,
    pub now: Millis,
    /// Start after this message; `None`: at the first.
    pub after: Option<WaitingCursor>,
    pub limit: usize,
}

/// One page of a [`WaitingQuery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitingPage {
    /// At most `limit`, soonest due first.
    pub mails: Vec<WaitingMail>,
    /// Where the next page starts; `None` when nothing follows.
    pub next: Option<WaitingCursor>,
    /// How many messages the query's `due` holds in all (every page together), at `now`.
    pub total: u64,
}

impl WaitingPage {
    /// The first `limit` of `candidates` (each channel's own first `limit + 1` after the
    /// cursor, in any order), and where the next page starts.
    pub(super) fn from_candidates(
        mut candidates: Vec<WaitingMail>,
        limit: usize,
        total: u64,
    ) -> Self {
        candidates.sort_by(|a, b| (a.next_attempt, &a.id).cmp(&(b.next_attempt, &b.id)));
        let more = candidates.len() > limit;
        candidates.truncate(limit);
        let next = more
            .then(|| candidates.last())
            .flatten()
            .map(|m| WaitingCursor {
                next_attempt: m.next_attempt,
                id: m.id.clone(),
            });
        WaitingPage {
            mails: candidates,
            next,
            total,
        }
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
        /// Every mail still waiting, earliest due first, with its bodies (the CLI's list,
        /// tests). The console reads [`Self::outbox_page`] instead.
        async fn outbox_list(&self) -> StoreResult<Vec<OutboxMail>>;
        /// One page of the waiting messages of `query.due` at `query.now`, soonest due first
        /// (`next_attempt`, then `id`), without their bodies, and how many there are in all.
        /// Bounded work per call however many are waiting.
        async fn outbox_page(&self, query: &WaitingQuery) -> StoreResult<WaitingPage>;
        /// One waiting message, without its bodies; `None` if it is not waiting (sent,
        /// refused for good, or never queued).
        async fn outbox_get(&self, id: &str) -> StoreResult<Option<WaitingMail>>;
        /// How many messages are waiting (both channels), without reading them.
        async fn outbox_waiting(&self) -> StoreResult<u64>;
        /// The server refused the mail for good: in one atomic step it leaves the waiting
        /// mails (never claimed again) and becomes a [`FailedMail`] with `attempts + 1`,
        /// `failed_at` and `error`. Returns whether the mail was there.
        async fn outbox_fail(&self, id: &str, failed_at: Millis, error: &str) -> StoreResult<bool>;
        /// Up to `limit` failed mails, most recently failed first. `sweep(now)` purges those
        /// failed at or before `now - FAILED_KEEP_MS`.
        async fn outbox_failed(&self, limit: usize) -> StoreResult<Vec<FailedMail>>;
        /// How many failed mails are listed at `now` (those failed after
        /// `now - FAILED_KEEP_MS`), without reading them.
        async fn outbox_failed_count(&self, now: Millis) -> StoreResult<u64>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(id: &str, next_attempt: Millis) -> WaitingMail {
        WaitingMail {
            id: id.to_string(),
            channel: Channel::Email,
            kind: "activation".into(),
            to: "a@example.org".into(),
            subject: String::new(),
            created_at: 0,
            attempts: 0,
            next_attempt,
            last_error: None,
        }
    }

    #[test]
    fn a_cursor_goes_through_a_url_and_nothing_else_does() {
        let c = WaitingCursor {
            next_attempt: 1_733_212_345_678,
            id: "aB-_9".into(),
        };
        assert_eq!(WaitingCursor::parse(&c.to_param()), Some(c));
        for bad in ["", "12", "12.", "x.ab", "12.a b", "12.a.b", "12.a%2F"] {
            assert_eq!(WaitingCursor::parse(bad), None, "{bad:?}");
        }
        let long = format!("1.{}", "a".repeat(65));
        assert_eq!(WaitingCursor::parse(&long), None);
    }

    #[test]
    fn a_page_is_the_soonest_of_both_channels_ties_by_id() {
        let candidates = vec![
            waiting("b", 5),
            waiting("c", 1),
            waiting("a", 5),
            waiting("d", 9),
        ];
        let page = WaitingPage::from_candidates(candidates.clone(), 3, 7);
        let ids: Vec<&str> = page.mails.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        assert_eq!(
            page.next,
            Some(WaitingCursor {
                next_attempt: 5,
                id: "b".into()
            })
        );
        assert_eq!(page.total, 7);
        let last = WaitingPage::from_candidates(candidates, 4, 4);
        assert_eq!((last.mails.len(), last.next), (4, None));
    }
}
