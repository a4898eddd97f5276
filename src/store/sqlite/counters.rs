//! [`CounterStore`] on SQLite: one row per `(scope, subject, window_start)`, bumped by a
//! single upsert; `sweep` deletes rows whose window has ended.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::store::counters::window;
use crate::store::{CounterScope, CounterStore, Millis, StoreResult};

#[async_trait]
impl CounterStore for SqliteStore {
    async fn counter_hit(
        &self,
        scope: CounterScope,
        subject: &str,
        window_ms: Millis,
        now: Millis,
    ) -> StoreResult<u64> {
        let subject = subject.to_string();
        let (start, end) = window(now, window_ms);
        self.run(move |c| {
            // One statement: concurrent hits from several processes are all counted.
            let n: i64 = c.query_row(
                "INSERT INTO counters (scope, subject, window_start, count, expires_at) \
                 VALUES (?1, ?2, ?3, 1, ?4) \
                 ON CONFLICT (scope, subject, window_start) DO UPDATE SET count = count + 1 \
                 RETURNING count",
                params![scope.as_str(), subject, start, end],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
