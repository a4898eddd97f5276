//! The address index (`user_email:{email}` → user id) beside the accounts. A sign-up, an
//! organisation's registration and a join into an organisation of the same shard change
//! both in one script. Otherwise, on a Cluster, the index key lives in the address's
//! shard and the account in its id's (`shard.rs`): after a member confirmed a new
//! address, for a member drawn in their organisation's shard. Then (and on one Redis too,
//! for the rare paths that share this code: an account made by the console or an import,
//! a confirmed address) the two change in steps, each safe alone, ordered so that no
//! address ever has two accounts:
//!
//! - taking an address: claim it first (`EMAIL_CLAIM`: its index key names the id, and
//!   `address_claim:{email}` says so for [`CLAIM_LEASE_MS`]), then write the account; if
//!   that fails, release the claim unless the account holds the address all the same (a
//!   racing request made the same change);
//! - leaving one (a new address confirmed, an account deleted): the account first, then
//!   release the index key if it still names the id (`EMAIL_RELEASE`).
//!
//! While a claim is in progress the address counts as taken by it. A crash between two
//! steps leaves an index key naming an account that does not hold the address (gone, or
//! with another address): once its claim (if any) lapsed, whoever meets such a key checks
//! the account ([`RedisStore::holder_holds`], `held` in the scripts) and releases or
//! overwrites it; a lookup by address checks the account it finds the same way.

use std::sync::LazyLock;

use ::redis::Script;

use super::users::user_call;
use super::{user_from_json, RedisStore};
use crate::store::keys::{Key, Prefix};
use crate::store::shard::Shard;
use crate::store::{Millis, Store, StoreError, StoreResult, User, UserId};

/// How often a claim meeting a stale index key releases it and tries again.
const CLAIM_TRIES: usize = 3;
/// How long a claim counts as in progress: far longer than the two store calls between
/// the claim and the account's write (each bounded by `OP_DEADLINE`), short enough that
/// an address a crash left claimed is free again within a minute.
const CLAIM_LEASE_MS: Millis = 60_000;

/// What claiming an address found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// The index key names the id now (it may have already).
    Ours,
    /// Another account holds the address.
    Taken,
    /// Another id's claim of it is in progress (a request racing this one).
    Racing,
}

// KEYS[5] the address's index key, KEYS[6] its claim key; ARGV[7] id, ARGV[8] `pending` to
// take an address from a pending sign-up (which then goes whole), anything else to take
// only a free one; ARGV[9] the claim's lease (ms). Returns 1 claimed (or already the
// id's), 0 taken, 2 another id's claim in progress, -2 held by an account of another
// shard (the caller looks).
user_script!(
    EMAIL_CLAIM,
    r#"
local id, email = ARGV[7], string.sub(KEYS[5], #P_EMAIL + 1)
local holder = redis.call('GET', KEYS[5])
if holder == id then
  -- Claimed again (a retry after a failed write, a request racing this one): in progress
  -- again, until this one's account write.
  redis.call('SET', KEYS[6], id, 'PX', ARGV[9])
  return 1
end
if holder then
  local holds = held(holder, email)
  if holds == nil then return -2 end
  if holds then
    local u = user_record(holder)
    -- No account holds it yet: another id's claim is in progress.
    if not (u and u.email == email) then return 2 end
    if not (ARGV[8] == 'pending' and u.status == 'pending') then return 0 end
    -- A replaced sign-up goes whole.
    delete_user(holder)
  end
end
redis.call('SET', KEYS[5], id)
redis.call('SET', KEYS[6], id, 'PX', ARGV[9])
return 1
"#
);

// KEYS an address's claim key, and its index key when releasing it; ARGV[1] id. Deletes
// each of them that names the id (a commit ends the claim only).
static EMAIL_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"#,
    )
});

// KEYS[1] the address's index key, KEYS[2] its claim key; ARGV[1] the holder found stale.
// Deletes the index key if it still names that holder and no claim of it is in progress.
static RELEASE_STALE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[2]) == ARGV[1] then return 0 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

// KEYS[1] the address's index key, KEYS[2] its claim key. Returns {holder, 1 if its claim
// is in progress else 0}, or nil.
static ADDRESS_HOLDER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local holder = redis.call('GET', KEYS[1])
if not holder then return false end
return {holder, redis.call('GET', KEYS[2]) == holder and 1 or 0}
"#,
    )
});

// KEYS[1] user, KEYS[2] user set, KEYS[3] user index; ARGV[1] id, ARGV[2] JSON, ARGV[3]
// email. The address was claimed for the id first (`claim_address`).
static USER_INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[3] .. '\n' .. ARGV[1])
return 1
"#,
    )
});

// KEYS[1] email index; ARGV[1] user prefix. Returns {id, JSON}, {id} when the account is
// not in this shard (or gone), or nil.
static USER_BY_EMAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = redis.call('GET', KEYS[1])
if not id then return false end
local json = redis.call('GET', ARGV[1] .. id)
if json then return {id, json} end
return {id}
"#,
    )
});

impl RedisStore {
    /// Whether an account and its address share a shard (always on one Redis).
    pub(super) fn address_beside(&self, id: &UserId, email: &str) -> bool {
        self.together(Shard::of(email), Shard::of_user(id))
    }

    /// An account made whole (the console, the command line, an import): the address
    /// claimed first, then the account written; the claim released if that fails.
    pub(super) async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let json = serde_json::to_string(user)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode user: {e}")))?;
        if self.claim_address(&user.email, &user.id, false).await? != Claim::Ours {
            return Err(StoreError::Conflict);
        }
        let ns = self.of_user(&user.id);
        let mut inv = USER_INSERT.prepare_invoke();
        inv.key(Key::User(&user.id).name_in(ns))
            .key(Key::Users.name_in(ns))
            .key(Key::UserIndex.name_in(ns))
            .arg(user.id.as_str())
            .arg(json)
            .arg(&user.email);
        if self.call::<i64>(&inv).await? == 1 {
            return self.commit_claim(&user.email, &user.id).await;
        }
        self.release_unless_held(&user.email, &user.id).await?;
        Err(StoreError::Conflict)
    }

    /// The account holding `email`: the one its index key names, if that account's record
    /// says so (a key a crash left between two steps names one that does not).
    pub(super) async fn user_of_address(&self, email: &str) -> StoreResult<Option<User>> {
        let ns = self.of(email);
        let mut inv = USER_BY_EMAIL.prepare_invoke();
        inv.key(Key::UserEmail(email).name_in(ns))
            .arg(Prefix::User.in_ns(ns));
        let reply: Option<Vec<String>> = self.call(&inv).await?;
        let user = match reply.as_deref() {
            Some([_, json]) => Some(user_from_json(json)?),
            // The account lives in its own shard.
            Some([id]) if self.cluster => self.user_by_id(&UserId::from_string(id.clone())).await?,
            _ => None,
        };
        Ok(user.filter(|u| u.email == email))
    }

    /// Claims `email`'s index key for `id` in the address's shard: `take_pending` lets a
    /// pending sign-up's address go to `id` (the sign-up is deleted).
    pub(super) async fn claim_address(
        &self,
        email: &str,
        id: &UserId,
        take_pending: bool,
    ) -> StoreResult<Claim> {
        let ns = self.of(email);
        for _ in 0..CLAIM_TRIES {
            let mut inv = user_call(&EMAIL_CLAIM, ns);
            inv.key(Key::UserEmail(email).name_in(ns))
                .key(Key::AddressClaim(email).name_in(ns))
                .arg(id.as_str())
                .arg(if take_pending { "pending" } else { "" })
                .arg(CLAIM_LEASE_MS);
            match self.call::<i64>(&inv).await? {
                1 => return Ok(Claim::Ours),
                2 => return Ok(Claim::Racing),
                -2 => {
                    if self.holder_holds(email).await? {
                        return Ok(Claim::Taken);
                    }
                }
                _ => return Ok(Claim::Taken),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Ends the claim of `email` by `id`, whose account now holds it (until then, or until
    /// its lease ends, the address counts as taken by a claim in progress).
    pub(super) async fn commit_claim(&self, email: &str, id: &UserId) -> StoreResult<()> {
        let mut inv = EMAIL_RELEASE.prepare_invoke();
        inv.key(Key::AddressClaim(email).name_in(self.of(email)))
            .arg(id.as_str());
        self.call::<i64>(&inv).await.map(drop)
    }

    /// Deletes `email`'s index key (and claim) if it still names `id`.
    pub(super) async fn release_address(&self, email: &str, id: &UserId) -> StoreResult<()> {
        let ns = self.of(email);
        let mut inv = EMAIL_RELEASE.prepare_invoke();
        inv.key(Key::AddressClaim(email).name_in(ns))
            .key(Key::UserEmail(email).name_in(ns))
            .arg(id.as_str());
        self.call::<i64>(&inv).await.map(drop)
    }

    /// After the account's write failed: releases the claim, unless the account holds the
    /// address all the same (the same change made by a request racing this one).
    pub(super) async fn release_unless_held(&self, email: &str, id: &UserId) -> StoreResult<()> {
        if self.account_holds(id, email).await? {
            return Ok(());
        }
        self.release_address(email, id).await
    }

    /// Whether account `id` exists and its record says it has address `email`.
    async fn account_holds(&self, id: &UserId, email: &str) -> StoreResult<bool> {
        Ok(self.user_by_id(id).await?.is_some_and(|u| u.email == email))
    }

    /// After a script in the address's shard found its index key naming an account of
    /// another shard: whether the address is held, by that account or by a claim in
    /// progress. A key naming an account that is gone or moved to another address, with
    /// no claim in progress, is released, so the caller may try again.
    pub(super) async fn holder_holds(&self, email: &str) -> StoreResult<bool> {
        let ns = self.of(email);
        let mut inv = ADDRESS_HOLDER.prepare_invoke();
        inv.key(Key::UserEmail(email).name_in(ns))
            .key(Key::AddressClaim(email).name_in(ns));
        let Some((holder, claimed)) = self.call::<Option<(String, u8)>>(&inv).await? else {
            return Ok(false);
        };
        if claimed == 1 {
            return Ok(true);
        }
        let holder = UserId::from_string(holder);
        if self.account_holds(&holder, email).await? {
            return Ok(true);
        }
        // Unless it was claimed again meanwhile (then the caller finds it so).
        let mut inv = RELEASE_STALE.prepare_invoke();
        inv.key(Key::UserEmail(email).name_in(ns))
            .key(Key::AddressClaim(email).name_in(ns))
            .arg(holder.as_str());
        self.call::<i64>(&inv).await?;
        Ok(false)
    }

    /// On a Cluster, the address of account `id`, read before deleting it to release its
    /// index key after if it lives in another shard (`released_after_delete`).
    pub(super) async fn address_to_release(&self, id: &UserId) -> StoreResult<Option<String>> {
        if !self.cluster {
            return Ok(None);
        }
        Ok(self.user_by_id(id).await?.map(|u| u.email))
    }

    /// After deleting account `id` in its shard: releases the address it held when that
    /// address's index key lives in another shard (the script could not reach it).
    pub(super) async fn released_after_delete(
        &self,
        id: &UserId,
        email: Option<&str>,
    ) -> StoreResult<()> {
        match email {
            Some(email) if !self.address_beside(id, email) => self.release_address(email, id).await,
            _ => Ok(()),
        }
    }
}
