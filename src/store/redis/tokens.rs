//! [`TokenStore`] on Redis: one hash per `(kind, hash)` (`subject`, `bind`,
//! `expires_at`) whose TTL is the token's expiry, and an entry in the `Expiring` index
//! so `sweep` removes it at a `now` ahead of Redis's clock. A take is one script (read,
//! delete, validity check against the `now` passed in), so of two racing takes exactly
//! one gets the token.

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use super::RedisStore;
use crate::store::keys::Key;
use crate::store::{
    Millis, StoreError, StoreResult, TokenHash, TokenKind, TokenRecord, TokenStore,
};

// KEYS[1] token, KEYS[2] expiring index; ARGV[1] expires_at, ARGV[2] subject, ARGV[3] bind.
// Returns 0 if the token exists.
static TOKEN_INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'subject', ARGV[2], 'bind', ARGV[3], 'expires_at', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], KEYS[1])
return 1
"#,
    )
});

// KEYS[1] token, KEYS[2] expiring index; ARGV[1] now. Returns {subject, bind, expires_at}
// if the token was there and valid at `now`; deletes it whenever it was there.
static TOKEN_TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local f = redis.call('HMGET', KEYS[1], 'subject', 'bind', 'expires_at')
if redis.call('DEL', KEYS[1]) == 0 then return false end
redis.call('ZREM', KEYS[2], KEYS[1])
local expires_at = tonumber(f[3])
if expires_at and tonumber(ARGV[1]) >= expires_at then return false end
return f
"#,
    )
});

/// Rebuilds a token from `HMGET subject bind expires_at`; `None` if the key is missing.
fn token_from_fields(
    kind: TokenKind,
    hash: &TokenHash,
    fields: Vec<Option<String>>,
) -> StoreResult<Option<TokenRecord>> {
    if fields.iter().all(Option::is_none) {
        return Ok(None);
    }
    let corrupt = || StoreError::Corrupt(format!("{} token record", kind.as_str()));
    let mut it = fields.into_iter();
    let (Some(Some(subject)), Some(Some(bind)), Some(Some(expires_at))) =
        (it.next(), it.next(), it.next())
    else {
        return Err(corrupt());
    };
    Ok(Some(TokenRecord {
        kind,
        hash: hash.clone(),
        subject,
        bind,
        expires_at: expires_at.parse().map_err(|_| corrupt())?,
    }))
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn token_insert(&self, token: &TokenRecord) -> StoreResult<()> {
        let ns = self.of_token(&token.hash);
        let key = Key::Token(token.kind, &token.hash).name_in(ns);
        let mut inv = TOKEN_INSERT.prepare_invoke();
        inv.key(key)
            .key(Key::Expiring.name_in(ns))
            .arg(token.expires_at)
            .arg(&token.subject)
            .arg(&token.bind);
        match self.call::<i64>(&inv).await? {
            1 => Ok(()),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn token_peek(
        &self,
        kind: TokenKind,
        hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<TokenRecord>> {
        // One single-key read: no script needed. Left in place even if expired at `now`.
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(Key::Token(kind, hash).name_in(self.of_token(hash)))
            .arg("subject")
            .arg("bind")
            .arg("expires_at");
        let token = token_from_fields(kind, hash, self.query(&cmd).await?)?;
        Ok(token.filter(|t| now < t.expires_at))
    }

    async fn token_take(
        &self,
        kind: TokenKind,
        hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<TokenRecord>> {
        let mut inv = TOKEN_TAKE.prepare_invoke();
        let ns = self.of_token(hash);
        inv.key(Key::Token(kind, hash).name_in(ns))
            .key(Key::Expiring.name_in(ns))
            .arg(now);
        let Some(fields) = self.call::<Option<Vec<Option<String>>>>(&inv).await? else {
            return Ok(None);
        };
        // The script checked validity already; checking here keeps the contract local.
        let token = token_from_fields(kind, hash, fields)?;
        Ok(token.filter(|t| now < t.expires_at))
    }
}
