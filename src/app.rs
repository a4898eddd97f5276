//! Shared state of one gateway process: configuration, store, flows, metrics. Built by
//! [`crate::build`], shared by reference with every request; per-request state lives in
//! the proxy's CTX instead. A reload (SIGHUP) builds the next `App` from the one running
//! ([`App::reconfigured`]: same store, session cache, hasher and metrics, new
//! configuration) and puts it in [`Live`], which each request reads once at its start.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::auth::{Auth, Deps};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pages::cookies::CookieNames;
use crate::store::{DynStore, StoreResult};

impl std::ops::Deref for App {
    type Target = Deps;
    fn deref(&self) -> &Deps {
        &self.deps
    }
}

pub struct App {
    /// What the flows use (config, store, sessions, metrics, mailer); `App` derefs to it.
    pub deps: Arc<Deps>,
    pub cookies: CookieNames,
    /// Read once per request at the edge, once per tick by background tasks.
    pub clock: SharedClock,
}

/// The passkey relying party, when passkeys are offered and `public_url` can be one (a
/// domain name over https, or localhost); said once at start otherwise.
fn passkeys_for(config: &Config) -> Option<Arc<crate::auth::passkeys::Passkeys>> {
    use crate::config::FactorMethod;
    if !config
        .file
        .twofactor
        .methods
        .contains(&FactorMethod::Webauthn)
    {
        return None;
    }
    let url = config.public_url.as_str();
    match crate::auth::passkeys::Passkeys::new(url, "") {
        Ok(p) => Some(Arc::new(p)),
        Err(why) => {
            tracing::warn!(reason = %why, "passkeys are not offered");
            None
        }
    }
}

impl App {
    pub fn new(
        config: Arc<Config>,
        store: DynStore,
        auth: Arc<Auth>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cookies = CookieNames {
            secure: config.secure_cookies,
        };
        let mailer = Arc::new(crate::mail::Mailer::new(
            config.clone(),
            store.clone(),
            metrics.clone(),
        ));
        let passkeys = passkeys_for(&config);
        Self {
            deps: Arc::new(Deps {
                config,
                store,
                auth,
                metrics,
                mailer,
                passkeys,
                secret: OnceCell::new(),
                twofactor_keys: OnceCell::new(),
            }),
            cookies,
            clock: crate::clock::system(),
        }
    }

    /// The next `App` after a reload: `config` with this one's store, sessions, hasher,
    /// metrics, clock and outbox. The secret is kept; keys derived from the
    /// configuration (two-factor, passkeys) are derived again.
    pub fn reconfigured(&self, config: Arc<Config>) -> Self {
        let mailer = Arc::new(self.mailer.reconfigured(config.clone()));
        let passkeys = passkeys_for(&config);
        Self {
            deps: Arc::new(Deps {
                store: self.store.clone(),
                auth: self.auth.clone(),
                metrics: self.metrics.clone(),
                mailer,
                passkeys,
                secret: OnceCell::new_with(self.deps.secret.get().cloned()),
                twofactor_keys: OnceCell::new(),
                config,
            }),
            cookies: self.cookies,
            clock: self.clock.clone(),
        }
    }

    /// Gateway-wide key for CSRF tokens (see [`Deps::secret`]).
    pub async fn secret(&self) -> StoreResult<&[u8]> {
        self.deps.secret().await
    }
}

/// The `App` serving new requests: replaced whole by a reload, read once per request
/// (a request keeps the `App` it started with to its end).
pub struct Live {
    current: arc_swap::ArcSwap<App>,
}

impl Live {
    pub fn new(app: Arc<App>) -> Arc<Self> {
        Arc::new(Self {
            current: arc_swap::ArcSwap::new(app),
        })
    }

    pub fn get(&self) -> Arc<App> {
        self.current.load_full()
    }

    pub fn replace(&self, next: Arc<App>) {
        self.current.store(next);
    }
}
