//! The shared store: Redis, for several gateway instances serving the same site.
//!
//! Every operation that touches more than one key, or reads then writes, is ONE Lua
//! script, so instances racing each other never see half an operation; this module must
//! never do read-then-write from Rust. Key names come from [`super::keys`] only; scripts
//! that derive a key from a value they read get the prefix as an argument.
//!
//! Sessions are compact hashes (listpacks, layout in `keys.rs`) whose TTL (`PEXPIREAT`) is
//! the session's own expiry, so Redis drops dead sessions by itself; their index entries,
//! in shared buckets without TTL, go with them or with the sweep. Lookups still check
//! validity against the `now` they are given, since TTLs follow Redis's clock and tests
//! pass instants in the future. Sessions stored by earlier versions are converted by the
//! first call that reaches the server (`redis/migrate.rs`).
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
//! it; `redis/expiring.rs` sweeps the token and counter keys by the `now` it is given;
//! `redis/migrate.rs` converts earlier session layouts.
//!
//! Needs Redis 5 or later (multi-field `HSET`, scripts replicated by effects; 7 calls
//! small hashes and sorted sets listpacks, 5 and 6 ziplists, the same compact encoding).
//! Sentinel is supported (`redis/endpoint.rs`): the master is followed through
//! failovers. So is Redis Cluster (`redis/cluster.rs`): scripts touch keys they derive,
//! which Cluster allows only within one hash slot, so there every key carries the hash
//! tag of its shard ([`Namespace::Cluster`], `store::shard`) and each call runs in the
//! shard of the record it is about (`of_user`, `of`, `of_token`, `global`); what reads
//! or sweeps the whole store visits every shard (`every`). Every script names at least
//! one key, which sends it to that shard's master. Where two records a call changes live
//! in different shards, the call changes them in steps (`redis/addresses.rs`).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::ConnectionManagerConfig;
use ::redis::{ErrorKind, FromRedisValue, RedisError, Script, ScriptInvocation};
use async_trait::async_trait;

use super::keys::{Key, Namespace, Prefix};
use super::shard::Shard;
use super::*;

/// Bound on establishing a TCP connection to Redis.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on waiting for the answer to one command.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Connection retries (exponential backoff from 100 ms) before a call gives up.
pub const RECONNECT_RETRIES: usize = 1;
/// Tries of a command on a Cluster after an error: none. The cluster client would also
/// retry after a lost or timed-out answer, running again a script that may have run (a
/// failed login counted twice); like the single-server connection, a call fails instead
/// (503). Only a command a node refused without running it is sent again, where the slot
/// went (`endpoint::REFUSED_TRIES`).
const CLUSTER_RETRIES: u32 = 0;
/// Overall bound on one store call, whatever the network does.
pub const OP_DEADLINE: Duration = Duration::from_secs(3);

/// Records deleted per `sweep` script run, so one run never blocks Redis for long.
const SWEEP_BATCH: u64 = 500;
/// Session touches sent together by `session_touch_many`.
const TOUCH_BATCH: usize = 256;

/// Shared by the session scripts (layout in `keys.rs`). Calling convention: `KEYS[1]` the
/// session-bucket index, `KEYS[2]` the session total, `ARGV[1..3]` the session, token-bucket
/// and member-bucket key prefixes; each script's own keys and arguments follow, from
/// `KEYS[3]` and `ARGV[4]`. A session travels as 11 arguments (`session_arg`, written by
/// [`session_args`]) and comes back as 11 strings (`reply_of`, read by
/// [`session_from_reply`]).
macro_rules! session_prelude {
    () => {
        r#"
local BUCKETS, TOTAL = KEYS[1], KEYS[2]
local P_SESSION, P_TOKENS, P_MEMBERS = ARGV[1], ARGV[2], ARGV[3]
local function int(x) return string.format('%.0f', x) end
-- nil when a field is missing: the Rust side then reports the record as corrupt.
local function expiry_of(last_seen, idle_ms, absolute)
  local l, i, a = tonumber(last_seen), tonumber(idle_ms), tonumber(absolute)
  if not (l and i and a) then return nil end
  return math.min(l + i, a)
end
local function expiry_of_key(key)
  local f = redis.call('HMGET', key, 'l', 'i', 'a')
  return expiry_of(f[1], f[2], f[3])
end
-- A session hash keeps its token hash as 32 raw bytes (half the hex); keys, messages and
-- replies use the hex, exactly as `TokenHash::as_str` spells it.
local function hex_of(raw) return string.format(string.rep('%02x', #raw), string.byte(raw, 1, -1)) end
local function raw_of(hex)
  local bytes = {}
  for i = 1, #hex, 2 do bytes[#bytes + 1] = tonumber(string.sub(hex, i, i + 1), 16) end
  return string.char(unpack(bytes))
end
-- Where a token hash's entry lives: its bucket and its field there (108 bits in all).
local function token_slot(hex) return P_TOKENS .. string.sub(hex, 1, 3), string.sub(hex, 4, 27) end
local function member_bucket(user) return P_MEMBERS .. string.sub(redis.sha1hex(user), 1, 3) end
-- A member-bucket entry: user, session id and the token's bucket digits.
local function entry_of(user, id, hex) return user .. ' ' .. id .. ' ' .. string.sub(hex, 1, 3) end
local function parse_entry(e) return string.match(e, '^(.*) (%S+) (%x%x%x)$') end
-- Lowers a member bucket's bound in BUCKETS to `score` if that is earlier (never raises
-- it: a touch or a delete leaves it low, and the sweep makes it exact).
local function bound(bucket, score)
  local cur = redis.call('ZSCORE', BUCKETS, bucket)
  if not cur or tonumber(score) < tonumber(cur) then redis.call('ZADD', BUCKETS, score, bucket) end
end
local function index_put(user, id, hex, exp)
  local bucket = member_bucket(user)
  if redis.call('ZADD', bucket, exp, entry_of(user, id, hex)) == 1 then redis.call('INCR', TOTAL) end
  bound(bucket, exp)
end
local function index_drop(bucket, e)
  if redis.call('ZREM', bucket, e) == 1 then redis.call('DECR', TOTAL) end
end
local function rebound(bucket)
  local first = redis.call('ZRANGE', bucket, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', BUCKETS, bucket)
  else
    redis.call('ZADD', BUCKETS, first[2], bucket)
  end
end
-- Every gateway instance caches sessions until told they changed (`Change` in
-- store/changes.rs): each end of a session, whatever its cause, says so here.
local CHANGES = 'vigile:changes' -- store::changes::CHANNEL
local function delete_session(id)
  local key = P_SESSION .. id
  local f = redis.call('HMGET', key, 't', 'u')
  if redis.call('DEL', key) == 0 then return 0 end
  if f[1] then
    local hex = hex_of(f[1])
    local tokens, field = token_slot(hex)
    if redis.call('HGET', tokens, field) == id then redis.call('HDEL', tokens, field) end
    if f[2] then index_drop(member_bucket(f[2]), entry_of(f[2], id, hex)) end
    redis.call('PUBLISH', CHANGES, 's:' .. hex)
  end
  return 1
end
-- Drops a member-bucket entry, and the token entry of its session if Redis already
-- dropped the session's hash by TTL (found by its value in the bucket the entry names).
local function forget(bucket, e)
  local _, id, digits = parse_entry(e)
  if id and redis.call('EXISTS', P_SESSION .. id) == 0 then
    local tokens = P_TOKENS .. digits
    local all = redis.call('HGETALL', tokens)
    for i = 1, #all, 2 do
      if all[i + 1] == id then
        redis.call('HDEL', tokens, all[i])
        break
      end
    end
  end
  index_drop(bucket, e)
end
-- A member's bucket and their entries in it: {entry, session id, score} each.
local function entries_of(user)
  local bucket, out = member_bucket(user), {}
  local flat = redis.call('ZRANGE', bucket, 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    local u, id = parse_entry(flat[i])
    if u == user then out[#out + 1] = {flat[i], id, tonumber(flat[i + 1])} end
  end
  return bucket, out
end
-- Ends every session of a member. Returns how many sessions were still there.
local function delete_sessions_of(user)
  local bucket, list = entries_of(user)
  local n = 0
  for _, e in ipairs(list) do
    if delete_session(e[2]) == 1 then n = n + 1 else forget(bucket, e[1]) end
  end
  return n
end
-- The session as `session_from_reply` reads it, from its HGETALL: nil if there is none,
-- {id, field} if a field is missing (a corrupt record).
local REQUIRED = {'t', 'u', 'd', 'c', 'l', 'i', 'a'}
local function reply_of(id, flat)
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  for _, name in ipairs(REQUIRED) do
    if not h[name] then return {id, name} end
  end
  local ua, n = h.g or '', 2
  while h['g' .. n] do
    ua, n = ua .. h['g' .. n], n + 1
  end
  return {id, hex_of(h.t), h.u, h.d, h.c, h.l, h.i, h.a, h.p or '', ua, h.v or 'password'}
end
local function read_session(id) return reply_of(id, redis.call('HGETALL', P_SESSION .. id)) end
-- A session record from ARGV[i..i+10].
local function session_arg(i)
  return {id = ARGV[i], token = ARGV[i + 1], user = ARGV[i + 2], device = ARGV[i + 3],
    created = ARGV[i + 4], last_seen = ARGV[i + 5], idle = ARGV[i + 6], absolute = ARGV[i + 7],
    ip = ARGV[i + 8], ua = ARGV[i + 9], level = ARGV[i + 10]}
end
-- Whether `s` may be stored: its id free (or the session it replaces) and its token slot
-- free (or held by the session it replaces, or by one Redis already dropped).
local function session_free(s, replaces)
  if redis.call('EXISTS', P_SESSION .. s.id) == 1 and s.id ~= replaces then return false end
  local tokens, field = token_slot(s.token)
  local holder = redis.call('HGET', tokens, field)
  return not holder or holder == replaces or redis.call('EXISTS', P_SESSION .. holder) == 0
end
local function write_session(s)
  local key, exp = P_SESSION .. s.id, int(expiry_of(s.last_seen, s.idle, s.absolute))
  local fields = {'t', raw_of(s.token), 'u', s.user, 'd', s.device, 'c', s.created,
    'l', s.last_seen, 'i', s.idle, 'a', s.absolute, 'p', s.ip}
  -- In pieces of 64 bytes: one longer value turns the whole hash into a hashtable,
  -- about three times the memory.
  local ua, n = s.ua, 1
  repeat
    fields[#fields + 1] = n == 1 and 'g' or 'g' .. n
    fields[#fields + 1] = string.sub(ua, 1, 64)
    ua, n = string.sub(ua, 65), n + 1
  until ua == ''
  if s.level ~= 'password' then
    fields[#fields + 1] = 'v'
    fields[#fields + 1] = s.level
  end
  redis.call('HSET', key, unpack(fields))
  redis.call('PEXPIREAT', key, exp)
  local tokens, field = token_slot(s.token)
  redis.call('HSET', tokens, field, s.id)
  index_put(s.user, s.id, s.token, exp)
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
// `users` first: its `user_prelude!` is shared by the organisation scripts; `migrate`
// before the scripts below: its `legacy_prelude!` serves the lookup by token.
#[macro_use]
mod users;
#[macro_use]
mod migrate;
mod forgotten;

mod addresses;
mod audit;
mod changes;
pub mod cluster;
mod contact;
mod counters;
mod devices;
mod endpoint;
mod eviction;
mod expiring;
mod kept;
mod orgs;
mod outbox;
mod record;
pub mod sentinel;
mod throttle;
mod tokens;

// ARGV[4] replaced id or '', ARGV[5..15] the session. Returns 0 on a conflicting id or
// token.
session_script!(
    SESSION_INSERT,
    r#"
local replaces, s = ARGV[4], session_arg(5)
if not session_free(s, replaces) then return 0 end
if replaces ~= '' then delete_session(replaces) end
write_session(s)
return 1
"#
);

// The lookup behind every signed-in request. Legacy convention (`legacy_prelude!`), then
// KEYS[4] token bucket, KEYS[5] layout 1's token key; ARGV[7] token hash, ARGV[8] now.
// Returns the session, or nil (deleting it if expired). A session of layout 1, written by
// an instance of the previous version during a rolling upgrade, is converted here.
legacy_script!(
    SESSION_BY_TOKEN,
    r#"
local hex, now = ARGV[7], tonumber(ARGV[8])
local _, field = token_slot(hex)
local id = redis.call('HGET', KEYS[4], field)
if not id then
  local old = redis.call('GET', KEYS[5])
  if not old or adopt(old) == 0 then return false end
  id = old
end
local s = read_session(id)
if not s then
  redis.call('HDEL', KEYS[4], field)
  return false
end
if #s == 2 then return s end
-- Another token sharing these 108 bits: not this one's session.
if s[2] ~= hex then return false end
local exp = expiry_of(s[6], s[7], s[8])
if exp and now >= exp then
  delete_session(id)
  return false
end
return s
"#
);

// ARGV[4] id, ARGV[5] now. Returns 1 if the session is still there.
session_script!(
    SESSION_TOUCH,
    r#"
local key = P_SESSION .. ARGV[4]
local f = redis.call('HMGET', key, 'l', 'i', 'a', 't', 'u')
local exp = expiry_of(f[1], f[2], f[3])
local now = tonumber(ARGV[5])
if not exp or now >= exp then return 0 end
-- Never move last_seen back (a slower request touching late).
local last = math.max(tonumber(f[1]), now)
if last == now then redis.call('HSET', key, 'l', ARGV[5]) end
local new_exp = int(math.min(last + tonumber(f[2]), tonumber(f[3])))
redis.call('PEXPIREAT', key, new_exp)
if f[4] and f[5] then index_put(f[5], ARGV[4], hex_of(f[4]), new_exp) end
return 1
"#
);

// ARGV[4] id.
session_script!(SESSION_DELETE, "return delete_session(ARGV[4])");

// ARGV[4] user id.
session_script!(SESSION_DELETE_ALL, "return delete_sessions_of(ARGV[4])");

// ARGV[4] user id, ARGV[5] now. Drops the index entries of sessions Redis dropped.
session_script!(
    SESSIONS_OF,
    r#"
local now, out = tonumber(ARGV[5]), {}
local bucket, list = entries_of(ARGV[4])
for _, e in ipairs(list) do
  local s = read_session(e[2])
  if not s then
    forget(bucket, e[1])
  elseif #s == 2 then
    out[#out + 1] = s
  else
    local exp = expiry_of(s[6], s[7], s[8])
    if not exp or now < exp then out[#out + 1] = s end
  end
end
return out
"#
);

// ARGV[4] now. The total less the entries expired at `now`, which only the buckets whose
// bound is at or before `now` can hold (with sweeps every minute, a handful).
session_script!(
    SESSION_COUNT,
    r#"
local expired = 0
for _, bucket in ipairs(redis.call('ZRANGEBYSCORE', BUCKETS, '-inf', ARGV[4])) do
  expired = expired + redis.call('ZCOUNT', bucket, '-inf', ARGV[4])
end
return math.max(0, tonumber(redis.call('GET', TOTAL) or '0') - expired)
"#
);

// ARGV[4] now, ARGV[5] batch size. Returns how many index entries it removed (a session
// each, whether its hash was still there or Redis had dropped it).
session_script!(
    SWEEP,
    r#"
local now, batch, removed = ARGV[4], tonumber(ARGV[5]), 0
for _, bucket in ipairs(redis.call('ZRANGEBYSCORE', BUCKETS, '-inf', now)) do
  local expired = redis.call('ZRANGEBYSCORE', bucket, '-inf', now, 'LIMIT', 0, batch - removed)
  for _, e in ipairs(expired) do
    local _, id = parse_entry(e)
    if not (id and delete_session(id) == 1) then forget(bucket, e) end
    -- Whatever the session's own fields said, this entry goes.
    index_drop(bucket, e)
    removed = removed + 1
  end
  if removed >= batch then return removed end
  rebound(bucket)
end
return removed
"#
);

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
    /// The master (one address, or followed through Sentinel) and the connection to it.
    endpoint: Arc<endpoint::Endpoint>,
    guard: eviction::Guard,
    /// Set once the sessions are known to be in the current layout (`redis/migrate.rs`):
    /// the first call that reaches a safe server converts them, the others wait for it.
    layout: tokio::sync::OnceCell<()>,
    /// On a Cluster: key names carry their shard's hash tag (`keys.rs`, `shard.rs`).
    cluster: bool,
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
fn session_call(script: &'static Script, ns: Namespace) -> ScriptInvocation<'static> {
    let mut inv = script.prepare_invoke();
    inv.key(Key::SessionBuckets.name_in(ns))
        .key(Key::SessionTotal.name_in(ns))
        .arg(Prefix::Session.in_ns(ns))
        .arg(Prefix::SessionTokens.in_ns(ns))
        .arg(Prefix::SessionMembers.in_ns(ns));
    inv
}

/// A session as the scripts take it (`session_arg` in `session_prelude!`): 11 arguments.
fn session_args(inv: &mut ScriptInvocation<'_>, s: &SessionRecord) -> StoreResult<()> {
    // The scripts keep it as 32 raw bytes; anything else would not come back the same.
    let hex = s.token_hash.as_str();
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::Corrupt(
            "session token hash is not a lower-case hex SHA-256".into(),
        ));
    }
    // A member-bucket entry is `{user} {id} {hhh}`: an id with a space could not be read
    // back (ids are random base64url: never the case).
    if s.id.as_str().is_empty() || s.id.as_str().contains(char::is_whitespace) {
        return Err(StoreError::Corrupt(format!(
            "session id {:?}",
            s.id.as_str()
        )));
    }
    inv.arg(s.id.as_str())
        .arg(hex)
        .arg(s.user_id.as_str())
        .arg(s.device_id.as_str())
        .arg(s.created_at)
        .arg(s.last_seen)
        .arg(s.idle_ms)
        .arg(s.absolute_expiry)
        .arg(&s.ip)
        .arg(&s.user_agent)
        .arg(s.level.as_str());
    Ok(())
}

/// Rebuilds a session from a script's reply (`reply_of` in `session_prelude!`): 11 strings
/// in [`session_args`]'s order, or the id and the name of a missing field.
fn session_from_reply(reply: Vec<String>) -> StoreResult<SessionRecord> {
    let [id, token, user, device, created, last_seen, idle, absolute, ip, ua, level] =
        <[String; 11]>::try_from(reply).map_err(|r| match r.as_slice() {
            [id, field] => StoreError::Corrupt(format!("session {id} without field {field}")),
            _ => StoreError::Corrupt(format!("session reply of {} values", r.len())),
        })?;
    let number = |name: &str, v: &str| {
        v.parse::<Millis>()
            .map_err(|_| StoreError::Corrupt(format!("session {id}: bad {name} {v:?}")))
    };
    Ok(SessionRecord {
        token_hash: TokenHash::from_hex(token),
        user_id: UserId::from_string(user),
        device_id: DeviceId::from_string(device),
        created_at: number("created_at", &created)?,
        last_seen: number("last_seen", &last_seen)?,
        idle_ms: number("idle_ms", &idle)?,
        absolute_expiry: number("absolute_expiry", &absolute)?,
        ip,
        user_agent: ua,
        level: crate::store::AuthLevel::parse(&level),
        id: SessionId::from_string(id),
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
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(500));
        let mut cluster = false;
        let endpoint = if url.starts_with(sentinel::SCHEME) {
            let url = sentinel::SentinelUrl::parse(url).map_err(StoreError::Unavailable)?;
            let endpoint = endpoint::Endpoint::sentinel(&url, config)?;
            endpoint.watch();
            endpoint
        } else if url.starts_with(cluster::SCHEME) {
            let url = cluster::ClusterUrl::parse(url).map_err(StoreError::Unavailable)?;
            cluster = true;
            endpoint::Endpoint::cluster(&url, config, CLUSTER_RETRIES)?
        } else {
            let client = ::redis::Client::open(url)
                .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
            endpoint::Endpoint::fixed(client, config)?
        };
        Ok(Self {
            endpoint,
            guard: eviction::Guard::new(allow_eviction),
            layout: tokio::sync::OnceCell::new(),
            cluster,
        })
    }

    /// The namespace of `shard`: on one Redis (or through Sentinel) every shard is
    /// spelled `vigile:`.
    fn at(&self, shard: Shard) -> Namespace {
        if self.cluster {
            Namespace::Cluster(shard)
        } else {
            Namespace::Plain
        }
    }

    /// Where what belongs to the whole site lives.
    fn global(&self) -> Namespace {
        self.at(Shard::GLOBAL)
    }

    fn of_user(&self, id: &UserId) -> Namespace {
        self.at(Shard::of_user(id))
    }

    /// The namespace of the records of an address, a session id, an organisation id, a
    /// client address or a device id.
    fn of(&self, owner: &str) -> Namespace {
        self.at(Shard::of(owner))
    }

    fn of_token(&self, hash: &TokenHash) -> Namespace {
        self.at(Shard::of_token(hash))
    }

    /// A session's shard: its member's, where its id and token were drawn (`new_session`).
    fn session_shard(&self, s: &SessionRecord) -> StoreResult<Shard> {
        let shard = Shard::of_user(&s.user_id);
        self.drawn_in("a session id", Shard::of(s.id.as_str()), shard)?;
        self.drawn_in("a session token", Shard::of_token(&s.token_hash), shard)?;
        Ok(shard)
    }

    /// Every namespace, for what reads or sweeps the whole store: one on one Redis.
    fn every(&self) -> Vec<Namespace> {
        if self.cluster {
            Shard::every().map(Namespace::Cluster).collect()
        } else {
            vec![Namespace::Plain]
        }
    }

    /// Runs `read` in every namespace at once (the connection pipelines the calls): the
    /// answers in [`Self::every`]'s order, or the first error.
    async fn in_every<T, Fut>(&self, read: impl Fn(Namespace) -> Fut) -> StoreResult<Vec<T>>
    where
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        futures_util::future::join_all(self.every().into_iter().map(read))
            .await
            .into_iter()
            .collect()
    }

    /// The JSON records named by the ids in `set` (accounts, organisations), of `ns`.
    async fn records_of_set(
        &self,
        ns: Namespace,
        set: Key<'_>,
        prefix: Prefix,
    ) -> StoreResult<Vec<String>> {
        let mut inv = SET_RECORDS.prepare_invoke();
        inv.key(set.name_in(ns)).arg(prefix.in_ns(ns));
        self.call(&inv).await
    }

    /// A session `replaces` (the browser's old cookie) as the opening script may end it
    /// (in the new session's `shard`), or as to end after, in its own shard (another
    /// member's).
    fn replaced<'a>(
        &self,
        replaces: Option<&'a SessionId>,
        shard: Shard,
    ) -> (Option<&'a SessionId>, Option<&'a SessionId>) {
        match replaces {
            Some(r) if !self.together(Shard::of(r.as_str()), shard) => (None, Some(r)),
            r => (r, None),
        }
    }

    /// Whether two records share a shard (always on one Redis).
    fn together(&self, a: Shard, b: Shard) -> bool {
        !self.cluster || a == b
    }

    /// On a Cluster, `what` must have been drawn in `want`'s shard (`shard::draw_in`) for
    /// the script that writes both to reach both; anything else is a bug, said loudly.
    fn drawn_in(&self, what: &str, got: Shard, want: Shard) -> StoreResult<()> {
        if self.together(got, want) {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "{what} was not drawn in its owner's shard ({} for {})",
                got.digit(),
                want.digit()
            )))
        }
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
        self.current_layout().await
    }

    /// Converts the sessions of an earlier layout, once per store object (cheap after
    /// that: a set cell). A failure (Redis gone half-way) leaves it to the next call.
    async fn current_layout(&self) -> StoreResult<()> {
        let result = self
            .layout
            .get_or_try_init(|| async {
                let current = self.endpoint.current().await?;
                let result = migrate::run(current.conn.clone(), self.global()).await;
                self.failed_on(&current, &result);
                result
            })
            .await
            .map(drop);
        if let Err(e) = &result {
            tracing::warn!(error = %e, "converting sessions to the current layout failed; the next call tries again");
        }
        self.after(result)
    }

    /// Runs one plain command (single-key operations only: anything else is a script).
    async fn query<T: FromRedisValue>(&self, cmd: &::redis::Cmd) -> StoreResult<T> {
        self.guarded().await?;
        let result = self
            .on_master(
                |mut conn| async move { cmd.query_async(&mut conn).await },
                || format!("redis did not answer within {OP_DEADLINE:?}"),
            )
            .await;
        self.after(result)
    }

    /// Runs `op` on the master's connection, bounded by [`OP_DEADLINE`] (`timed_out` says
    /// why when it is not met); a failure for want of Redis makes the next call ask where
    /// the master is, through Sentinel (see `redis/endpoint.rs`).
    async fn on_master<T, Fut>(
        &self,
        op: impl FnOnce(endpoint::Conn) -> Fut,
        timed_out: impl FnOnce() -> String,
    ) -> StoreResult<T>
    where
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        let current = self.endpoint.current().await?;
        let result = match tokio::time::timeout(OP_DEADLINE, op(current.conn.clone())).await {
            Ok(result) => result.map_err(map_err),
            Err(_) => Err(StoreError::Unavailable(timed_out())),
        };
        self.failed_on(&current, &result);
        result
    }

    /// A call on `current` that failed for want of Redis: through Sentinel, the next call
    /// asks where the master is (see `redis/endpoint.rs`).
    fn failed_on<T>(&self, current: &endpoint::Current, result: &StoreResult<T>) {
        if matches!(result, Err(StoreError::Unavailable(_))) {
            self.endpoint.failed(current.generation);
        }
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
        let mut cmd = ::redis::cmd("INFO");
        cmd.arg("memory");
        let cmd = &cmd;
        // One server's answer, or on a Cluster every master's (by node).
        let info: ::redis::Value = self
            .on_master(
                |mut conn| async move { cmd.query_async(&mut conn).await },
                || "redis INFO timed out".into(),
            )
            .await?;
        let policy = eviction::policy_of(&info);
        let policy = policy.as_deref().unwrap_or("unknown (not in INFO memory)");
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
        let result = self
            .on_master(
                |mut conn| async move { inv.invoke_async(&mut conn).await },
                || format!("redis did not answer within {OP_DEADLINE:?}"),
            )
            .await;
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
        // On a Cluster the feed's node is not every shard's master: heartbeats through
        // each shard (`redis/changes.rs`).
        let heartbeats = if self.cluster {
            self.every()
                .into_iter()
                .map(|ns| Key::Layout.name_in(ns))
                .collect()
        } else {
            Vec::new()
        };
        tokio::spawn(changes::follow(self.endpoint.clone(), tx, heartbeats));
        rx
    }

    /// Answers and reads the eviction policy (`INFO memory`), so a policy changed at run
    /// time is noticed at the next check.
    async fn ping(&self) -> StoreResult<()> {
        let checked = self.check_policy().await;
        self.after(checked)?;
        if self.cluster {
            // INFO went to the masters the client could reach, and answers without the
            // others: a read in each shard fails while its master is down.
            self.in_every(|ns| async move {
                let mut get = ::redis::cmd("GET");
                get.arg(Key::Layout.name_in(ns));
                self.query::<Option<String>>(&get).await
            })
            .await?;
            let probe = migrate::one_slot_probe(self.global());
            if self.query::<u8>(&probe).await? > 0 {
                return Err(migrate::one_slot_refused());
            }
        }
        // Not ready before the sessions are readable (the first start after an upgrade).
        self.current_layout().await
    }

    async fn secret_get_or_init(&self, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        let mut inv = SECRET_GET_OR_INIT.prepare_invoke();
        inv.key(Key::Secret.name_in(self.global())).arg(candidate);
        self.call(&inv).await
    }

    async fn user_insert(&self, user: &User) -> StoreResult<()> {
        self.insert_user(user).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.user_of_address(email).await
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(Key::User(id).name_in(self.of_user(id)));
        let json: Option<String> = self.query(&cmd).await?;
        json.as_deref().map(user_from_json).transpose()
    }

    async fn user_list(&self) -> StoreResult<Vec<User>> {
        let mut users = Vec::new();
        let all = self
            .in_every(|ns| self.records_of_set(ns, Key::Users, Prefix::User))
            .await?;
        for json in all.iter().flatten() {
            users.push(user_from_json(json)?);
        }
        users.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(users)
    }

    async fn user_counts(&self) -> StoreResult<(u64, u64)> {
        // The user set holds pending sign-ups too (until activated, or swept).
        let counts = self
            .in_every(|ns| async move {
                let mut users = ::redis::cmd("SCARD");
                users.arg(Key::Users.name_in(ns));
                let mut pending = ::redis::cmd("ZCARD");
                pending.arg(Key::PendingUsers.name_in(ns));
                Ok::<_, StoreError>((
                    self.query::<u64>(&users).await?,
                    self.query::<u64>(&pending).await?,
                ))
            })
            .await?;
        Ok(counts
            .into_iter()
            .fold((0, 0), |(a, w), (users, pending)| (a + users, w + pending)))
    }

    async fn user_page(&self, query: &UserQuery) -> StoreResult<UserPage> {
        self.page_users(query).await
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

    async fn user_set_profile(
        &self,
        id: &UserId,
        name: &str,
        lang: Option<&str>,
    ) -> StoreResult<bool> {
        self.set_profile(id, name, lang).await
    }

    async fn user_delete(&self, id: &UserId) -> StoreResult<bool> {
        self.delete_user(id).await
    }

    async fn session_insert(
        &self,
        session: &SessionRecord,
        replaces: Option<&SessionId>,
    ) -> StoreResult<()> {
        let shard = self.session_shard(session)?;
        let (here, elsewhere) = self.replaced(replaces, shard);
        let mut inv = session_call(&SESSION_INSERT, self.at(shard));
        inv.arg(here.map(SessionId::as_str).unwrap_or(""));
        session_args(&mut inv, session)?;
        if self.call::<i64>(&inv).await? != 1 {
            return Err(StoreError::Conflict);
        }
        if let Some(old) = elsewhere {
            self.session_delete(old).await?;
        }
        Ok(())
    }

    async fn session_by_token(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<SessionRecord>> {
        let ns = self.of_token(token_hash);
        let mut inv = migrate::legacy_call(&SESSION_BY_TOKEN, ns);
        inv.key(Key::SessionTokens(token_hash).name_in(ns))
            .key(Key::LegacySessionToken(token_hash).name_in(ns))
            .arg(token_hash.as_str())
            .arg(now);
        let Some(reply) = self.call::<Option<Vec<String>>>(&inv).await? else {
            return Ok(None);
        };
        let session = session_from_reply(reply)?;
        // The script checked already (the whole hash, not only the 108 bits that found
        // it); checking again here keeps the contract local, in constant time.
        Ok((session.token_hash == *token_hash && session.is_valid_at(now)).then_some(session))
    }

    async fn session_touch(&self, id: &SessionId, now: Millis) -> StoreResult<bool> {
        let mut inv = session_call(&SESSION_TOUCH, self.of(id.as_str()));
        inv.arg(id.as_str()).arg(now);
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
        let mut inv = session_call(&SESSION_DELETE, self.of(id.as_str()));
        inv.arg(id.as_str());
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn session_delete_all(&self, user: &UserId) -> StoreResult<u64> {
        let mut inv = session_call(&SESSION_DELETE_ALL, self.of_user(user));
        inv.arg(user.as_str());
        self.call(&inv).await
    }

    async fn sessions_of(&self, user: &UserId, now: Millis) -> StoreResult<Vec<SessionRecord>> {
        let mut inv = session_call(&SESSIONS_OF, self.of_user(user));
        inv.arg(user.as_str()).arg(now);
        let replies: Vec<Vec<String>> = self.call(&inv).await?;
        let mut sessions = replies
            .into_iter()
            .map(session_from_reply)
            .filter(|s| s.as_ref().map_or(true, |s| s.is_valid_at(now)))
            .collect::<StoreResult<Vec<_>>>()?;
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    async fn session_count(&self, now: Millis) -> StoreResult<u64> {
        let counts = self
            .in_every(|ns| async move {
                let mut inv = session_call(&SESSION_COUNT, ns);
                inv.arg(now);
                self.call::<u64>(&inv).await
            })
            .await?;
        Ok(counts.into_iter().sum())
    }

    async fn sweep(&self, now: Millis) -> StoreResult<u64> {
        let mut total = 0;
        for ns in self.every() {
            // Batches keep each script short; Redis serves other clients in between.
            loop {
                let mut inv = session_call(&SWEEP, ns);
                inv.arg(now).arg(SWEEP_BATCH);
                let removed: u64 = self.call(&inv).await?;
                total += removed;
                if removed < SWEEP_BATCH {
                    break;
                }
            }
            // After the sessions, so a session both expired and of an expired sign-up is
            // counted once, as SQLite does.
            total += self.sweep_pending(ns, now, SWEEP_BATCH).await?;
            total += self.sweep_expiring(ns, now, SWEEP_BATCH).await?;
            self.sweep_ip_blocks(ns, now).await?;
        }
        Ok(total)
    }
}
