//! [`ThrottleStore`] on SQLite. Counters and IP state are small rows changed inside one
//! `BEGIN IMMEDIATE` transaction each, so processes sharing the file never interleave a
//! read and its write.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::SqliteStore;
use crate::store::throttle::next_block;
use crate::store::{
    AttemptKey, DeviceId, IpBlock, IpRule, Millis, StoreResult, ThrottleStore, UserId,
};

fn key_parts(key: AttemptKey<'_>) -> (String, String) {
    match key {
        AttemptKey::Account(email) => (email.to_string(), String::new()),
        AttemptKey::Device(email, device) => (email.to_string(), device.as_str().to_string()),
    }
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[derive(Default)]
struct IpRow {
    window_end: Option<Millis>,
    window_count: i64,
    block_until: Option<Millis>,
    level: i64,
    level_until: Option<Millis>,
    blocked_at: Option<Millis>,
}

fn ip_row(tx: &Transaction<'_>, ip: &str) -> rusqlite::Result<IpRow> {
    Ok(tx
        .query_row(
            "SELECT window_end, window_count, block_until, level, level_until, blocked_at \
             FROM ip_state WHERE ip = ?1",
            [ip],
            |r| {
                Ok(IpRow {
                    window_end: r.get(0)?,
                    window_count: r.get(1)?,
                    block_until: r.get(2)?,
                    level: r.get(3)?,
                    level_until: r.get(4)?,
                    blocked_at: r.get(5)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

fn ip_save(tx: &Transaction<'_>, ip: &str, row: &IpRow) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO ip_state (ip, window_end, window_count, block_until, level, level_until, \
         blocked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (ip) DO UPDATE SET \
         window_end = excluded.window_end, window_count = excluded.window_count, \
         block_until = excluded.block_until, level = excluded.level, \
         level_until = excluded.level_until, blocked_at = excluded.blocked_at",
        params![
            ip,
            row.window_end,
            row.window_count,
            row.block_until,
            row.level,
            row.level_until,
            row.blocked_at
        ],
    )?;
    Ok(())
}

/// Blocks in `row` from `now`; returns the end.
fn block(row: &mut IpRow, rule: &IpRule, now: Millis) -> Millis {
    let level = if row.level_until.is_some_and(|u| u > now) {
        u32::try_from(row.level).unwrap_or(0)
    } else {
        0
    };
    let (until, level_until) = next_block(rule, level, now);
    row.block_until = Some(until);
    row.blocked_at = Some(now);
    row.level = i64::from(level) + 1;
    row.level_until = Some(level_until);
    row.window_end = None;
    row.window_count = 0;
    until
}

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn attempt_begin(&self, key: AttemptKey<'_>, now: Millis) -> StoreResult<u64> {
        let (email, device) = key_parts(key);
        self.run(move |c| {
            let n: i64 = c.query_row(
                "INSERT INTO login_attempts (email, device, count, last_at) \
                 VALUES (?1, ?2, 1, ?3) ON CONFLICT (email, device) \
                 DO UPDATE SET count = count + 1, last_at = MAX(last_at, excluded.last_at) \
                 RETURNING count",
                params![email, device, now],
                |r| r.get(0),
            )?;
            Ok(to_u64(n))
        })
        .await
    }

    async fn attempts_of(&self, key: AttemptKey<'_>) -> StoreResult<u64> {
        let (email, device) = key_parts(key);
        self.run(move |c| {
            let n: Option<i64> = c
                .query_row(
                    "SELECT count FROM login_attempts WHERE email = ?1 AND device = ?2",
                    params![email, device],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(to_u64(n.unwrap_or(0)))
        })
        .await
    }

    async fn attempts_clear(&self, key: AttemptKey<'_>) -> StoreResult<()> {
        let (email, device) = key_parts(key);
        self.run(move |c| {
            c.execute(
                "DELETE FROM login_attempts WHERE email = ?1 AND device = ?2",
                params![email, device],
            )?;
            Ok(())
        })
        .await
    }

    async fn attempt_refund(&self, key: AttemptKey<'_>) -> StoreResult<()> {
        let (email, device) = key_parts(key);
        self.run(move |c| {
            c.execute(
                "UPDATE login_attempts SET count = MAX(count - 1, 0) \
                 WHERE email = ?1 AND device = ?2",
                params![email, device],
            )?;
            Ok(())
        })
        .await
    }

    async fn attempts_clear_all(&self, email: &str) -> StoreResult<u64> {
        let email = email.to_string();
        self.run(move |c| {
            let n = c.execute("DELETE FROM login_attempts WHERE email = ?1", [email])?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn device_remember(&self, user: &UserId, device: &DeviceId) -> StoreResult<()> {
        let (user, device) = (user.as_str().to_string(), device.as_str().to_string());
        self.run(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO known_devices (user_id, device) VALUES (?1, ?2)",
                params![user, device],
            )?;
            Ok(())
        })
        .await
    }

    async fn device_known(&self, user: &UserId, device: &DeviceId) -> StoreResult<bool> {
        let (user, device) = (user.as_str().to_string(), device.as_str().to_string());
        self.run(move |c| {
            let found: Option<i64> = c
                .query_row(
                    "SELECT 1 FROM known_devices WHERE user_id = ?1 AND device = ?2",
                    params![user, device],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(found.is_some())
        })
        .await
    }

    async fn ip_attempt(
        &self,
        ip: &str,
        rule: &IpRule,
        now: Millis,
    ) -> StoreResult<Result<u64, Millis>> {
        let (ip, rule) = (ip.to_string(), *rule);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut row = ip_row(&tx, &ip)?;
            if let Some(until) = row.block_until.filter(|u| *u > now) {
                return Ok(Err(until));
            }
            let open = row.window_end.is_some_and(|e| e > now);
            let count = if open { row.window_count + 1 } else { 1 };
            let result = if to_u64(count) > u64::from(rule.max) {
                Err(block(&mut row, &rule, now))
            } else {
                if !open {
                    row.window_end = Some(now.saturating_add(rule.window_ms));
                }
                row.window_count = count;
                Ok(to_u64(count))
            };
            ip_save(&tx, &ip, &row)?;
            tx.commit()?;
            Ok(result)
        })
        .await
    }

    async fn ip_refund(&self, ip: &str) -> StoreResult<()> {
        let ip = ip.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE ip_state SET window_count = MAX(window_count - 1, 0) WHERE ip = ?1",
                [ip],
            )?;
            Ok(())
        })
        .await
    }

    async fn ip_block(&self, ip: &str, rule: &IpRule, now: Millis) -> StoreResult<Millis> {
        let (ip, rule) = (ip.to_string(), *rule);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut row = ip_row(&tx, &ip)?;
            if let Some(until) = row.block_until.filter(|u| *u > now) {
                return Ok(until);
            }
            let until = block(&mut row, &rule, now);
            ip_save(&tx, &ip, &row)?;
            tx.commit()?;
            Ok(until)
        })
        .await
    }

    async fn ip_blocked_until(&self, ip: &str, now: Millis) -> StoreResult<Option<Millis>> {
        let ip = ip.to_string();
        self.run(move |c| {
            let until: Option<Option<Millis>> = c
                .query_row(
                    "SELECT block_until FROM ip_state WHERE ip = ?1",
                    [ip],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(until.flatten().filter(|u| *u > now))
        })
        .await
    }

    async fn ip_unblock(&self, ip: &str, now: Millis) -> StoreResult<bool> {
        let ip = ip.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = ip_row(&tx, &ip)?;
            tx.execute("DELETE FROM ip_state WHERE ip = ?1", [ip])?;
            tx.commit()?;
            Ok(row.block_until.is_some_and(|u| u > now))
        })
        .await
    }

    async fn ip_blocks(&self, now: Millis, limit: usize) -> StoreResult<Vec<IpBlock>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            // `ip_state_blocks` finds the blocks in force; only those are sorted.
            let mut stmt = c.prepare_cached(
                "SELECT ip, COALESCE(blocked_at, 0), block_until FROM ip_state \
                 WHERE block_until > ?1 ORDER BY 2 DESC, ip LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit], |r| {
                Ok(IpBlock {
                    ip: r.get(0)?,
                    blocked_at: r.get(1)?,
                    until: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
