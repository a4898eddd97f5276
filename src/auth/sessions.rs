//! Resolving a session cookie to an identity, through the session cache.
//!
//! Every protected request needs the session; asking the store each time would put a
//! round trip on the hot path. A validated session stays in [`SessionCache`] for as long
//! as it is valid; the store's change feed (see `store::changes`) drops it on every
//! instance within a second of its end anywhere, and while that feed is lost the cache
//! keeps nothing longer than [`session_cache::SHORT_TTL`]. Activity is written behind,
//! in batches, at most once a minute per session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::session_cache;
use super::Auth;
use crate::store::{
    roles, DeviceId, Membership, Millis, OrgRole, SessionId, SessionRecord, StoreResult,
    TokenDigest, TokenHash, User, UserId,
};

/// Who is asking: what a request's session cookie resolved to.
#[derive(Debug, Clone)]
pub enum Visitor {
    /// No cookie, or one whose session is gone.
    Anonymous,
    Member(Arc<Identity>),
    /// The store could not be asked: protected pages fail closed.
    StoreDown,
}

impl Visitor {
    pub fn identity(&self) -> Option<&Arc<Identity>> {
        match self {
            Visitor::Member(id) => Some(id),
            Visitor::Anonymous | Visitor::StoreDown => None,
        }
    }

    pub fn into_identity(self) -> Option<Arc<Identity>> {
        match self {
            Visitor::Member(id) => Some(id),
            Visitor::Anonymous | Visitor::StoreDown => None,
        }
    }
}

/// The account side of an identity, shared by every session of that member (one
/// allocation per member, however many devices they keep signed in). Kept small: the
/// session cache holds one per member with a session in use.
#[derive(Debug)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub admin: bool,
    /// The organisation and the member's role in it, if any.
    pub org: Option<Membership>,
    /// Cleared when the account changes anywhere: every cached session sharing this
    /// member then reads the store again.
    current: AtomicBool,
    /// The cache generation it was read in (see `SessionCache`).
    pub(super) epoch: u64,
}

impl PartialEq for Member {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.user_id,
            &self.email,
            &self.name,
            self.admin,
            &self.org,
        ) == (
            &other.user_id,
            &other.email,
            &other.name,
            other.admin,
            &other.org,
        )
    }
}
impl Eq for Member {}

impl Member {
    pub fn new(
        user_id: UserId,
        email: String,
        name: String,
        admin: bool,
        org: Option<Membership>,
    ) -> Self {
        Self {
            user_id,
            email,
            name,
            admin,
            org,
            current: AtomicBool::new(true),
            epoch: 0,
        }
    }

    pub fn from_user(user: &User) -> Self {
        Self::new(
            user.id.clone(),
            user.email.clone(),
            user.name.clone(),
            user.admin,
            user.org.clone(),
        )
    }

    pub(super) fn in_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    pub fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire)
    }

    pub(super) fn retire(&self) {
        self.current.store(false, Ordering::Release);
    }

    pub fn groups(&self) -> &'static str {
        roles(self.admin, self.org_role())
    }

    pub fn org_role(&self) -> Option<OrgRole> {
        self.org.as_ref().map(|m| m.role)
    }
}

/// Who is making the request, as sent upstream: the member and this session. Derefs to
/// the [`Member`]. The session cache keeps this very value (with its bookkeeping in
/// `cached`), so a hit hands out a reference count, not a copy.
#[derive(Debug)]
pub struct Identity {
    pub member: Arc<Member>,
    pub session_id: SessionId,
    pub device_id: DeviceId,
    /// What opening the session proved (`Remote-Auth-Level`).
    pub level: crate::store::AuthLevel,
    pub(super) cached: session_cache::Seen,
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        (&self.member, &self.session_id, &self.device_id, self.level)
            == (
                &other.member,
                &other.session_id,
                &other.device_id,
                other.level,
            )
    }
}
impl Eq for Identity {}

impl std::ops::Deref for Identity {
    type Target = Member;
    fn deref(&self) -> &Member {
        &self.member
    }
}

impl Identity {
    pub fn new(
        user_id: UserId,
        email: String,
        name: String,
        admin: bool,
        session_id: SessionId,
        device_id: DeviceId,
        org: Option<Membership>,
    ) -> Self {
        Self {
            member: Arc::new(Member::new(user_id, email, name, admin, org)),
            session_id,
            device_id,
            level: crate::store::AuthLevel::Password,
            cached: session_cache::Seen::default(),
        }
    }

    /// This session of `member`, as read from the store at `now`.
    pub fn of(member: Arc<Member>, session: &SessionRecord) -> Self {
        Self {
            member,
            session_id: session.id.clone(),
            device_id: session.device_id.clone(),
            level: session.level,
            cached: session_cache::Seen::of(session),
        }
    }

    pub fn from_parts(user: &User, session: &SessionRecord) -> Self {
        Self::of(Arc::new(Member::from_user(user)), session)
    }
}

impl Auth {
    /// The identity behind a session token, if the session is valid at `now`. Records the
    /// request as activity (written to the store behind, in batches).
    pub async fn identify(&self, token: &str, now: Millis) -> StoreResult<Option<Arc<Identity>>> {
        self.identify_digest(&TokenDigest::of(token), now).await
    }

    /// [`Self::identify`] for a token already hashed.
    pub async fn identify_digest(
        &self,
        digest: &TokenDigest,
        now: Millis,
    ) -> StoreResult<Option<Arc<Identity>>> {
        let digest = *digest.bytes();
        if let Some(hit) = self.cache.lookup(&digest, now, true) {
            self.cache.count_hit();
            return Ok(Some(hit));
        }
        self.cache.count_miss();
        let hash = TokenHash::from_digest(&digest);
        // Taken before reading: a change announced while the store is read makes what was
        // read uncacheable (it may predate the change).
        let mark = self.cache.mark();
        let Some(session) = self.store.session_by_token(&hash, now).await? else {
            return Ok(None);
        };
        let member = match self.cache.member(&session.user_id, &mark) {
            Some(member) => member,
            None => {
                let Some(user) = self.store.user_by_id(&session.user_id).await? else {
                    return Ok(None);
                };
                self.cache.adopt(Member::from_user(&user), &mark)
            }
        };
        let identity = self
            .cache
            .insert(digest, Identity::of(member, &session), now, &mark);
        Ok(Some(identity))
    }

    /// Whether the session behind `token` is still valid at `now`, for a response that
    /// stays open (a WebSocket, an event stream). Unlike [`Self::identify`] it records no
    /// activity: an open tab left unattended must not keep its session from idling out.
    pub async fn still_valid(&self, digest: &TokenDigest, now: Millis) -> StoreResult<bool> {
        if self.cache.lookup(digest.bytes(), now, false).is_some() {
            return Ok(true);
        }
        Ok(self
            .store
            .session_by_token(&digest.hash(), now)
            .await?
            .is_some())
    }

    /// Ends the session behind `token` (logout).
    pub async fn logout(&self, token: &str, now: Millis) -> StoreResult<()> {
        let hash = TokenHash::of(token);
        self.cache.forget(&hash);
        if let Some(session) = self.store.session_by_token(&hash, now).await? {
            self.store.session_delete(&session.id).await?;
        }
        Ok(())
    }

    /// Writes the activity the cache saw since the last call (at most once a minute per
    /// session); called by a background task.
    pub async fn write_activity(&self) -> StoreResult<u64> {
        let touches = self.cache.take_touches();
        if touches.is_empty() {
            return Ok(0);
        }
        self.store.session_touch_many(&touches).await
    }
}

#[cfg(test)]
mod tests;
