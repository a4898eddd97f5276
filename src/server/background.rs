//! Work that must not ride on requests: the mail sender, sweeping expired records (SQLite has no
//! TTLs), refreshing the `vigile_sessions_active` gauge, checking the store is still
//! safe to use (Redis's eviction policy, after a reconnection or a change at run time),
//! following the store's change feed into the session cache and writing the activity the
//! cache saw, and handing freed memory back to the system. Runs on the background
//! runtime; a failing store only logs and retries at the next tick.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;

const SWEEP_EVERY: Duration = Duration::from_secs(60);
const GAUGE_EVERY: Duration = Duration::from_secs(10);
/// Activity seen by the session cache is written this often (each session at most once
/// a minute, see `session_cache`).
const ACTIVITY_EVERY: Duration = Duration::from_secs(2);
/// The session cache drops what it can no longer use this often.
const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Freed memory is handed back this often (see `memory`).
const RELEASE_EVERY: Duration = Duration::from_secs(2);

/// Fails when the mail transport cannot be set up (an unusable `mail.file_dir`, say):
/// better not to start than to queue mails nobody sends.
pub fn spawn(bg: &tokio::runtime::Runtime, app: Arc<App>) -> Result<(), String> {
    app.mailer.spawn_sender(bg.handle(), app.clock.clone())?;
    let sweeper = app.clone();
    let audit_keep = crate::journal::keep_of(&app.config.file.log);
    bg.spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            let now = sweeper.clock.now_ms();
            match sweeper.store.sweep(now).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "swept expired records"),
                Err(e) => tracing::warn!(error = %e, "sweep failed"),
            }
            if let Err(e) = sweeper.store.audit_prune(audit_keep, now).await {
                tracing::warn!(error = %e, "pruning the stored audit trail failed");
            }
        }
    });
    spawn_session_cache(bg, &app);
    spawn_memory_release(bg);
    bg.spawn(async move {
        let mut tick = tokio::time::interval(GAUGE_EVERY);
        loop {
            tick.tick().await;
            let _ = check_store(&app).await;
            if let Ok(n) = app.store.session_count(app.clock.now_ms()).await {
                app.metrics.sessions_active.set(n as i64);
            }
        }
    });
    Ok(())
}

/// Follows the store's change feed into the session cache, and writes behind the
/// activity the cache records.
fn spawn_session_cache(bg: &tokio::runtime::Runtime, app: &Arc<App>) {
    let follower = app.clone();
    bg.spawn(async move {
        let mut feed = follower.store.changes();
        while let Some(change) = feed.recv().await {
            follower.auth.cache.apply(change);
            follower
                .metrics
                .session_invalidation_up
                .set(i64::from(follower.auth.cache.is_live()));
        }
    });
    let writer = app.clone();
    bg.spawn(async move {
        let mut tick = tokio::time::interval(ACTIVITY_EVERY);
        let sweep_every = (CACHE_SWEEP_EVERY.as_millis() / ACTIVITY_EVERY.as_millis()) as u64;
        for n in 0u64.. {
            tick.tick().await;
            if let Err(e) = writer.auth.write_activity().await {
                // The idle clock then runs from the last write that went through: sessions
                // may end sooner than their activity deserves, never later.
                tracing::warn!(error = %e, "could not record session activity");
            }
            if n % sweep_every == 0 {
                writer.auth.cache.sweep(writer.clock.now_ms());
            }
        }
    });
}

/// Hands memory freed by threads that have gone quiet (the store's) back to the system,
/// on its own tick: a slow store write must not hold it.
fn spawn_memory_release(bg: &tokio::runtime::Runtime) {
    bg.spawn(async {
        let mut tick = tokio::time::interval(RELEASE_EVERY);
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(crate::memory::release).await;
        }
    });
}

/// Pings the store (Redis re-reads its eviction policy there) and sets
/// `vigile_store_eviction_policy_unsafe`. Returns the ping's result.
pub async fn check_store(app: &App) -> crate::store::StoreResult<()> {
    let ping = app.store.ping().await;
    if let Err(e) = &ping {
        tracing::warn!(error = %e, "store check failed");
    }
    app.metrics
        .eviction_unsafe
        .set(i64::from(app.store.eviction_unsafe()));
    ping
}
