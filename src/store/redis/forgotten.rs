//! Once per Redis: deletes what accounts deleted by an earlier version left behind
//! (an organisation's removal kept the member's second factors, known devices and own
//! cap; `users.rs`'s `forget_member` now deletes them with the account). Run by
//! `migrate::run` until `vigile:members_forgotten` says it was done; idempotent, so two
//! instances starting together both run it safely. Each record is keyed by the account's
//! id, and goes only if `vigile:user:{id}` does not exist: an account's records are
//! written only while it exists, so none of a living account is ever touched.

use std::sync::LazyLock;

use ::redis::Script;

use super::endpoint::Conn;
use super::migrate::{bounded, scan_step};
use crate::store::keys::{Key, Namespace, Prefix};
use crate::store::{Kept, StoreResult, UserId};

/// Caps per `HSCAN` step and per script (keys go by `migrate::scan_step`'s batches).
const BATCH: usize = 500;

/// KEYS: pairs of (a member's record, that member's account key). Deletes the records
/// whose account is gone; returns how many.
static DROP_ORPHANS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then n = n + redis.call('DEL', KEYS[i]) end
end
return n
",
    )
});

/// KEYS[1] the member caps hash, KEYS[2..] account keys; ARGV the matching ids. Removes
/// the caps of accounts that are gone; returns how many.
static DROP_CAPS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then n = n + redis.call('HDEL', KEYS[1], ARGV[i - 1]) end
end
return n
",
    )
});

/// See the module doc. One `EXISTS` once done.
pub(super) async fn run(conn: &mut Conn, ns: Namespace) -> StoreResult<()> {
    let mut exists = ::redis::cmd("EXISTS");
    exists.arg(Key::MembersForgotten.name_in(ns));
    let done: u8 = bounded("EXISTS members_forgotten", exists.query_async(conn)).await?;
    if done == 1 {
        return Ok(());
    }
    // One Redis only: a Cluster store is spread over shards from its first start, which
    // came after the fix (`migrate::sharded`), and SCAN there would see one node only.
    let mut dropped = 0;
    if ns == Namespace::Plain {
        let factors = Key::Kept(Kept::Factors, "").name_in(ns);
        for prefix in [factors, Prefix::KnownDevices.in_ns(ns)] {
            dropped += drop_orphans(conn, ns, &prefix).await?;
        }
        dropped += drop_caps(conn, ns).await?;
    }
    if dropped > 0 {
        tracing::info!(dropped, "records of deleted accounts removed");
    }
    let mut set = ::redis::cmd("SET");
    set.arg(Key::MembersForgotten.name_in(ns)).arg(1);
    bounded("SET members_forgotten", set.query_async(conn)).await
}

/// Deletes the keys `{prefix}{user id}` whose account is gone.
async fn drop_orphans(conn: &mut Conn, ns: Namespace, prefix: &str) -> StoreResult<u64> {
    let (mut cursor, mut dropped) = (0_u64, 0_u64);
    loop {
        let (next, keys) = scan_step(conn, cursor, prefix).await?;
        let mut inv = DROP_ORPHANS.prepare_invoke();
        let mut any = false;
        for key in &keys {
            if let Some(id) = key.strip_prefix(prefix) {
                inv.key(key)
                    .key(Key::User(&UserId::from_string(id)).name_in(ns));
                any = true;
            }
        }
        if any {
            dropped += bounded("dropping orphans", inv.invoke_async::<u64>(conn)).await?;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(dropped);
        }
    }
}

/// Removes the member caps of accounts that are gone.
async fn drop_caps(conn: &mut Conn, ns: Namespace) -> StoreResult<u64> {
    let caps = Key::MemberCaps.name_in(ns);
    let (mut cursor, mut dropped) = (0_u64, 0_u64);
    loop {
        let mut scan = ::redis::cmd("HSCAN");
        scan.arg(&caps).arg(cursor).arg("COUNT").arg(BATCH);
        let (next, flat): (u64, Vec<String>) = bounded("HSCAN", scan.query_async(conn)).await?;
        let ids: Vec<&String> = flat.iter().step_by(2).collect();
        if !ids.is_empty() {
            let mut inv = DROP_CAPS.prepare_invoke();
            inv.key(&caps);
            for id in &ids {
                inv.key(Key::User(&UserId::from_string(id.as_str())).name_in(ns))
                    .arg(id.as_str());
            }
            dropped += bounded("dropping caps", inv.invoke_async::<u64>(conn)).await?;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(dropped);
        }
    }
}
