//! [`OrgStore`] on Redis (layout in `store::keys`). Every operation that checks before it
//! writes is one Lua script on the account scripts' calling convention (`user_prelude!`),
//! so registration and joining replace a pending sign-up and removing a member deletes
//! the account exactly as the account scripts do. Records are JSON; scripts change one
//! field with `cjson`, never a read-modify-write from Rust.

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use super::addresses::Claim;
use super::users::{member_keys, user_call};
use super::{user_from_json, RedisStore};
use crate::store::keys::{Key, Namespace, Prefix};
use crate::store::shard::Shard;
use crate::store::{
    Invited, Joined, Millis, Org, OrgId, OrgInvite, OrgProfile, OrgRole, OrgStore, OrgTerms,
    Registered, StoreError, StoreResult, TokenHash, TokenKind, User, UserId,
};

/// On top of `user_prelude!`: whether an email-index key may take a new account (free, or
/// held by a pending sign-up, which then goes whole), without changing anything; nil when
/// an account of another shard holds it (the caller looks, `addresses.rs`).
macro_rules! org_prelude {
    () => {
        concat!(
            user_prelude!(),
            r#"
local function email_free(email_key)
  local holder = redis.call('GET', email_key)
  if not holder then return true end
  local holds = held(holder, string.sub(email_key, #P_EMAIL + 1))
  if holds == nil then return nil end
  if not holds then return true end
  local u = user_record(holder)
  return (u and u.status == 'pending') or false
end
-- After `email_free`: deletes the pending sign-up holding the address (a stale key is
-- only overwritten).
local function take_email(email_key)
  local holder = redis.call('GET', email_key)
  if holder and held(holder, string.sub(email_key, #P_EMAIL + 1)) then delete_user(holder) end
end
-- `email_key` false when the address's key is in another shard, claimed there already.
local function add_user(user_key, email_key, members_key, id, json)
  put_user(user_key, json)
  if email_key then redis.call('SET', email_key, id) end
  redis.call('SADD', USERS, id)
  redis.call('SADD', members_key, id)
end
"#
        )
    };
}

macro_rules! org_script {
    ($name:ident, $body:literal) => {
        static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(concat!(org_prelude!(), $body)));
    };
}

// KEYS[5] link token, KEYS[6] expiring, KEYS[7] org, KEYS[8] org set, KEYS[9] members,
// KEYS[10] user, KEYS[11] email index; ARGV[7] now, ARGV[8] org id, ARGV[9] org JSON,
// ARGV[10] user id, ARGV[11] user JSON, ARGV[12] email.
// Returns 1 created, 0 link gone, 2 email taken, 3 id in use, -2 the address held by an
// account of another shard (nothing changed). The founder, the organisation and the link
// were drawn in the address's shard.
org_script!(
    ORG_REGISTER,
    r#"
local f = redis.call('HMGET', KEYS[5], 'subject', 'expires_at')
local expires_at = tonumber(f[2])
if not expires_at or f[1] ~= ARGV[12] or tonumber(ARGV[7]) >= expires_at then return 0 end
local free = email_free(KEYS[11])
if free == nil then return -2 end
if not free then return 2 end
if redis.call('EXISTS', KEYS[7]) == 1 or redis.call('EXISTS', KEYS[10]) == 1 then return 3 end
redis.call('DEL', KEYS[5])
redis.call('ZREM', KEYS[6], KEYS[5])
take_email(KEYS[11])
redis.call('SET', KEYS[7], ARGV[9])
redis.call('SADD', KEYS[8], ARGV[8])
add_user(KEYS[10], KEYS[11], KEYS[9], ARGV[10], ARGV[11])
return 1
"#
);

// KEYS[5] org; ARGV[7] field ("profile" or "terms"), ARGV[8] its JSON. Returns 1 if set.
org_script!(
    ORG_SET_FIELD,
    r#"
local json = redis.call('GET', KEYS[5])
if not json then return 0 end
local org = cjson.decode(json)
org[ARGV[7]] = cjson.decode(ARGV[8])
redis.call('SET', KEYS[5], cjson.encode(org))
return 1
"#
);

// KEYS[5] members, KEYS[6] user; ARGV[7] user id, ARGV[8] role. Returns 1 if set.
org_script!(
    ORG_SET_ROLE,
    r#"
if redis.call('SISMEMBER', KEYS[5], ARGV[7]) == 0 then return 0 end
local u = user_record(ARGV[7])
if not (u and type(u.org) == 'table') or u.org.role == 'org-super-admin' then return 0 end
u.org.role = ARGV[8]
put_user(KEYS[6], cjson.encode(u))
return 1
"#
);

// KEYS[5] org, KEYS[6] members, KEYS[7] from user, KEYS[8] to user; ARGV[7] from id,
// ARGV[8] to id. Returns 1 if transferred.
org_script!(
    ORG_TRANSFER,
    r#"
local from, to = ARGV[7], ARGV[8]
local json = redis.call('GET', KEYS[5])
if not json or from == to then return 0 end
local org = cjson.decode(json)
if org.super_admin ~= from then return 0 end
if redis.call('SISMEMBER', KEYS[6], from) == 0 or redis.call('SISMEMBER', KEYS[6], to) == 0 then
  return 0
end
local a, b = user_record(from), user_record(to)
if not (a and b and type(a.org) == 'table' and type(b.org) == 'table') then return 0 end
if a.org.role ~= 'org-super-admin' then return 0 end
a.org.role, b.org.role, org.super_admin = 'org-admin', 'org-super-admin', to
put_user(KEYS[7], cjson.encode(a))
put_user(KEYS[8], cjson.encode(b))
redis.call('SET', KEYS[5], cjson.encode(org))
return 1
"#
);

// KEYS[5] members, KEYS[6] invites, KEYS[7] new link's key, KEYS[8] expiring, KEYS[9] the
// invited address's email index; ARGV[7] now, ARGV[8] email, ARGV[9] invite JSON,
// ARGV[10] seats, ARGV[11] expires_at, ARGV[12] link record JSON, ARGV[13] link key prefix,
// ARGV[14] the address's holder when its key is in another shard (read by the caller).
// Returns 1 invited, 0 no seat, 2 already a member.
org_script!(
    ORG_INVITE,
    r#"
local now, email = tonumber(ARGV[7]), ARGV[8]
local holder = ARGV[14] ~= '' and ARGV[14] or redis.call('GET', KEYS[9])
if holder and redis.call('SISMEMBER', KEYS[5], holder) == 1 then return 2 end
local pending = 0
local all = redis.call('HGETALL', KEYS[6])
for i = 1, #all, 2 do
  local ok, inv = pcall(cjson.decode, all[i + 1])
  local live = ok and type(inv) == 'table' and tonumber(inv.expires_at) and tonumber(inv.expires_at) > now
  if not live then
    redis.call('HDEL', KEYS[6], all[i])
  elseif all[i] ~= email then
    pending = pending + 1
  end
end
if redis.call('SCARD', KEYS[5]) + pending >= tonumber(ARGV[10]) then return 0 end
local old = redis.call('HGET', KEYS[6], email)
if old then
  local ok, inv = pcall(cjson.decode, old)
  if ok and type(inv) == 'table' and type(inv.token_hash) == 'string' then
    local key = ARGV[13] .. inv.token_hash
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[8], key)
  end
end
redis.call('HSET', KEYS[6], email, ARGV[9])
redis.call('SET', KEYS[7], ARGV[12])
redis.call('PEXPIREAT', KEYS[7], ARGV[11])
redis.call('ZADD', KEYS[8], ARGV[11], KEYS[7])
return 1
"#
);

// KEYS[1] invites, KEYS[2] expiring; ARGV[1] email, ARGV[2] link key prefix. Returns 1 if
// an invitation was there.
static ORG_INVITE_CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local ok, inv = pcall(cjson.decode, old)
if ok and type(inv) == 'table' and type(inv.token_hash) == 'string' then
  local key = ARGV[2] .. inv.token_hash
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[2], key)
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"#,
    )
});

// KEYS[5] link key, KEYS[6] expiring, KEYS[7] invites, KEYS[8] members, KEYS[9] user,
// KEYS[10] email index; ARGV[7] now, ARGV[8] token hash, ARGV[9] email, ARGV[10] user id,
// ARGV[11] user JSON, ARGV[12] for an address whose key is in another shard: `claimed`
// there for the id already, or `taken`. Returns 1 joined, 0 gone, 2 email taken
// (invitation spent), 3 id in use, -2 the address held by an account of another shard
// (nothing changed).
org_script!(
    ORG_JOIN,
    r#"
local json = redis.call('HGET', KEYS[7], ARGV[9])
if not json then return 0 end
local ok, inv = pcall(cjson.decode, json)
if not (ok and type(inv) == 'table' and inv.token_hash == ARGV[8]) then return 0 end
if not (tonumber(inv.expires_at) and tonumber(inv.expires_at) > tonumber(ARGV[7])) then return 0 end
if redis.call('EXISTS', KEYS[9]) == 1 then return 3 end
local apart, free = ARGV[12] ~= '', ARGV[12] == 'claimed'
if not apart then free = email_free(KEYS[10]) end
if free == nil then return -2 end
redis.call('HDEL', KEYS[7], ARGV[9])
redis.call('DEL', KEYS[5])
redis.call('ZREM', KEYS[6], KEYS[5])
if not free then return 2 end
if apart then
  add_user(KEYS[9], false, KEYS[8], ARGV[10], ARGV[11])
else
  take_email(KEYS[10])
  add_user(KEYS[9], KEYS[10], KEYS[8], ARGV[10], ARGV[11])
end
return 1
"#
);

// KEYS[5] members, KEYS[6..] `member_keys`; ARGV[7] user id. Returns 1 if the account
// was deleted.
org_script!(
    ORG_REMOVE,
    r#"
if redis.call('SISMEMBER', KEYS[5], ARGV[7]) == 0 then return 0 end
local u = user_record(ARGV[7])
if u and type(u.org) == 'table' and u.org.role == 'org-super-admin' then return 0 end
delete_user(ARGV[7])
forget_member(ARGV[7], 6)
redis.call('SREM', KEYS[5], ARGV[7])
return 1
"#
);

fn encode<T: serde::Serialize>(what: &str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {what}: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what} record: {e}")))
}

/// What a link key holds: which invitation it opens.
#[derive(serde::Serialize, serde::Deserialize)]
struct LinkRef {
    org: OrgId,
    email: String,
}

/// The organisation a new account joins (as the scripts need its keys).
fn org_of(user: &User) -> StoreResult<&OrgId> {
    user.org.as_ref().map(|m| &m.org).ok_or_else(|| {
        StoreError::Corrupt("an organisation account without an organisation".into())
    })
}

impl RedisStore {
    async fn set_org_field(&self, id: &OrgId, field: &str, json: String) -> StoreResult<bool> {
        let ns = self.of(id.as_str());
        let mut inv = user_call(&ORG_SET_FIELD, ns);
        inv.key(Key::Org(id).name_in(ns)).arg(field).arg(json);
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    /// An organisation's shard, where its founder's and every member's ids were drawn (as
    /// the links it sends): `None` when `got`, the shard of an account or link, is another,
    /// which therefore is no member or link of this organisation.
    fn org_shard(&self, org: &OrgId, got: Shard) -> Option<Namespace> {
        let shard = Shard::of(org.as_str());
        self.together(got, shard).then(|| self.at(shard))
    }

    async fn register(
        &self,
        org: &Org,
        founder: &User,
        link: &TokenHash,
        now: Millis,
    ) -> StoreResult<i64> {
        let shard = Shard::of(&founder.email);
        self.drawn_in("a founder's id", Shard::of_user(&founder.id), shard)?;
        self.drawn_in("an organisation id", Shard::of(org.id.as_str()), shard)?;
        // Every link was drawn beside the address it was mailed to: one of another shard
        // was mailed to another address, or never.
        if !self.together(Shard::of_token(link), shard) {
            return Ok(0);
        }
        let ns = self.at(shard);
        let mut inv = user_call(&ORG_REGISTER, ns);
        inv.key(Key::Token(TokenKind::OrgRegistration, link).name_in(ns))
            .key(Key::Expiring.name_in(ns))
            .key(Key::Org(&org.id).name_in(ns))
            .key(Key::Orgs.name_in(ns))
            .key(Key::OrgMembers(&org.id).name_in(ns))
            .key(Key::User(&founder.id).name_in(ns))
            .key(Key::UserEmail(&founder.email).name_in(ns))
            .arg(now)
            .arg(org.id.as_str())
            .arg(encode("organisation", org)?)
            .arg(founder.id.as_str())
            .arg(encode("user", founder)?)
            .arg(&founder.email);
        self.call(&inv).await
    }

    /// `claim`: '' when the address's key is beside the organisation, else `claimed` or
    /// `taken` (see ORG_JOIN).
    async fn join(
        &self,
        ns: Namespace,
        token: &TokenHash,
        user: &User,
        org: &OrgId,
        claim: &str,
        now: Millis,
    ) -> StoreResult<i64> {
        let mut inv = user_call(&ORG_JOIN, ns);
        inv.key(Key::OrgInviteToken(token).name_in(ns))
            .key(Key::Expiring.name_in(ns))
            .key(Key::OrgInvites(org).name_in(ns))
            .key(Key::OrgMembers(org).name_in(ns))
            .key(Key::User(&user.id).name_in(ns))
            .key(Key::UserEmail(&user.email).name_in(ns))
            .arg(now)
            .arg(token.as_str())
            .arg(&user.email)
            .arg(user.id.as_str())
            .arg(encode("user", user)?)
            .arg(claim);
        self.call(&inv).await
    }
}

#[async_trait]
impl OrgStore for RedisStore {
    async fn org_register(
        &self,
        org: &Org,
        founder: &User,
        link: &TokenHash,
        now: Millis,
    ) -> StoreResult<Registered> {
        let mut reply = self.register(org, founder, link, now).await?;
        // Held by an account of another shard: taken, unless that key was stale.
        if reply == -2 {
            reply = match self.holder_holds(&founder.email).await? {
                true => 2,
                false => self.register(org, founder, link, now).await?,
            };
        }
        match reply {
            1 => Ok(Registered::Created),
            0 => Ok(Registered::LinkGone),
            2 | -2 => Ok(Registered::EmailTaken),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn org_get(&self, id: &OrgId) -> StoreResult<Option<Org>> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(Key::Org(id).name_in(self.of(id.as_str())));
        let json: Option<String> = self.query(&cmd).await?;
        json.as_deref()
            .map(|j| decode("organisation", j))
            .transpose()
    }

    async fn org_list(&self) -> StoreResult<Vec<Org>> {
        let mut orgs = Vec::new();
        let all = self
            .in_every(|ns| self.records_of_set(ns, Key::Orgs, Prefix::Org))
            .await?;
        for json in all.iter().flatten() {
            orgs.push(decode::<Org>("organisation", json)?);
        }
        orgs.sort_by(|a, b| (&a.profile.company, &a.id).cmp(&(&b.profile.company, &b.id)));
        Ok(orgs)
    }

    async fn org_members(&self, id: &OrgId) -> StoreResult<Vec<User>> {
        let all = self
            .records_of_set(self.of(id.as_str()), Key::OrgMembers(id), Prefix::User)
            .await?;
        let mut users = all
            .iter()
            .map(|j| user_from_json(j))
            .collect::<StoreResult<Vec<_>>>()?;
        users.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(users)
    }

    async fn org_member_count(&self, id: &OrgId) -> StoreResult<u64> {
        let mut cmd = ::redis::cmd("SCARD");
        cmd.arg(Key::OrgMembers(id).name_in(self.of(id.as_str())));
        self.query(&cmd).await
    }

    async fn org_set_profile(&self, id: &OrgId, profile: &OrgProfile) -> StoreResult<bool> {
        self.set_org_field(id, "profile", encode("profile", profile)?)
            .await
    }

    async fn org_set_terms(&self, id: &OrgId, terms: &OrgTerms) -> StoreResult<bool> {
        self.set_org_field(id, "terms", encode("terms", terms)?)
            .await
    }

    async fn org_set_role(&self, id: &OrgId, user: &UserId, role: OrgRole) -> StoreResult<bool> {
        if role == OrgRole::SuperAdmin {
            return Ok(false);
        }
        let Some(ns) = self.org_shard(id, Shard::of_user(user)) else {
            return Ok(false);
        };
        let mut inv = user_call(&ORG_SET_ROLE, ns);
        inv.key(Key::OrgMembers(id).name_in(ns))
            .key(Key::User(user).name_in(ns))
            .arg(user.as_str())
            .arg(role.as_str());
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn org_transfer(&self, id: &OrgId, from: &UserId, to: &UserId) -> StoreResult<bool> {
        let (Some(ns), Some(_)) = (
            self.org_shard(id, Shard::of_user(from)),
            self.org_shard(id, Shard::of_user(to)),
        ) else {
            return Ok(false);
        };
        let mut inv = user_call(&ORG_TRANSFER, ns);
        inv.key(Key::Org(id).name_in(ns))
            .key(Key::OrgMembers(id).name_in(ns))
            .key(Key::User(from).name_in(ns))
            .key(Key::User(to).name_in(ns))
            .arg(from.as_str())
            .arg(to.as_str());
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn org_invite(
        &self,
        invite: &OrgInvite,
        seats: u32,
        now: Millis,
    ) -> StoreResult<Invited> {
        let link = LinkRef {
            org: invite.org.clone(),
            email: invite.email.clone(),
        };
        let shard = Shard::of(invite.org.as_str());
        self.drawn_in(
            "an invitation link",
            Shard::of_token(&invite.token_hash),
            shard,
        )?;
        let ns = self.at(shard);
        // Who holds the address, when its key is not beside the organisation.
        let holder = if self.together(Shard::of(&invite.email), Shard::of(invite.org.as_str())) {
            String::new()
        } else {
            let mut get = ::redis::cmd("GET");
            get.arg(Key::UserEmail(&invite.email).name_in(self.of(&invite.email)));
            self.query::<Option<String>>(&get)
                .await?
                .unwrap_or_default()
        };
        let mut inv = user_call(&ORG_INVITE, ns);
        inv.key(Key::OrgMembers(&invite.org).name_in(ns))
            .key(Key::OrgInvites(&invite.org).name_in(ns))
            .key(Key::OrgInviteToken(&invite.token_hash).name_in(ns))
            .key(Key::Expiring.name_in(ns))
            .key(Key::UserEmail(&invite.email).name_in(ns))
            .arg(now)
            .arg(&invite.email)
            .arg(encode("invitation", invite)?)
            .arg(seats)
            .arg(invite.expires_at)
            .arg(encode("invitation link", &link)?)
            .arg(Prefix::OrgInviteToken.in_ns(ns))
            .arg(holder);
        match self.call::<i64>(&inv).await? {
            1 => Ok(Invited::Invited),
            2 => Ok(Invited::AlreadyMember),
            _ => Ok(Invited::NoSeat),
        }
    }

    async fn org_invites(&self, id: &OrgId, now: Millis) -> StoreResult<Vec<OrgInvite>> {
        let mut cmd = ::redis::cmd("HVALS");
        cmd.arg(Key::OrgInvites(id).name_in(self.of(id.as_str())));
        let all: Vec<String> = self.query(&cmd).await?;
        let mut invites = all
            .iter()
            .map(|j| decode::<OrgInvite>("invitation", j))
            .filter(|i| i.as_ref().map_or(true, |i| now < i.expires_at))
            .collect::<StoreResult<Vec<_>>>()?;
        invites.sort_by(|a, b| (a.created_at, &a.email).cmp(&(b.created_at, &b.email)));
        Ok(invites)
    }

    async fn org_invite_cancel(&self, id: &OrgId, email: &str) -> StoreResult<bool> {
        let ns = self.of(id.as_str());
        let mut inv = ORG_INVITE_CANCEL.prepare_invoke();
        inv.key(Key::OrgInvites(id).name_in(ns))
            .key(Key::Expiring.name_in(ns))
            .arg(email)
            .arg(Prefix::OrgInviteToken.in_ns(ns));
        Ok(self.call::<i64>(&inv).await? == 1)
    }

    async fn org_invite_by_token(
        &self,
        token: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<OrgInvite>> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(Key::OrgInviteToken(token).name_in(self.of_token(token)));
        let Some(link) = self.query::<Option<String>>(&cmd).await? else {
            return Ok(None);
        };
        let link: LinkRef = decode("invitation link", &link)?;
        let mut cmd = ::redis::cmd("HGET");
        cmd.arg(Key::OrgInvites(&link.org).name_in(self.of(link.org.as_str())))
            .arg(&link.email);
        let Some(json) = self.query::<Option<String>>(&cmd).await? else {
            return Ok(None);
        };
        let invite: OrgInvite = decode("invitation", &json)?;
        Ok((invite.token_hash == *token && now < invite.expires_at).then_some(invite))
    }

    async fn org_join(&self, token: &TokenHash, user: &User, now: Millis) -> StoreResult<Joined> {
        let org = org_of(user)?;
        let shard = Shard::of(org.as_str());
        self.drawn_in("a joining member's id", Shard::of_user(&user.id), shard)?;
        // Every invitation link was drawn beside its organisation.
        if !self.together(Shard::of_token(token), shard) {
            return Ok(Joined::Gone);
        }
        let ns = self.at(shard);
        let reply = if self.address_beside(&user.id, &user.email) {
            let mut reply = self.join(ns, token, user, org, "", now).await?;
            // Held by an account of another shard: taken, unless that key was stale.
            if reply == -2 {
                let claim = match self.holder_holds(&user.email).await? {
                    true => "taken",
                    false => "",
                };
                reply = self.join(ns, token, user, org, claim, now).await?;
            }
            reply
        } else {
            // The address first, in its own shard (a pending sign-up of it goes), and only
            // for an invitation still open; released if the join then fails.
            if self.org_invite_by_token(token, now).await?.is_none() {
                return Ok(Joined::Gone);
            }
            let claim = match self.claim_address(&user.email, &user.id, true).await? {
                Claim::Ours => "claimed",
                Claim::Taken => "taken",
                // Another request takes it right now (the same form sent twice, say):
                // this one spends nothing.
                Claim::Racing => return Ok(Joined::EmailTaken),
            };
            let reply = self.join(ns, token, user, org, claim, now).await?;
            match (claim, reply) {
                ("claimed", 1) => self.commit_claim(&user.email, &user.id).await?,
                ("claimed", _) => self.release_unless_held(&user.email, &user.id).await?,
                _ => {}
            }
            reply
        };
        match reply {
            1 => Ok(Joined::Joined),
            0 => Ok(Joined::Gone),
            2 | -2 => Ok(Joined::EmailTaken),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn org_remove(&self, id: &OrgId, user: &UserId) -> StoreResult<bool> {
        let Some(ns) = self.org_shard(id, Shard::of_user(user)) else {
            return Ok(false);
        };
        let email = self.address_to_release(user).await?;
        let mut inv = user_call(&ORG_REMOVE, ns);
        inv.key(Key::OrgMembers(id).name_in(ns));
        member_keys(&mut inv, user, ns);
        inv.arg(user.as_str());
        let removed = self.call::<i64>(&inv).await? == 1;
        if removed {
            self.released_after_delete(user, email.as_deref()).await?;
        }
        Ok(removed)
    }
}
