//! How much Redis memory failed logins on made-up addresses cost (issue 21), measured
//! through the store API exactly as the login flow counts them: once with one counter per
//! typed address (as Vigile did before), once under `lockout.unknown_buckets` shared
//! counters. Prints `used_memory` growth for each. For `BENCHMARKS.md` and the README.
//!
//! Usage: `unknown_attempts_memory REDIS_URL ADDRESSES BUCKETS` on an empty Redis, e.g.
//! `unknown_attempts_memory redis://127.0.0.1:6390/0 100000 4096`.
// A bench tool: times its own run by the real clock.
#![allow(clippy::disallowed_methods)]

use futures_util::stream::{self, StreamExt, TryStreamExt};
use vigile::auth::lockout::unknown_counter;
use vigile::store::{self, AttemptKey, DynStore, StoreUrl};

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn used_memory(url: &str) -> Result<u64, Error> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await?;
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .ok_or("no used_memory in INFO")?;
    Ok(used.trim().parse()?)
}

async fn flush(url: &str) -> Result<(), Error> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await?;
    Ok(())
}

/// Counts one failed attempt for each of `keys`, 64 in flight.
async fn count_all(store: &DynStore, keys: &[String], now: i64) -> Result<(), Error> {
    stream::iter(keys.iter().map(|k| {
        let store = store.clone();
        async move { store.attempt_begin(AttemptKey::Account(k), now).await }
    }))
    .buffer_unordered(64)
    .try_collect::<Vec<_>>()
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let usage = || -> Error { "usage: unknown_attempts_memory REDIS_URL ADDRESSES BUCKETS".into() };
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(usage)?;
    let n: usize = args.next().ok_or_else(usage)?.parse()?;
    let buckets: u32 = args.next().ok_or_else(usage)?.parse()?;
    let store = store::open(&StoreUrl::parse(&url)?, false)?;
    let now = vigile::clock::now_ms();
    let addresses: Vec<String> = (0..n).map(|i| format!("made-up-{i}@example.org")).collect();
    let secret = vigile::crypto::random_token(32);

    flush(&url).await?;
    let before = used_memory(&url).await?;
    count_all(&store, &addresses, now).await?;
    let per_address = used_memory(&url).await? - before;

    flush(&url).await?;
    let before = used_memory(&url).await?;
    let shared: Vec<String> = addresses
        .iter()
        .map(|a| unknown_counter(secret.as_bytes(), a, buckets))
        .collect();
    count_all(&store, &shared, now).await?;
    let bucketed = used_memory(&url).await? - before;
    flush(&url).await?;

    println!("addresses {n}, buckets {buckets}");
    println!(
        "one counter per address: {per_address} bytes ({} per address)",
        per_address / n as u64
    );
    println!("shared counters:         {bucketed} bytes");
    Ok(())
}
