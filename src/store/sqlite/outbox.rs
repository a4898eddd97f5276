//! [`OutboxStore`] on SQLite: one row per waiting mail, indexed by
//! `(next_attempt, id)`, the order of both claiming and listing. A claim selects and
//! leases in one `BEGIN IMMEDIATE` transaction, so two processes never claim the same
//! mail. A failed mail moves to `outbox_failed` (without its bodies) in one statement
//! pair of one transaction; `sweep` purges that table by `failed_at`. A sent message is
//! deleted and counted (`counters`, scope `sent`, per channel and hour) in one
//! transaction; `sweep` drops those counters a day after their hour.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use super::{map_err, parsed, SqliteStore};
use crate::store::{
    sent_windows, Channel, CounterScope, Due, FailedMail, Millis, OutboxMail, OutboxStore,
    StoreResult, WaitingMail, WaitingPage, WaitingQuery, FAILED_KEEP_MS,
};

const MAIL_COLUMNS: &str = "id, kind, recipient, subject, text_body, html_body, created_at, \
                            attempts, next_attempt, last_error, channel";

fn mail_from_row(r: &Row<'_>) -> rusqlite::Result<OutboxMail> {
    Ok(OutboxMail {
        id: r.get(0)?,
        kind: r.get(1)?,
        to: r.get(2)?,
        subject: r.get(3)?,
        text: r.get(4)?,
        html: r.get(5)?,
        created_at: r.get(6)?,
        attempts: r.get(7)?,
        next_attempt: r.get(8)?,
        last_error: r.get(9)?,
        channel: parsed(r, 10, "channel", Channel::parse)?,
    })
}

/// What the console lists of a message: no bodies.
const WAITING_COLUMNS: &str =
    "id, kind, recipient, subject, created_at, attempts, next_attempt, last_error, channel";

fn waiting_from_row(r: &Row<'_>) -> rusqlite::Result<WaitingMail> {
    Ok(WaitingMail {
        id: r.get(0)?,
        kind: r.get(1)?,
        to: r.get(2)?,
        subject: r.get(3)?,
        created_at: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt: r.get(6)?,
        last_error: r.get(7)?,
        channel: parsed(r, 8, "channel", Channel::parse)?,
    })
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn outbox_push(&self, mail: &OutboxMail) -> StoreResult<()> {
        let m = mail.clone();
        self.run(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO outbox ({MAIL_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    m.id,
                    m.kind,
                    m.to,
                    m.subject,
                    m.text,
                    m.html,
                    m.created_at,
                    m.attempts,
                    m.next_attempt,
                    m.last_error,
                    m.channel.as_str()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn outbox_claim(
        &self,
        channel: Channel,
        now: Millis,
        lease_ms: Millis,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        let until = now.saturating_add(lease_ms);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut due = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {MAIL_COLUMNS} FROM outbox WHERE channel = ?3 AND next_attempt <= ?1 \
                     ORDER BY next_attempt, id LIMIT ?2"
                ))?;
                let rows = stmt.query_map(params![now, limit, channel.as_str()], mail_from_row)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            for mail in &mut due {
                tx.execute(
                    "UPDATE outbox SET next_attempt = ?2 WHERE id = ?1",
                    params![mail.id, until],
                )?;
                mail.next_attempt = until;
            }
            tx.commit()?;
            Ok(due)
        })
        .await
    }

    async fn outbox_done(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.run(move |c| Ok(c.execute("DELETE FROM outbox WHERE id = ?1", [id])? > 0))
            .await
    }

    async fn outbox_sent(&self, id: &str, now: Millis) -> StoreResult<bool> {
        let id = id.to_string();
        let (starts, expires) = sent_windows(now);
        let start = starts.last().copied().unwrap_or(now);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let channel: Option<String> = tx
                .query_row(
                    "DELETE FROM outbox WHERE id = ?1 RETURNING channel",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(channel) = &channel {
                tx.execute(
                    "INSERT INTO counters (scope, subject, window_start, count, expires_at) \
                     VALUES (?1, ?2, ?3, 1, ?4) \
                     ON CONFLICT (scope, subject, window_start) DO UPDATE SET count = count + 1",
                    params![CounterScope::MessagesSent.as_str(), channel, start, expires],
                )?;
            }
            tx.commit()?;
            Ok(channel.is_some())
        })
        .await
    }

    async fn outbox_sent_count(&self, channel: Channel, now: Millis) -> StoreResult<u64> {
        let (starts, _) = sent_windows(now);
        let first = starts.first().copied().unwrap_or(now);
        let last = starts.last().copied().unwrap_or(now);
        self.run(move |c| {
            let n: i64 = c.query_row(
                "SELECT COALESCE(SUM(count), 0) FROM counters WHERE scope = ?1 \
                 AND subject = ?2 AND window_start BETWEEN ?3 AND ?4",
                params![
                    CounterScope::MessagesSent.as_str(),
                    channel.as_str(),
                    first,
                    last
                ],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn outbox_due_now(&self, id: &str, now: Millis) -> StoreResult<bool> {
        let id = id.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE outbox SET next_attempt = ?2 WHERE id = ?1 AND next_attempt > ?2",
                params![id, now],
            )?;
            let waiting: Option<i64> = tx
                .query_row("SELECT 1 FROM outbox WHERE id = ?1", [&id], |r| r.get(0))
                .optional()?;
            tx.commit()?;
            Ok(waiting.is_some())
        })
        .await
    }

    async fn outbox_retry(&self, id: &str, next_attempt: Millis, error: &str) -> StoreResult<bool> {
        let id = id.to_string();
        let error = error.to_string();
        self.run(move |c| {
            let n = c.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3 \
                 WHERE id = ?1",
                params![id, next_attempt, error],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn outbox_list(&self) -> StoreResult<Vec<OutboxMail>> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MAIL_COLUMNS} FROM outbox ORDER BY next_attempt, id"
            ))?;
            let rows = stmt.query_map([], mail_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn outbox_page(&self, query: &WaitingQuery) -> StoreResult<WaitingPage> {
        // Each channel's own first `limit + 1` after the cursor, merged: never the whole
        // table. The start is one row-value bound, so SQLite seeks the
        // (channel, next_attempt, id) index right to it (a separate `next_attempt > now`
        // would make it walk from `now` to a deep page's cursor).
        let now = query.now;
        let cursor = query.after.as_ref().map(|c| (c.next_attempt, c.id.clone()));
        let (upper, count_range, (start_at, start_id, op)) = match query.due {
            Due::Now => (
                " AND next_attempt <= ?2",
                "next_attempt <= ?2",
                match cursor {
                    Some((at, id)) => (at, id, ">"),
                    None => (Millis::MIN, String::new(), ">="),
                },
            ),
            Due::Later => (
                "",
                "next_attempt > ?2",
                match cursor {
                    Some((at, id)) if at > now => (at, id, ">"),
                    // next_attempt > now, for whole milliseconds.
                    _ => (now.saturating_add(1), String::new(), ">="),
                },
            ),
        };
        let limit = query.limit;
        let take = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        self.run(move |c| {
            let tx = c.transaction()?;
            let mut candidates = Vec::new();
            let mut total = 0u64;
            for channel in Channel::ALL {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {WAITING_COLUMNS} FROM outbox WHERE channel = ?1 \
                     AND (next_attempt, id) {op} (?3, ?4){upper} \
                     ORDER BY next_attempt, id LIMIT ?5"
                ))?;
                let rows = stmt.query_map(
                    params![channel.as_str(), now, start_at, start_id, take],
                    waiting_from_row,
                )?;
                for row in rows {
                    candidates.push(row?);
                }
                let n: i64 = tx.query_row(
                    &format!("SELECT COUNT(*) FROM outbox WHERE channel = ?1 AND {count_range}"),
                    params![channel.as_str(), now],
                    |r| r.get(0),
                )?;
                total += u64::try_from(n).unwrap_or(0);
            }
            tx.commit()?;
            Ok(WaitingPage::from_candidates(candidates, limit, total))
        })
        .await
    }

    async fn outbox_get(&self, id: &str) -> StoreResult<Option<WaitingMail>> {
        let id = id.to_string();
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {WAITING_COLUMNS} FROM outbox WHERE id = ?1"
            ))?;
            Ok(stmt.query_row([id], waiting_from_row).optional()?)
        })
        .await
    }

    async fn outbox_waiting(&self) -> StoreResult<u64> {
        self.run(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn outbox_fail(&self, id: &str, failed_at: Millis, error: &str) -> StoreResult<bool> {
        let id = id.to_string();
        let error = error.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let moved = tx.execute(
                "INSERT INTO outbox_failed (id, kind, recipient, subject, created_at, attempts, \
                 failed_at, last_error) SELECT id, kind, recipient, subject, created_at, \
                 attempts + 1, ?2, ?3 FROM outbox WHERE id = ?1",
                params![id, failed_at, error],
            )?;
            tx.execute("DELETE FROM outbox WHERE id = ?1", [&id])?;
            tx.commit()?;
            Ok(moved > 0)
        })
        .await
    }

    async fn outbox_failed_count(&self, now: Millis) -> StoreResult<u64> {
        let since = now.saturating_sub(FAILED_KEEP_MS);
        self.run(move |c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM outbox_failed WHERE failed_at > ?1",
                [since],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn outbox_failed(&self, limit: usize) -> StoreResult<Vec<FailedMail>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, kind, recipient, subject, created_at, attempts, failed_at, \
                 last_error FROM outbox_failed ORDER BY failed_at DESC, id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok(FailedMail {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    to: r.get(2)?,
                    subject: r.get(3)?,
                    created_at: r.get(4)?,
                    attempts: r.get(5)?,
                    failed_at: r.get(6)?,
                    last_error: r.get(7)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }
}
