//! Authentication flows as plain async functions over the store: no Pingora or HTTP types
//! here, so every flow is testable on its own and the proxy only maps outcomes to pages.
//!
//! This module must never log a password, a session token or a hash.

pub mod account;
pub mod admin;
pub mod campaign;
pub mod contact;
pub mod device_label;
pub mod devices;
pub mod events;
mod hash_pool;
mod hash_queue;
pub mod import;
pub mod limits;
pub mod lockout;
mod login;
pub mod member_search;
pub mod orgs;
pub mod passkeys;
pub mod password;
pub mod policy;
pub mod reauth;
pub mod recovery_codes;
pub mod reset;
mod session_cache;
mod sessions;
pub mod signup;
pub mod totp;
pub mod twofactor;

pub use login::{
    ip_rule, login, open_for, start_session, Lock, LoginInput, LoginOutcome, NewSession,
};
pub use session_cache::SessionCache;
pub use sessions::{Identity, Member, Visitor};

use std::sync::Arc;

use crate::store::{DynStore, StoreError};

/// Why a flow could not complete (as opposed to an outcome the member is shown): the
/// store or the hasher failed. Pages map it to a 503; details go to the log only.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] password::HashError),
}

/// Everything the flows use, and nothing else: they take `&Deps`, never the whole
/// gateway (`App` holds one and derefs to it), so `auth` depends on nothing above it.
pub struct Deps {
    pub config: std::sync::Arc<crate::config::Config>,
    pub store: DynStore,
    pub auth: std::sync::Arc<Auth>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Queues mails; the sender task is started by the server only.
    pub mailer: std::sync::Arc<crate::mail::Mailer>,
    /// Passkey ceremonies; `None` when `server.public_url` cannot be a relying party (an
    /// IP address) or passkeys are not among `[twofactor] methods`.
    pub passkeys: Option<std::sync::Arc<passkeys::Passkeys>>,
    /// The gateway-wide secret, shared by every instance through the store; fetched
    /// lazily so a gateway can start while its store is still down.
    pub secret: tokio::sync::OnceCell<Vec<u8>>,
    pub twofactor_keys: tokio::sync::OnceCell<twofactor::Keys>,
}

impl Deps {
    /// The gateway-wide secret (CSRF tokens; the root of the second-factor keys when
    /// `[twofactor] encryption_key` is empty).
    pub async fn secret(&self) -> crate::store::StoreResult<&[u8]> {
        self.secret
            .get_or_try_init(|| async {
                let mut candidate = vec![0u8; 32];
                crate::crypto::fill_random(&mut candidate);
                self.store.secret_get_or_init(&candidate).await
            })
            .await
            .map(Vec::as_slice)
    }

    /// The keys sealing TOTP seeds and keying the hashes of recovery and sign-in codes.
    pub async fn twofactor_keys(&self) -> crate::store::StoreResult<&twofactor::Keys> {
        let secret = self.secret().await?;
        Ok(self
            .twofactor_keys
            .get_or_init(|| async { twofactor::Keys::new(&self.config.file, secret) })
            .await)
    }
}

/// Sessions and passwords: the store, the hasher and the session settings.
pub struct Auth {
    pub store: DynStore,
    pub hasher: password::Hasher,
    pub cache: SessionCache,
    /// `[sessions]` timeouts given to new sessions; a reload (SIGHUP) may change them.
    idle_ms: std::sync::atomic::AtomicI64,
    absolute_ms: std::sync::atomic::AtomicI64,
}

impl Auth {
    pub fn new(
        store: DynStore,
        hasher: password::Hasher,
        sessions: &crate::config::SessionsSection,
        metrics: Option<&crate::metrics::Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            hasher,
            cache: SessionCache::new(sessions.cache_size, metrics),
            idle_ms: Self::ms(sessions.idle_timeout).into(),
            absolute_ms: Self::ms(sessions.absolute_timeout).into(),
        })
    }

    fn ms(d: std::time::Duration) -> i64 {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }

    /// The idle and absolute timeouts of sessions opened from now on (those already
    /// open keep their own).
    pub fn set_timeouts(&self, sessions: &crate::config::SessionsSection) {
        use std::sync::atomic::Ordering::Relaxed;
        self.idle_ms.store(Self::ms(sessions.idle_timeout), Relaxed);
        self.absolute_ms
            .store(Self::ms(sessions.absolute_timeout), Relaxed);
    }

    /// (idle, absolute) timeouts of a new session, in milliseconds.
    pub fn timeouts(&self) -> (i64, i64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.idle_ms.load(Relaxed), self.absolute_ms.load(Relaxed))
    }

    /// Ends nothing, but makes this instance forget `user`'s cached identity at once, so
    /// a change to the account (a role, an address) shows at their next request here;
    /// other instances hear of it through the store's change feed.
    pub fn forget_user(&self, user: &crate::store::UserId) {
        self.cache.forget_user(user);
    }
}
