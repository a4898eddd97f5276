//! The shared store: Redis, for several gateway instances serving the same site.
//!
//! Every operation that touches more than one key, or reads then writes, is ONE Lua
//! script, so instances racing each other never see half an operation; this module must
//! never do read-then-write from Rust. Key names come from [`super::keys`] only; scripts
//! that derive a key from a value they read get the prefix as an argument.
//!
//! Sessions are hashes whose TTL (`PEXPIREAT`) is the session's own expiry, so Redis
//! drops dead sessions by itself; lookups still check validity against the `now` they are
//! given, since TTLs follow Redis's clock and tests pass instants in the future.
//! Numbers computed inside Lua are formatted with `%.0f` before being stored or passed to
//! a command, so millisecond timestamps never turn into `1.7e+12`.
//!
//! Connection behaviour: the [`ConnectionManager`] is created lazily, so a gateway starts
//! while Redis is down. Connecting and answering each time out after
//! [`CONNECT_TIMEOUT`] / [`RESPONSE_TIMEOUT`] and reconnection is retried only
//! [`RECONNECT_RETRIES`] times per attempt, and every call is bounded by
//! [`OP_DEADLINE`]: with Redis dead, calls fail fast with `StoreError::Unavailable` (the
//! gateway answers 503) instead of piling up. Each failed call makes the manager start a
//! fresh connection attempt, so once Redis is back the next calls succeed again without
//! any restart. Scripts are sent by SHA and reloaded after a Redis restart (`NOSCRIPT`).
//!
//! Layout: sessions, accounts and the secret here; sign-up accounts (pending, expiring)
//! in `redis/users.rs`; tokens, the outbox and counters each in their own file beside
//! it; `redis/expiring.rs` sweeps the token and counter keys by the `now` it is given.
//!
//! Needs Redis 5 or later (multi-field `HSET`, scripts replicated by effects, which
//! allows `TIME` before writes). Redis Cluster is not supported as is: scripts touch keys
//! they derive, which Cluster only allows within one hash slot.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, FromRedisValue, RedisError, Script, ScriptInvocation};
use async_trait::async_trait;

use super::keys::{Key, Prefix};
use super::*;

/// Bound on establishing a TCP connection to Redis.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on waiting for the answer to one command.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Connection retries (exponential backoff from 100 ms) before a call gives up.
pub const RECONNECT_RETRIES: usize = 1;
/// Overall bound on one store call, whatever the network does.
pub const OP_DEADLINE: Duration = Duration::from_secs(3);

/// Records deleted per `sweep` script run, so one run never blocks Redis for long.
const SWEEP_BATCH: u64 = 500;
/// Session touches sent together by `session_touch_many`.
const TOUCH_BATCH: usize = 256;

/// Shared by the session scripts. Calling convention: `KEYS[1]` is the global expiry
/// index, `ARGV[1..3]` the session, token and user-sessions key prefixes; each script's
/// own keys and arguments follow.
macro_rules! session_prelude {
    () => {
        r#"
local EXPIRY, P_SESSION, P_TOKEN, P_USER_SESSIONS = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local function int(x) return string.format('%.0f', x) end
-- nil when a field is missing: the Rust side then reports the record as corrupt.
local function expiry_of(last_seen, idle_ms, absolute)
  local l, i, a = tonumber(last_seen), tonumber(idle_ms), tonumber(absolute)
  if not (l and i and a) then return nil end
  return math.min(l + i, a)
end
local function expiry_of_key(key)
  local f = redis.call('HMGET', key, 'last_seen', 'idle_ms', 'absolute_expiry')
  return expiry_of(f[1], f[2], f[3])
end
-- Every gateway instance caches sessions until told they changed (`Change` in
-- store/changes.rs): each end of a session, whatever its cause, says so here.
local CHANGES = 'vigile:changes' -- store::changes::CHANNEL
local function delete_session(id)
  local key = P_SESSION .. id
  local f = redis.call('HMGET', key, 'token_hash', 'user_id')
  redis.call('ZREM', EXPIRY, id)
  if redis.call('DEL', key) == 0 then return 0 end
  if f[1] then
    redis.call('DEL', P_TOKEN .. f[1])
    redis.call('PUBLISH', CHANGES, 's:' .. f[1])
  end
  if f[2] then redis.call('ZREM', P_USER_SESSIONS .. f[2], id) end
  return 1
end
"#
    };
}

macro_rules! session_script {
    ($name:ident, $body:literal) => {
        static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(concat!(session_prelude!(), $body)));
    };
}

// After the macros, so the submodules can use them.
// `users` first: its `user_prelude!` is shared by the organisation scripts.
#[macro_use]
mod users;

mod changes;
mod contact;
mod counters;
mod devices;
mod eviction;
mod expiring;
mod kept;
mod orgs;
mod outbox;
mod record;
mod throttle;
mod tokens;

// KEYS[2] session, KEYS[3] token, KEYS[4] user sessions.
// ARGV[4] id, ARGV[5] replaced id or '', ARGV[6] expires_at, ARGV[7] absolute_expiry,
// ARGV[8..] the hash's field/value pairs. Returns 0 on a conflicting id or token.
session_script!(
    SESSION_INSERT,
    r#"
local id, replaces = ARGV[4], ARGV[5]
local holder = redis.call('GET', KEYS[3])
if (redis.call('EXISTS', KEYS[2]) == 1 and id ~= replaces) or (holder and holder ~= replaces) then
  return 0
end
if replaces ~= '' then delete_session(replaces) end
redis.call('HSET', KEYS[2], unpack(ARGV, 8))
redis.call('PEXPIREAT', KEYS[2], ARGV[6])
redis.call('SET', KEYS[3], id)
redis.call('PEXPIREAT', KEYS[3], ARGV[6])
redis.call('ZADD', EXPIRY, ARGV[6], id)
redis.call('ZADD', KEYS[4], ARGV[7], id)
-- The member index lives as long as its longest-lived session can.
local last = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[4], int(tonumber(last[2])))
return 1
"#
);

// KEYS[2] token; ARGV[4] now. Returns the session hash, or nil (deleting it if expired).
session_script!(
    SESSION_BY_TOKEN,
    r#"
local id = redis.call('GET', KEYS[2])
if not id then return false end
local key = P_SESSION .. id
local h = redis.call('HGETALL', key)
if #h == 0 then
  redis.call('DEL', KEYS[2])
  return false
end
local exp = expiry_of_key(key)
if exp and tonumber(ARGV[4]) >= exp then
  delete_session(id)
  return false
end
return h
"#
);

// KEYS[2] session; ARGV[4] id, ARGV[5] now. Returns 1 if the session is still there.
session_script!(
    SESSION_TOUCH,
    r#"
local f = redis.call('HMGET', KEYS[2], 'last_seen', 'idle_ms', 'absolute_expiry', 'token_hash')
local exp = expiry_of(f[1], f[2], f[3])
local now = tonumber(ARGV[5])
if not exp or now >= exp then return 0 end
-- Never move last_seen back (a slower request touching late).
local last = math.max(tonumber(f[1]), now)
if last == now then redis.call('HSET', KEYS[2], 'last_seen', ARGV[5]) end
local new_exp = int(math.min(last + tonumber(f[2]), tonumber(f[3])))
redis.call('PEXPIREAT', KEYS[2], new_exp)
if f[4] then redis.call('PEXPIREAT', P_TOKEN .. f[4], new_exp) end
redis.call('ZADD', EXPIRY, new_exp, ARGV[4])
return 1
"#
);

// ARGV[4] id.
session_script!(SESSION_DELETE, "return delete_session(ARGV[4])");

// KEYS[2] user sessions.
session_script!(
    SESSION_DELETE_ALL,
    r#"
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  n = n + delete_session(id)
end
redis.call('DEL', KEYS[2])
return n
"#
);

// KEYS[2] user sessions; ARGV[4] now. Drops index entries whose session key is gone.
session_script!(
    SESSIONS_OF,
    r#"
local now, out = tonumber(ARGV[4]), {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local key = P_SESSION .. id
  local h = redis.call('HGETALL', key)
  if #h == 0 then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', EXPIRY, id)
  else
    local exp = expiry_of_key(key)
    if not exp or now < exp then out[#out + 1] = h end
  end
end
return out
"#
);

// ARGV[4] now. Cleans by Redis's own clock (those keys are gone for sure), counts by `now`.
session_script!(
    SESSION_COUNT,
    r#"
local t = redis.call('TIME')
local server_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', EXPIRY, '-inf', int(server_now))
return redis.call('ZCOUNT', EXPIRY, '(' .. ARGV[4], '+inf')
"#
);

// ARGV[4] now, ARGV[5] batch size. Returns how many sessions it removed.
session_script!(
    SWEEP,
    r#"
local ids = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', ARGV[4], 'LIMIT', 0, ARGV[5])
for _, id in ipairs(ids) do delete_session(id) end
return #ids
"#
);

// KEYS[1] user, KEYS[2] email index, KEYS[3] user set; ARGV[1] id, ARGV[2] JSON.
static USER_INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"#,
    )
});

// KEYS[1] email index; ARGV[1] user prefix.
static USER_BY_EMAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('GET', ARGV[1] .. id)
"#,
    )
});

// KEYS[1] a set of ids; ARGV[1] the prefix of their JSON records (accounts,
// organisations). Returns the records that exist.
static SET_RECORDS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local u = redis.call('GET', ARGV[1] .. id)
  if u then out[#out + 1] = u end
end
return out
"#,
    )
});

// KEYS[1] secret; ARGV[1] candidate. First writer wins.
static SECRET_GET_OR_INIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"#,
    )
});

/// The Redis backend. Cheap to clone the connection inside; share it through an `Arc`.
pub struct RedisStore {
    /// For the change feed's own pub/sub connection.
    client: ::redis::Client,
    conn: ConnectionManager,
    guard: eviction::Guard,
}

fn map_err(e: RedisError) -> StoreError {
    if e.code() == Some("OOM") {
        return StoreError::Full(format!(
            "redis reached maxmemory and may evict nothing (noeviction): {e}"
        ));
    }
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            StoreError::Corrupt(format!("redis: {e}"))
        }
        _ => StoreError::Unavailable(format!("redis: {e}")),
    }
}

/// A session script invocation with the calling convention of `session_prelude!`.
fn session_call(script: &'static Script) -> ScriptInvocation<'static> {
    let mut inv = script.prepare_invoke();
    inv.key(Key::SessionExpiry.name())
        .arg(Prefix::Session.as_str())
        .arg(Prefix::SessionToken.as_str())
        .arg(Prefix::UserSessions.as_str());
    inv
}

fn session_fields(s: &SessionRecord) -> [(&'static str, String); 11] {
    [
        ("id", s.id.as_str().to_string()),
        ("token_hash", s.token_hash.as_str().to_string()),
        ("user_id", s.user_id.as_str().to_string()),
        ("device_id", s.device_id.as_str().to_string()),
        ("created_at", s.created_at.to_string()),
        ("last_seen", s.last_seen.to_string()),
        ("idle_ms", s.idle_ms.to_string()),
        ("absolute_expiry", s.absolute_expiry.to_string()),
        ("ip", s.ip.clone()),
        ("user_agent", s.user_agent.clone()),
        ("level", s.level.as_str().to_string()),
    ]
}

/// Rebuilds a session from the flat `HGETALL` reply.
fn session_from_hash(flat: Vec<String>) -> StoreResult<SessionRecord> {
    let mut r = record::HashRecord::new("session", flat);
    Ok(SessionRecord {
        id: SessionId::from_string(r.text("id")?),
        token_hash: TokenHash::from_hex(r.text("token_hash")?),
        user_id: UserId::from_string(r.text("user_id")?),
        device_id: DeviceId::from_string(r.text("device_id")?),
        created_at: r.number("created_at")?,
        last_seen: r.number("last_seen")?,
        idle_ms: r.number("idle_ms")?,
        absolute_expiry: r.number("absolute_expiry")?,
        ip: r.text("ip")?,
        user_agent: r.text("user_agent")?,
        // Absent in sessions opened before second factors existed.
        level: crate::store::AuthLevel::parse(&r.optional("level").unwrap_or_default()),
    })
}

fn user_from_json(json: &str) -> StoreResult<User> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("user record: {e}")))
}

impl RedisStore {
    /// Creates the store without connecting (see the module doc). Must be called inside a
    /// Tokio runtime: the connection manager spawns its tasks there.
    /// `allow_eviction`: serve even on a Redis whose `maxmemory-policy` evicts keys
    /// (`store.allow_eviction`, unsafe; see `redis/eviction.rs`).
    pub fn connect_lazy(url: &str, allow_eviction: bool) -> StoreResult<Self> {
        let client = ::redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(map_err)?;
        Ok(Self {
            client,
            conn,
            guard: eviction::Guard::new(allow_eviction),
        })
    }

    /// Refuses every call while the server's eviction policy is unsafe and not allowed,
    /// reading it first on a connection not checked yet.
    async fn guarded(&self) -> StoreResult<()> {
        if self.guard.unchecked() {
            self.check_policy().await?;
        }
        if self.guard.blocks() {
            return Err(StoreError::Unavailable(
                "redis evicts keys (maxmemory-policy): refusing to use it".into(),
            ));
        }
        Ok(())
    }

    /// Runs one plain command (single-key operations only: anything else is a script).
    async fn query<T: FromRedisValue>(&self, cmd: &::redis::Cmd) -> StoreResult<T> {
        self.guarded().await?;
        let mut conn = self.conn.clone();
        let result = match tokio::time::timeout(OP_DEADLINE, cmd.query_async(&mut conn)).await {
            Ok(result) => result.map_err(map_err),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis did not answer within {OP_DEADLINE:?}"
            ))),
        };
        self.after(result)
    }

    /// A call that failed for want of Redis makes the next one check the policy again (a
    /// server found evicting stays refused until a check finds it safe).
    fn after<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        if matches!(result, Err(StoreError::Unavailable(_))) && !self.guard.is_unsafe() {
            self.guard.forget();
        }
        result
    }

    /// Reads the server's eviction policy and records it; `Err` when it evicts and that is
    /// not allowed, or when Redis does not answer.
    async fn check_policy(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let mut cmd = ::redis::cmd("INFO");
        cmd.arg("memory");
        let info =
            match tokio::time::timeout(OP_DEADLINE, cmd.query_async::<String>(&mut conn)).await {
                Ok(result) => result.map_err(map_err)?,
                Err(_) => return Err(StoreError::Unavailable("redis INFO timed out".into())),
            };
        let policy = eviction::policy_in(&info).unwrap_or("unknown (not in INFO memory)");
        match self.guard.record(policy) {
            Ok(()) => Ok(()),
            Err(_) if self.guard.allowed => {
                tracing::warn!(policy, "store.allow_eviction: serving on an evicting Redis");
                Ok(())
            }
            Err(why) => Err(StoreError::Unavailable(why)),
        }
    }

    async fn call<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> StoreResult<T> {
        self.guarded().await?;
        let mut conn = self.conn.clone();
        let result = match tokio::time::timeout(OP_DEADLINE, inv.invoke_async(&mut conn)).await {
            Ok(result) => result.map_err(map_err),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis did not answer within {OP_DEADLINE:?}"
            ))),
        };
        self.after(result)
    }
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn eviction_unsafe(&self) -> bool {
        self.guard.is_unsafe()
    }

    fn changes(&self) -> crate::store::changes::ChangeFeed {
        let (tx, rx) = crate::store::changes::FeedSender::channel();
        tokio::spawn(changes::follow(self.client.clone(), tx));
        rx
    }

    /// Answers and reads the eviction policy (`INFO memory`), so a policy changed at run
    /// time is noticed at the next check.
    async fn ping(&self) -> StoreResult<()> {
        let checked = self.check_policy().await;
        self.after(checked)
    }

    async fn secret_get_or_init(&self, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        let mut inv = SECRET_GET_OR_INIT.prepare_invoke();
        inv.key(Key::Secret.name()).arg(candidate);
        self.call(&inv).await
    }

    async fn user_insert(&self, user: &User) -> StoreResult<()> {
        let json = serde_json::to_string(user)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode user: {e}")))?;
        let mut inv = USER_INSERT.prepare_invoke();
        inv.key(Key::User(&user.id).name())
            .key(Key::UserEmail(&user.email).name())
            .key(Key::Users.name())
            .arg(user.id.as_str())
            .arg(json);
        match self.call::<i64>(&inv).await? {
            1 => Ok(()),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let mut inv = USER_BY_EMAIL.prepare_invoke();
        inv.key(Key::UserEmail(email).name())
            .arg(Prefix::User.as_str());
        let json: Option<String> = self.call(&inv).await?;
        json.as_deref().map(user_from_json).transpose()
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(Key::User(id).name());
        let json: Option<String> = self.query(&cmd).await?;
        json.as_deref().map(user_from_json).transpose()
    }

    async fn user_list(&self) -> StoreResult<Vec<User>> {
        let mut inv = SET_RECORDS.prepare_invoke();
        inv.key(Key::Users.name()).arg(Prefix::User.as_str());
        let all: Vec<String> = self.call(&inv).await?;
        let mut users = all
            .iter()
            .map(|j| user_from_json(j))
            .collect::<StoreResult<Vec<_>>>()?;
        users.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(users)
    }

    async fn user_insert_pending(&self, user: &User, expires_at: Millis) -> StoreResult<()> {
        self.insert_pending(user, expires_at).await
    }

    async fn user_activate(&self, id: &UserId, now: Millis) -> StoreResult<bool> {
        self.activate(id, now).await
    }

    async fn user_set_password(&self, id: &UserId, password_hash: &str) -> StoreResult<bool> {
        self.set_password(id, password_hash).await
    }

    async fn user_delete(&self, id: &UserId) -> StoreResult<bool> {
        let deleted = self.delete_user(id).await?;
        // Its own key, keyed by a random id nobody reuses: no need to be in the script.
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(Key::KnownDevices(id).name())
            .arg(Key::Kept(crate::store::Kept::Factors, id.as_str()).name());
        let _: u64 = self.query(&cmd).await?;
        Ok(deleted)
    }

    async fn session_insert(
        &self,
        session: &SessionRecord,
        replaces: Option<&SessionId>,
    ) -> StoreResult<()> {
        let mut inv = session_call(&SESSION_INSERT);
        inv.key(Key::Session(&session.id).name())
            .key(Key::SessionToken(&session.token_hash).name())
            .key(Key::UserSessions(&session.user_id).name())
            .arg(session.id.as_str())
            .arg(replaces.map(SessionId::as_str).unwrap_or(""))
            .arg(session.expires_at())
            .arg(session.absolute_expiry);
        for (field, value) in session_fields(session) {
            inv.arg(field).arg(value);
        }
        match self.call::<i64>(&inv).await? {
            1 => Ok(()),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn session_by_token(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<SessionRecord>> {
        let mut inv = session_call(&SESSION_BY_TOKEN);
        inv.key(Key::SessionToken(token_hash).name()).arg(now);
        let Some(flat) = self.call::<Option<Vec<String>>>(&inv).await? else {
            return Ok(None);
        };
        let session = session_from_hash(flat)?;
        // The script checked already; checking again here keeps the contract local.
        Ok(session.is_valid_at(now).then_some(session))
    }

    async fn session_touch(&self, id: &SessionId, now: Millis) -> StoreResult<bool> {
        let mut inv = session_call(&SESSION_TOUCH);
        inv.key(Key::Session(id).name()).arg(id.as_str()).arg(now);
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn session_touch_many(&self, touches: &[(SessionId, Millis)]) -> StoreResult<u64> {
        // One script per session (each its own keys, Cluster-safe); the connection
        // pipelines them, so a batch costs about one round trip.
        let mut there = 0;
        for chunk in touches.chunks(TOUCH_BATCH) {
            let calls = chunk.iter().map(|(id, at)| self.session_touch(id, *at));
            for result in futures_util::future::join_all(calls).await {
                there += u64::from(result?);
            }
        }
        Ok(there)
    }

    async fn session_delete(&self, id: &SessionId) -> StoreResult<bool> {
        let mut inv = session_call(&SESSION_DELETE);
        inv.arg(id.as_str());
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn session_delete_all(&self, user: &UserId) -> StoreResult<u64> {
        let mut inv = session_call(&SESSION_DELETE_ALL);
        inv.key(Key::UserSessions(user).name());
        self.call(&inv).await
    }

    async fn sessions_of(&self, user: &UserId, now: Millis) -> StoreResult<Vec<SessionRecord>> {
        let mut inv = session_call(&SESSIONS_OF);
        inv.key(Key::UserSessions(user).name()).arg(now);
        let hashes: Vec<Vec<String>> = self.call(&inv).await?;
        let mut sessions = hashes
            .into_iter()
            .map(session_from_hash)
            .filter(|s| s.as_ref().map_or(true, |s| s.is_valid_at(now)))
            .collect::<StoreResult<Vec<_>>>()?;
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    async fn session_count(&self, now: Millis) -> StoreResult<u64> {
        let mut inv = session_call(&SESSION_COUNT);
        inv.arg(now);
        self.call(&inv).await
    }

    async fn sweep(&self, now: Millis) -> StoreResult<u64> {
        // Batches keep each script short; Redis serves other clients in between.
        let mut total = 0;
        loop {
            let mut inv = session_call(&SWEEP);
            inv.arg(now).arg(SWEEP_BATCH);
            let removed: u64 = self.call(&inv).await?;
            total += removed;
            if removed < SWEEP_BATCH {
                break;
            }
        }
        // After the sessions, so a session both expired and of an expired sign-up is
        // counted once, as SQLite does.
        total += self.sweep_pending(now, SWEEP_BATCH).await?;
        total += self.sweep_expiring(now, SWEEP_BATCH).await?;
        Ok(total)
    }
}
