//! [`DeviceStore`] on SQLite. The cap check and the sessions it ends are one
//! `BEGIN IMMEDIATE` transaction, so two processes opening sessions for one member take
//! turns and the second sees the first's session.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::{insert_session, SqliteStore};
use crate::store::{
    overflow_parse, overflow_str, Cap, Challenge, CodeCheck, DeviceId, DeviceStore, Millis, Opened,
    SessionId, SessionRecord, Settings, SignedOut, StoreError, StoreResult, TokenHash, UserId,
};

/// Ends a session, leaving `why` for its device. Returns whether it existed.
fn end(tx: &Transaction<'_>, id: &str, why: SignedOut) -> rusqlite::Result<bool> {
    tx.execute(
        "INSERT INTO ended_sessions (token_hash, reason, expires_at) \
         SELECT token_hash, ?2, expires_at FROM sessions WHERE id = ?1 \
         ON CONFLICT (token_hash) DO UPDATE SET reason = excluded.reason",
        params![id, why.as_str()],
    )?;
    Ok(tx.execute("DELETE FROM sessions WHERE id = ?1", [id])? > 0)
}

fn challenge_from_row(r: &Row<'_>) -> rusqlite::Result<Challenge> {
    Ok(Challenge {
        user_id: UserId::from_string(r.get::<_, String>(0)?),
        code_hash: TokenHash::from_hex(r.get::<_, String>(1)?),
        attempts: r.get(2)?,
        verified: r.get(3)?,
        rd: r.get(4)?,
        expires_at: r.get(5)?,
        level: crate::store::AuthLevel::parse(&r.get::<_, String>(6)?),
    })
}

const CHALLENGE_COLUMNS: &str = "user_id, code_hash, attempts, verified, rd, expires_at, level";

fn challenge_of(
    tx: &Transaction<'_>,
    device: &str,
    now: Millis,
) -> rusqlite::Result<Option<Challenge>> {
    tx.query_row(
        &format!(
            "SELECT {CHALLENGE_COLUMNS} FROM device_challenges \
             WHERE device = ?1 AND expires_at > ?2"
        ),
        params![device, now],
        challenge_from_row,
    )
    .optional()
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn session_open(
        &self,
        session: &SessionRecord,
        replaces: Option<&SessionId>,
        victims: &[SessionId],
        cap: Cap,
        now: Millis,
    ) -> StoreResult<Opened> {
        let s = session.clone();
        let replaces = replaces.map(|r| r.as_str().to_string());
        let victims: Vec<String> = victims.iter().map(|v| v.as_str().to_string()).collect();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let user = s.user_id.as_str();
            // The member's live sessions other than this device's, least recently used first.
            let others: Vec<String> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT id FROM sessions WHERE user_id = ?1 AND expires_at > ?2 \
                     AND device_id <> ?3 AND id <> COALESCE(?4, '') \
                     ORDER BY last_seen, created_at, id",
                )?;
                let rows = stmt
                    .query_map(params![user, now, s.device_id.as_str(), replaces], |r| {
                        r.get(0)
                    })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let (chosen, rest): (Vec<String>, Vec<String>) =
                others.into_iter().partition(|id| victims.contains(id));
            let mut ended = chosen;
            let max = usize::try_from(cap.max).unwrap_or(usize::MAX);
            if cap.max > 0 && rest.len() >= max {
                if !cap.evict_oldest {
                    let active = u64::try_from(rest.len() + ended.len()).unwrap_or(u64::MAX);
                    return Ok(Opened::Full { active });
                }
                // Least recently used first, just enough for the new session to fit.
                let excess = rest.len() + 1 - max;
                ended.extend(rest.into_iter().take(excess));
            }
            if let Some(old) = &replaces {
                tx.execute("DELETE FROM sessions WHERE id = ?1", [old])?;
            }
            tx.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND device_id = ?2",
                params![user, s.device_id.as_str()],
            )?;
            for id in &ended {
                end(&tx, id, SignedOut::Replaced)?;
            }
            insert_session(&tx, &s)?;
            tx.commit()?;
            Ok(Opened::Opened {
                ended: ended.into_iter().map(SessionId::from_string).collect(),
            })
        })
        .await
    }

    async fn session_end(
        &self,
        user: &UserId,
        id: &SessionId,
        why: SignedOut,
        now: Millis,
    ) -> StoreResult<bool> {
        let (user, id) = (user.as_str().to_string(), id.as_str().to_string());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mine: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM sessions WHERE id = ?1 AND user_id = ?2 AND expires_at > ?3",
                    params![id, user, now],
                    |r| r.get(0),
                )
                .optional()?;
            let ended = mine.is_some() && end(&tx, &id, why)?;
            tx.commit()?;
            Ok(ended)
        })
        .await
    }

    async fn signed_out(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<SignedOut>> {
        let hash = token_hash.as_str().to_string();
        let reason: Option<String> = self
            .run(move |c| {
                c.query_row(
                    "SELECT reason FROM ended_sessions WHERE token_hash = ?1 AND expires_at > ?2",
                    params![hash, now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(Into::into)
            })
            .await?;
        Ok(reason.as_deref().and_then(SignedOut::parse))
    }

    async fn challenge_put(&self, device: &DeviceId, ch: &Challenge) -> StoreResult<bool> {
        let (device, ch) = (device.as_str().to_string(), ch.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let replaced =
                tx.execute("DELETE FROM device_challenges WHERE device = ?1", [&device])? > 0;
            tx.execute(
                &format!(
                    "INSERT INTO device_challenges (device, {CHALLENGE_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    device,
                    ch.user_id.as_str(),
                    ch.code_hash.as_str(),
                    ch.attempts,
                    ch.verified,
                    ch.rd,
                    ch.expires_at,
                    ch.level.as_str()
                ],
            )?;
            tx.commit()?;
            Ok(replaced)
        })
        .await
    }

    async fn challenge_get(
        &self,
        device: &DeviceId,
        now: Millis,
    ) -> StoreResult<Option<Challenge>> {
        let device = device.as_str().to_string();
        self.run(move |c| {
            let tx = c.transaction()?;
            Ok(challenge_of(&tx, &device, now)?)
        })
        .await
    }

    async fn challenge_check(
        &self,
        device: &DeviceId,
        code_hash: &TokenHash,
        max_tries: u32,
        verified_until: Millis,
        now: Millis,
    ) -> StoreResult<CodeCheck> {
        let (device, code_hash) = (device.as_str().to_string(), code_hash.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut ch) = challenge_of(&tx, &device, now)? else {
                return Ok(CodeCheck::Missing);
            };
            if ch.verified {
                return Ok(CodeCheck::Verified(ch));
            }
            ch.attempts += 1;
            let outcome = if ch.code_hash == code_hash {
                ch.verified = true;
                ch.expires_at = verified_until;
                tx.execute(
                    "UPDATE device_challenges SET attempts = ?2, verified = 1, expires_at = ?3 \
                     WHERE device = ?1",
                    params![device, ch.attempts, ch.expires_at],
                )?;
                CodeCheck::Verified(ch)
            } else if ch.attempts >= max_tries {
                tx.execute("DELETE FROM device_challenges WHERE device = ?1", [&device])?;
                CodeCheck::Exhausted
            } else {
                tx.execute(
                    "UPDATE device_challenges SET attempts = ?2 WHERE device = ?1",
                    params![device, ch.attempts],
                )?;
                CodeCheck::Wrong {
                    left: max_tries - ch.attempts,
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn challenge_renew(
        &self,
        device: &DeviceId,
        code_hash: &TokenHash,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<bool> {
        let (device, code_hash) = (device.as_str().to_string(), code_hash.as_str().to_string());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE device_challenges SET code_hash = ?2, expires_at = ?3 \
                 WHERE device = ?1 AND verified = 0 AND expires_at > ?4",
                params![device, code_hash, expires_at, now],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn challenge_delete(&self, device: &DeviceId) -> StoreResult<bool> {
        let device = device.as_str().to_string();
        self.run(move |c| {
            Ok(c.execute("DELETE FROM device_challenges WHERE device = ?1", [device])? > 0)
        })
        .await
    }

    async fn settings_get(&self) -> StoreResult<Settings> {
        let rows: Vec<(String, String)> = self
            .run(|c| {
                let mut stmt = c.prepare_cached("SELECT key, value FROM settings")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>().map_err(Into::into)
            })
            .await?;
        let mut settings = Settings::default();
        for (key, value) in rows {
            let bad = || StoreError::Corrupt(format!("setting {key} = {value:?}"));
            match key.as_str() {
                "max_per_member" => {
                    settings.max_per_member = Some(value.parse().map_err(|_| bad())?)
                }
                "on_overflow" => {
                    settings.on_overflow = Some(overflow_parse(&value).ok_or_else(bad)?)
                }
                _ => {}
            }
        }
        Ok(settings)
    }

    async fn settings_set(&self, settings: &Settings) -> StoreResult<()> {
        let pairs = [
            (
                "max_per_member",
                settings.max_per_member.map(|m| m.to_string()),
            ),
            (
                "on_overflow",
                settings.on_overflow.map(|o| overflow_str(o).to_string()),
            ),
        ];
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (key, value) in pairs {
                match value {
                    Some(v) => tx.execute(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        params![key, v],
                    )?,
                    None => tx.execute("DELETE FROM settings WHERE key = ?1", [key])?,
                };
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn member_cap(&self, user: &UserId) -> StoreResult<Option<u32>> {
        let user = user.as_str().to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT max_sessions FROM member_caps WHERE user_id = ?1",
                [user],
                |r| r.get(0),
            )
            .optional()
            .map_err(Into::into)
        })
        .await
    }

    async fn member_cap_set(&self, user: &UserId, cap: Option<u32>) -> StoreResult<bool> {
        let user = user.as_str().to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: Option<i64> = tx
                .query_row("SELECT 1 FROM users WHERE id = ?1", [&user], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Ok(false);
            }
            match cap {
                Some(max) => tx.execute(
                    "INSERT INTO member_caps (user_id, max_sessions) VALUES (?1, ?2) \
                     ON CONFLICT (user_id) DO UPDATE SET max_sessions = excluded.max_sessions",
                    params![user, max],
                )?,
                None => tx.execute("DELETE FROM member_caps WHERE user_id = ?1", [&user])?,
            };
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}
