//! Sign-up accounts on Redis: a `Pending` account's user key and email-index key carry
//! its `expires_at` as TTL (`PEXPIREAT`), and its id sits in the `PendingUsers` sorted
//! set scored by the same instant, so `sweep` can delete it at a `now` ahead of Redis's
//! clock and drop it from the `Users` set (which `user_list` tolerates meanwhile).
//! Activation `PERSIST`s both keys and leaves the index.
//!
//! Account records are JSON; scripts that change one field decode and re-encode it with
//! Redis's `cjson` (exact for the 13-digit millisecond `created_at`), never in Rust.

use std::sync::LazyLock;

use ::redis::{Script, ScriptInvocation};

use super::{session_call, RedisStore};
use crate::store::keys::{Key, Prefix};
use crate::store::{AccountStatus, Millis, StoreError, StoreResult, User, UserId};

/// Shared by the account scripts, on top of `session_prelude!` (whose calling convention
/// it extends): `KEYS[3]` the user set, `KEYS[4]` the pending-account index, `ARGV[4]`,
/// `ARGV[5]` and `ARGV[6]` the user, email-index and organisation-members key prefixes;
/// each script's own keys and arguments follow, from `KEYS[5]` and `ARGV[7]`.
macro_rules! user_prelude {
    () => {
        concat!(
            session_prelude!(),
            r#"
local USERS, PENDING, P_USER, P_EMAIL = KEYS[3], KEYS[4], ARGV[4], ARGV[5]
local P_ORG_MEMBERS = ARGV[6]
-- The decoded account (nil if missing or unreadable), and whether its key exists.
local function user_record(id)
  local json = redis.call('GET', P_USER .. id)
  if not json then return nil, false end
  local ok, u = pcall(cjson.decode, json)
  if ok and type(u) == 'table' then return u, true end
  return nil, true
end
-- Writes an account's JSON (`user_key` is P_USER .. id) and tells every gateway instance
-- that identities cached for it are stale (a role, an address, an organisation).
local function put_user(user_key, json)
  redis.call('SET', user_key, json)
  redis.call('PUBLISH', CHANGES, 'u:' .. string.sub(user_key, #P_USER + 1))
end
-- Deletes an account, its email index (if it still points here) and its sessions.
-- Returns 1 if the account key was there, and how many sessions went with it.
local function delete_user(id)
  local u = user_record(id)
  if u and type(u.email) == 'string' then
    local email_key = P_EMAIL .. u.email
    if redis.call('GET', email_key) == id then redis.call('DEL', email_key) end
  end
  local sessions = delete_sessions_of(id)
  if u and type(u.org) == 'table' and type(u.org.org) == 'string' then
    redis.call('SREM', P_ORG_MEMBERS .. u.org.org, id)
  end
  redis.call('SREM', USERS, id)
  redis.call('ZREM', PENDING, id)
  redis.call('PUBLISH', CHANGES, 'u:' .. id)
  return redis.call('DEL', P_USER .. id), sessions
end
"#
        )
    };
}

macro_rules! user_script {
    ($name:ident, $body:literal) => {
        static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(concat!(user_prelude!(), $body)));
    };
}

// KEYS[5] user, KEYS[6] email index; ARGV[7] id, ARGV[8] JSON, ARGV[9] expires_at.
// Returns 0 (nothing changed) if the address belongs to an account that is not pending
// or the id is taken by another address.
user_script!(
    USER_INSERT_PENDING,
    r#"
local id = ARGV[7]
local holder = redis.call('GET', KEYS[6])
if holder then
  local u, exists = user_record(holder)
  if exists and not (u and u.status == 'pending') then return 0 end
end
if holder ~= id and redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
-- The replaced sign-up goes whole (sessions too); a dangling index is cleaned the same way.
if holder then delete_user(holder) end
put_user(KEYS[5], ARGV[8])
redis.call('PEXPIREAT', KEYS[5], ARGV[9])
redis.call('SET', KEYS[6], id)
redis.call('PEXPIREAT', KEYS[6], ARGV[9])
redis.call('SADD', USERS, id)
redis.call('ZADD', PENDING, ARGV[9], id)
return 1
"#
);

// KEYS[5] user; ARGV[7] id, ARGV[8] now. Returns 1 if activated, 0 if missing or not
// pending, -1 if the record is unreadable. The link proved the address: email confirmed.
user_script!(
    USER_ACTIVATE,
    r#"
local u, exists = user_record(ARGV[7])
if not u then return exists and -1 or 0 end
if u.status ~= 'pending' then return 0 end
u.status = 'active'
if type(u.contact) ~= 'table' then u.contact = {} end
u.contact.email_confirmed = {at = tonumber(ARGV[8]), via = 'activation'}
put_user(KEYS[5], cjson.encode(u))
redis.call('PERSIST', KEYS[5])
if type(u.email) == 'string' then redis.call('PERSIST', P_EMAIL .. u.email) end
redis.call('ZREM', PENDING, ARGV[7])
return 1
"#
);

// KEYS[5] user; ARGV[7] id, ARGV[8] password hash. Same returns as USER_ACTIVATE. A
// pending account keeps its expiry.
user_script!(
    USER_SET_PASSWORD,
    r#"
local u, exists = user_record(ARGV[7])
if not u then return exists and -1 or 0 end
u.password_hash = ARGV[8]
put_user(KEYS[5], cjson.encode(u))
local expires_at = redis.call('ZSCORE', PENDING, ARGV[7])
if expires_at then redis.call('PEXPIREAT', KEYS[5], int(tonumber(expires_at))) end
return 1
"#
);

// KEYS[5] the user's key; ARGV[7] id, ARGV[8] name, ARGV[9] language ("" for none).
user_script!(
    USER_SET_PROFILE,
    r#"
local u, exists = user_record(ARGV[7])
if not u then return exists and -1 or 0 end
u.name = ARGV[8]
if ARGV[9] == '' then u.lang = cjson.null else u.lang = ARGV[9] end
put_user(KEYS[5], cjson.encode(u))
local expires_at = redis.call('ZSCORE', PENDING, ARGV[7])
if expires_at then redis.call('PEXPIREAT', KEYS[5], int(tonumber(expires_at))) end
return 1
"#
);

// ARGV[7] id.
user_script!(USER_DELETE, "return (delete_user(ARGV[7]))");

// ARGV[7] now, ARGV[8] batch size. Returns {accounts swept, records removed}: every
// index entry counts as one account (its keys may already be gone by TTL), plus its
// sessions.
user_script!(
    SWEEP_PENDING,
    r#"
local ids = redis.call('ZRANGEBYSCORE', PENDING, '-inf', ARGV[7], 'LIMIT', 0, ARGV[8])
local removed = 0
for _, id in ipairs(ids) do
  local _, sessions = delete_user(id)
  removed = removed + 1 + sessions
end
return {#ids, removed}
"#
);

/// An account script invocation with the calling convention of `user_prelude!`.
pub(super) fn user_call(script: &'static Script) -> ScriptInvocation<'static> {
    let mut inv = session_call(script);
    inv.key(Key::Users.name())
        .key(Key::PendingUsers.name())
        .arg(Prefix::User.as_str())
        .arg(Prefix::UserEmail.as_str())
        .arg(Prefix::OrgMembers.as_str());
    inv
}

fn changed(reply: i64, id: &UserId) -> StoreResult<bool> {
    match reply {
        -1 => Err(StoreError::Corrupt(format!("user record {id}"))),
        n => Ok(n == 1),
    }
}

impl RedisStore {
    pub(super) async fn insert_pending(&self, user: &User, expires_at: Millis) -> StoreResult<()> {
        let pending = User {
            status: AccountStatus::Pending,
            ..user.clone()
        };
        let json = serde_json::to_string(&pending)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode user: {e}")))?;
        let mut inv = user_call(&USER_INSERT_PENDING);
        inv.key(Key::User(&user.id).name())
            .key(Key::UserEmail(&user.email).name())
            .arg(user.id.as_str())
            .arg(json)
            .arg(expires_at);
        match self.call::<i64>(&inv).await? {
            1 => Ok(()),
            _ => Err(StoreError::Conflict),
        }
    }

    pub(super) async fn activate(&self, id: &UserId, now: Millis) -> StoreResult<bool> {
        let mut inv = user_call(&USER_ACTIVATE);
        inv.key(Key::User(id).name()).arg(id.as_str()).arg(now);
        changed(self.call(&inv).await?, id)
    }

    pub(super) async fn set_password(&self, id: &UserId, password_hash: &str) -> StoreResult<bool> {
        let mut inv = user_call(&USER_SET_PASSWORD);
        inv.key(Key::User(id).name())
            .arg(id.as_str())
            .arg(password_hash);
        changed(self.call(&inv).await?, id)
    }

    pub(super) async fn set_profile(
        &self,
        id: &UserId,
        name: &str,
        lang: Option<&str>,
    ) -> StoreResult<bool> {
        let mut inv = user_call(&USER_SET_PROFILE);
        inv.key(Key::User(id).name())
            .arg(id.as_str())
            .arg(name)
            .arg(lang.unwrap_or(""));
        changed(self.call(&inv).await?, id)
    }

    pub(super) async fn delete_user(&self, id: &UserId) -> StoreResult<bool> {
        let mut inv = user_call(&USER_DELETE);
        inv.arg(id.as_str());
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    /// Removes the sign-ups expired at `now`, `batch` per script run. Returns how many
    /// records went (accounts and their sessions).
    pub(super) async fn sweep_pending(&self, now: Millis, batch: u64) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let mut inv = user_call(&SWEEP_PENDING);
            inv.arg(now).arg(batch);
            let (accounts, removed): (u64, u64) = self.call(&inv).await?;
            total += removed;
            if accounts < batch {
                return Ok(total);
            }
        }
    }
}
