//! [`ContactStore`] on Redis (layout in `store::keys`). The contact state lives in the
//! account's JSON (`contact`); scripts on the account scripts' calling convention
//! (`user_prelude!`) change it with `cjson`, never a read-modify-write from Rust. A pending
//! code is a hash with its expiry as TTL; its mailed link has an index key beside it.

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use super::addresses::Claim;
use super::users::user_call;
use super::{user_from_json, RedisStore};
use crate::store::keys::{Key, Prefix};
use crate::store::shard::Shard;
use crate::store::{
    Campaign, CampaignMark, Channel, Confirmed, ContactCheck, ContactCode, ContactStore, Millis,
    Proof, StoreError, StoreResult, TokenHash, UserId,
};

/// On top of `user_prelude!`: an account's contact table, an account from before
/// confirmations (no `contact`) counting its address as confirmed, as `Contact::before`.
macro_rules! contact_prelude {
    () => {
        concat!(
            user_prelude!(),
            r#"
local function contact_of(u)
  if type(u.contact) ~= 'table' then
    u.contact = {email_confirmed = {at = 0, via = 'before'}}
  end
  return u.contact
end
"#
        )
    };
}

macro_rules! contact_script {
    ($name:ident, $body:literal) => {
        static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(concat!(contact_prelude!(), $body)));
    };
}

// KEYS[5] user, KEYS[6] code, KEYS[7] new link key (the bare link prefix for none: a
// name no record has, in the namespace, so on a Cluster in the same slot); ARGV[7] link prefix,
// ARGV[8] user id, ARGV[9] expires_at, ARGV[10..] field/value pairs. Returns 0 if there
// is no such account.
contact_script!(
    CODE_PUT,
    r#"
if redis.call('EXISTS', KEYS[5]) == 0 then return 0 end
local old = redis.call('HGET', KEYS[6], 'link_hash')
if old then redis.call('DEL', ARGV[7] .. old) end
redis.call('DEL', KEYS[6])
redis.call('HSET', KEYS[6], unpack(ARGV, 10))
redis.call('PEXPIREAT', KEYS[6], ARGV[9])
if KEYS[7] ~= ARGV[7] then
  redis.call('SET', KEYS[7], ARGV[8])
  redis.call('PEXPIREAT', KEYS[7], ARGV[9])
end
return 1
"#
);

// KEYS[5] user, KEYS[6] code; ARGV[7] id, ARGV[8] channel, ARGV[9] typed code hash ('' for
// the link), ARGV[10] max tries, ARGV[11] now, ARGV[12] confirmation JSON, ARGV[13] link
// prefix, ARGV[14] the link's hash ('' for a typed code), ARGV[15] for a new address: ''
// not claimed yet, `claimed` for this id, or `taken` (`addresses.rs`), ARGV[16] the
// address claimed. Returns {outcome, tries left | previous value | the address to claim,
// account JSON}.
contact_script!(
    CONFIRM,
    r#"
local u, exists = user_record(ARGV[7])
if not u then return {exists and 'corrupt' or 'missing'} end
local f = redis.call('HMGET', KEYS[6], 'value', 'code_hash', 'link_hash', 'attempts', 'expires_at')
if not f[1] or tonumber(f[5]) <= tonumber(ARGV[11]) then return {'missing'} end
local function spend()
  redis.call('DEL', KEYS[6])
  if f[3] then redis.call('DEL', ARGV[13] .. f[3]) end
end
if ARGV[14] ~= '' and f[3] ~= ARGV[14] then return {'missing'} end
if ARGV[9] ~= '' then
  local attempts, max = tonumber(f[4]), tonumber(ARGV[10])
  if attempts >= max then spend() return {'exhausted'} end
  attempts = attempts + 1
  if ARGV[9] ~= f[2] then
    if attempts >= max then spend() return {'exhausted'} end
    redis.call('HSET', KEYS[6], 'attempts', attempts)
    return {'wrong', tostring(max - attempts)}
  end
end
-- The first write of what follows is the account's (`put_user`: a ZADD or SET), which a
-- full Redis (noeviction) refuses: the whole change then fails before anything is
-- applied. (Redis checks memory at a script's first write only; an address change starts
-- with the ZREM of the old index entry, and then goes through whole, a few bytes over.)
local c, previous = contact_of(u), ''
local old = nil
if ARGV[8] == 'email' then
  if u.email ~= f[1] then
    -- The new address is claimed first, in its own shard (addresses.rs): nothing is
    -- written before that.
    if ARGV[15] == 'taken' and ARGV[16] == f[1] then
      spend()
      return {'taken'}
    end
    if ARGV[15] ~= 'claimed' or ARGV[16] ~= f[1] then return {'claim', f[1]} end
    previous, old = u.email, u.email
    u.email = f[1]
  end
  c.email_confirmed = cjson.decode(ARGV[12])
else
  if type(c.mobile) == 'string' and c.mobile ~= f[1] then previous = c.mobile end
  c.mobile = f[1]
  c.mobile_confirmed = cjson.decode(ARGV[12])
end
local json = cjson.encode(u)
put_user(KEYS[5], json)
-- The old address's key, when in another shard, is released by the caller after.
if old and here(old) and redis.call('GET', P_EMAIL .. old) == ARGV[7] then
  redis.call('DEL', P_EMAIL .. old)
end
spend()
return {'confirmed', previous, json}
"#
);

// KEYS[5] user; ARGV[7] id, ARGV[8] mark JSON. Returns 0 if there is no such account.
contact_script!(
    ASK,
    r#"
local u = user_record(ARGV[7])
if not u then return 0 end
local c, mark = contact_of(u), cjson.decode(ARGV[8])
if mark.channels.email then c.email_confirmed = nil end
if mark.channels.mobile then c.mobile_confirmed = nil end
c.campaign = mark
put_user(KEYS[5], cjson.encode(u))
return 1
"#
);

// KEYS[5] user; ARGV[7] id, ARGV[8] campaign id, ARGV[9] now. Returns 1 the first time.
contact_script!(
    SEEN,
    r#"
local u = user_record(ARGV[7])
if not u then return 0 end
local c = contact_of(u)
local mark = c.campaign
if type(mark) ~= 'table' or mark.id ~= ARGV[8] or type(mark.seen_at) == 'number' then
  return 0
end
mark.seen_at = tonumber(ARGV[9])
put_user(KEYS[5], cjson.encode(u))
return 1
"#
);

// KEYS[1] link key; ARGV[1] link hash, ARGV[2] now, ARGV[3] code prefix. Returns the user id
// if the link belongs to that member's pending email code, valid at `now`.
static LINK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = redis.call('GET', KEYS[1])
if not id then return false end
local f = redis.call('HMGET', ARGV[3] .. id .. ':email', 'link_hash', 'expires_at')
if f[1] ~= ARGV[1] or not f[2] or tonumber(f[2]) <= tonumber(ARGV[2]) then return false end
return id
"#,
    )
});

fn code_fields(c: &ContactCode) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("value", c.value.clone()),
        ("code_hash", c.code_hash.as_str().to_string()),
        ("attempts", c.attempts.to_string()),
        ("expires_at", c.expires_at.to_string()),
    ];
    if let Some(link) = &c.link_hash {
        fields.push(("link_hash", link.as_str().to_string()));
    }
    fields
}

fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

#[async_trait]
impl ContactStore for RedisStore {
    async fn contact_code_put(&self, user: &UserId, code: &ContactCode) -> StoreResult<bool> {
        // The mailed link's key sits beside the member: its token was drawn there.
        let shard = Shard::of_user(user);
        if let Some(h) = &code.link_hash {
            self.drawn_in("a contact link", Shard::of_token(h), shard)?;
        }
        let ns = self.at(shard);
        let link_key = code
            .link_hash
            .as_ref()
            .map_or(Prefix::ContactLink.in_ns(ns), |h| {
                Key::ContactLink(h).name_in(ns)
            });
        let mut inv = user_call(&CODE_PUT, ns);
        inv.key(Key::User(user).name_in(ns))
            .key(Key::ContactCode(user, code.channel).name_in(ns))
            .key(link_key)
            .arg(Prefix::ContactLink.in_ns(ns))
            .arg(user.as_str())
            .arg(code.expires_at);
        for (field, value) in code_fields(code) {
            inv.arg(field).arg(value);
        }
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn contact_code_get(
        &self,
        user: &UserId,
        channel: Channel,
        now: Millis,
    ) -> StoreResult<Option<ContactCode>> {
        let mut cmd = ::redis::cmd("HGETALL");
        cmd.arg(Key::ContactCode(user, channel).name_in(self.of_user(user)));
        let flat: Vec<String> = self.query(&cmd).await?;
        if flat.is_empty() {
            return Ok(None);
        }
        let mut r = super::record::HashRecord::new("contact code", flat);
        let code = ContactCode {
            channel,
            value: r.text("value")?,
            code_hash: TokenHash::from_hex(r.text("code_hash")?),
            link_hash: r.optional("link_hash").map(TokenHash::from_hex),
            attempts: r.number("attempts")?,
            expires_at: r.number("expires_at")?,
        };
        Ok((code.expires_at > now).then_some(code))
    }

    async fn contact_confirm(
        &self,
        user: &UserId,
        channel: Channel,
        proof: Proof<'_>,
        max_tries: u32,
        at: Confirmed,
        now: Millis,
    ) -> StoreResult<ContactCheck> {
        let (typed, link) = match proof {
            Proof::Code(hash) => (hash.as_str(), ""),
            Proof::Link(hash) => ("", hash.as_str()),
        };
        let ns = self.of_user(user);
        let at = json(&at)?;
        let confirm = |claim: &'static str, address: &str| {
            let mut inv = user_call(&CONFIRM, ns);
            inv.key(Key::User(user).name_in(ns))
                .key(Key::ContactCode(user, channel).name_in(ns))
                .arg(user.as_str())
                .arg(channel.as_str())
                .arg(typed)
                .arg(max_tries)
                .arg(now)
                .arg(&at)
                .arg(Prefix::ContactLink.in_ns(ns))
                .arg(link)
                .arg(claim)
                .arg(address);
            inv
        };
        let mut reply: Vec<String> = self.call(&confirm("", "")).await?;
        // A new address: claimed first, in its own shard, then the account changes; a
        // claim that came to nothing is released.
        let mut claimed = None;
        if reply.first().map(String::as_str) == Some("claim") {
            let email = reply.get(1).cloned().unwrap_or_default();
            match self.claim_address(&email, user, false).await? {
                // Another request is taking it right now: the code stays for a retry.
                Claim::Racing => return Ok(ContactCheck::Taken),
                Claim::Taken => reply = self.call(&confirm("taken", &email)).await?,
                Claim::Ours => {
                    reply = self.call(&confirm("claimed", &email)).await?;
                    claimed = Some(email);
                }
            }
        }
        let field = |i: usize| reply.get(i).map(String::as_str).unwrap_or_default();
        if let Some(email) = &claimed {
            if field(0) == "confirmed" {
                self.commit_claim(email, user).await?;
            } else {
                self.release_unless_held(email, user).await?;
            }
        }
        if field(0) == "claim" {
            // A new code for another address came in between: this one is spent.
            return Ok(ContactCheck::Missing);
        }
        Ok(match field(0) {
            "confirmed" => {
                let previous = Some(field(1).to_string()).filter(|p| !p.is_empty());
                if let (Channel::Email, Some(old)) = (channel, &previous) {
                    if !self.address_beside(user, old) {
                        self.release_address(old, user).await?;
                    }
                }
                ContactCheck::Confirmed {
                    user: Box::new(user_from_json(field(2))?),
                    previous,
                }
            }
            "wrong" => ContactCheck::Wrong {
                left: field(1).parse().unwrap_or(0),
            },
            "exhausted" => ContactCheck::Exhausted,
            "taken" => ContactCheck::Taken,
            "missing" => ContactCheck::Missing,
            other => return Err(StoreError::Corrupt(format!("user record {user} ({other})"))),
        })
    }

    async fn contact_link(&self, link: &TokenHash, now: Millis) -> StoreResult<Option<UserId>> {
        // Drawn beside its member: the code it names is in the same shard.
        let ns = self.of_token(link);
        let mut inv = LINK.prepare_invoke();
        inv.key(Key::ContactLink(link).name_in(ns))
            .arg(link.as_str())
            .arg(now)
            .arg(Prefix::ContactCode.in_ns(ns));
        let id: Option<String> = self.call(&inv).await?;
        Ok(id.map(UserId::from_string))
    }

    async fn contact_ask(&self, user: &UserId, mark: &CampaignMark) -> StoreResult<bool> {
        let ns = self.of_user(user);
        let mut inv = user_call(&ASK, ns);
        inv.key(Key::User(user).name_in(ns))
            .arg(user.as_str())
            .arg(json(mark)?);
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn contact_seen(&self, user: &UserId, id: &str, now: Millis) -> StoreResult<bool> {
        let ns = self.of_user(user);
        let mut inv = user_call(&SEEN, ns);
        inv.key(Key::User(user).name_in(ns))
            .arg(user.as_str())
            .arg(id)
            .arg(now);
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn campaign_insert(&self, campaign: &Campaign) -> StoreResult<()> {
        let mut cmd = ::redis::cmd("HSETNX");
        cmd.arg(Key::Campaigns.name_in(self.global()))
            .arg(&campaign.id)
            .arg(json(campaign)?);
        match self.query::<i64>(&cmd).await? {
            1 => Ok(()),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn campaign_list(&self) -> StoreResult<Vec<Campaign>> {
        let mut cmd = ::redis::cmd("HVALS");
        cmd.arg(Key::Campaigns.name_in(self.global()));
        let all: Vec<String> = self.query(&cmd).await?;
        let mut out = all
            .iter()
            .map(|j| {
                serde_json::from_str::<Campaign>(j)
                    .map_err(|e| StoreError::Corrupt(format!("campaign record: {e}")))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
        Ok(out)
    }
}
