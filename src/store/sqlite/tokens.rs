//! [`TokenStore`] on SQLite: one row per `(kind, hash)`. A take is a single
//! `DELETE ... RETURNING`, so of two racing takes exactly one gets the row.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use super::{map_err, SqliteStore};
use crate::store::{Millis, StoreResult, TokenHash, TokenKind, TokenRecord, TokenStore};

fn token_from_row(kind: TokenKind, hash: &TokenHash, r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        kind,
        hash: hash.clone(),
        subject: r.get(0)?,
        bind: r.get(1)?,
        expires_at: r.get(2)?,
    })
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn token_insert(&self, token: &TokenRecord) -> StoreResult<()> {
        let t = token.clone();
        self.run(move |c| {
            // The primary key makes a second (kind, hash) a Conflict.
            c.execute(
                "INSERT INTO tokens (kind, hash, subject, bind, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    t.kind.as_str(),
                    t.hash.as_str(),
                    t.subject,
                    t.bind,
                    t.expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn token_peek(
        &self,
        kind: TokenKind,
        hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<TokenRecord>> {
        let hash = hash.clone();
        self.run(move |c| {
            c.query_row(
                "SELECT subject, bind, expires_at FROM tokens \
                 WHERE kind = ?1 AND hash = ?2 AND expires_at > ?3",
                params![kind.as_str(), hash.as_str(), now],
                |r| token_from_row(kind, &hash, r),
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn token_take(
        &self,
        kind: TokenKind,
        hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<TokenRecord>> {
        let hash = hash.clone();
        self.run(move |c| {
            // Deleted whether valid or not: an expired token found here goes too.
            let taken = c
                .query_row(
                    "DELETE FROM tokens WHERE kind = ?1 AND hash = ?2 \
                     RETURNING subject, bind, expires_at",
                    params![kind.as_str(), hash.as_str()],
                    |r| token_from_row(kind, &hash, r),
                )
                .optional()?;
            Ok(taken.filter(|t| now < t.expires_at))
        })
        .await
    }
}
