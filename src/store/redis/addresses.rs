//! The address index (`user_email:{email}` → user id) beside the accounts. On one Redis a
//! script changes both at once. On a Cluster the index key lives in the address's shard
//! and the account in its id's (`shard.rs`): the same shard when the id was drawn for
//! that address at sign-up, but not after the member confirmed a new address, nor for a
//! member drawn in their organisation's shard. Then the index changes in two steps, each
//! safe alone, ordered so that no address ever has two accounts:
//!
//! - taking an address: claim its index key for the id first (`EMAIL_CLAIM`), then write
//!   the account; if that fails, release the claim;
//! - leaving one (a new address confirmed, an account deleted): the account first, then
//!   release the index key if it still names the id (`EMAIL_RELEASE`).
//!
//! A crash between two steps leaves an index key naming an account that does not hold the
//! address (gone, or with another address). Whoever meets such a key checks the account
//! ([`RedisStore::holder_holds`]) and releases it: a lookup by address then finds nobody,
//! and a sign-up takes the address.

use std::sync::LazyLock;

use ::redis::Script;

use super::users::user_call;
use super::{user_from_json, RedisStore};
use crate::store::keys::{Key, Prefix};
use crate::store::shard::Shard;
use crate::store::{Store, StoreError, StoreResult, User, UserId};

/// How often a claim meeting a stale index key releases it and tries again.
const CLAIM_TRIES: usize = 3;

// KEYS[5] the address's index key; ARGV[7] id, ARGV[8] `pending` to take an address
// from a pending sign-up (which then goes whole), anything else to take only a free one.
// Returns 1 claimed (or already the id's), 0 taken, -2 held by an account of another shard.
user_script!(
    EMAIL_CLAIM,
    r#"
local holder = redis.call('GET', KEYS[5])
if holder == ARGV[7] then return 1 end
if holder then
  if not here(holder) then return -2 end
  local u, exists = user_record(holder)
  -- An account with another address (a crash between two steps) does not hold it.
  if exists and not (u and u.email ~= string.sub(KEYS[5], #P_EMAIL + 1)) then
    if not (ARGV[8] == 'pending' and u and u.status == 'pending') then return 0 end
    -- A replaced sign-up goes whole.
    delete_user(holder)
  end
end
redis.call('SET', KEYS[5], ARGV[7])
return 1
"#
);

// KEYS[1] the address's index key; ARGV[1] id. Deletes it if it names the id.
static EMAIL_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

// KEYS[1] user, KEYS[2] email index, KEYS[3] user set, KEYS[4] user index; ARGV[1] id,
// ARGV[2] JSON, ARGV[3] email, ARGV[4] `claimed` when the address's key is in another
// shard and already claimed for the id (KEYS[2] is then not touched).
static USER_INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local apart = ARGV[4] == 'claimed'
if redis.call('EXISTS', KEYS[1]) == 1 or (not apart and redis.call('EXISTS', KEYS[2]) == 1) then
  return 0
end
if not apart then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[3] .. '\n' .. ARGV[1])
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

    pub(super) async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let json = serde_json::to_string(user)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode user: {e}")))?;
        let apart = !self.address_beside(&user.id, &user.email);
        if apart && !self.claim_address(&user.email, &user.id, false).await? {
            return Err(StoreError::Conflict);
        }
        let ns = self.of_user(&user.id);
        let mut inv = USER_INSERT.prepare_invoke();
        inv.key(Key::User(&user.id).name_in(ns))
            .key(Key::UserEmail(&user.email).name_in(ns))
            .key(Key::Users.name_in(ns))
            .key(Key::UserIndex.name_in(ns))
            .arg(user.id.as_str())
            .arg(json)
            .arg(&user.email)
            .arg(if apart { "claimed" } else { "" });
        if self.call::<i64>(&inv).await? == 1 {
            return Ok(());
        }
        if apart {
            self.release_address(&user.email, &user.id).await?;
        }
        Err(StoreError::Conflict)
    }

    pub(super) async fn user_of_address(&self, email: &str) -> StoreResult<Option<User>> {
        let ns = self.of(email);
        let mut inv = USER_BY_EMAIL.prepare_invoke();
        inv.key(Key::UserEmail(email).name_in(ns))
            .arg(Prefix::User.in_ns(ns));
        let reply: Option<Vec<String>> = self.call(&inv).await?;
        match reply.as_deref() {
            Some([_, json]) => user_from_json(json).map(Some),
            Some([id]) if self.cluster => {
                // The account lives in its own shard; it holds the address only if its
                // record says so (a crash between two steps may leave a stale key).
                let user = self.user_by_id(&UserId::from_string(id.clone())).await?;
                Ok(user.filter(|u| u.email == email))
            }
            _ => Ok(None),
        }
    }

    /// Claims `email`'s index key for `id` in the address's shard: `take_pending` lets a
    /// pending sign-up's address go to `id` (the sign-up is deleted). Returns false when
    /// another account holds it.
    pub(super) async fn claim_address(
        &self,
        email: &str,
        id: &UserId,
        take_pending: bool,
    ) -> StoreResult<bool> {
        let ns = self.of(email);
        for _ in 0..CLAIM_TRIES {
            let mut inv = user_call(&EMAIL_CLAIM, ns);
            inv.key(Key::UserEmail(email).name_in(ns))
                .arg(id.as_str())
                .arg(if take_pending { "pending" } else { "" });
            match self.call::<i64>(&inv).await? {
                1 => return Ok(true),
                -2 => {
                    if self.holder_holds(email).await? {
                        return Ok(false);
                    }
                }
                _ => return Ok(false),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Deletes `email`'s index key if it still names `id` (an account that left it).
    pub(super) async fn release_address(&self, email: &str, id: &UserId) -> StoreResult<()> {
        let mut inv = EMAIL_RELEASE.prepare_invoke();
        inv.key(Key::UserEmail(email).name_in(self.of(email)))
            .arg(id.as_str());
        self.call::<i64>(&inv).await.map(drop)
    }

    /// After a script in the address's shard found its index key naming an account of
    /// another shard: whether that account holds the address. A key naming an account
    /// that is gone or moved to another address is released, so the caller may try again.
    pub(super) async fn holder_holds(&self, email: &str) -> StoreResult<bool> {
        let mut get = ::redis::cmd("GET");
        get.arg(Key::UserEmail(email).name_in(self.of(email)));
        let Some(holder) = self.query::<Option<String>>(&get).await? else {
            return Ok(false);
        };
        let holder = UserId::from_string(holder);
        match self.user_by_id(&holder).await? {
            Some(user) if user.email == email => Ok(true),
            _ => {
                self.release_address(email, &holder).await?;
                Ok(false)
            }
        }
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
