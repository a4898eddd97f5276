//! The store: every piece of state that must outlive a request or be shared between
//! gateway instances (accounts, sessions, the gateway secret).
//!
//! The trait is narrow and domain-level on purpose: each method is one atomic operation
//! (a SQL transaction or a Redis Lua script), so no caller ever does read-then-write from
//! Rust. Time is always passed in (`now`, unix milliseconds) so expiry is testable without
//! sleeping. This module must never know about HTTP or Pingora.

mod audit;
pub mod changes;
mod contact;
mod counters;
mod devices;
mod ids;
mod instrumented;
mod kept;
pub mod keys;
mod orgs;
mod outbox;
mod redis;
pub mod shard;
mod sqlite;
pub(crate) mod throttle;
mod tokens;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use audit::{
    audit_hour, AuditCount, AuditEntry, AuditKeep, AuditPage, AuditQuery, AuditRecord, AuditStore,
    AUDIT_COUNTS_KEEP_MS, AUDIT_HOUR_MS, AUDIT_MEMBER_KEEP, AUDIT_SCAN_BUDGET,
};
pub use contact::{
    Campaign, CampaignMark, Channel, Channels, Confirmed, Contact, ContactCheck, ContactCode,
    ContactStore, Proof, Via,
};
pub use counters::{CounterScope, CounterStore};
pub use devices::{
    overflow_parse, overflow_str, Cap, Challenge, CodeCheck, DeviceStore, Opened, Settings,
    SignedOut,
};
pub use ids::{DeviceId, OrgId, SessionId, TokenDigest, TokenHash, UserId};
use instrumented::timed_store;
pub use instrumented::Instrumented;
pub use kept::{Kept, KeptStore, Versioned};
pub use orgs::{
    seats_used, Invited, Joined, Membership, Org, OrgInvite, OrgProfile, OrgRole, OrgStore,
    OrgTerms, Registered,
};
pub use outbox::{
    sent_windows, Due, FailedMail, OutboxMail, OutboxStore, WaitingCursor, WaitingMail,
    WaitingPage, WaitingQuery, FAILED_KEEP_MS, SENT_WINDOWS, SENT_WINDOW_MS,
};
pub use redis::RedisStore;
pub use sqlite::SqliteStore;
pub use throttle::{AttemptKey, IpBlock, IpRule, ThrottleStore};
pub use tokens::{TokenKind, TokenRecord, TokenStore};

/// Unix time in milliseconds. Every expiry in the store is expressed in it.
pub type Millis = i64;

/// A configured duration in [`Millis`], saturating (a duration that large never ends).
pub fn millis(d: std::time::Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Whether an account may log in yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    /// Signed up, activation link not followed yet.
    Pending,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(AccountStatus::Active),
            "pending" => Some(AccountStatus::Pending),
            _ => None,
        }
    }
}

/// A member account. `email` is always stored lower-cased and trimmed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    /// PHC string (argon2id). Never logged: see the Debug impl.
    pub password_hash: String,
    pub admin: bool,
    pub status: AccountStatus,
    /// Preferred language ("fr" / "en"), if the member chose one.
    pub lang: Option<String>,
    pub created_at: Millis,
    /// The organisation the account belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Membership>,
    /// Mobile number and what is confirmed. Always written: a record without it was
    /// stored before confirmations were recorded ([`Contact::before`]).
    #[serde(default = "Contact::before")]
    pub contact: Contact,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("admin", &self.admin)
            .field("status", &self.status)
            .field("lang", &self.lang)
            .field("created_at", &self.created_at)
            .field("org", &self.org)
            .field("contact", &self.contact)
            .finish()
    }
}

impl User {
    pub fn roles(&self) -> &'static str {
        roles(self.admin, self.org_role())
    }

    pub fn org_role(&self) -> Option<OrgRole> {
        self.org.as_ref().map(|m| m.role)
    }
}

/// The comma-separated roles of an account (`Remote-Groups`, `vigile user list`): `member`,
/// `admin` for a site admin, and the organisation role above plain membership.
pub fn roles(admin: bool, org: Option<OrgRole>) -> &'static str {
    match (admin, org) {
        (false, None | Some(OrgRole::Member)) => "member",
        (true, None | Some(OrgRole::Member)) => "member,admin",
        (false, Some(OrgRole::Admin)) => "member,org-admin",
        (true, Some(OrgRole::Admin)) => "member,admin,org-admin",
        (false, Some(OrgRole::SuperAdmin)) => "member,org-super-admin",
        (true, Some(OrgRole::SuperAdmin)) => "member,admin,org-super-admin",
    }
}

/// A signed-in browser. Looked up by the SHA-256 of the cookie token; the token itself is
/// never stored. `id` is the public handle shown to admins and sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: SessionId,
    pub token_hash: TokenHash,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub created_at: Millis,
    pub last_seen: Millis,
    /// Idle timeout in milliseconds: the session dies `idle_ms` after `last_seen`.
    pub idle_ms: Millis,
    /// Absolute expiry: the session dies at this instant whatever its activity.
    pub absolute_expiry: Millis,
    pub ip: String,
    pub user_agent: String,
    /// What the member proved to open it (sent upstream as `Remote-Auth-Level`).
    #[serde(default)]
    pub level: AuthLevel,
}

/// How a session was opened: the password alone, or the password and a second factor
/// (or a device trusted after one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AuthLevel {
    #[default]
    #[serde(rename = "password")]
    Password,
    #[serde(rename = "2fa")]
    SecondFactor,
}

impl AuthLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthLevel::Password => "password",
            AuthLevel::SecondFactor => "2fa",
        }
    }

    /// A stored value; anything unknown reads as the lower level.
    pub fn parse(s: &str) -> Self {
        if s == "2fa" {
            AuthLevel::SecondFactor
        } else {
            AuthLevel::Password
        }
    }
}

impl SessionRecord {
    /// The instant after which this session is no longer valid.
    pub fn expires_at(&self) -> Millis {
        (self.last_seen.saturating_add(self.idle_ms)).min(self.absolute_expiry)
    }

    pub fn is_valid_at(&self, now: Millis) -> bool {
        now < self.expires_at()
    }
}

/// A search of the accounts (admin console).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Lower-case text looked for in the address or the name; empty: every account.
    pub text: String,
    pub status: Option<AccountStatus>,
    /// The page starts after the account with this address (the `next` of the previous
    /// page), or at the first for `None`.
    pub after: Option<String>,
    pub limit: usize,
}

/// One page of a [`UserQuery`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPage {
    pub users: Vec<User>,
    /// The address of the last account looked at, where the next page starts; `None`
    /// when there is nothing after.
    pub next: Option<String>,
}

/// Most accounts a Redis `user_page` call looks at (see [`Store::user_page`]).
pub const USER_SCAN_BUDGET: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or timed out: callers fail closed (503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was violated (an email already has an account).
    #[error("conflict")]
    Conflict,
    /// Data in the store could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store is out of memory and refuses writes (Redis `maxmemory` reached under
    /// `noeviction`): callers fail closed (503) as for `Unavailable`.
    #[error("store full, writes refused: {0}")]
    Full(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

timed_store! {
    /// Everything the gateway keeps. The domain-specific parts (tokens, outbox, counters)
    /// are their own traits, in their own modules, so each stays readable.
    pub trait Store:
        TokenStore + OutboxStore + CounterStore + ThrottleStore + DeviceStore + OrgStore + ContactStore
        + KeptStore + AuditStore
        + Send + Sync + 'static
    {
        // Answered without a round-trip: not a store operation, so not timed.
        untimed {
            /// Short name for logs and metrics ("sqlite" / "redis").
            fn backend(&self) -> &'static str;
            /// The last `ping` found a server that may evict keys (Redis `maxmemory-policy`
            /// other than `noeviction`); always false for SQLite.
            fn eviction_unsafe(&self) -> bool;
            /// Starts following what changes in the store (sessions ended, accounts
            /// written, by any process) on the current tokio runtime; see
            /// [`changes`]. The feed starts `Lost` until its first `Live`.
            fn changes(&self) -> changes::ChangeFeed;
        }

        /// Cheap round-trip proving the backend answers and is safe to use (`/readyz`, and
        /// every few seconds): Redis also checks its eviction policy here.
        async fn ping(&self) -> StoreResult<()>;

        /// Returns the gateway-wide secret, storing `candidate` if none exists yet. Every
        /// instance sharing the store ends up with the same secret (first writer wins).
        async fn secret_get_or_init(&self, candidate: &[u8]) -> StoreResult<Vec<u8>>
            as "secret";

        /// Creates an account. `StoreError::Conflict` if the email already has one.
        async fn user_insert(&self, user: &User) -> StoreResult<()>;
        async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
        async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>>;
        /// Every account, ordered by email.
        async fn user_list(&self) -> StoreResult<Vec<User>>;
        /// (accounts, of which awaiting activation), without reading them.
        async fn user_counts(&self) -> StoreResult<(u64, u64)>;
        /// Accounts ordered by email, from after `query.after`, matching `query.text` (in
        /// the address or the name) and `query.status`: at most `query.limit` of them,
        /// and where to go on from (`None`: nothing after). Bounded work per call at any
        /// number of accounts: Redis looks at no more than [`USER_SCAN_BUDGET`] accounts
        /// per call, so a page may come back short with somewhere to go on from.
        async fn user_page(&self, query: &UserQuery) -> StoreResult<UserPage>;
        /// Creates a `Pending` account (sign-up) that disappears at `expires_at` unless
        /// activated before. If the email belongs to another `Pending` account, that account
        /// is replaced (deleted, with its sessions) in the same atomic operation, so links
        /// mailed for it lead nowhere;
        /// `StoreError::Conflict` if it belongs to an `Active` one.
        async fn user_insert_pending(&self, user: &User, expires_at: Millis) -> StoreResult<()>;
        /// `Pending` → `Active`, and the account no longer expires; the activation link
        /// proved the address, so its email is confirmed at `now`. Returns false if there is
        /// no such account or it was not pending.
        async fn user_activate(&self, id: &UserId, now: Millis) -> StoreResult<bool>;
        /// Replaces the password hash. Returns false if there is no such account.
        async fn user_set_password(&self, id: &UserId, password_hash: &str) -> StoreResult<bool>;
        /// Replaces the display name and the preferred language (`None`: none chosen).
        /// Returns false if there is no such account.
        async fn user_set_profile(
            &self,
            id: &UserId,
            name: &str,
            lang: Option<&str>,
        ) -> StoreResult<bool>;
        /// Deletes an account, its email index and its sessions. Returns whether it existed.
        async fn user_delete(&self, id: &UserId) -> StoreResult<bool>;

        /// Stores a new session. If `replaces` is given, that session is deleted in the same
        /// atomic operation (session rotation at login). `StoreError::Conflict` (and nothing
        /// deleted) if the session id or token hash is already in use; SQLite also refuses a
        /// session whose user does not exist, with the same error.
        async fn session_insert(
            &self,
            session: &SessionRecord,
            replaces: Option<&SessionId>,
        ) -> StoreResult<()>;
        /// The session for this token hash if it exists and is valid at `now`.
        /// An expired session found here is deleted.
        async fn session_by_token(
            &self,
            token_hash: &TokenHash,
            now: Millis,
        ) -> StoreResult<Option<SessionRecord>>;
        /// Records activity: sets `last_seen = now` (which pushes the idle expiry) unless the
        /// session has expired or is gone. Returns whether the session is still there.
        async fn session_touch(&self, id: &SessionId, now: Millis) -> StoreResult<bool>;
        /// [`Self::session_touch`] for many sessions at once, each at its own instant (the
        /// session cache writes activity behind, in batches). Returns how many are still
        /// there.
        async fn session_touch_many(&self, touches: &[(SessionId, Millis)]) -> StoreResult<u64>;
        /// Ends one session. Returns whether it existed.
        async fn session_delete(&self, id: &SessionId) -> StoreResult<bool>;
        /// Ends every session of a member. Returns how many were ended.
        async fn session_delete_all(&self, user: &UserId) -> StoreResult<u64>;
        /// The member's sessions that are valid at `now`, oldest first.
        async fn sessions_of(&self, user: &UserId, now: Millis) -> StoreResult<Vec<SessionRecord>>;
        /// Number of sessions valid at `now`, all members together (for the gauge).
        async fn session_count(&self, now: Millis) -> StoreResult<u64>;

        /// Deletes what has expired at `now`: sessions, pending accounts past their
        /// `expires_at`, tokens, counters. Returns how many records were removed. SQLite needs
        /// it; Redis drops dead records by key TTL anyway, and its sweep also removes
        /// records expired at a `now` ahead of Redis's clock, so both backends agree.
        async fn sweep(&self, now: Millis) -> StoreResult<u64>;
    }
}

pub type DynStore = Arc<dyn Store>;

/// Parsed `[store].url`. Debug output masks credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://relative/path.db` or `sqlite:///absolute/path.db`
    Sqlite(std::path::PathBuf),
    /// `redis://` or `rediss://` URL, kept whole for the redis crate.
    Redis(String),
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "Sqlite({p:?})"),
            StoreUrl::Redis(u) => write!(f, "Redis({:?})", crate::config::Secret::new(u.as_str())),
        }
    }
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite URL has no path (e.g. sqlite://data/vigile.db)".into());
            }
            Ok(StoreUrl::Sqlite(path.into()))
        } else if url.starts_with(redis::sentinel::SCHEME) {
            redis::sentinel::SentinelUrl::parse(url)?;
            Ok(StoreUrl::Redis(url.to_string()))
        } else if url.starts_with(redis::cluster::SCHEME) {
            redis::cluster::ClusterUrl::parse(url)?;
            Ok(StoreUrl::Redis(url.to_string()))
        } else if url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("redis+unix://")
        {
            ::redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
            Ok(StoreUrl::Redis(url.to_string()))
        } else {
            Err("expected sqlite://PATH, redis://HOST:PORT/DB, \
                 redis+sentinel://HOST:PORT,.../MASTER_NAME/DB or \
                 redis+cluster://HOST:PORT,..."
                .into())
        }
    }
}

/// Opens the configured backend. Must be called inside the background runtime (Redis
/// spawns its connection driver there). Redis connects lazily, so a gateway starts even
/// while Redis is down and serves 503s on protected paths until it comes back.
/// `allow_eviction`: `store.allow_eviction` (Redis only).
pub fn open(url: &StoreUrl, allow_eviction: bool) -> StoreResult<DynStore> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
        StoreUrl::Redis(url) => Ok(Arc::new(RedisStore::connect_lazy(url, allow_eviction)?)),
    }
}
