//! Vigile: an authentication gateway for membership sites, built on Pingora.
//!
//! Module map:
//! - [`config`]: TOML + environment → validated [`config::Config`].
//! - [`edge`]: untrusted input (path, Host, email) parsed once into typed values.
//! - [`access`]: `[access]` rules, matched on the canonical path.
//! - [`store`]: the `Store` trait and its SQLite and Redis backends.
//! - [`auth`]: login, sessions, password hashing, as plain async flows over the store;
//!   [`auth::admin`]: each admin action once, for the admin pages and the CLI.
//! - [`routes`]: every `/_vigile/…` page as a `Route` (parse, path, guarded).
//! - [`pages`]: Vigile's own pages (`/_vigile/...`), rendered with askama.
//! - [`proxy`]: the Pingora `ProxyHttp` implementation (decide, strip, inject, forward).
//! - [`server`]: assembling Pingora services (gateway, metrics, background tasks).
//! - [`cli`]: the admin commands; [`demo`]: `vigile demo`.
//! - [`i18n`], [`metrics`], [`crypto`]: catalogs, Prometheus collectors, random and HMAC.
//! - [`clock`]: the only place the time is read (flows take `now` as a parameter).
//! - [`audit`]: the security event log: one [`audit::Event`] enum, one `emit`;
//!   [`journal`] stores the events for the admin console.
//!
//! [`build`] turns a configuration into a ready [`Vigile`], so tests and `main` start the
//! same thing.

pub mod access;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod edge;
pub mod i18n;
pub mod journal;
pub mod mail;
pub mod memory;
pub mod metrics;
pub mod pages;
pub mod proxy;
pub mod routes;
pub mod seal;
pub mod server;
pub mod sms;
pub mod store;

use std::sync::Arc;

use app::App;
use auth::{password::Hasher, Auth};
use config::Config;
use metrics::Metrics;
use store::Instrumented;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot start the background runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("password hashing: {0}")]
    Hash(#[from] auth::password::HashError),
    #[error(transparent)]
    Server(#[from] server::ServerError),
}

/// A built gateway: shared state plus the background runtime that owns store connections
/// and periodic tasks (Pingora gives each service its own runtime; this one outlives them).
pub struct Vigile {
    /// The `App` built at start (admin commands, the demo's set-up).
    pub app: Arc<App>,
    /// The `App` serving requests: `app` until a reload replaces it.
    pub live: Arc<app::Live>,
    bg: Arc<tokio::runtime::Runtime>,
}

/// Builds everything a gateway process needs from a validated configuration.
pub fn build(config: Config) -> Result<Vigile, BuildError> {
    // Pingora uses ring; make it the process-wide rustls provider before anything else
    // (a dependency pulling aws-lc would otherwise make rustls refuse to pick one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bg = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vigile-bg")
            .enable_all()
            .build()?,
    );
    let metrics = Arc::new(Metrics::new()?);
    let raw = {
        let _guard = bg.enter();
        store::open(&config.store_url, config.file.store.allow_eviction)?
    };
    let store: store::DynStore = Arc::new(Instrumented::new(raw, metrics.clone()));
    let keep = journal::keep_of(&config.file.log);
    if keep.max_events > 0 {
        journal::start(bg.handle(), store.clone(), keep, metrics.clone());
    }
    let hasher = Hasher::new(&config.file.password, Some(metrics.clone()))?;
    let auth = Auth::new(store.clone(), hasher, &config.file.sessions, Some(&metrics));
    let app = Arc::new(App::new(Arc::new(config), store, auth, metrics));
    let live = app::Live::new(app.clone());
    Ok(Vigile { app, live, bg })
}

impl Vigile {
    /// Runs a future on the background runtime (admin commands, demo set-up).
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.bg.block_on(fut)
    }

    /// Waits (a few seconds at most) until the audit events emitted so far are stored,
    /// for a command that exits next.
    pub fn flush_audit(&self) {
        if !self.block_on(journal::flush(std::time::Duration::from_secs(5))) {
            tracing::warn!("audit events of this command not stored (the log has them)");
        }
    }

    /// Stops the background runtime (mail sender, sweeper, store connections), giving
    /// its tasks up to `timeout`; for a process that ends without exiting at once (the
    /// demo, which then removes its data). `vigile serve` exits through Pingora instead.
    pub fn shutdown(self, timeout: std::time::Duration) {
        let Vigile { app, live, bg } = self;
        drop((app, live));
        match Arc::try_unwrap(bg) {
            Ok(bg) => bg.shutdown_timeout(timeout),
            Err(_) => tracing::warn!("background runtime still shared; left to the exit"),
        }
    }

    /// The Pingora server with the gateway and metrics services, not yet running.
    pub fn server(&self, upgrade: bool) -> Result<pingora::server::Server, BuildError> {
        Ok(server::assemble(
            self.live.clone(),
            self.bg.clone(),
            upgrade,
        )?)
    }

    /// Reloads the configuration file at `path` on each `SIGHUP` (see `server::reload`).
    pub fn reload_on_hangup(&self, path: std::path::PathBuf) -> Result<(), BuildError> {
        server::reload::on_hangup(&self.bg, self.live.clone(), path)
            .map_err(|e| BuildError::Server(server::ServerError::Start(e)))
    }
}
