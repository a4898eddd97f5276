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
use crate::store::keys::{Key, Namespace, Prefix};
use crate::store::shard::Shard;
use crate::store::{
    AccountStatus, Millis, StoreError, StoreResult, User, UserId, UserPage, UserQuery,
    USER_SCAN_BUDGET,
};

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
-- On a Cluster every key here is in one shard, spelled in its hash tag (keys.rs): the
-- record of an id or address of another shard is not here even when it exists, and
-- must not be written here. On one Redis (no digit) everything is here.
local SHARD = string.match(P_USER, '^{vigile:(%x)}')
local function here(owner) return not SHARD or string.sub(redis.sha1hex(owner), 1, 1) == SHARD end
-- Key::AddressClaim (keys.rs pins this spelling): the id taking an address whose account
-- is written in a second step (addresses.rs), beside the address's index key.
local P_CLAIM = string.sub(P_EMAIL, 1, #P_EMAIL - #'user_email:') .. 'address_claim:'
-- Key::UserIndex (keys.rs pins this spelling): `{email}\n{id}` of every account.
local USER_INDEX = USERS .. '_index'
-- An account's entry in USER_INDEX, from its JSON (nil if unreadable).
local function index_entry(json, id)
  local ok, u = pcall(cjson.decode, json)
  if ok and type(u) == 'table' and type(u.email) == 'string' then return u.email .. '\n' .. id end
  return nil
end
-- The decoded account (nil if missing or unreadable), and whether its key exists.
local function user_record(id)
  local json = redis.call('GET', P_USER .. id)
  if not json then return nil, false end
  local ok, u = pcall(cjson.decode, json)
  if ok and type(u) == 'table' then return u, true end
  return nil, true
end
-- Whether `holder`, named by the index key of `email`, holds that address: its claim is
-- in progress, or its account (here) says so. False for a key left by a crash between
-- two steps (no account, or one with another address); nil when the account is of
-- another shard: the caller looks (`holder_holds`).
local function held(holder, email)
  if redis.call('GET', P_CLAIM .. email) == holder then return true end
  if not here(holder) then return nil end
  local u, exists = user_record(holder)
  return exists and not (u and u.email ~= email)
end
-- Writes an account's JSON (`user_key` is P_USER .. id) and tells every gateway instance
-- that identities cached for it are stale (a role, an address, an organisation).
local function put_user(user_key, json)
  local id = string.sub(user_key, #P_USER + 1)
  local old = redis.call('GET', user_key)
  local before, after = old and index_entry(old, id), index_entry(json, id)
  if before and before ~= after then redis.call('ZREM', USER_INDEX, before) end
  if after then redis.call('ZADD', USER_INDEX, 0, after) end
  redis.call('SET', user_key, json)
  redis.call('PUBLISH', CHANGES, 'u:' .. id)
end
-- Deletes an account, its email index (if it still points here, and is here: one of
-- another shard is released by the caller) and its sessions. Returns 1 if the account
-- key was there, and how many sessions went with it.
local function delete_user(id)
  local u = user_record(id)
  if u and type(u.email) == 'string' then
    local email_key = P_EMAIL .. u.email
    if redis.call('GET', email_key) == id then redis.call('DEL', email_key) end
    redis.call('ZREM', USER_INDEX, u.email .. '\n' .. id)
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
-- Deletes the rest of what was a deleted account's own, in the same script so it can
-- never stay behind: its cap, a field of the hash KEYS[first], and the keys from
-- KEYS[first + 1] on (`member_keys` in Rust: second factors, known devices, codes).
local function forget_member(id, first)
  redis.call('HDEL', KEYS[first], id)
  for i = first + 1, #KEYS do redis.call('DEL', KEYS[i]) end
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

// KEYS[5] user, KEYS[6] email index (both in one shard: the id was drawn in the address's);
// ARGV[7] id, ARGV[8] JSON, ARGV[9] expires_at. Returns 0 (nothing changed) if the
// address belongs to an account that is not pending or the id is taken by another
// address, -2 if it is held by an account of another shard (`addresses.rs`).
user_script!(
    USER_INSERT_PENDING,
    r#"
local id = ARGV[7]
local holder = redis.call('GET', KEYS[6])
local holds = false
if holder and holder ~= id then
  holds = held(holder, string.sub(KEYS[6], #P_EMAIL + 1))
  -- An account of another shard took this address (a changed address): the caller looks.
  if holds == nil then return -2 end
  local u = user_record(holder)
  if holds and not (u and u.status == 'pending') then return 0 end
end
if holder ~= id and redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
-- The replaced sign-up goes whole (sessions too); a stale key is only overwritten.
if holder and (holder == id or holds) then delete_user(holder) end
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
// KEYS[5..] `member_keys`; ARGV[7] id.
user_script!(
    USER_DELETE,
    r#"
local gone = delete_user(ARGV[7])
forget_member(ARGV[7], 5)
return gone
"#
);

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

// KEYS[1] user index; ARGV[1] user prefix, ARGV[2] cursor (the address of the last account
// of the previous page, or ''), ARGV[3] lower-case text ('' for any), ARGV[4] status (''
// for any), ARGV[5] limit, ARGV[6] budget. Returns {matching JSONs, the address to go on
// from, or ''}. Entries whose account is gone (a sign-up dropped by its TTL before the
// sweep) are removed.
static USER_PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local text, status = ARGV[3], ARGV[4]
local limit, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local function has(s) return type(s) == 'string' and string.find(string.lower(s), text, 1, true) end
-- After every entry of an address: ids are ASCII, below byte 255.
local function after(email) return email == '' and '-' or '(' .. email .. '\n\255' end
local out, seen, last = {}, 0, ARGV[2]
while seen < budget do
  local chunk = redis.call('ZRANGEBYLEX', KEYS[1], after(last), '+', 'LIMIT', 0, math.min(200, budget - seen))
  if #chunk == 0 then return {out, ''} end
  for _, entry in ipairs(chunk) do
    local nl = string.find(entry, '\n', 1, true) or #entry
    local email, id = string.sub(entry, 1, nl - 1), string.sub(entry, nl + 1)
    seen, last = seen + 1, email
    local json = redis.call('GET', ARGV[1] .. id)
    if not json then
      redis.call('ZREM', KEYS[1], entry)
    else
      local ok, u = pcall(cjson.decode, json)
      if ok and type(u) == 'table' and (status == '' or u.status == status)
        and (text == '' or has(u.email) or has(u.name)) then
        out[#out + 1] = json
        if #out == limit then
          local more = redis.call('ZRANGEBYLEX', KEYS[1], after(email), '+', 'LIMIT', 0, 1)
          return {out, #more > 0 and email or ''}
        end
      end
    end
  end
end
return {out, last}
"#,
    )
});

// KEYS[1] user set, KEYS[2] user index, KEYS[3] built flag; ARGV[1] user prefix,
// ARGV[2] SSCAN cursor, ARGV[3] batch. Indexes one batch of accounts; returns the next
// cursor ('0' once done, and then the flag is set).
static USER_INDEX_BUILD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local r = redis.call('SSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
for _, id in ipairs(r[2]) do
  local json = redis.call('GET', ARGV[1] .. id)
  if json then
    local ok, u = pcall(cjson.decode, json)
    if ok and type(u) == 'table' and type(u.email) == 'string' then
      redis.call('ZADD', KEYS[2], 0, u.email .. '\n' .. id)
    end
  end
end
if r[1] == '0' then redis.call('SET', KEYS[3], '1') end
return r[1]
"#,
    )
});

/// Builds `vigile:users_index` from `vigile:users` once (after an upgrade from a version
/// without it); one `EXISTS` when it was built. Accounts written meanwhile index
/// themselves (`put_user`), so a build racing them loses nothing.
pub(super) async fn build_index(
    conn: &mut super::endpoint::Conn,
    ns: Namespace,
) -> StoreResult<()> {
    let mut exists = ::redis::cmd("EXISTS");
    exists.arg(Key::UserIndexBuilt.name_in(ns));
    let built: u8 =
        super::migrate::bounded("EXISTS users_index_built", exists.query_async(conn)).await?;
    if built == 1 {
        return Ok(());
    }
    let mut cursor = "0".to_string();
    loop {
        let mut inv = USER_INDEX_BUILD.prepare_invoke();
        inv.key(Key::Users.name_in(ns))
            .key(Key::UserIndex.name_in(ns))
            .key(Key::UserIndexBuilt.name_in(ns))
            .arg(Prefix::User.in_ns(ns))
            .arg(&cursor)
            .arg(500);
        cursor = super::migrate::bounded("indexing accounts", inv.invoke_async(conn)).await?;
        if cursor == "0" {
            return Ok(());
        }
    }
}

/// An account script invocation with the calling convention of `user_prelude!`.
pub(super) fn user_call(script: &'static Script, ns: Namespace) -> ScriptInvocation<'static> {
    let mut inv = session_call(script, ns);
    inv.key(Key::Users.name_in(ns))
        .key(Key::PendingUsers.name_in(ns))
        .arg(Prefix::User.in_ns(ns))
        .arg(Prefix::UserEmail.in_ns(ns))
        .arg(Prefix::OrgMembers.in_ns(ns));
    inv
}

/// Declares what a script deleting account `id` also deletes (`forget_member` in the
/// prelude): the cap hash, then the second factors, known devices and pending codes, each
/// keyed by an id nobody reuses. (A pending account, all the sweep and a sign-up taking
/// an address delete, has none of these but possibly a cap an admin set.)
pub(super) fn member_keys(inv: &mut ScriptInvocation<'static>, id: &UserId, ns: Namespace) {
    inv.key(Key::MemberCaps.name_in(ns))
        .key(Key::Kept(crate::store::Kept::Factors, id.as_str()).name_in(ns))
        .key(Key::KnownDevices(id).name_in(ns));
    for channel in crate::store::Channel::ALL {
        inv.key(Key::ContactCode(id, channel).name_in(ns));
    }
}

fn changed(reply: i64, id: &UserId) -> StoreResult<bool> {
    match reply {
        -1 => Err(StoreError::Corrupt(format!("user record {id}"))),
        n => Ok(n == 1),
    }
}

impl RedisStore {
    pub(super) async fn insert_pending(&self, user: &User, expires_at: Millis) -> StoreResult<()> {
        // A sign-up's id is drawn in its address's shard (`UserId::for_address`):
        // activation and the sweep then change both in one script. An id of another shard
        // was drawn for another address: in use there, as far as this one is concerned.
        let shard = Shard::of_user(&user.id);
        if !self.together(shard, Shard::of(&user.email)) {
            return Err(StoreError::Conflict);
        }
        let pending = User {
            status: AccountStatus::Pending,
            ..user.clone()
        };
        let json = serde_json::to_string(&pending)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode user: {e}")))?;
        let ns = self.at(shard);
        for _ in 0..2 {
            let mut inv = user_call(&USER_INSERT_PENDING, ns);
            inv.key(Key::User(&user.id).name_in(ns))
                .key(Key::UserEmail(&user.email).name_in(ns))
                .arg(user.id.as_str())
                .arg(&json)
                .arg(expires_at);
            match self.call::<i64>(&inv).await? {
                1 => return Ok(()),
                // Held by an account of another shard: taken, unless that key was stale.
                -2 if !self.holder_holds(&user.email).await? => continue,
                _ => break,
            }
        }
        Err(StoreError::Conflict)
    }

    pub(super) async fn activate(&self, id: &UserId, now: Millis) -> StoreResult<bool> {
        let ns = self.of_user(id);
        let mut inv = user_call(&USER_ACTIVATE, ns);
        inv.key(Key::User(id).name_in(ns)).arg(id.as_str()).arg(now);
        changed(self.call(&inv).await?, id)
    }

    pub(super) async fn set_password(&self, id: &UserId, password_hash: &str) -> StoreResult<bool> {
        let ns = self.of_user(id);
        let mut inv = user_call(&USER_SET_PASSWORD, ns);
        inv.key(Key::User(id).name_in(ns))
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
        let ns = self.of_user(id);
        let mut inv = user_call(&USER_SET_PROFILE, ns);
        inv.key(Key::User(id).name_in(ns))
            .arg(id.as_str())
            .arg(name)
            .arg(lang.unwrap_or(""));
        changed(self.call(&inv).await?, id)
    }

    /// One page of accounts in address order. On a Cluster each shard gives its own page
    /// after the same address, and the pages merge: an account is shown only once every
    /// shard that stopped early (its scan budget spent) was read past its address.
    pub(super) async fn page_users(&self, query: &UserQuery) -> StoreResult<UserPage> {
        let limit = query.limit.max(1);
        let mut users = Vec::new();
        // The lowest address a shard stopped at without reading further.
        let mut bound: Option<String> = None;
        let after = query.after.as_deref().unwrap_or("");
        let status = query.status.map_or("", AccountStatus::as_str);
        let pages = self
            .in_every(|ns| async move {
                let mut inv = USER_PAGE.prepare_invoke();
                inv.key(Key::UserIndex.name_in(ns))
                    .arg(Prefix::User.in_ns(ns))
                    .arg(after)
                    .arg(&query.text)
                    .arg(status)
                    .arg(limit)
                    .arg(USER_SCAN_BUDGET);
                self.call::<(Vec<String>, String)>(&inv).await
            })
            .await?;
        for (jsons, next) in pages {
            for json in &jsons {
                users.push(super::user_from_json(json)?);
            }
            if !next.is_empty() && bound.as_ref().is_none_or(|b| next < *b) {
                bound = Some(next);
            }
        }
        users.sort_by(|a, b| a.email.cmp(&b.email));
        if let Some(bound) = &bound {
            users.retain(|u| u.email <= *bound);
        }
        let next = if users.len() > limit {
            users.truncate(limit);
            users.last().map(|u| u.email.clone())
        } else if users.len() == limit && bound.is_some() {
            users.last().map(|u| u.email.clone())
        } else {
            bound
        };
        Ok(UserPage { users, next })
    }

    pub(super) async fn delete_user(&self, id: &UserId) -> StoreResult<bool> {
        let email = self.address_to_release(id).await?;
        let ns = self.of_user(id);
        let mut inv = user_call(&USER_DELETE, ns);
        member_keys(&mut inv, id, ns);
        inv.arg(id.as_str());
        let gone = self.call::<i64>(&inv).await? == 1;
        self.released_after_delete(id, email.as_deref()).await?;
        Ok(gone)
    }

    /// Removes the sign-ups of `ns` expired at `now`, `batch` per script run. Returns how
    /// many records went (accounts and their sessions). A sign-up and its address share a
    /// shard, so nothing is left in another.
    pub(super) async fn sweep_pending(
        &self,
        ns: Namespace,
        now: Millis,
        batch: u64,
    ) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let mut inv = user_call(&SWEEP_PENDING, ns);
            inv.arg(now).arg(batch);
            let (accounts, removed): (u64, u64) = self.call(&inv).await?;
            total += removed;
            if accounts < batch {
                return Ok(total);
            }
        }
    }
}
