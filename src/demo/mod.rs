//! `vigile demo`: the whole product on one machine with nothing to install. A built-in
//! course site plays the protected application (it shows the identity headers it
//! receives), the store is SQLite in a temporary directory, mail stays in the dev outbox.
//! Its live lesson (a WebSocket chat and a server-sent progress feed, [`live`]) runs on a
//! port of its own that the gateway reaches through a `[[route]]` for `/live/**`.
//!
//! Stopping it (Ctrl-C, `kill`, a closed terminal) is immediate and removes that
//! directory: a tour has nothing worth draining, unlike `vigile serve`, whose SIGTERM
//! waits for requests in flight.

mod live;
mod site;

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use tokio::signal::unix::{signal, SignalKind};

use crate::auth::password::Lane;
use crate::crypto::random_token;
use crate::edge::email::Email;
use crate::store::{AccountStatus, Contact, User, UserId, Via};

pub const ADMIN_EMAIL: &str = "admin@demo.vigile.test";

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How long the background work (mail sender, sweeper) gets to stop once the demo is told to.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// The demo's stop signals: SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed) all
/// stop it at once. Pingora's default would drain for the grace period on SIGTERM and
/// leave SIGHUP to kill the process before the data directory is removed.
struct StopNow;

#[async_trait]
impl ShutdownSignalWatch for StopNow {
    async fn recv(&self) -> ShutdownSignal {
        let kinds = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ];
        let mut streams = Vec::with_capacity(kinds.len());
        for kind in kinds {
            match signal(kind) {
                Ok(stream) => streams.push(stream),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch a stop signal; Ctrl-C stops the demo");
                }
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        for mut stream in streams {
            let tx = tx.clone();
            tokio::spawn(async move {
                if stream.recv().await.is_some() {
                    let _ = tx.send(()).await;
                }
            });
        }
        drop(tx);
        if rx.recv().await.is_none() {
            // No signal could be watched: fall back to Pingora's own handling.
            return pingora::server::UnixShutdownSignalWatch.recv().await;
        }
        ShutdownSignal::FastShutdown
    }
}

/// Runs the demo until it is told to stop (see [`StopNow`]), then removes its data.
pub fn run(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("vigile-demo-").tempdir()?;
    let site_port = free_port()?;
    let metrics_port = free_port()?;
    let live_listener = live::bind()?;
    let live_port = live_listener.local_addr()?.port();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
dev_mode = true
[upstream]
url = "http://127.0.0.1:{site_port}"
[store]
url = "sqlite://{db}"
[mail]
transport = "log"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[access]
public = ["/", "/catalog/**", "/static/**", "/favicon.ico"]
admin = ["/admin/**"]
[twofactor]
methods = ["totp", "email", "sms"]
# The live lesson's chat and progress feed: a members' path on the live server.
[[route]]
path = "/live/**"
upstream = "http://127.0.0.1:{live_port}"
"#,
        db = dir.path().join("vigile.db").display(),
    );
    let config = crate::config::from_str(&toml, "(demo)", std::iter::empty())?;
    let vigile = crate::build(config)?;

    let password = random_token(12);
    let admin = vigile.block_on(async {
        let hash = vigile
            .app
            .auth
            .hasher
            .hash(&password, Lane::operator())
            .await?;
        let email = Email::parse(ADMIN_EMAIL)?.into_string();
        let user = User {
            id: UserId::for_address(&email),
            email,
            name: "Demo Admin".into(),
            password_hash: hash,
            admin: true,
            status: AccountStatus::Active,
            lang: None,
            created_at: vigile.app.clock.now_ms(),
            org: None,
            contact: Contact::email_proved(vigile.app.clock.now_ms(), Via::Admin),
        };
        vigile.app.store.user_insert(&user).await?;
        Ok::<_, Box<dyn std::error::Error>>(user)
    })?;

    let headers = &vigile.app.config.file.headers;
    let live_site = live::LiveSite::new(
        live_listener,
        live::IdentityHeaders {
            email: http::HeaderName::try_from(headers.email.as_str())?,
            name: http::HeaderName::try_from(headers.name.as_str())?,
        },
    );
    let mut server = vigile.server(false)?;
    let mut site = Service::new(
        "demo course site".to_string(),
        site::DemoSite::new(vigile.app.config.default_lang),
    );
    site.add_tcp(&format!("127.0.0.1:{site_port}"));
    server.add_service(site);
    server.add_service(background_service("demo live server", live_site));

    // A closed stdout (piped into `head`, say) must not kill the demo: ignore write errors.
    let banner = format!(
        "Vigile demo is running.\n\n  \
         Site:      http://127.0.0.1:{port}/\n  \
         Live:      http://127.0.0.1:{port}{live_page}\n  \
         Sign in:   http://127.0.0.1:{port}/_vigile/login\n  \
         Sign up:   http://127.0.0.1:{port}/_vigile/signup\n  \
         Email:     {email}\n  \
         Password:  {password}\n  \
         2FA:       http://127.0.0.1:{port}/_vigile/account/2fa\n  \
         Mail:      http://127.0.0.1:{port}/_vigile/dev/mail\n  \
         SMS:       http://127.0.0.1:{port}/_vigile/dev/sms\n  \
         Metrics:   http://127.0.0.1:{metrics_port}/metrics\n  \
         Data:      {data} (deleted on exit)\n\n\
         Press Ctrl-C to stop.\n",
        email = admin.email,
        live_page = site::LIVE_PAGE,
        data = dir.path().display(),
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    server.run(RunArgs {
        shutdown_signal: Box::new(StopNow),
    });
    // The services have stopped; stop the background work before its files go.
    vigile.shutdown(STOP_TIMEOUT);
    let data = dir.path().display().to_string();
    dir.close()?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nVigile demo stopped; {data} deleted.").and_then(|()| out.flush());
    Ok(())
}
