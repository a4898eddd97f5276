//! Resolving a session cookie to an identity, with a short in-process cache.
//!
//! Every protected request needs the session; asking the store each time would put a
//! round-trip on the hot path. Valid sessions are cached for at most
//! [`CACHE_TTL`] (and never past their own expiry), which bounds how long a revocation
//! made on another instance or by the CLI can go unseen: the SPEC allows one second.
//! A local logout or revocation also evicts the local entry at once.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use pingora_memory_cache::MemoryCache;

use super::Auth;
use crate::store::{
    roles, DeviceId, Membership, Millis, OrgRole, SessionId, SessionRecord, StoreResult, TokenHash,
    User, UserId,
};

/// Upper bound on how stale a cached session may be (revocation delay across instances).
pub const CACHE_TTL: Duration = Duration::from_millis(500);
/// `last_seen` is written at most this often per session, to keep reads cheap.
const TOUCH_EVERY_MS: Millis = 60_000;

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
}

/// Who is making the request, as sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub admin: bool,
    pub session_id: SessionId,
    pub device_id: DeviceId,
    /// The organisation and the member's role in it, if any.
    pub org: Option<Membership>,
    /// What opening the session proved (`Remote-Auth-Level`).
    pub level: crate::store::AuthLevel,
    /// The identity header values, validated once when the identity is built rather than
    /// on every proxied request (cloning a `HeaderValue` shares its bytes).
    pub wire: WireIdentity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireIdentity {
    pub user: HeaderValue,
    pub email: HeaderValue,
    pub name: HeaderValue,
    pub groups: HeaderValue,
    pub session: HeaderValue,
    pub org: Option<HeaderValue>,
}

/// A header value from account data: control characters (CR, LF, NUL...) dropped so a
/// stored name can never split or forge a header.
fn header_value(v: &str) -> HeaderValue {
    let clean: String = v.chars().filter(|c| !c.is_control()).collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static(""))
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
        let wire = WireIdentity {
            user: header_value(user_id.as_str()),
            email: header_value(&email),
            name: header_value(&name),
            groups: HeaderValue::from_static(roles(admin, org.as_ref().map(|m| m.role))),
            session: header_value(session_id.as_str()),
            org: org.as_ref().map(|m| header_value(m.org.as_str())),
        };
        Self {
            user_id,
            email,
            name,
            admin,
            session_id,
            device_id,
            org,
            level: crate::store::AuthLevel::Password,
            wire,
        }
    }

    pub fn from_parts(user: &User, session: &SessionRecord) -> Self {
        let mut id = Self::new(
            user.id.clone(),
            user.email.clone(),
            user.name.clone(),
            user.admin,
            session.id.clone(),
            session.device_id.clone(),
            user.org.clone(),
        );
        id.level = session.level;
        id
    }

    pub fn groups(&self) -> &'static str {
        roles(self.admin, self.org_role())
    }

    pub fn org_role(&self) -> Option<OrgRole> {
        self.org.as_ref().map(|m| m.role)
    }
}

#[derive(Clone)]
struct Cached {
    /// The cache indexes by a 64-bit hash of the key; the full hash is checked on a hit so
    /// a collision can never hand one member's identity to another token.
    token_hash: TokenHash,
    /// Shared, so a cache hit on the hot path costs a reference count, not six strings.
    identity: Arc<Identity>,
    expires_at: Millis,
}

pub struct SessionCache {
    entries: MemoryCache<String, Cached>,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionCache {
    pub fn new() -> Self {
        Self {
            entries: MemoryCache::new(100_000),
        }
    }

    pub fn forget(&self, token_hash: &TokenHash) {
        self.entries.remove(token_hash.as_str());
    }
}

impl Auth {
    /// The identity behind a session token, if the session is valid at `now`.
    pub async fn identify(&self, token: &str, now: Millis) -> StoreResult<Option<Arc<Identity>>> {
        let hash = TokenHash::of(token);
        if let (Some(hit), _) = self.cache.entries.get(hash.as_str()) {
            if now < hit.expires_at && hit.token_hash == hash {
                return Ok(Some(hit.identity));
            }
        }
        let Some(session) = self.store.session_by_token(&hash, now).await? else {
            return Ok(None);
        };
        let Some(user) = self.store.user_by_id(&session.user_id).await? else {
            return Ok(None);
        };
        if now - session.last_seen >= TOUCH_EVERY_MS {
            // Best effort: a store refusing writes (a full Redis) must not sign every member
            // out; the failure is counted and logged by the store decorator, and the idle
            // clock runs from the last touch that went through (sooner expiry, never later).
            let _ = self.store.session_touch(&session.id, now).await;
        }
        let identity = Arc::new(Identity::from_parts(&user, &session));
        let expires_at = session.expires_at();
        let ttl =
            Duration::from_millis((expires_at - now).clamp(0, CACHE_TTL.as_millis() as i64) as u64);
        self.cache.entries.put(
            hash.as_str(),
            Cached {
                token_hash: hash.clone(),
                identity: identity.clone(),
                expires_at,
            },
            Some(ttl),
        );
        Ok(Some(identity))
    }

    /// Whether the session behind `token` is still valid at `now`, for a response that
    /// stays open (a WebSocket, an event stream). Unlike [`Self::identify`] it records no
    /// activity: an open tab left unattended must not keep its session from idling out.
    pub async fn still_valid(&self, token: &str, now: Millis) -> StoreResult<bool> {
        let hash = TokenHash::of(token);
        if let (Some(hit), _) = self.cache.entries.get(hash.as_str()) {
            if now < hit.expires_at && hit.token_hash == hash {
                return Ok(true);
            }
        }
        Ok(self.store.session_by_token(&hash, now).await?.is_some())
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
}
