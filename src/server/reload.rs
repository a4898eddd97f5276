//! `SIGHUP`: the configuration file is read again and, if valid, serves the next
//! requests; requests under way finish with the configuration they started with, and no
//! connection is dropped (the listeners, the store and the session cache are the same).
//! An invalid file changes nothing and the log says why. What only a restart changes is
//! in [`crate::config::reload`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

use crate::app::Live;
use crate::config::reload::for_reload;

/// Listens for `SIGHUP` on `bg` and reloads `path` (with the process's environment
/// overrides, as at start) into `live` on each.
pub fn on_hangup(
    bg: &tokio::runtime::Runtime,
    live: Arc<Live>,
    path: PathBuf,
) -> Result<(), String> {
    // Registered now, before `run_forever`: a SIGHUP from then on never ends the process.
    let mut hangups = {
        let _guard = bg.enter();
        signal(SignalKind::hangup()).map_err(|e| format!("cannot listen for SIGHUP: {e}"))?
    };
    let handle = bg.handle().clone();
    bg.spawn(async move {
        while hangups.recv().await.is_some() {
            let result = reload(&live, &path, &handle);
            let app = live.get();
            match result {
                Ok(kept) => {
                    app.metrics.config_reloads.with_label_values(&["ok"]).inc();
                    tracing::info!(file = %path.display(), "configuration reloaded");
                    if !kept.is_empty() {
                        tracing::warn!(
                            sections = kept.join(", "),
                            "changed in the file but only applied at the next restart"
                        );
                    }
                }
                Err(why) => {
                    app.metrics
                        .config_reloads
                        .with_label_values(&["error"])
                        .inc();
                    tracing::error!(file = %path.display(), reason = %why, "configuration not reloaded; the running one stays");
                }
            }
        }
    });
    Ok(())
}

/// Reads `path` and puts the next `App` in `live`; returns the restart-only sections that
/// changed on disk. Nothing changes on error.
pub fn reload(
    live: &Live,
    path: &Path,
    bg: &tokio::runtime::Handle,
) -> Result<Vec<&'static str>, String> {
    let running = live.get();
    let read = crate::config::load(path, std::env::vars()).map_err(|e| e.to_string())?;
    let (config, kept) = for_reload(&running.config, read).map_err(|e| e.to_string())?;
    let next = Arc::new(running.reconfigured(Arc::new(config)));
    if !next.mailer.sends_like(&running.mailer) {
        // Started before the switch (and stopping the previous senders): settings that
        // cannot be used fail the reload here, with nothing changed.
        next.mailer.spawn_sender(bg, next.clock.clone())?;
    }
    next.auth.set_timeouts(&next.config.file.sessions);
    live.replace(next);
    Ok(kept)
}
