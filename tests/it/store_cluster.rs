//! What only a Redis Cluster shows: every key Vigile writes carries the `{vigile}` hash
//! tag, so the whole store sits in one slot on one master (which is what lets every
//! script stay atomic), and the eviction guard reads every master's policy, since a
//! failover or a resharding may move that slot to any of them. The behaviour suite
//! itself runs on a Cluster as `store_*::…::cluster`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use vigile::store::changes::Change;
use vigile::store::{AttemptKey, DeviceId, DynStore, IpRule, RedisStore, StoreError};

use crate::common::backend::StoreBackend;
use crate::common::cluster::ClusterSet;
use crate::common::consts::MINUTE;
use crate::common::sentinel::command;
use crate::store_suite::member_with_session;

fn rule() -> IpRule {
    IpRule {
        max: 5,
        window_ms: MINUTE,
        block_ms: MINUTE,
        max_block_ms: 10 * MINUTE,
    }
}

/// A store on `set` whose URL names the store's master (`master`) last; the ports in the
/// URL's order.
fn store_named_master_last(set: &ClusterSet, master: u16) -> (DynStore, Vec<u16>) {
    let mut ports = set.ports();
    ports.sort_by_key(|p| *p == master);
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let url = format!("redis+cluster://{}", hosts.join(","));
    let store: DynStore = Arc::new(RedisStore::connect_lazy(&url, false).unwrap());
    (store, ports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_is_tagged_and_the_store_sits_on_the_master_of_its_slot() {
    let set = ClusterSet::start().await;
    let ports = set.ports();
    let b = StoreBackend::Cluster(set.into());
    let (store, u, s, now) = member_with_session(&b).await;
    store.secret_get_or_init(b"secret").await.unwrap();
    let device = DeviceId::from_string("d1");
    store
        .attempt_begin(AttemptKey::Device(&u.email, &device), now)
        .await
        .unwrap();
    store.device_remember(&u.id, &device).await.unwrap();
    store
        .ip_attempt("192.0.2.7", &rule(), now)
        .await
        .unwrap()
        .unwrap();

    let slot: i64 = command(ports[0], &["CLUSTER", "KEYSLOT", "{vigile}"])
        .await
        .unwrap();
    let mut holders = Vec::new();
    for port in &ports {
        let keys: Vec<String> = command(*port, &["KEYS", "*"]).await.unwrap();
        for key in &keys {
            assert!(key.starts_with("{vigile}:"), "{key} lacks the hash tag");
            let of: i64 = command(*port, &["CLUSTER", "KEYSLOT", key]).await.unwrap();
            assert_eq!(of, slot, "{key} is in another slot");
        }
        if !keys.is_empty() {
            holders.push((*port, keys.len()));
        }
    }
    assert_eq!(holders.len(), 1, "one master holds the store: {holders:?}");
    assert!(holders[0].1 >= 8, "the writes above made keys: {holders:?}");
    // A second instance (another gateway) reads what the first wrote.
    let other = b.open();
    assert_eq!(
        other.session_by_token(&s.token_hash, now).await.unwrap(),
        Some(s)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_may_evict_is_refused_even_without_the_slot() {
    let set = ClusterSet::start().await;
    let ports = set.ports();
    let b = StoreBackend::Cluster(set.into());
    let store = b.open();
    store.ping().await.unwrap();
    // The node holding the store's slot stays safe; another one may evict.
    let slot: i64 = command(ports[0], &["CLUSTER", "KEYSLOT", "{vigile}"])
        .await
        .unwrap();
    let mut other = None;
    for port in &ports {
        let mine: String = command(*port, &["CLUSTER", "MYID"]).await.unwrap();
        let nodes: String = command(*port, &["CLUSTER", "NODES"]).await.unwrap();
        let holds_slot = nodes.lines().any(|l| {
            l.starts_with(&mine)
                && l.split_whitespace().skip(8).any(|range| {
                    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                    let (lo, hi) = (lo.parse::<i64>().unwrap(), hi.parse::<i64>().unwrap());
                    (lo..=hi).contains(&slot)
                })
        });
        if !holds_slot {
            other = Some(*port);
            break;
        }
    }
    let other = other.expect("a master without the slot");
    let _: String = command(other, &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
        .await
        .unwrap();
    let refused = store.ping().await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Unavailable(why) if why.contains("allkeys-lru")),
        "{refused:?}"
    );
    assert!(store.eviction_unsafe());
    let _: String = command(other, &["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .await
        .unwrap();
    store.ping().await.unwrap();
    assert!(!store.eviction_unsafe());
}

/// With the master of the store's slot gone, the store is not ready, and the change feed
/// says it is lost (so every instance stops trusting its cache): its subscription there
/// breaks, and the heartbeat published through that master stops coming back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_store_master_fails_the_ping_and_the_change_feed() {
    let mut set = ClusterSet::start().await;
    let master = set.store_master().await;
    let (store, _) = store_named_master_last(&set, master);
    store.ping().await.unwrap();
    let mut feed = store.changes();
    let bound = Duration::from_secs(10);
    let first = tokio::time::timeout(bound, feed.recv()).await.unwrap();
    assert_eq!(first, Some(Change::Live));

    set.kill(master);
    let lost = tokio::time::timeout(bound, async {
        loop {
            match feed.recv().await {
                Some(Change::Lost) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    })
    .await;
    assert_eq!(lost, Ok(true), "the feed says it lost the store's master");
    assert!(
        store.ping().await.is_err(),
        "not ready without the store's master"
    );
}

/// The feed subscribes on the store's master, found from the Cluster's own map, not on
/// the first node the URL names: the announcements start there, and it is found even
/// when every node the URL names was replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_subscribes_on_the_store_master() {
    let set = ClusterSet::start().await;
    let master = set.store_master().await;
    let (store, ports) = store_named_master_last(&set, master);
    let mut feed = store.changes();
    let first = tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(Change::Live));
    let subscribers = |port: u16| async move {
        let reply: Vec<::redis::Value> =
            command(port, &["PUBSUB", "NUMSUB", vigile::store::changes::CHANNEL])
                .await
                .unwrap();
        match reply.as_slice() {
            [_, ::redis::Value::Int(n)] => *n,
            other => panic!("PUBSUB NUMSUB answered {other:?}"),
        }
    };
    assert_eq!(
        subscribers(master).await,
        1,
        "the feed is on the store's master"
    );
    assert_eq!(
        subscribers(ports[0]).await,
        0,
        "not on the first node named"
    );
}

/// A subscription that stays up while announcements stop (here the store's master pauses
/// its writers, publishing included, while still answering the feed's pings; in the wild
/// a node cut off from that master) is a lost feed: the heartbeats stop coming back. The
/// feed is live again once they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_subscription_is_a_lost_feed() {
    let set = ClusterSet::start().await;
    let master = set.store_master().await;
    let store = open_on(&set);
    let mut feed = store.changes();
    let bound = Duration::from_secs(10);
    let first = tokio::time::timeout(bound, feed.recv()).await.unwrap();
    assert_eq!(first, Some(Change::Live));

    let _: String = command(master, &["CLIENT", "PAUSE", "3000", "WRITE"])
        .await
        .unwrap();
    assert!(
        next(&mut feed, Change::Lost).await,
        "the silence is noticed"
    );
    assert!(
        next(&mut feed, Change::Live).await,
        "live again after the pause"
    );
}

/// Whether `want` comes on `feed` within 10 s (whatever comes before it).
async fn next(feed: &mut vigile::store::changes::ChangeFeed, want: Change) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(change) = feed.recv().await {
            if change == want {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

/// A store on `set`, as a gateway opens it.
fn open_on(set: &ClusterSet) -> DynStore {
    Arc::new(RedisStore::connect_lazy(&set.url(), false).unwrap())
}

/// An operator moving the store's slot to another master (a resharding; a failover looks
/// the same to the client) is followed without one failed call: the old master's `MOVED`
/// says it ran nothing, so the call is sent again where the slot went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_moved_to_another_master_is_followed_without_a_failed_call() {
    let b = StoreBackend::Cluster(ClusterSet::start().await.into());
    let StoreBackend::Cluster(set) = &b else {
        unreachable!()
    };
    let (store, u, s, now) = member_with_session(&b).await;
    let from = set.store_master().await;
    let to = set.move_store_slot().await;
    assert_ne!(from, to);
    assert_eq!(set.store_master().await, to);

    // The very first calls after the move: a read, a script write, the readiness ping.
    assert_eq!(
        store.session_by_token(&s.token_hash, now).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.session_delete_all(&u.id).await.unwrap(), 1);
    store.ping().await.unwrap();
    let keys: Vec<String> = command(to, &["KEYS", "*"]).await.unwrap();
    assert!(
        keys.iter().any(|k| k.starts_with("{vigile}:user:")),
        "the store moved with its keys: {keys:?}"
    );
}
