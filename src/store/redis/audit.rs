//! [`AuditStore`] on Redis: the trail is one stream (`Key::Audit`, trimmed to about
//! `max_events` as it grows), each member's recent stream ids a capped list
//! (`Prefix::AuditMember`), and the hourly counts one hash per day (`Prefix::AuditHours`,
//! expiring [`AUDIT_COUNTS_KEEP_MS`] after its day). A batch is one script, so an event
//! and its count are written together; an address that is an account's
//! (`Prefix::UserEmail`) names its member there.
//!
//! A search without a member walks the stream newest first in the script, looking at no
//! more than [`AUDIT_SCAN_BUDGET`] entries a call; with a member it reads their list.

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use super::RedisStore;
use crate::store::keys::{Key, Prefix};
use crate::store::{
    AuditCount, AuditEntry, AuditKeep, AuditPage, AuditQuery, AuditRecord, AuditStore, Millis,
    StoreResult, AUDIT_COUNTS_KEEP_MS, AUDIT_HOUR_MS, AUDIT_MEMBER_KEEP, AUDIT_SCAN_BUDGET,
};

const DAY_MS: Millis = 24 * AUDIT_HOUR_MS;
/// Arguments per record in `AUDIT_APPEND`.
const RECORD_ARGS: usize = 9;

// KEYS[1] stream; ARGV[1] max events, ARGV[2] member list prefix, ARGV[3] hours prefix,
// ARGV[4] user_email prefix, ARGV[5] member entries kept, ARGV[6] member list TTL (ms),
// ARGV[7] hour-count keep (ms), ARGV[8] named list prefix, then 9 per record: at, event,
// by, admin, user, email, ip, detail, and the account holding the email when the caller
// looked it up ('' for none: on one Redis the script looks, on a Cluster the address's
// index key is in the address's shard, not here).
static AUDIT_APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for i = 9, #ARGV, 9 do
  local at, event, by, admin, user, email, ip, detail =
    ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5], ARGV[i+6], ARGV[i+7]
  -- The member it is about; else the account whose address it names, on its own list.
  local list = nil
  if user ~= '' then
    list = ARGV[2] .. user
  elseif email ~= '' then
    local named = ARGV[i+8] ~= '' and ARGV[i+8] or redis.call('GET', ARGV[4] .. email)
    if named then list = ARGV[8] .. named end
  end
  local fields = {'a', at, 'e', event, 'b', by, 'd', detail}
  if admin ~= '' then fields[#fields+1] = 'm'; fields[#fields+1] = admin end
  if user ~= '' then fields[#fields+1] = 'u'; fields[#fields+1] = user end
  if email ~= '' then fields[#fields+1] = 'x'; fields[#fields+1] = email end
  if ip ~= '' then fields[#fields+1] = 'i'; fields[#fields+1] = ip end
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
  if list then
    redis.call('LPUSH', list, id)
    redis.call('LTRIM', list, 0, tonumber(ARGV[5]) - 1)
    redis.call('PEXPIRE', list, ARGV[6])
  end
  local t = tonumber(at)
  local day = t - (t % 86400000)
  local hours = ARGV[3] .. string.format('%d', day)
  redis.call('HINCRBY', hours, string.format('%d', t - (t % 3600000)) .. '\t' .. event, 1)
  redis.call('PEXPIREAT', hours, string.format('%d', day + 86400000 + tonumber(ARGV[7])))
end
return 1
"#,
    )
});

/// What both searches share: the filter, `older`, and `matches(fields)`.
macro_rules! page_prelude {
    () => {
        r#"
local before, limit, from, untl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
local kinds, any = {}, #ARGV < 6
for i = 6, #ARGV do kinds[ARGV[i]] = true end
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function older(a, b)
  local am, as = parts(a)
  local bm, bs = parts(b)
  return am < bm or (am == bm and as < bs)
end
local function matches(f)
  local at, event
  for j = 1, #f, 2 do
    if f[j] == 'a' then at = tonumber(f[j+1]) elseif f[j] == 'e' then event = f[j+1] end
  end
  if not any and not kinds[event] then return false end
  if from and at < from then return false end
  if untl and at >= untl then return false end
  return true
end
local out = {}
-- Keeps a match; true once one more than the page was found (so there is a next page).
local function take(e)
  if #out == limit then return true end
  out[#out+1] = e
  return false
end
"#
    };
}

// KEYS[1] stream; ARGV[1] resume before this id ('' from the newest), ARGV[2] limit,
// ARGV[3] budget, ARGV[4] from ('' none), ARGV[5] until ('' none), ARGV[6..] kinds.
// Returns {entries, next} (next '' when nothing older matches).
static AUDIT_WALK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        page_prelude!(),
        r#"
local budget, looked = tonumber(ARGV[3]), 0
-- Ranges are inclusive (exclusive ones need Redis 6.2): the entry resumed after is skipped.
local start, skip = '+', nil
if before ~= '' then start, skip = before, before end
local last = before
while looked < budget do
  local chunk = redis.call('XREVRANGE', KEYS[1], start, '-', 'COUNT', math.min(500, budget - looked) + 1)
  local fresh = 0
  for _, e in ipairs(chunk) do
    if e[1] ~= skip then
      fresh = fresh + 1
      looked = looked + 1
      last = e[1]
      if matches(e[2]) and take(e) then return {out, out[#out][1]} end
      if looked >= budget then break end
    end
  end
  if fresh == 0 then return {out, ''} end
  start, skip = last, last
end
-- Out of budget: a full page goes on after its last entry, a short one after what was seen.
if #out == limit and limit > 0 then return {out, out[#out][1]} end
return {out, last}
"#
    ))
});

// KEYS[1] stream, KEYS[2] the member's list, KEYS[3] the list naming their address; ARGV
// as AUDIT_WALK (ARGV[3] unused).
static AUDIT_MEMBER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        page_prelude!(),
        r#"
local ids, seen = {}, {}
for k = 2, 3 do
  for _, id in ipairs(redis.call('LRANGE', KEYS[k], 0, -1)) do
    if not seen[id] then seen[id] = true; ids[#ids+1] = id end
  end
end
table.sort(ids, function(a, b) return older(b, a) end)
for _, id in ipairs(ids) do
  if before == '' or older(id, before) then
    local found = redis.call('XRANGE', KEYS[1], id, id)
    if #found == 1 and matches(found[1][2]) and take(found[1]) then
      return {out, out[#out][1]}
    end
  end
end
return {out, ''}
"#
    ))
});

// KEYS[1] stream; ARGV[1] drop entries that happened before this, ARGV[2] keep at most
// this many. Drops from the oldest while they are older (arrival follows time closely);
// at most 10 000 a call (it runs every minute). Returns how many were dropped.
static AUDIT_PRUNE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cutoff, dropped = tonumber(ARGV[1]), 0
while dropped < 10000 do
  local chunk = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 500)
  local old = {}
  for _, e in ipairs(chunk) do
    local at
    for j = 1, #e[2], 2 do if e[2][j] == 'a' then at = tonumber(e[2][j+1]) end end
    if at and at >= cutoff then break end
    old[#old+1] = e[1]
  end
  if #old == 0 then break end
  dropped = dropped + redis.call('XDEL', KEYS[1], unpack(old))
  if #old < #chunk then break end
end
return dropped + redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[2])
"#,
    )
});

// ARGV[1] hours prefix, ARGV[2] the first day's start, ARGV[3] until. Returns every
// `hour\tevent`, count pair of the days from the first to the one holding `until`.
static AUDIT_COUNTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
local day, untl = tonumber(ARGV[2]), tonumber(ARGV[3])
while day < untl do
  local all = redis.call('HGETALL', ARGV[1] .. string.format('%d', day))
  for j = 1, #all, 2 do out[#out+1] = {all[j], all[j+1]} end
  day = day + 86400000
end
return out
"#,
    )
});

/// A cursor of ours (`ms-seq`, each a u64, not `0-0`), else none: a hand-edited link
/// starts from the newest.
fn stream_id(id: &str) -> Option<&str> {
    let (ms, seq) = id.split_once('-')?;
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (number(ms)?, number(seq)?) {
        (0, 0) => None,
        _ => Some(id),
    }
}

fn entry((id, fields): (String, Vec<String>)) -> AuditEntry {
    let mut record = AuditRecord::default();
    for pair in fields.chunks_exact(2) {
        let value = pair[1].clone();
        match pair[0].as_str() {
            "a" => record.at = value.parse().unwrap_or(0),
            "e" => record.event = value,
            "b" => record.by = value,
            "d" => record.detail = value,
            "m" => record.admin = Some(value),
            "u" => record.user = Some(value),
            "x" => record.email = Some(value),
            "i" => record.ip = Some(value),
            _ => {}
        }
    }
    AuditEntry { id, record }
}

#[async_trait]
impl AuditStore for RedisStore {
    async fn audit_append(&self, records: &[AuditRecord], keep: AuditKeep) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let named = self.named_accounts(records).await?;
        // The whole trail is one stream, with its member lists, under the site's tag.
        let ns = self.global();
        let mut inv = AUDIT_APPEND.prepare_invoke();
        inv.key(Key::Audit.name_in(ns))
            .arg(keep.max_events)
            .arg(Prefix::AuditMember.in_ns(ns))
            .arg(Prefix::AuditHours.in_ns(ns))
            .arg(Prefix::UserEmail.in_ns(ns))
            .arg(AUDIT_MEMBER_KEEP)
            .arg(keep.keep_ms.max(1))
            .arg(AUDIT_COUNTS_KEEP_MS)
            .arg(Prefix::AuditNamed.in_ns(ns));
        let none = String::new();
        for (r, named) in records.iter().zip(&named) {
            let args: [&str; RECORD_ARGS] = [
                &r.at.to_string(),
                &r.event,
                &r.by,
                r.admin.as_ref().unwrap_or(&none),
                r.user.as_ref().unwrap_or(&none),
                r.email.as_ref().unwrap_or(&none),
                r.ip.as_ref().unwrap_or(&none),
                &r.detail,
                named,
            ];
            for a in args {
                inv.arg(a);
            }
        }
        let _: i64 = self.call(&inv).await?;
        Ok(())
    }

    async fn audit_page(&self, query: &AuditQuery) -> StoreResult<AuditPage> {
        let mut inv = match &query.user {
            Some(user) => {
                let mut inv = AUDIT_MEMBER.prepare_invoke();
                inv.key(Key::Audit.name_in(self.global()))
                    .key(Key::AuditMember(user).name_in(self.global()))
                    .key(Key::AuditNamed(user).name_in(self.global()));
                inv
            }
            None => {
                let mut inv = AUDIT_WALK.prepare_invoke();
                inv.key(Key::Audit.name_in(self.global()));
                inv
            }
        };
        let opt = |n: Option<Millis>| n.map(|n| n.to_string()).unwrap_or_default();
        inv.arg(query.before.as_deref().and_then(stream_id).unwrap_or(""))
            .arg(query.limit)
            .arg(AUDIT_SCAN_BUDGET)
            .arg(opt(query.from))
            .arg(opt(query.until));
        for kind in &query.kinds {
            inv.arg(kind);
        }
        let (found, next): (Vec<(String, Vec<String>)>, String) = self.call(&inv).await?;
        Ok(AuditPage {
            entries: found.into_iter().map(entry).collect(),
            next: (!next.is_empty()).then_some(next),
        })
    }

    async fn audit_counts(&self, from: Millis, until: Millis) -> StoreResult<Vec<AuditCount>> {
        let mut inv = AUDIT_COUNTS.prepare_invoke();
        // Unused by the script: a key sends it, on a Cluster, to the node of the namespace.
        inv.key(Key::Audit.name_in(self.global()))
            .arg(Prefix::AuditHours.in_ns(self.global()))
            .arg(from - from.rem_euclid(DAY_MS))
            .arg(until);
        let fields: Vec<(String, u64)> = self.call(&inv).await?;
        let mut counts = Vec::new();
        for (field, count) in fields {
            let Some((hour, event)) = field.split_once('\t') else {
                continue;
            };
            let Ok(hour) = hour.parse::<Millis>() else {
                continue;
            };
            if (from..until).contains(&hour) {
                counts.push(AuditCount {
                    hour,
                    event: event.to_string(),
                    count,
                });
            }
        }
        Ok(counts)
    }

    async fn audit_prune(&self, keep: AuditKeep, now: Millis) -> StoreResult<u64> {
        let mut inv = AUDIT_PRUNE.prepare_invoke();
        inv.key(Key::Audit.name_in(self.global()))
            .arg(now.saturating_sub(keep.keep_ms))
            .arg(keep.max_events);
        self.call(&inv).await
    }
}

impl RedisStore {
    /// On a Cluster, the account holding each record's address when the record is not
    /// about a member ('' for none), read from the addresses' shards: the append runs
    /// under the site's tag and cannot read them. On one Redis the script reads them.
    async fn named_accounts(&self, records: &[AuditRecord]) -> StoreResult<Vec<String>> {
        let mut named = vec![String::new(); records.len()];
        if !self.cluster {
            return Ok(named);
        }
        // Read together: the connection pipelines them, one round trip per master.
        let reads = records.iter().map(|r| async move {
            let (None, Some(email)) = (&r.user, &r.email) else {
                return Ok(None);
            };
            let mut get = ::redis::cmd("GET");
            get.arg(Key::UserEmail(email).name_in(self.of(email)));
            self.query::<Option<String>>(&get).await
        });
        for (slot, read) in named
            .iter_mut()
            .zip(futures_util::future::join_all(reads).await)
        {
            *slot = read?.unwrap_or_default();
        }
        Ok(named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stream_id_is_a_cursor() {
        assert_eq!(stream_id("1700000000000-3"), Some("1700000000000-3"));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "x-1",
            "1-2-3",
            "(1-1",
            "1 -1",
            "+",
            "0-0",
            "99999999999999999999-1",
        ] {
            assert_eq!(stream_id(bad), None, "{bad:?}");
        }
    }
}
