//! The Redis change feed: a dedicated pub/sub connection on [`CHANNEL`], where the Lua
//! scripts announce every session that ends and every account written.
//!
//! Pub/sub delivers only to connected subscribers, so a connection that drops (a Redis
//! restart, `CLIENT KILL`, a network cut) means announcements were missed: the feed says
//! [`Change::Lost`] at once, reconnects with backoff, and says [`Change::Live`] once
//! subscribed again. A connection that dies silently is caught by a `PING` every
//! [`PING_EVERY`] that must be answered within [`PING_BOUND`]: a dead connection is
//! noticed within half a second, inside the one second a revocation may take.

use std::time::Duration;

use std::sync::Arc;

use futures_util::StreamExt;

use super::endpoint::Endpoint;

use crate::store::changes::{Change, FeedSender, CHANNEL};

/// How often the subscription proves it is alive.
const PING_EVERY: Duration = Duration::from_millis(250);
/// How long a ping (or subscribing) may take before the connection is given up.
const PING_BOUND: Duration = Duration::from_millis(250);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Follows the channel until the receiving cache is gone.
pub(super) async fn follow(endpoint: Arc<Endpoint>, tx: FeedSender) {
    let mut backoff = BACKOFF_MIN;
    let mut said_down = false;
    while !tx.is_closed() {
        match subscribe(&endpoint).await {
            Ok((pubsub, generation)) => {
                backoff = BACKOFF_MIN;
                said_down = false;
                tracing::debug!("session change feed subscribed");
                if !tx.send(Change::Live).await {
                    return;
                }
                let why = relay(pubsub, &tx, &endpoint, generation).await;
                tracing::warn!(reason = why, "session change feed lost; caching briefly");
                if !tx.send(Change::Lost).await {
                    return;
                }
            }
            Err(e) => {
                if !said_down {
                    tracing::warn!(error = %e, "session change feed cannot subscribe");
                    said_down = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Subscribes on the master (found through Sentinel if need be: a subscription that
/// cannot be made there makes the next attempt ask for the master again), or on the
/// first Cluster node that takes it.
async fn subscribe(endpoint: &Endpoint) -> Result<(::redis::aio::PubSub, u64), String> {
    let current = endpoint.current().await.map_err(|e| e.to_string())?;
    let mut why = String::from("no server to subscribe on");
    for client in &current.subscribe_on {
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, ::redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(PING_BOUND * 4, attempt).await {
            Ok(Ok(pubsub)) => return Ok((pubsub, current.generation)),
            Ok(Err(e)) => why = e.to_string(),
            Err(_) => why = "timed out".into(),
        }
    }
    endpoint.failed(current.generation);
    Err(why)
}

/// Passes announcements on until the connection fails, or the master it is on is no
/// longer the one calls use (a Sentinel failover); returns why.
async fn relay(
    pubsub: ::redis::aio::PubSub,
    tx: &FeedSender,
    endpoint: &Endpoint,
    generation: u64,
) -> &'static str {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return "connection closed" };
                let Ok(text) = msg.get_payload::<String>() else { continue };
                if let Some(change) = Change::parse(&text) {
                    if !tx.send(change).await {
                        return "cache gone";
                    }
                }
            }
            _ = ping.tick() => {
                if !endpoint.is_current(generation) {
                    return "the redis master changed";
                }
                // In subscribed mode the answer is ["pong", ""]: any answer will do.
                match tokio::time::timeout(PING_BOUND, sink.ping::<::redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return "ping failed",
                    Err(_) => return "ping unanswered",
                }
            }
        }
    }
}
