//! Fills a store with active sessions for `bench/sessions_memory`, straight through the
//! store API (no HTTP, no password hashing per member), and writes each session's cookie
//! token to a file, one per line.
//!
//! Usage: `seed_sessions STORE_URL SESSIONS MEMBERS TOKENS_FILE`, e.g.
//! `seed_sessions sqlite:///tmp/x/vigile.db 100000 50000 /tmp/x/tokens.txt`.
//! Sessions are spread round-robin over MEMBERS active accounts (`member{i}@bench.example`,
//! all with the password `Bench-mark 1 password!`, hashed once with the default argon2
//! parameters), each on its own device, with the default timeouts (14 d idle, 30 d
//! absolute), exactly as a login would store them. Accounts already in the store are
//! reused, so `seed_sessions URL 0 M F` then `seed_sessions URL N M F` measures the
//! members alone, then their sessions alone.
// A bench tool: dates sessions by the real clock and times its own run.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use vigile::auth::password::{Hasher, Lane};
use vigile::config::PasswordSection;
use vigile::crypto::random_token;
use vigile::store::{
    self, AccountStatus, DeviceId, SessionId, SessionRecord, StoreUrl, TokenHash, User, UserId,
};

/// Store operations in flight at once (Redis pipelines them on one connection).
const IN_FLIGHT: usize = 64;
const DAY_MS: i64 = 24 * 3600 * 1000;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn email(i: usize) -> String {
    format!("member{i}@bench.example")
}

fn usage() -> Error {
    "usage: seed_sessions STORE_URL SESSIONS MEMBERS TOKENS_FILE".into()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = StoreUrl::parse(&args.next().ok_or_else(usage)?)?;
    let sessions: usize = args.next().ok_or_else(usage)?.parse()?;
    let members: usize = args.next().ok_or_else(usage)?.parse::<usize>()?.max(1);
    let tokens_file = args.next().ok_or_else(usage)?;

    // The store's own warnings (a session conversion that failed, say) on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGILE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let store = store::open(&url, false)?;
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let started = Instant::now();

    let hash = Hasher::new(&PasswordSection::default(), None)?
        .hash("Bench-mark 1 password!", Lane::operator())
        .await?;
    let existing: Vec<Option<User>> = stream::iter((0..members).map(|i| {
        let store = store.clone();
        async move { store.user_by_email(&email(i)).await }
    }))
    .buffered(IN_FLIGHT)
    .try_collect()
    .await?;
    let reused = existing.iter().flatten().count();
    let (users, fresh): (Vec<User>, Vec<bool>) = existing
        .into_iter()
        .enumerate()
        .map(|(i, found)| match found {
            Some(u) => (u, false),
            None => (
                User {
                    id: UserId::random(),
                    email: email(i),
                    name: format!("Member {i}"),
                    password_hash: hash.clone(),
                    admin: false,
                    status: AccountStatus::Active,
                    lang: None,
                    created_at: now,
                    org: None,
                    contact: Default::default(),
                },
                true,
            ),
        })
        .unzip();
    let new_users = users
        .iter()
        .zip(&fresh)
        .filter(|(_, f)| **f)
        .map(|(u, _)| u);
    stream::iter(new_users.map(|u| {
        let store = store.clone();
        async move { store.user_insert(u).await }
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect::<()>()
    .await?;
    let users_done = started.elapsed();

    let users = Arc::new(users);
    let mut tokens = Vec::with_capacity(sessions);
    let mut records = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let token = random_token(32);
        records.push(SessionRecord {
            id: SessionId::random(),
            token_hash: TokenHash::of(&token),
            user_id: users[i % members].id.clone(),
            device_id: DeviceId::random(),
            created_at: now,
            last_seen: now,
            idle_ms: 14 * DAY_MS,
            absolute_expiry: now + 30 * DAY_MS,
            ip: "127.0.0.1".into(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
                .into(),
            level: Default::default(),
        });
        tokens.push(token);
    }
    stream::iter(records.iter().map(|s| {
        let store = store.clone();
        async move { store.session_insert(s, None).await }
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect::<()>()
    .await?;

    let mut out = tokens.join("\n");
    out.push('\n');
    std::fs::write(&tokens_file, out)?;
    let counted = store.session_count(now + 1).await?;
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "seeded {} members ({reused} already there) in {:.1} s and {sessions} sessions in {:.1} s; the store counts {counted} active sessions",
        members - reused,
        secs(users_done),
        secs(started.elapsed() - users_done),
    );
    Ok(())
}
