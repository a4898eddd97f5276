//! `vigile demo`: the whole product on one machine with nothing to install. A built-in
//! course site plays the protected application (it shows the identity headers it
//! receives), the store is SQLite in a temporary directory, mail stays in the dev outbox.

mod site;

use std::io::Write;
use std::net::TcpListener;

use pingora::services::listening::Service;

use crate::crypto::random_token;
use crate::edge::email::Email;
use crate::store::{AccountStatus, User, UserId};

pub const ADMIN_EMAIL: &str = "admin@demo.vigile.test";

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs the demo until interrupted. Never returns on success.
pub fn run(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("vigile-demo-").tempdir()?;
    let site_port = free_port()?;
    let metrics_port = free_port()?;
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
"#,
        db = dir.path().join("vigile.db").display(),
    );
    let config = crate::config::from_str(&toml, "(demo)", std::iter::empty())?;
    let vigile = crate::build(config)?;

    let password = random_token(12);
    let admin = vigile.block_on(async {
        let hash = vigile.app.auth.hasher.hash(&password).await?;
        let user = User {
            id: UserId::random(),
            email: Email::parse(ADMIN_EMAIL)?.into_string(),
            name: "Demo Admin".into(),
            password_hash: hash,
            admin: true,
            status: AccountStatus::Active,
            lang: None,
            created_at: vigile.app.clock.now_ms(),
        };
        vigile.app.store.user_insert(&user).await?;
        Ok::<_, Box<dyn std::error::Error>>(user)
    })?;

    let mut server = vigile.server(false)?;
    let mut site = Service::new(
        "demo course site".to_string(),
        site::DemoSite::new(vigile.app.config.default_lang),
    );
    site.add_tcp(&format!("127.0.0.1:{site_port}"));
    server.add_service(site);

    // A closed stdout (piped into `head`, say) must not kill the demo: ignore write errors.
    let banner = format!(
        "Vigile demo is running.\n\n  \
         Site:      http://127.0.0.1:{port}/\n  \
         Sign in:   http://127.0.0.1:{port}/_vigile/login\n  \
         Sign up:   http://127.0.0.1:{port}/_vigile/signup\n  \
         Email:     {email}\n  \
         Password:  {password}\n  \
         Mail:      http://127.0.0.1:{port}/_vigile/dev/mail\n  \
         Metrics:   http://127.0.0.1:{metrics_port}/metrics\n  \
         Data:      {data} (deleted on exit)\n\n\
         Press Ctrl-C to stop.\n",
        email = admin.email,
        data = dir.path().display(),
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    // Keep the temporary directory for the life of the process.
    let _keep = dir;
    server.run_forever();
}
