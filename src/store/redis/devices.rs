//! [`DeviceStore`] on Redis. Opening a session within the cap is one script that walks
//! the member's session index, ends what must go and inserts the new session, so logins
//! racing on several instances take turns inside Redis and the cap always holds.
//!
//! An ended session leaves `Ended(token_hash)` = `replaced`|`revoked`, expiring (TTL and
//! `Expiring` score) when the session itself would have; `signed_out` checks that score
//! against the `now` it is given. Challenges are hashes with their expiry as TTL; a code
//! check counts, compares and verifies or deletes in one script. Settings and member caps
//! are plain hashes.

use super::record::HashRecord;
use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use super::{session_args, session_call, RedisStore};
use crate::store::keys::{Key, Prefix};
use crate::store::Store;
use crate::store::{
    overflow_parse, overflow_str, Cap, Challenge, CodeCheck, DeviceId, DeviceStore, Millis, Opened,
    SessionId, SessionRecord, Settings, SignedOut, StoreError, StoreResult, TokenHash, UserId,
};

/// On top of `session_prelude!`: `end_session(id, why, ended prefix, expiring index)`
/// deletes a session and leaves `why` for its token until the session's own expiry.
macro_rules! ended_prelude {
    () => {
        r#"
local function end_session(id, why, p_ended, expiring)
  local key = P_SESSION .. id
  local token = redis.call('HGET', key, 't')
  local exp = expiry_of_key(key)
  delete_session(id)
  if token and exp then
    local ended, at = p_ended .. hex_of(token), int(exp)
    redis.call('SET', ended, why)
    redis.call('PEXPIREAT', ended, at)
    redis.call('ZADD', expiring, at, ended)
  end
end
"#
    };
}

macro_rules! ended_script {
    ($name:ident, $body:literal) => {
        static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(concat!(session_prelude!(), ended_prelude!(), $body)));
    };
}

// KEYS[3] expiring. ARGV[4] replaced id or '', ARGV[5] max (0 = none), ARGV[6] evict
// '1'/'0', ARGV[7] now, ARGV[8] ended prefix, ARGV[9] victims joined by ',', ARGV[10..20]
// the new session. Returns {0} on a conflict, {2, active} when full, {1, ended ids...}
// when opened.
ended_script!(
    SESSION_OPEN,
    r#"
local replaces, s = ARGV[4], session_arg(10)
local max, evict, now = tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7])
if not session_free(s, replaces) then return {0} end
local chosen = {}
for v in string.gmatch(ARGV[9], '[^,]+') do chosen[v] = true end
-- This device's sessions go quietly (even expired); of the others, only live ones count.
local quiet, victims, others = {}, {}, {}
local bucket, list = entries_of(s.user)
for _, e in ipairs(list) do
  local sid, key = e[2], P_SESSION .. e[2]
  if redis.call('EXISTS', key) == 0 then
    forget(bucket, e[1])
  else
    local f = redis.call('HMGET', key, 'l', 'i', 'a', 'd', 'c')
    local exp = expiry_of(f[1], f[2], f[3])
    if f[4] == s.device or sid == replaces then
      quiet[#quiet + 1] = sid
    elseif exp and now < exp then
      if chosen[sid] then
        victims[#victims + 1] = sid
      else
        others[#others + 1] = {sid, tonumber(f[1]), tonumber(f[5]) or 0}
      end
    end
  end
end
local evicted = {}
if max > 0 and #others >= max then
  if not evict then return {2, #others + #victims} end
  table.sort(others, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    if a[3] ~= b[3] then return a[3] < b[3] end
    return a[1] < b[1]
  end)
  for i = 1, #others - max + 1 do evicted[#evicted + 1] = others[i][1] end
end
if replaces ~= '' then delete_session(replaces) end
for _, sid in ipairs(quiet) do delete_session(sid) end
local out = {1}
for _, group in ipairs({victims, evicted}) do
  for _, sid in ipairs(group) do
    end_session(sid, 'replaced', ARGV[8], KEYS[3])
    out[#out + 1] = sid
  end
end
write_session(s)
return out
"#
);

// KEYS[3] session, KEYS[4] expiring; ARGV[4] id, ARGV[5] user, ARGV[6] why, ARGV[7] now,
// ARGV[8] ended prefix. Returns 1 if the member's live session was ended.
ended_script!(
    SESSION_END,
    r#"
local f = redis.call('HMGET', KEYS[3], 'u', 'l', 'i', 'a')
if f[1] ~= ARGV[5] then return 0 end
local exp = expiry_of(f[2], f[3], f[4])
if not exp or tonumber(ARGV[7]) >= exp then return 0 end
end_session(ARGV[4], ARGV[6], ARGV[8], KEYS[4])
return 1
"#
);

// KEYS[1] ended, KEYS[2] expiring; ARGV[1] now. The reason if its expiry is after `now`.
static SIGNED_OUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local why = redis.call('GET', KEYS[1])
if not why then return false end
local score = redis.call('ZSCORE', KEYS[2], KEYS[1])
if score and tonumber(ARGV[1]) >= tonumber(score) then return false end
return why
"#,
    )
});

// KEYS[1] challenge; ARGV[1] expires_at, ARGV[2..] the hash's pairs. Returns 1 if one
// was replaced.
static CHALLENGE_PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local existed = redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return existed
"#,
    )
});

// KEYS[1] challenge; ARGV[1] code hash, ARGV[2] max tries, ARGV[3] verified until,
// ARGV[4] now. Returns {'missing'}, {'verified', hash pairs...}, {'wrong', left} or
// {'exhausted'}.
static CHALLENGE_CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local function int(x) return string.format('%.0f', x) end
local f = redis.call('HMGET', KEYS[1], 'code_hash', 'attempts', 'verified', 'expires_at')
local exp = tonumber(f[4])
if not exp or tonumber(ARGV[4]) >= exp then return {'missing'} end
if f[3] == '1' then return {'verified', unpack(redis.call('HGETALL', KEYS[1]))} end
local attempts, max = (tonumber(f[2]) or 0) + 1, tonumber(ARGV[2])
if f[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'attempts', int(attempts), 'verified', '1', 'expires_at', ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  return {'verified', unpack(redis.call('HGETALL', KEYS[1]))}
end
if attempts >= max then
  redis.call('DEL', KEYS[1])
  return {'exhausted'}
end
redis.call('HSET', KEYS[1], 'attempts', int(attempts))
return {'wrong', int(max - attempts)}
"#,
    )
});

// KEYS[1] challenge; ARGV[1] code hash, ARGV[2] expires_at, ARGV[3] now.
static CHALLENGE_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local f = redis.call('HMGET', KEYS[1], 'verified', 'expires_at')
local exp = tonumber(f[2])
if f[1] ~= '0' or not exp or tonumber(ARGV[3]) >= exp then return 0 end
redis.call('HSET', KEYS[1], 'code_hash', ARGV[1], 'expires_at', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
"#,
    )
});

// KEYS[1] settings; ARGV[1] max_per_member or '', ARGV[2] on_overflow or ''.
static SETTINGS_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for i, field in ipairs({'max_per_member', 'on_overflow'}) do
  if ARGV[i] == '' then
    redis.call('HDEL', KEYS[1], field)
  else
    redis.call('HSET', KEYS[1], field, ARGV[i])
  end
end
return 1
"#,
    )
});

// KEYS[1] user, KEYS[2] member caps; ARGV[1] user id, ARGV[2] cap or ''.
static MEMBER_CAP_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 1
"#,
    )
});

fn challenge_fields(c: &Challenge) -> [(&'static str, String); 7] {
    [
        ("user_id", c.user_id.as_str().to_string()),
        ("code_hash", c.code_hash.as_str().to_string()),
        ("attempts", c.attempts.to_string()),
        ("verified", if c.verified { "1" } else { "0" }.to_string()),
        ("rd", c.rd.clone()),
        ("expires_at", c.expires_at.to_string()),
        ("level", c.level.as_str().to_string()),
    ]
}

/// Rebuilds a challenge from its flat `HGETALL` reply.
fn challenge_from_hash(flat: Vec<String>) -> StoreResult<Challenge> {
    let mut r = HashRecord::new("challenge", flat);
    Ok(Challenge {
        user_id: UserId::from_string(r.text("user_id")?),
        code_hash: TokenHash::from_hex(r.text("code_hash")?),
        attempts: r.number("attempts")?,
        verified: match r.text("verified")?.as_str() {
            "1" => true,
            "0" => false,
            _ => return Err(StoreError::Corrupt("challenge: bad verified".into())),
        },
        rd: r.text("rd")?,
        expires_at: r.number("expires_at")?,
        level: crate::store::AuthLevel::parse(&r.optional("level").unwrap_or_default()),
    })
}

#[async_trait]
impl DeviceStore for RedisStore {
    async fn session_open(
        &self,
        session: &SessionRecord,
        replaces: Option<&SessionId>,
        victims: &[SessionId],
        cap: Cap,
        now: Millis,
    ) -> StoreResult<Opened> {
        let victims: Vec<&str> = victims.iter().map(SessionId::as_str).collect();
        let shard = self.session_shard(session)?;
        let ns = self.at(shard);
        // The member's own sessions are all here; another member's is ended after.
        let (here, elsewhere) = self.replaced(replaces, shard);
        let mut inv = session_call(&SESSION_OPEN, ns);
        inv.key(Key::Expiring.name_in(ns))
            .arg(here.map(SessionId::as_str).unwrap_or(""))
            .arg(cap.max)
            .arg(if cap.evict_oldest { "1" } else { "0" })
            .arg(now)
            .arg(Prefix::Ended.in_ns(ns))
            .arg(victims.join(","));
        session_args(&mut inv, session)?;
        let reply: Vec<String> = self.call(&inv).await?;
        let mut it = reply.into_iter();
        match it.next().as_deref() {
            Some("0") => Err(StoreError::Conflict),
            Some("1") => {
                let ended = it.map(SessionId::from_string).collect();
                if let Some(old) = elsewhere {
                    self.session_delete(old).await?;
                }
                Ok(Opened::Opened { ended })
            }
            Some("2") => match it.next().and_then(|n| n.parse().ok()) {
                Some(active) => Ok(Opened::Full { active }),
                None => Err(StoreError::Corrupt("session_open: bad count".into())),
            },
            _ => Err(StoreError::Corrupt("session_open: bad reply".into())),
        }
    }

    async fn session_end(
        &self,
        user: &UserId,
        id: &SessionId,
        why: SignedOut,
        now: Millis,
    ) -> StoreResult<bool> {
        let ns = self.of_user(user);
        let mut inv = session_call(&SESSION_END, ns);
        inv.key(Key::Session(id).name_in(ns))
            .key(Key::Expiring.name_in(ns))
            .arg(id.as_str())
            .arg(user.as_str())
            .arg(why.as_str())
            .arg(now)
            .arg(Prefix::Ended.in_ns(ns));
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn signed_out(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<SignedOut>> {
        // Written by the member's scripts, in their shard: the token's.
        let ns = self.of_token(token_hash);
        let mut inv = SIGNED_OUT.prepare_invoke();
        inv.key(Key::Ended(token_hash).name_in(ns))
            .key(Key::Expiring.name_in(ns))
            .arg(now);
        let Some(why) = self.call::<Option<String>>(&inv).await? else {
            return Ok(None);
        };
        SignedOut::parse(&why)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("ended session: bad reason {why:?}")))
    }

    async fn challenge_put(&self, device: &DeviceId, challenge: &Challenge) -> StoreResult<bool> {
        let mut inv = CHALLENGE_PUT.prepare_invoke();
        inv.key(Key::Challenge(device).name_in(self.of(device.as_str())))
            .arg(challenge.expires_at);
        for (field, value) in challenge_fields(challenge) {
            inv.arg(field).arg(value);
        }
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn challenge_get(
        &self,
        device: &DeviceId,
        now: Millis,
    ) -> StoreResult<Option<Challenge>> {
        let mut cmd = ::redis::cmd("HGETALL");
        cmd.arg(Key::Challenge(device).name_in(self.of(device.as_str())));
        let flat: Vec<String> = self.query(&cmd).await?;
        if flat.is_empty() {
            return Ok(None);
        }
        let challenge = challenge_from_hash(flat)?;
        Ok((now < challenge.expires_at).then_some(challenge))
    }

    async fn challenge_check(
        &self,
        device: &DeviceId,
        code_hash: &TokenHash,
        max_tries: u32,
        verified_until: Millis,
        now: Millis,
    ) -> StoreResult<CodeCheck> {
        let mut inv = CHALLENGE_CHECK.prepare_invoke();
        inv.key(Key::Challenge(device).name_in(self.of(device.as_str())))
            .arg(code_hash.as_str())
            .arg(max_tries)
            .arg(verified_until)
            .arg(now);
        let reply: Vec<String> = self.call(&inv).await?;
        let mut it = reply.into_iter();
        let bad = || StoreError::Corrupt("challenge_check: bad reply".into());
        match it.next().as_deref() {
            Some("missing") => Ok(CodeCheck::Missing),
            Some("exhausted") => Ok(CodeCheck::Exhausted),
            Some("verified") => Ok(CodeCheck::Verified(challenge_from_hash(it.collect())?)),
            Some("wrong") => match it.next().and_then(|n| n.parse().ok()) {
                Some(left) => Ok(CodeCheck::Wrong { left }),
                None => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    async fn challenge_renew(
        &self,
        device: &DeviceId,
        code_hash: &TokenHash,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut inv = CHALLENGE_RENEW.prepare_invoke();
        inv.key(Key::Challenge(device).name_in(self.of(device.as_str())))
            .arg(code_hash.as_str())
            .arg(expires_at)
            .arg(now);
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn challenge_delete(&self, device: &DeviceId) -> StoreResult<bool> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(Key::Challenge(device).name_in(self.of(device.as_str())));
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    async fn settings_get(&self) -> StoreResult<Settings> {
        let mut cmd = ::redis::cmd("HGETALL");
        cmd.arg(Key::Settings.name_in(self.global()));
        let mut r = HashRecord::new("settings", self.query(&cmd).await?);
        let bad = |k: &str, v: &str| StoreError::Corrupt(format!("setting {k} = {v:?}"));
        let mut settings = Settings::default();
        if let Some(v) = r.optional("max_per_member") {
            settings.max_per_member = Some(v.parse().map_err(|_| bad("max_per_member", &v))?);
        }
        if let Some(v) = r.optional("on_overflow") {
            settings.on_overflow = Some(overflow_parse(&v).ok_or_else(|| bad("on_overflow", &v))?);
        }
        Ok(settings)
    }

    async fn settings_set(&self, settings: &Settings) -> StoreResult<()> {
        let mut inv = SETTINGS_SET.prepare_invoke();
        inv.key(Key::Settings.name_in(self.global()))
            .arg(
                settings
                    .max_per_member
                    .map_or_else(String::new, |m| m.to_string()),
            )
            .arg(settings.on_overflow.map_or("", overflow_str));
        self.call::<i64>(&inv).await.map(drop)
    }

    async fn member_cap(&self, user: &UserId) -> StoreResult<Option<u32>> {
        let mut cmd = ::redis::cmd("HGET");
        cmd.arg(Key::MemberCaps.name_in(self.of_user(user)))
            .arg(user.as_str());
        let Some(cap) = self.query::<Option<String>>(&cmd).await? else {
            return Ok(None);
        };
        cap.parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("member cap of {user}: {cap:?}")))
    }

    async fn member_cap_set(&self, user: &UserId, cap: Option<u32>) -> StoreResult<bool> {
        // Each shard keeps the caps of its own members.
        let ns = self.of_user(user);
        let mut inv = MEMBER_CAP_SET.prepare_invoke();
        inv.key(Key::User(user).name_in(ns))
            .key(Key::MemberCaps.name_in(ns))
            .arg(user.as_str())
            .arg(cap.map(|c| c.to_string()).unwrap_or_default());
        Ok(self.call::<i64>(&inv).await? == 1)
    }
}
