//! [`OutboxStore`] on Redis: one sorted set of message ids per channel (`Outbox` for mail,
//! `OutboxMobile` for text messages) scored by `next_attempt`, and one hash per message
//! (no TTL: durable until sent; a hash without `channel` is a mail from before text
//! messages). Ties are ordered
//! by id, as in SQLite. A claim is one script that picks the due ids and re-scores them
//! to the end of the lease, so instances claiming together never get the same mail.
//!
//! A failed mail moves, in one script, to its own hash (no bodies) in the `OutboxFailed`
//! set scored by when it failed; the hash expires `FAILED_KEEP_MS` later and is in the
//! `Expiring` index, so `sweep` purges it like SQLite does.
//!
//! A sent message is removed and counted in one script: an hourly counter per channel
//! (`Key::Counter` of scope `sent`), kept a day past its hour and in the `Expiring` index.

use super::record::HashRecord;
use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use super::RedisStore;
use crate::store::keys::{Key, Prefix};
use crate::store::{
    sent_windows, Channel, CounterScope, Due, FailedMail, Millis, OutboxMail, OutboxStore,
    StoreError, StoreResult, WaitingMail, WaitingPage, WaitingQuery, FAILED_KEEP_MS,
};

// KEYS[1] mail, KEYS[2] outbox; ARGV[1] id, ARGV[2] next_attempt, ARGV[3..] field/value
// pairs. Returns 0 if the id exists.
static OUTBOX_PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"#,
    )
});

// KEYS[1] outbox; ARGV[1] now, ARGV[2] end of the lease, ARGV[3] limit, ARGV[4] mail
// prefix. Returns the leased mails' hashes, earliest due first.
static OUTBOX_CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  local key = ARGV[4] .. id
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'next_attempt', ARGV[2])
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = redis.call('HGETALL', key)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"#,
    )
});

// KEYS[1] mail, KEYS[2] mail queue, KEYS[3] text-message queue; ARGV[1] id.
static OUTBOX_DONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('DEL', KEYS[1])
"#,
    )
});

// KEYS[1] mail, KEYS[2] mail queue, KEYS[3] text-message queue, KEYS[4] the current
// window's counter of sent mails, KEYS[5] the same for text messages, KEYS[6] expiring
// index; ARGV[1] id, ARGV[2] when the counter may be forgotten. Returns 0 if the message
// was gone (then nothing is counted).
static OUTBOX_SENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local channel = redis.call('HGET', KEYS[1], 'channel')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
local counter = KEYS[4]
if channel == 'mobile' then counter = KEYS[5] end
local n = redis.call('INCR', counter)
redis.call('PEXPIREAT', counter, ARGV[2])
if n == 1 then redis.call('ZADD', KEYS[6], ARGV[2], counter) end
return 1
"#,
    )
});

// KEYS[1] mail, KEYS[2] mail queue, KEYS[3] text-message queue; ARGV[1] id, ARGV[2] now.
// Returns 0 if the message is not waiting.
static OUTBOX_DUE_NOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local due = tonumber(redis.call('HGET', KEYS[1], 'next_attempt'))
if due and due <= tonumber(ARGV[2]) then return 1 end
local queue = KEYS[2]
if redis.call('HGET', KEYS[1], 'channel') == 'mobile' then queue = KEYS[3] end
redis.call('HSET', KEYS[1], 'next_attempt', ARGV[2])
redis.call('ZADD', queue, ARGV[2], ARGV[1])
return 1
"#,
    )
});

// KEYS[1] mail, KEYS[2] mail queue, KEYS[3] text-message queue; ARGV[1] id,
// ARGV[2] next_attempt, ARGV[3] error.
static OUTBOX_RETRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local queue = KEYS[2]
if redis.call('HGET', KEYS[1], 'channel') == 'mobile' then queue = KEYS[3] end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'next_attempt', ARGV[2], 'last_error', ARGV[3])
redis.call('ZADD', queue, ARGV[2], ARGV[1])
return 1
"#,
    )
});

// KEYS[1] outbox; ARGV[1] mail prefix. Returns every mail's hash, earliest due first.
static OUTBOX_LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HGETALL', ARGV[1] .. id)
  if #h > 0 then out[#out + 1] = h end
end
return out
"#,
    )
});

// KEYS[1] mail, KEYS[2] mail queue, KEYS[3] failed mail, KEYS[4] failed set, KEYS[5]
// expiring index, KEYS[6] text-message queue; ARGV[1] id, ARGV[2] failed_at, ARGV[3]
// error, ARGV[4] purge instant, ARGV[5] failed_at - keep (older set entries are dead).
// Returns 0 if the mail was gone.
static OUTBOX_FAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local f = redis.call('HMGET', KEYS[1], 'kind', 'to', 'subject', 'created_at', 'attempts')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], 'id', ARGV[1], 'kind', f[1], 'to', f[2], 'subject', f[3],
  'created_at', f[4], 'attempts', tonumber(f[5]) + 1, 'failed_at', ARGV[2],
  'last_error', ARGV[3])
redis.call('PEXPIREAT', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[4], KEYS[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[5])
return 1
"#,
    )
});

// KEYS[1] failed set; ARGV[1] limit, ARGV[2] failed mail prefix. Returns up to `limit`
// hashes, most recently failed first, and forgets ids whose hash was purged.
static OUTBOX_FAILED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
local limit = tonumber(ARGV[1])
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  if #out >= limit then break end
  local h = redis.call('HGETALL', ARGV[2] .. id)
  if #h > 0 then out[#out + 1] = h else redis.call('ZREM', KEYS[1], id) end
end
return out
"#,
    )
});

/// The fields the console lists of a waiting message (no bodies), in the order
/// `OUTBOX_PAGE` and [`RedisStore::outbox_get`] read them.
const WAITING_FIELDS: [&str; 9] = [
    "id",
    "channel",
    "kind",
    "to",
    "subject",
    "created_at",
    "attempts",
    "next_attempt",
    "last_error",
];

// KEYS[1] mail queue, KEYS[2] text-message queue; ARGV[1] `now` or `later`, ARGV[2] now,
// ARGV[3] the cursor's next_attempt (empty for the first page), ARGV[4] its id, ARGV[5]
// limit, ARGV[6] mail prefix, ARGV[7..] the fields to read. Returns `{{total}, message,
// ...}`: how many the range holds in both queues, then each queue's first `limit + 1`
// messages after the cursor as flat field/value lists (the caller merges the queues).
// Ties on next_attempt are ordered by id, as the sorted sets order them.
static OUTBOX_PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[5])
local lo, hi = '-inf', ARGV[2]
if ARGV[1] == 'later' then lo, hi = '(' .. ARGV[2], '+inf' end
local after = tonumber(ARGV[3])
local min = lo
if after and (ARGV[1] == 'now' or after > now) then min = ARGV[3] end
local total = redis.call('ZCOUNT', KEYS[1], lo, hi) + redis.call('ZCOUNT', KEYS[2], lo, hi)
local out = {{tostring(total)}}
local fields = {unpack(ARGV, 7)}
for q = 1, 2 do
  local got, offset = 0, 0
  while got <= limit do
    local batch = redis.call('ZRANGEBYSCORE', KEYS[q], min, hi, 'WITHSCORES', 'LIMIT', offset, limit + 1)
    if #batch == 0 then break end
    offset = offset + #batch / 2
    for i = 1, #batch, 2 do
      local id, score = batch[i], tonumber(batch[i + 1])
      if got <= limit and (not after or score > after or (score == after and id > ARGV[4])) then
        local v = redis.call('HMGET', ARGV[6] .. id, unpack(fields))
        if v[1] then
          local flat = {}
          for j, f in ipairs(fields) do
            if v[j] then flat[#flat + 1] = f; flat[#flat + 1] = v[j] end
          end
          out[#out + 1] = flat
          got = got + 1
        end
      end
    end
  end
end
return out
"#,
    )
});

/// A message's channel (a hash without one is a mail from before text messages).
fn channel_of(r: &mut HashRecord) -> StoreResult<Channel> {
    match r.optional("channel") {
        None => Ok(Channel::Email),
        Some(c) => {
            Channel::parse(&c).ok_or_else(|| StoreError::Corrupt(format!("outbox channel {c:?}")))
        }
    }
}

/// Rebuilds what the console lists of a message from its flat field/value pairs.
fn waiting_from_hash(flat: Vec<String>) -> StoreResult<WaitingMail> {
    let mut r = HashRecord::new("outbox mail", flat);
    Ok(WaitingMail {
        id: r.text("id")?,
        kind: r.text("kind")?,
        to: r.text("to")?,
        subject: r.text("subject")?,
        created_at: r.number("created_at")?,
        attempts: r.number("attempts")?,
        next_attempt: r.number("next_attempt")?,
        last_error: r.optional("last_error"),
        channel: channel_of(&mut r)?,
    })
}

fn mail_fields(m: &OutboxMail) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("id", m.id.clone()),
        ("kind", m.kind.clone()),
        ("to", m.to.clone()),
        ("subject", m.subject.clone()),
        ("text", m.text.clone()),
        ("html", m.html.clone()),
        ("created_at", m.created_at.to_string()),
        ("attempts", m.attempts.to_string()),
        ("next_attempt", m.next_attempt.to_string()),
        ("channel", m.channel.as_str().to_string()),
    ];
    if let Some(e) = &m.last_error {
        fields.push(("last_error", e.clone()));
    }
    fields
}

/// Rebuilds a mail from the flat `HGETALL` reply.
fn mail_from_hash(flat: Vec<String>) -> StoreResult<OutboxMail> {
    let mut r = HashRecord::new("outbox mail", flat);
    Ok(OutboxMail {
        id: r.text("id")?,
        kind: r.text("kind")?,
        to: r.text("to")?,
        subject: r.text("subject")?,
        text: r.text("text")?,
        html: r.text("html")?,
        created_at: r.number("created_at")?,
        attempts: r.number("attempts")?,
        next_attempt: r.number("next_attempt")?,
        last_error: r.optional("last_error"),
        channel: channel_of(&mut r)?,
    })
}

/// The sorted set a channel's messages wait in.
fn queue(channel: Channel) -> Key<'static> {
    match channel {
        Channel::Email => Key::Outbox,
        Channel::Mobile => Key::OutboxMobile,
    }
}

/// Rebuilds a failed mail from the flat `HGETALL` reply.
fn failed_from_hash(flat: Vec<String>) -> StoreResult<FailedMail> {
    let mut r = HashRecord::new("failed mail", flat);
    Ok(FailedMail {
        id: r.text("id")?,
        kind: r.text("kind")?,
        to: r.text("to")?,
        subject: r.text("subject")?,
        created_at: r.number("created_at")?,
        attempts: r.number("attempts")?,
        failed_at: r.number("failed_at")?,
        last_error: r.text("last_error")?,
    })
}

#[async_trait]
impl OutboxStore for RedisStore {
    async fn outbox_push(&self, mail: &OutboxMail) -> StoreResult<()> {
        let mut inv = OUTBOX_PUSH.prepare_invoke();
        inv.key(Key::OutboxMail(&mail.id).name_in(self.global()))
            .key(queue(mail.channel).name_in(self.global()))
            .arg(&mail.id)
            .arg(mail.next_attempt);
        for (field, value) in mail_fields(mail) {
            inv.arg(field).arg(value);
        }
        match self.call::<i64>(&inv).await? {
            1 => Ok(()),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn outbox_claim(
        &self,
        channel: Channel,
        now: Millis,
        lease_ms: Millis,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        // `LIMIT 0 0` would mean "no limit" to some Redis versions: never send it.
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = OUTBOX_CLAIM.prepare_invoke();
        inv.key(queue(channel).name_in(self.global()))
            .arg(now)
            .arg(now.saturating_add(lease_ms))
            .arg(u64::try_from(limit).unwrap_or(u64::MAX))
            .arg(Prefix::OutboxMail.in_ns(self.global()));
        let hashes: Vec<Vec<String>> = self.call(&inv).await?;
        hashes.into_iter().map(mail_from_hash).collect()
    }

    async fn outbox_done(&self, id: &str) -> StoreResult<bool> {
        let mut inv = OUTBOX_DONE.prepare_invoke();
        inv.key(Key::OutboxMail(id).name_in(self.global()))
            .key(Key::Outbox.name_in(self.global()))
            .key(Key::OutboxMobile.name_in(self.global()))
            .arg(id);
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn outbox_sent(&self, id: &str, now: Millis) -> StoreResult<bool> {
        let (starts, expires) = sent_windows(now);
        let start = starts.last().copied().unwrap_or(now);
        let scope = CounterScope::MessagesSent;
        let mut inv = OUTBOX_SENT.prepare_invoke();
        inv.key(Key::OutboxMail(id).name_in(self.global()))
            .key(Key::Outbox.name_in(self.global()))
            .key(Key::OutboxMobile.name_in(self.global()))
            .key(Key::Counter(scope, Channel::Email.as_str(), start).name_in(self.global()))
            .key(Key::Counter(scope, Channel::Mobile.as_str(), start).name_in(self.global()))
            .key(Key::Expiring.name_in(self.global()))
            .arg(id)
            .arg(expires);
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn outbox_sent_count(&self, channel: Channel, now: Millis) -> StoreResult<u64> {
        let (starts, _) = sent_windows(now);
        let mut cmd = ::redis::cmd("MGET");
        for start in starts {
            cmd.arg(
                Key::Counter(CounterScope::MessagesSent, channel.as_str(), start)
                    .name_in(self.global()),
            );
        }
        let counts: Vec<Option<u64>> = self.query(&cmd).await?;
        Ok(counts.into_iter().flatten().sum())
    }

    async fn outbox_due_now(&self, id: &str, now: Millis) -> StoreResult<bool> {
        let mut inv = OUTBOX_DUE_NOW.prepare_invoke();
        inv.key(Key::OutboxMail(id).name_in(self.global()))
            .key(Key::Outbox.name_in(self.global()))
            .key(Key::OutboxMobile.name_in(self.global()))
            .arg(id)
            .arg(now);
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn outbox_retry(&self, id: &str, next_attempt: Millis, error: &str) -> StoreResult<bool> {
        let mut inv = OUTBOX_RETRY.prepare_invoke();
        inv.key(Key::OutboxMail(id).name_in(self.global()))
            .key(Key::Outbox.name_in(self.global()))
            .key(Key::OutboxMobile.name_in(self.global()))
            .arg(id)
            .arg(next_attempt)
            .arg(error);
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn outbox_list(&self) -> StoreResult<Vec<OutboxMail>> {
        let mut all = Vec::new();
        for channel in Channel::ALL {
            let mut inv = OUTBOX_LIST.prepare_invoke();
            inv.key(queue(channel).name_in(self.global()))
                .arg(Prefix::OutboxMail.in_ns(self.global()));
            let hashes: Vec<Vec<String>> = self.call(&inv).await?;
            for h in hashes {
                all.push(mail_from_hash(h)?);
            }
        }
        // Both queues together, in SQLite's order.
        all.sort_by(|a, b| (a.next_attempt, &a.id).cmp(&(b.next_attempt, &b.id)));
        Ok(all)
    }

    async fn outbox_page(&self, query: &WaitingQuery) -> StoreResult<WaitingPage> {
        if query.limit == 0 {
            return Ok(WaitingPage::default());
        }
        let mut inv = OUTBOX_PAGE.prepare_invoke();
        inv.key(queue(Channel::Email).name_in(self.global()))
            .key(queue(Channel::Mobile).name_in(self.global()))
            .arg(match query.due {
                Due::Now => "now",
                Due::Later => "later",
            })
            .arg(query.now);
        match &query.after {
            Some(c) => inv.arg(c.next_attempt).arg(&c.id),
            None => inv.arg("").arg(""),
        };
        inv.arg(u64::try_from(query.limit).unwrap_or(u64::MAX))
            .arg(Prefix::OutboxMail.in_ns(self.global()));
        for field in WAITING_FIELDS {
            inv.arg(field);
        }
        let mut reply: Vec<Vec<String>> = self.call(&inv).await?;
        if reply.is_empty() {
            return Err(StoreError::Corrupt("outbox page without a total".into()));
        }
        let total = reply
            .remove(0)
            .first()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("outbox page total".into()))?;
        let candidates = reply
            .into_iter()
            .map(waiting_from_hash)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(WaitingPage::from_candidates(candidates, query.limit, total))
    }

    async fn outbox_get(&self, id: &str) -> StoreResult<Option<WaitingMail>> {
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(Key::OutboxMail(id).name_in(self.global()))
            .arg(&WAITING_FIELDS[..]);
        let values: Vec<Option<String>> = self.query(&cmd).await?;
        if values.first().is_none_or(Option::is_none) {
            return Ok(None);
        }
        let flat = WAITING_FIELDS
            .iter()
            .zip(values)
            .filter_map(|(f, v)| v.map(|v| [f.to_string(), v]))
            .flatten()
            .collect();
        waiting_from_hash(flat).map(Some)
    }

    async fn outbox_waiting(&self) -> StoreResult<u64> {
        let mut total = 0;
        for channel in Channel::ALL {
            let mut card = ::redis::cmd("ZCARD");
            card.arg(queue(channel).name_in(self.global()));
            total += self.query::<u64>(&card).await?;
        }
        Ok(total)
    }

    async fn outbox_fail(&self, id: &str, failed_at: Millis, error: &str) -> StoreResult<bool> {
        let mut inv = OUTBOX_FAIL.prepare_invoke();
        inv.key(Key::OutboxMail(id).name_in(self.global()))
            .key(Key::Outbox.name_in(self.global()))
            .key(Key::OutboxFailedMail(id).name_in(self.global()))
            .key(Key::OutboxFailed.name_in(self.global()))
            .key(Key::Expiring.name_in(self.global()))
            .key(Key::OutboxMobile.name_in(self.global()))
            .arg(id)
            .arg(failed_at)
            .arg(error)
            .arg(failed_at.saturating_add(FAILED_KEEP_MS))
            .arg(failed_at.saturating_sub(FAILED_KEEP_MS));
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn outbox_failed_count(&self, now: Millis) -> StoreResult<u64> {
        // A failed mail's hash expires FAILED_KEEP_MS after it failed: the set's entries
        // scored since then are the ones listed.
        let mut cmd = ::redis::cmd("ZCOUNT");
        cmd.arg(Key::OutboxFailed.name_in(self.global()))
            .arg(format!("({}", now.saturating_sub(FAILED_KEEP_MS)))
            .arg("+inf");
        self.query(&cmd).await
    }

    async fn outbox_failed(&self, limit: usize) -> StoreResult<Vec<FailedMail>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = OUTBOX_FAILED.prepare_invoke();
        inv.key(Key::OutboxFailed.name_in(self.global()))
            .arg(u64::try_from(limit).unwrap_or(u64::MAX))
            .arg(Prefix::OutboxFailedMail.in_ns(self.global()));
        let hashes: Vec<Vec<String>> = self.call(&inv).await?;
        hashes.into_iter().map(failed_from_hash).collect()
    }
}
