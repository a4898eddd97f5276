//! [`KeptStore`] on SQLite: one row per document in `kept`; a write compares the version
//! inside a `BEGIN IMMEDIATE` transaction, so two processes writing one document take
//! turns and the second sees the first's version.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::SqliteStore;
use crate::store::{Kept, KeptStore, Millis, StoreResult, Versioned};

/// `expires_at IS NULL OR expires_at > now`: a document past its expiry is absent.
const LIVE: &str = "kind = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";

#[async_trait]
impl KeptStore for SqliteStore {
    async fn kept_get(&self, kind: Kept, key: &str, now: Millis) -> StoreResult<Option<Versioned>> {
        let key = key.to_string();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT version, doc FROM kept WHERE {LIVE}"),
                params![kind.as_str(), key, now],
                |r| {
                    Ok(Versioned {
                        version: r.get::<_, i64>(0)? as u64,
                        doc: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(Into::into)
        })
        .await
    }

    async fn kept_put(
        &self,
        kind: Kept,
        key: &str,
        expected: u64,
        doc: Option<&str>,
        expires_at: Option<Millis>,
        now: Millis,
    ) -> StoreResult<bool> {
        let (key, doc) = (key.to_string(), doc.map(str::to_string));
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: i64 = tx
                .query_row(
                    &format!("SELECT version FROM kept WHERE {LIVE}"),
                    params![kind.as_str(), key, now],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            if current as u64 != expected {
                return Ok(false);
            }
            match doc {
                None => {
                    tx.execute(
                        "DELETE FROM kept WHERE kind = ?1 AND key = ?2",
                        params![kind.as_str(), key],
                    )?;
                }
                Some(doc) => {
                    tx.execute(
                        "INSERT INTO kept (kind, key, version, doc, expires_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version, \
                         doc = excluded.doc, expires_at = excluded.expires_at",
                        params![kind.as_str(), key, expected as i64 + 1, doc, expires_at],
                    )?;
                }
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}
