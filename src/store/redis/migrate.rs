//! Converts sessions stored in layout 1 (before issue 17: `vigile:session:{id}` with long
//! field names, a token key, a sorted set per member and one for every session) into the
//! compact layout of `keys.rs`, so an upgrade signs nobody out.
//!
//! The first call of a store object that reaches a safe server runs [`run`] (other calls
//! wait for it; `/readyz` too): unless `vigile:layout` already says the current layout,
//! it walks the old session keys with `SCAN` and converts them in batches, each session in
//! one script ([`MIGRATE_BATCH`]), then whatever the old expiry index still names
//! ([`MIGRATE_FINISH`], for sessions written meanwhile), then sets `vigile:layout`.
//! Converting is idempotent (an old key is deleted as its session is written anew, and a
//! key already gone is skipped), so two instances starting together both run it safely,
//! and an interrupted run is simply run again by the next call.
//!
//! During a rolling upgrade, instances of the previous version go on writing layout 1;
//! the lookup by token converts such a session when it is first presented
//! (`SESSION_BY_TOKEN` uses [`legacy_prelude!`]). Member lists and "sign out everywhere"
//! see it from then on, so stop the old instances before relying on those.

use std::future::Future;
use std::sync::LazyLock;

use ::redis::{FromRedisValue, Script, ScriptInvocation};

use super::endpoint::Conn;
use super::{map_err, session_call, OP_DEADLINE};
use crate::store::keys::{Key, Namespace, Prefix};
use crate::store::{StoreError, StoreResult};

/// What `vigile:layout` holds once sessions are in the layout of `keys.rs`.
pub const LAYOUT: &str = "2";

/// Old session keys per `SCAN` step and per conversion script.
const BATCH: usize = 500;

/// On top of `session_prelude!`: `KEYS[3]` layout 1's expiry index, `ARGV[4..6]` its
/// session, token and member-index prefixes; each script's own keys and arguments follow,
/// from `KEYS[4]` and `ARGV[7]`. `adopt(id)` converts one session.
macro_rules! legacy_prelude {
    () => {
        r#"
local OLD_EXPIRY, P_OLD_SESSION, P_OLD_TOKEN, P_OLD_USER_SESSIONS = KEYS[3], ARGV[4], ARGV[5], ARGV[6]
local SHA256_HEX = '^' .. string.rep('[0-9a-f]', 64) .. '$'
-- Converts the layout-1 session `id` if it is still there, deleting its old keys.
-- Returns 1 if it was written anew.
local function adopt(id)
  local old = P_OLD_SESSION .. id
  local f = redis.call('HMGET', old, 'token_hash', 'user_id', 'device_id', 'created_at',
    'last_seen', 'idle_ms', 'absolute_expiry', 'ip', 'user_agent', 'level')
  redis.call('ZREM', OLD_EXPIRY, id)
  if redis.call('DEL', old) == 0 then return 0 end
  if f[1] and redis.call('GET', P_OLD_TOKEN .. f[1]) == id then redis.call('DEL', P_OLD_TOKEN .. f[1]) end
  if f[2] then redis.call('ZREM', P_OLD_USER_SESSIONS .. f[2], id) end
  local s = {id = id, token = f[1], user = f[2], device = f[3], created = f[4],
    last_seen = f[5], idle = f[6], absolute = f[7], ip = f[8] or '', ua = f[9] or '',
    level = f[10] == '2fa' and '2fa' or 'password'}
  -- A record missing a field could not be read before either (`Corrupt`): it goes.
  if not (s.token and s.user and s.device and tonumber(s.created)) then return 0 end
  if not expiry_of(s.last_seen, s.idle, s.absolute) then return 0 end
  if not string.match(s.token, SHA256_HEX) or not session_free(s, '') then return 0 end
  write_session(s)
  return 1
end
"#
    };
}

macro_rules! legacy_script {
    ($name:ident, $body:literal) => {
        static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(concat!(session_prelude!(), legacy_prelude!(), $body)));
    };
}

// ARGV[7..] ids of layout-1 sessions. Returns how many were converted.
legacy_script!(
    MIGRATE_BATCH,
    r#"
local n = 0
for i = 7, #ARGV do n = n + adopt(ARGV[i]) end
return n
"#
);

// KEYS[4] layout; ARGV[7] batch size, ARGV[8] the current layout. Converts what the old
// expiry index still names (sessions written while the keys were scanned); once it is
// empty, records the layout. Returns {converted, 1 if done}.
legacy_script!(
    MIGRATE_FINISH,
    r#"
local n = 0
for _, id in ipairs(redis.call('ZRANGE', OLD_EXPIRY, 0, tonumber(ARGV[7]) - 1)) do
  n = n + adopt(id)
end
if redis.call('EXISTS', OLD_EXPIRY) == 1 then return {n, 0} end
redis.call('SET', KEYS[4], ARGV[8])
return {n, 1}
"#
);

/// A script invocation with the calling convention of `legacy_prelude!`.
pub(super) fn legacy_call(script: &'static Script, ns: Namespace) -> ScriptInvocation<'static> {
    let mut inv = session_call(script, ns);
    inv.key(Key::LegacySessionExpiry.name_in(ns))
        .arg(Prefix::LegacySession.in_ns(ns))
        .arg(Prefix::LegacySessionToken.in_ns(ns))
        .arg(Prefix::LegacyUserSessions.in_ns(ns));
    inv
}

/// One Redis round trip within [`OP_DEADLINE`], as every store call.
pub(super) async fn bounded<T>(
    what: &str,
    fut: impl Future<Output = ::redis::RedisResult<T>>,
) -> StoreResult<T> {
    match tokio::time::timeout(OP_DEADLINE, fut).await {
        Ok(result) => result.map_err(map_err),
        Err(_) => Err(StoreError::Unavailable(format!(
            "redis did not answer {what} within {OP_DEADLINE:?}"
        ))),
    }
}

/// One `SCAN` step over the keys starting with `prefix`, [`BATCH`] at a time: the next
/// cursor (0 once done) and the keys found.
pub(super) async fn scan_step(
    conn: &mut Conn,
    cursor: u64,
    prefix: &str,
) -> StoreResult<(u64, Vec<String>)> {
    let mut scan = ::redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(format!("{prefix}*"))
        .arg("COUNT")
        .arg(BATCH);
    bounded("SCAN", scan.query_async(conn)).await
}

async fn invoke<T: FromRedisValue>(conn: &mut Conn, inv: &ScriptInvocation<'_>) -> StoreResult<T> {
    bounded("a session conversion", inv.invoke_async(conn)).await
}

/// Brings the sessions to the current layout (see the module doc). Cheap when
/// `vigile:layout` already says so: one `GET`.
pub(super) async fn run(mut conn: Conn, ns: Namespace) -> StoreResult<()> {
    if let Namespace::Cluster(_) = ns {
        return sharded(&mut conn, ns).await;
    }
    let mut get = ::redis::cmd("GET");
    get.arg(Key::Layout.name_in(ns));
    let layout: Option<String> = bounded("GET layout", get.query_async(&mut conn)).await?;
    super::users::build_index(&mut conn, ns).await?;
    super::forgotten::run(&mut conn, ns).await?;
    if layout.as_deref() == Some(LAYOUT) {
        return Ok(());
    }
    let (mut cursor, mut converted) = (0_u64, 0_u64);
    loop {
        let prefix = Prefix::LegacySession.in_ns(ns);
        let (next, keys) = scan_step(&mut conn, cursor, &prefix).await?;
        let ids: Vec<&str> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .collect();
        for chunk in ids.chunks(BATCH) {
            let mut inv = legacy_call(&MIGRATE_BATCH, ns);
            for id in chunk {
                inv.arg(*id);
            }
            converted += invoke::<u64>(&mut conn, &inv).await?;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    loop {
        let mut inv = legacy_call(&MIGRATE_FINISH, ns);
        inv.key(Key::Layout.name_in(ns)).arg(BATCH).arg(LAYOUT);
        let (n, done): (u64, u8) = invoke(&mut conn, &inv).await?;
        converted += n;
        if done == 1 {
            break;
        }
    }
    if converted > 0 {
        tracing::info!(converted, "sessions converted to the compact Redis layout");
    }
    Ok(())
}

/// What `vigile:layout` says on a Cluster spread over shards (`shard.rs`).
const SHARDED: &str = "shards";

/// A Cluster store: spread over shards from its first start (every account indexes
/// itself, and layout 1 never ran on a Cluster). A Cluster holding the one-slot layout of
/// an earlier build (every key in `{vigile}`) is refused rather than half read: its
/// accounts would not be found where this version looks. `global`: `{vigile}`.
async fn sharded(conn: &mut Conn, global: Namespace) -> StoreResult<()> {
    let mut get = ::redis::cmd("GET");
    get.arg(Key::Layout.name_in(global));
    let layout: Option<String> = bounded("GET layout", get.query_async(conn)).await?;
    if layout.as_deref() == Some(SHARDED) {
        return Ok(());
    }
    let one_slot: u8 = bounded("EXISTS users", one_slot_probe(global).query_async(conn)).await?;
    if one_slot > 0 {
        return Err(one_slot_refused());
    }
    let mut set = ::redis::cmd("SET");
    set.arg(Key::Layout.name_in(global)).arg(SHARDED);
    bounded("SET layout", set.query_async(conn)).await
}

/// Counts the keys only the one-slot store of an earlier Vigile writes under `{vigile}`
/// (its account set and session total): a Cluster with any is refused, at the first call
/// and at every readiness check (a gateway of that version still running writes them).
pub(super) fn one_slot_probe(global: Namespace) -> ::redis::Cmd {
    let mut exists = ::redis::cmd("EXISTS");
    exists
        .arg(Key::Users.name_in(global))
        .arg(Key::SessionTotal.name_in(global));
    exists
}

pub(super) fn one_slot_refused() -> StoreError {
    StoreError::Unavailable(
        "this Redis Cluster holds the one-slot store of an earlier Vigile (every key under \
         {vigile}); this version spreads the store over shards and cannot read it: stop \
         every gateway of the earlier version, and keep it or start from an empty Cluster \
         (README, Redis Cluster)"
            .into(),
    )
}
