//! The SQLite change feed: the `changes` table the triggers fill (schema v9), read every
//! [`POLL_EVERY`] from where this process last stopped. Reading by `seq` is one indexed
//! range scan; several processes on one file each read it on their own.
//!
//! A read that fails, or finds rows missing between the last one read and the next (aged
//! out while this process was stalled), means changes may have been missed: the feed says
//! [`Change::Lost`], then [`Change::Live`] once it reads again from the current end.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::store::changes::{Change, FeedSender};
use crate::store::StoreResult;

/// How often the table is read: well within the one second a revocation may take to be
/// seen everywhere.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Rows read at most per poll (a burst of revocations is read over a few polls).
const READ_LIMIT: i64 = 1000;
/// Rows older than this go (any process may age them out): a reader that far behind
/// has long been flushed.
const KEEP_MS: i64 = 10 * 60 * 1000;
/// Polls between two age-outs (about a minute).
const AGE_OUT_EVERY: u32 = 300;

/// What one poll found.
enum Read {
    /// The current end, to start from.
    Start(i64),
    /// Changes after the last one read, and the new position.
    Changes(Vec<Change>, i64),
    /// Rows between the last one read and the end are gone.
    Gap(i64),
}

/// Follows the table until the receiving cache is gone.
pub(super) async fn follow(store: SqliteStore, tx: FeedSender) {
    let mut at: Option<i64> = None;
    let mut polls = 0u32;
    let mut said_down = false;
    while !tx.is_closed() {
        polls = polls.wrapping_add(1);
        let age_out = polls.is_multiple_of(AGE_OUT_EVERY);
        let from = at;
        let read = store
            .run(move |c| {
                if age_out {
                    age_out_old(c)?;
                }
                read_from(c, from)
            })
            .await;
        match read {
            Ok(Read::Start(end)) => {
                at = Some(end);
                said_down = false;
                if !tx.send(Change::Live).await {
                    return;
                }
            }
            Ok(Read::Changes(changes, end)) => {
                at = Some(end);
                for change in changes {
                    if !tx.send(change).await {
                        return;
                    }
                }
            }
            Ok(Read::Gap(end)) => {
                at = Some(end);
                tracing::warn!("session change feed skipped changes; flushing the cache");
                if !tx.send(Change::Lost).await || !tx.send(Change::Live).await {
                    return;
                }
            }
            Err(e) => {
                if !said_down {
                    tracing::warn!(error = %e, "session change feed cannot read; caching briefly");
                    said_down = true;
                }
                if at.take().is_some() && !tx.send(Change::Lost).await {
                    return;
                }
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

fn read_from(c: &Connection, from: Option<i64>) -> StoreResult<Read> {
    let tx = c.unchecked_transaction()?;
    let end: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
        r.get(0)
    })?;
    let Some(last) = from else {
        return Ok(Read::Start(end));
    };
    if end <= last {
        return Ok(Read::Changes(Vec::new(), last));
    }
    let first: Option<i64> = tx
        .query_row(
            "SELECT seq FROM changes WHERE seq > ?1 ORDER BY seq LIMIT 1",
            [last],
            |r| r.get(0),
        )
        .optional()?;
    if first != Some(last + 1) {
        return Ok(Read::Gap(end));
    }
    let mut stmt =
        tx.prepare_cached("SELECT seq, subject FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
    let rows = stmt.query_map(params![last, READ_LIMIT], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut changes = Vec::new();
    let mut upto = last;
    for row in rows {
        let (seq, subject) = row?;
        upto = seq;
        changes.extend(Change::parse(&subject));
    }
    Ok(Read::Changes(changes, upto))
}

fn age_out_old(c: &Connection) -> StoreResult<()> {
    c.execute(
        "DELETE FROM changes WHERE at < CAST(unixepoch('subsec') * 1000 AS INTEGER) - ?1",
        [KEEP_MS],
    )?;
    Ok(())
}
