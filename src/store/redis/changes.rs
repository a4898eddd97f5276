//! The Redis change feed: a dedicated pub/sub connection on [`CHANNEL`], where the Lua
//! scripts announce every session that ends and every account written.
//!
//! Pub/sub delivers only to connected subscribers, so a connection that drops (a Redis
//! restart, `CLIENT KILL`, a network cut) means announcements were missed: the feed says
//! [`Change::Lost`] at once, reconnects with backoff, and says [`Change::Live`] once
//! subscribed again. A connection that dies silently is caught by a `PING` every
//! [`PING_EVERY`] that must be answered within [`PING_BOUND`]: a dead connection is
//! noticed within half a second, inside the one second a revocation may take.
//!
//! On a Cluster, the feed subscribes on the master of the `{vigile}` slot as the Cluster
//! maps it (or, failing that, on a node the URL names), and gets what the other masters
//! publish over the cluster bus. A node cut off from a master, or a master restarted
//! empty, failed over or moved, could leave the subscription alive and silent for the
//! shards it serves. So every [`PING_EVERY`] a heartbeat is published through every shard
//! (by a script on a key of its slot, so by its master), and the feed counts as lost
//! when one shard's did not come back within [`HEARTBEAT_BOUND`].

use std::time::Duration;

use std::sync::{Arc, LazyLock};

use futures_util::StreamExt;

use super::endpoint::Endpoint;

use crate::clock::Stopwatch;
use crate::store::changes::{Change, FeedSender, CHANNEL};

/// How often the subscription proves it is alive.
const PING_EVERY: Duration = Duration::from_millis(250);
/// How long a ping (or subscribing) may take before the connection is given up.
const PING_BOUND: Duration = Duration::from_millis(250);
/// How long the feed may go without a heartbeat (Cluster only) before it counts as lost.
const HEARTBEAT_BOUND: Duration = Duration::from_millis(1000);
/// The heartbeat message, then the index of the shard it went through: neither a session
/// (`s:`) nor an account (`u:`) announcement.
const HEARTBEAT: &str = "h";
/// Publishes `ARGV[2]` on channel `ARGV[1]`; `KEYS[1]`, unused, routes it to the store's
/// master on a Cluster.
static PUBLISH_THROUGH_STORE: LazyLock<::redis::Script> =
    LazyLock::new(|| ::redis::Script::new("return redis.call('PUBLISH', ARGV[1], ARGV[2])"));
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Follows the channel until the receiving cache is gone. `heartbeats`: on a Cluster, a key
/// in each shard's slot to publish heartbeats through, the site's last (see the module
/// doc); none on one Redis.
pub(super) async fn follow(endpoint: Arc<Endpoint>, tx: FeedSender, heartbeats: Vec<String>) {
    let mut backoff = BACKOFF_MIN;
    let mut said_down = false;
    while !tx.is_closed() {
        match subscribe(&endpoint, heartbeats.last().map(String::as_str)).await {
            Ok((pubsub, generation)) => {
                backoff = BACKOFF_MIN;
                said_down = false;
                tracing::debug!("session change feed subscribed");
                // On a Cluster, live once every shard's heartbeat came back (`relay`).
                if heartbeats.is_empty() && !tx.send(Change::Live).await {
                    return;
                }
                let (why, went_live) = relay(pubsub, &tx, &endpoint, generation, &heartbeats).await;
                // Said once per loss: a cycle that never went live (a master still down)
                // has nothing new to say.
                if heartbeats.is_empty() || went_live {
                    tracing::warn!(reason = why, "session change feed lost; caching briefly");
                    if !tx.send(Change::Lost).await {
                        return;
                    }
                } else {
                    tracing::debug!(reason = why, "session change feed still not live");
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
/// cannot be made there makes the next attempt ask for the master again); on a Cluster,
/// on the master of the site's shard (`{vigile}`), else on the first of the URL's nodes
/// that takes it.
async fn subscribe(
    endpoint: &Endpoint,
    heartbeat: Option<&str>,
) -> Result<(::redis::aio::PubSub, u64), String> {
    let current = endpoint.current().await.map_err(|e| e.to_string())?;
    let mut why = String::from("no server to subscribe on");
    // On a Cluster, the site's master first, found from the Cluster's own map even when
    // the URL's nodes were all replaced; the other masters' announcements reach it over
    // the cluster bus (and their heartbeats prove it).
    let mut candidates = Vec::new();
    if let Some(key) = heartbeat {
        let mut conn = current.conn.clone();
        let found = tokio::time::timeout(PING_BOUND * 4, master_of(&mut conn, key)).await;
        if let Ok(Some((host, port))) = found {
            candidates.extend(endpoint.cluster_node(&host, port));
        }
    }
    candidates.extend(current.subscribe_on.iter().cloned());
    for client in &candidates {
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
/// longer the one calls use (a Sentinel failover); returns why, and whether it said Live.
async fn relay(
    pubsub: ::redis::aio::PubSub,
    tx: &FeedSender,
    endpoint: &Endpoint,
    generation: u64,
    heartbeats: &[String],
) -> (&'static str, bool) {
    let (mut sink, mut stream) = pubsub.split();
    let mut heard = vec![Stopwatch::start(); heartbeats.len()];
    // Which shards' heartbeats came back since subscribing: the feed is live only once
    // all did (a master still down would otherwise make it flap live and lost).
    let mut back = vec![false; heartbeats.len()];
    let mut live = heartbeats.is_empty();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return ("connection closed", live) };
                let Ok(text) = msg.get_payload::<String>() else { continue };
                if let Some(shard) = text.strip_prefix(HEARTBEAT) {
                    if let Ok(i) = shard.parse::<usize>() {
                        if let (Some(at), Some(seen)) = (heard.get_mut(i), back.get_mut(i)) {
                            *at = Stopwatch::start();
                            *seen = true;
                        }
                    }
                    if !live && back.iter().all(|b| *b) {
                        live = true;
                        if !tx.send(Change::Live).await {
                            return ("cache gone", live);
                        }
                    }
                    continue;
                }
                if let Some(change) = Change::parse(&text) {
                    if !tx.send(change).await {
                        return ("cache gone", live);
                    }
                }
            }
            _ = ping.tick() => {
                if !endpoint.is_current(generation) {
                    return ("the redis master changed", live);
                }
                // In subscribed mode the answer is ["pong", ""]: any answer will do.
                match tokio::time::timeout(PING_BOUND, sink.ping::<::redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return ("ping failed", live),
                    Err(_) => return ("ping unanswered", live),
                }
                if heard.iter().any(|h| h.elapsed() > HEARTBEAT_BOUND) {
                    return ("no heartbeat came back from a shard's master", live);
                }
                // A heartbeat that cannot be sent is one that does not come back.
                let sent = heartbeats
                    .iter()
                    .enumerate()
                    .map(|(i, key)| publish_heartbeat(endpoint, key, i));
                let _ = tokio::time::timeout(PING_BOUND, futures_util::future::join_all(sent)).await;
            }
        }
    }
}

/// Publishes heartbeat `shard` through the master of `key`'s slot.
async fn publish_heartbeat(endpoint: &Endpoint, key: &str, shard: usize) -> Result<(), String> {
    let current = endpoint.current().await.map_err(|e| e.to_string())?;
    let mut conn = current.conn.clone();
    let mut inv = PUBLISH_THROUGH_STORE.prepare_invoke();
    inv.key(key)
        .arg(CHANNEL)
        .arg([HEARTBEAT, &shard.to_string()].concat());
    inv.invoke_async::<i64>(&mut conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The master of `key`'s slot, as the Cluster describes itself (`CLUSTER SLOTS`).
async fn master_of(conn: &mut super::endpoint::Conn, key: &str) -> Option<(String, u16)> {
    use ::redis::Value;
    let mut keyslot = ::redis::cmd("CLUSTER");
    keyslot.arg("KEYSLOT").arg(key);
    let slot: i64 = keyslot.query_async(conn).await.ok()?;
    let mut slots = ::redis::cmd("CLUSTER");
    slots.arg("SLOTS");
    let ranges: Vec<Vec<Value>> = slots.query_async(conn).await.ok()?;
    ranges.iter().find_map(|range| match range.as_slice() {
        [Value::Int(lo), Value::Int(hi), Value::Array(master), ..]
            if (*lo..=*hi).contains(&slot) =>
        {
            match master.as_slice() {
                [host, Value::Int(port), ..] => {
                    let host = ::redis::from_redis_value_ref::<String>(host).ok()?;
                    Some((host, u16::try_from(*port).ok()?))
                }
                _ => None,
            }
        }
        _ => None,
    })
}
