//! [`ThrottleStore`] on Redis. Attempt counters are fields of one hash per address,
//! kept `ATTEMPT_MEMORY_MS` after its last attempt; a client address's window and block live in one
//! hash changed only by the scripts below, which check validity against the `now` they
//! are given and set the key's TTL (and its `Expiring` score) to its latest instant.
//! The same scripts keep the `IpBlocks` index (addresses scored by their block's end), so
//! the console lists the blocks in force without scanning the keyspace; `sweep` drops
//! the entries of ended blocks.

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use super::RedisStore;
use crate::store::keys::{Key, Namespace, Prefix};
use crate::store::throttle::{ATTEMPT_MEMORY_MS, REPEAT_MEMORY_MS};
use crate::store::{
    AttemptKey, DeviceId, IpBlock, IpRule, Millis, StoreResult, ThrottleStore, UserId,
};

/// Shared by the IP scripts: `KEYS[1]` the address's hash, `KEYS[2]` the expiring index,
/// `KEYS[3]` the index of blocks; `ARGV[1]` now, `ARGV[2..6]` max, window, block, max
/// block, repeat memory, `ARGV[7]` the address.
macro_rules! ip_prelude {
    () => {
        r#"
local now = tonumber(ARGV[1])
local max, win, blk, maxblk, rep =
  tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function int(x) return string.format('%.0f', x) end
local f = redis.call('HMGET', KEYS[1], 'window_end', 'window_count', 'block_until', 'level', 'level_until')
local wend, wcount, bu, lvl, lu =
  tonumber(f[1]), tonumber(f[2]) or 0, tonumber(f[3]), tonumber(f[4]) or 0, tonumber(f[5])
local function keep_until(t)
  redis.call('PEXPIREAT', KEYS[1], int(t))
  redis.call('ZADD', KEYS[2], int(t), KEYS[1])
end
-- Blocks from now, doubling after recent blocks; resets the window. Returns the end.
local function block()
  local level = 0
  if lu and lu > now then level = lvl end
  local len = math.min(blk * (2 ^ math.min(level, 40)), math.max(maxblk, math.min(blk, maxblk)))
  local ends = now + len
  redis.call('HSET', KEYS[1], 'block_until', int(ends), 'level', int(level + 1),
    'level_until', int(ends + rep), 'window_count', '0', 'blocked_at', int(now))
  redis.call('HDEL', KEYS[1], 'window_end')
  keep_until(ends + rep)
  redis.call('ZADD', KEYS[3], int(ends), ARGV[7])
  return ends
end
"#
    };
}

macro_rules! ip_script {
    ($name:ident, $body:literal) => {
        static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(concat!(ip_prelude!(), $body)));
    };
}

// Returns {1, count} when let through, {0, block end} when refused.
ip_script!(
    IP_ATTEMPT,
    r#"
if bu and bu > now then return {0, int(bu)} end
local open = wend and wend > now
local count = 1
if open then count = wcount + 1 end
if count > max then return {0, int(block())} end
if not open then wend = now + win end
redis.call('HSET', KEYS[1], 'window_end', int(wend), 'window_count', int(count))
local last = wend
if lu and lu > last then last = lu end
keep_until(last)
return {1, count}
"#
);

// Returns the block's end (the current one if already blocked).
ip_script!(
    IP_BLOCK,
    r#"
if bu and bu > now then return int(bu) end
return int(block())
"#
);

// KEYS[1] the address's hash. Takes one attempt back out of the window's count.
static IP_REFUND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = tonumber(redis.call('HGET', KEYS[1], 'window_count') or '0')
if n > 0 then redis.call('HINCRBY', KEYS[1], 'window_count', -1) end
return 0
"#,
    )
});

// KEYS[1] the address's hash, KEYS[2] expiring index, KEYS[3] index of blocks; ARGV[1]
// the address. Returns the block end it had.
static IP_UNBLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local bu = redis.call('HGET', KEYS[1], 'block_until')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return bu
"#,
    )
});

// KEYS[1] index of blocks; ARGV[1] now, ARGV[2] the address hashes' prefix. Returns
// `{address, block end, start}` of each block in force, as the hashes say (an entry whose
// hash no longer holds that block is left for the sweep).
static IP_BLOCKS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for _, ip in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')) do
  local f = redis.call('HMGET', ARGV[2] .. ip, 'block_until', 'blocked_at')
  local bu = tonumber(f[1])
  if bu and bu > tonumber(ARGV[1]) then
    out[#out + 1] = {ip, f[1], f[2] or '0'}
  end
end
return out
"#,
    )
});

// KEYS[1] index of blocks; ARGV[1] now. Forgets the blocks ended at `now`.
static IP_BLOCKS_SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
"#,
    )
});

// KEYS[1] the address's attempts hash, KEYS[2] expiring index; ARGV[1] field, ARGV[2]
// when the address's counters are forgotten. Returns the new count.
static ATTEMPT_BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
return n
"#,
    )
});

// KEYS[1] the address's attempts hash. Returns how many counters it held.
static ATTEMPTS_CLEAR_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
"#,
    )
});

/// The attempts key of an address (in the address's shard) and the counter's field there.
fn field(store: &RedisStore, key: AttemptKey<'_>) -> (String, String) {
    let email = match key {
        AttemptKey::Account(email) | AttemptKey::Device(email, _) => email,
    };
    let ns = store.of(email);
    match key {
        AttemptKey::Account(email) => (Key::Attempts(email).name_in(ns), "account".to_string()),
        AttemptKey::Device(email, device) => (
            Key::Attempts(email).name_in(ns),
            ["device", device.as_str()].join(":"),
        ),
    }
}

fn ip_invocation(
    script: &'static Script,
    ns: Namespace,
    ip: &str,
    rule: &IpRule,
    now: Millis,
) -> ::redis::ScriptInvocation<'static> {
    let mut inv = script.prepare_invoke();
    inv.key(Key::Ip(ip).name_in(ns))
        .key(Key::Expiring.name_in(ns))
        .key(Key::IpBlocks.name_in(ns))
        .arg(now)
        .arg(rule.max)
        .arg(rule.window_ms)
        .arg(rule.block_ms)
        .arg(rule.max_block_ms)
        .arg(REPEAT_MEMORY_MS)
        .arg(ip);
    inv
}

// KEYS[1] the address's attempts; ARGV[1] the counter's field. One less, never below 0.
static ATTEMPT_REFUND: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    ::redis::Script::new(
        r#"
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n > 1 then
  redis.call('HSET', KEYS[1], ARGV[1], n - 1)
elseif n == 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return n
"#,
    )
});

#[async_trait]
impl ThrottleStore for RedisStore {
    async fn attempt_begin(&self, key: AttemptKey<'_>, now: Millis) -> StoreResult<u64> {
        let (name, field) = field(self, key);
        let email = match key {
            AttemptKey::Account(email) | AttemptKey::Device(email, _) => email,
        };
        let mut inv = ATTEMPT_BEGIN.prepare_invoke();
        inv.key(name)
            .key(Key::Expiring.name_in(self.of(email)))
            .arg(field)
            .arg(now.saturating_add(ATTEMPT_MEMORY_MS));
        self.call(&inv).await
    }

    async fn attempts_of(&self, key: AttemptKey<'_>) -> StoreResult<u64> {
        let (name, field) = field(self, key);
        let mut cmd = ::redis::cmd("HGET");
        cmd.arg(name).arg(field);
        let n: Option<u64> = self.query(&cmd).await?;
        Ok(n.unwrap_or(0))
    }

    async fn attempts_clear(&self, key: AttemptKey<'_>) -> StoreResult<()> {
        let (name, field) = field(self, key);
        let mut cmd = ::redis::cmd("HDEL");
        cmd.arg(name).arg(field);
        let _: u64 = self.query(&cmd).await?;
        Ok(())
    }

    async fn attempt_refund(&self, key: AttemptKey<'_>) -> StoreResult<()> {
        let (name, field) = field(self, key);
        let mut inv = ATTEMPT_REFUND.prepare_invoke();
        inv.key(name).arg(field);
        let _: i64 = self.call(&inv).await?;
        Ok(())
    }

    async fn attempts_clear_all(&self, email: &str) -> StoreResult<u64> {
        let mut inv = ATTEMPTS_CLEAR_ALL.prepare_invoke();
        inv.key(Key::Attempts(email).name_in(self.of(email)));
        self.call(&inv).await
    }

    async fn device_remember(&self, user: &UserId, device: &DeviceId) -> StoreResult<()> {
        let mut cmd = ::redis::cmd("SADD");
        cmd.arg(Key::KnownDevices(user).name_in(self.of_user(user)))
            .arg(device.as_str());
        let _: u64 = self.query(&cmd).await?;
        Ok(())
    }

    async fn device_known(&self, user: &UserId, device: &DeviceId) -> StoreResult<bool> {
        let mut cmd = ::redis::cmd("SISMEMBER");
        cmd.arg(Key::KnownDevices(user).name_in(self.of_user(user)))
            .arg(device.as_str());
        self.query(&cmd).await
    }

    async fn ip_attempt(
        &self,
        ip: &str,
        rule: &IpRule,
        now: Millis,
    ) -> StoreResult<Result<u64, Millis>> {
        let inv = ip_invocation(&IP_ATTEMPT, self.of(ip), ip, rule, now);
        let (passed, value): (i64, i64) = self.call(&inv).await?;
        Ok(if passed == 1 {
            Ok(u64::try_from(value).unwrap_or(0))
        } else {
            Err(value)
        })
    }

    async fn ip_refund(&self, ip: &str) -> StoreResult<()> {
        let mut inv = IP_REFUND.prepare_invoke();
        inv.key(Key::Ip(ip).name_in(self.of(ip)));
        let _: i64 = self.call(&inv).await?;
        Ok(())
    }

    async fn ip_block(&self, ip: &str, rule: &IpRule, now: Millis) -> StoreResult<Millis> {
        self.call(&ip_invocation(&IP_BLOCK, self.of(ip), ip, rule, now))
            .await
    }

    async fn ip_blocked_until(&self, ip: &str, now: Millis) -> StoreResult<Option<Millis>> {
        let mut cmd = ::redis::cmd("HGET");
        cmd.arg(Key::Ip(ip).name_in(self.of(ip))).arg("block_until");
        let until: Option<Millis> = self.query(&cmd).await?;
        Ok(until.filter(|u| *u > now))
    }

    async fn ip_unblock(&self, ip: &str, now: Millis) -> StoreResult<bool> {
        let mut inv = IP_UNBLOCK.prepare_invoke();
        let ns = self.of(ip);
        inv.key(Key::Ip(ip).name_in(ns))
            .key(Key::Expiring.name_in(ns))
            .key(Key::IpBlocks.name_in(ns))
            .arg(ip);
        let until: Option<Millis> = self.call(&inv).await?;
        Ok(until.is_some_and(|u| u > now))
    }

    async fn ip_blocks(&self, now: Millis, limit: usize) -> StoreResult<Vec<IpBlock>> {
        // Each shard lists the blocks of its own addresses.
        let found = self
            .in_every(|ns| async move {
                let mut inv = IP_BLOCKS.prepare_invoke();
                inv.key(Key::IpBlocks.name_in(ns))
                    .arg(now)
                    .arg(Prefix::Ip.in_ns(ns));
                self.call::<Vec<(String, Millis, Millis)>>(&inv).await
            })
            .await?;
        let mut blocks: Vec<IpBlock> = found
            .into_iter()
            .flatten()
            .map(|(ip, until, blocked_at)| IpBlock {
                ip,
                blocked_at,
                until,
            })
            .collect();
        // SQLite's order: the most recently started first, then by address.
        blocks.sort_by(|a, b| {
            b.blocked_at
                .cmp(&a.blocked_at)
                .then_with(|| a.ip.cmp(&b.ip))
        });
        blocks.truncate(limit);
        Ok(blocks)
    }
}

impl RedisStore {
    /// Drops the index entries of blocks ended at `now` (their hashes go by `Expiring`).
    /// Not counted: an index entry is not a record.
    pub(super) async fn sweep_ip_blocks(&self, ns: Namespace, now: Millis) -> StoreResult<()> {
        let mut inv = IP_BLOCKS_SWEEP.prepare_invoke();
        inv.key(Key::IpBlocks.name_in(ns)).arg(now);
        let _: u64 = self.call(&inv).await?;
        Ok(())
    }
}
