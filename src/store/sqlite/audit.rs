//! [`AuditStore`] on SQLite: one row per event in `audit` (its `seq` is the cursor), and
//! `audit_hours` counting each kind per hour, both written in one transaction per batch.
//! Searches are index ranges: by member (`audit_user`), by kind (`audit_event`), or the
//! whole table newest first; a date range filters within them.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, TransactionBehavior};

use super::{map_err, SqliteStore};
use crate::store::{
    audit_hour, AuditCount, AuditEntry, AuditKeep, AuditPage, AuditQuery, AuditRecord, AuditStore,
    Millis, StoreResult, AUDIT_COUNTS_KEEP_MS,
};

/// The `WHERE` clause and its values for `query` (cursor included).
fn filter(query: &AuditQuery) -> (String, Vec<Value>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(user) = &query.user {
        values.push(Value::Text(user.as_str().to_string()));
        let n = values.len();
        clauses.push(format!("(user_id = ?{n} OR named_id = ?{n})"));
    }
    if !query.kinds.is_empty() {
        let mut marks = Vec::new();
        for kind in &query.kinds {
            values.push(Value::Text(kind.clone()));
            marks.push(format!("?{}", values.len()));
        }
        clauses.push(format!("event IN ({})", marks.join(", ")));
    }
    if let Some(from) = query.from {
        values.push(Value::Integer(from));
        clauses.push(format!("at >= ?{}", values.len()));
    }
    if let Some(until) = query.until {
        values.push(Value::Integer(until));
        clauses.push(format!("at < ?{}", values.len()));
    }
    if let Some(before) = &query.before {
        // Not one of ours (a hand-edited link): from the newest, as if absent.
        if let Ok(seq) = before.parse::<i64>() {
            values.push(Value::Integer(seq));
            clauses.push(format!("seq < ?{}", values.len()));
        }
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, values)
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_append(&self, records: &[AuditRecord], _keep: AuditKeep) -> StoreResult<()> {
        let records = records.to_vec();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO audit \
                     (at, event, by_whom, admin_id, user_id, named_id, email, ip, detail) \
                     VALUES (?1, ?2, ?3, ?4, ?5, \
                             CASE WHEN ?5 IS NULL THEN (SELECT id FROM users WHERE email = ?6) END, \
                             ?6, ?7, ?8)",
                )?;
                let mut count = tx.prepare_cached(
                    "INSERT INTO audit_hours (hour, event, count) VALUES (?1, ?2, 1) \
                     ON CONFLICT (hour, event) DO UPDATE SET count = count + 1",
                )?;
                for r in &records {
                    insert.execute(params![
                        r.at, r.event, r.by, r.admin, r.user, r.email, r.ip, r.detail
                    ])?;
                    count.execute(params![audit_hour(r.at), r.event])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn audit_page(&self, query: &AuditQuery) -> StoreResult<AuditPage> {
        let (clause, mut values) = filter(query);
        let limit = query.limit;
        // One more than asked: whether there is a next page.
        values.push(Value::Integer(
            i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1,
        ));
        let sql = format!(
            "SELECT seq, at, event, by_whom, admin_id, user_id, email, ip, detail FROM audit \
             {clause} ORDER BY seq DESC LIMIT ?{}",
            values.len()
        );
        self.run(move |c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(values), |r| {
                Ok(AuditEntry {
                    id: r.get::<_, i64>(0)?.to_string(),
                    record: AuditRecord {
                        at: r.get(1)?,
                        event: r.get(2)?,
                        by: r.get(3)?,
                        admin: r.get(4)?,
                        user: r.get(5)?,
                        email: r.get(6)?,
                        ip: r.get(7)?,
                        detail: r.get(8)?,
                    },
                })
            })?;
            let mut entries = rows
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            let next = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map(|e| e.id.clone())
            } else {
                None
            };
            Ok(AuditPage { entries, next })
        })
        .await
    }

    async fn audit_counts(&self, from: Millis, until: Millis) -> StoreResult<Vec<AuditCount>> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT hour, event, count FROM audit_hours WHERE hour >= ?1 AND hour < ?2",
            )?;
            let rows = stmt.query_map([from, until], |r| {
                Ok(AuditCount {
                    hour: r.get(0)?,
                    event: r.get(1)?,
                    count: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn audit_prune(&self, keep: AuditKeep, now: Millis) -> StoreResult<u64> {
        let max = i64::try_from(keep.max_events).unwrap_or(i64::MAX);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut dropped = tx.execute(
                "DELETE FROM audit WHERE at < ?1",
                [now.saturating_sub(keep.keep_ms)],
            )?;
            // The oldest beyond `max`: below the seq of the max-th newest.
            dropped += tx.execute(
                "DELETE FROM audit WHERE seq < \
                 (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
                [max.saturating_sub(1).max(0)],
            )?;
            if max == 0 {
                dropped += tx.execute("DELETE FROM audit", [])?;
            }
            tx.execute(
                "DELETE FROM audit_hours WHERE hour < ?1",
                [audit_hour(now).saturating_sub(AUDIT_COUNTS_KEEP_MS)],
            )?;
            tx.commit()?;
            Ok(u64::try_from(dropped).unwrap_or(u64::MAX))
        })
        .await
    }
}
