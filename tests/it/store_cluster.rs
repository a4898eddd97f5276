//! What only a Redis Cluster shows: every key Vigile writes carries its shard's hash tag
//! (`{vigile:X}` for the records of a member, an address, a token; `{vigile}` for the
//! site's), so the store spreads over every master while each script stays in one slot;
//! the eviction guard reads every master's policy, and the change feed hears from every
//! shard. The behaviour suite itself runs on a Cluster as `store_*::…::cluster`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use vigile::store::changes::Change;
use vigile::store::shard::Shard;
use vigile::store::{AttemptKey, DynStore, IpRule, RedisStore, StoreError};

use crate::common::backend::StoreBackend;
use crate::common::cluster::ClusterSet;
use crate::common::consts::MINUTE;
use crate::common::records::{real_now, session, user};
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

/// The hash tag at the start of a key name: `{vigile}` or `{vigile:X}`.
fn tag_of(key: &str) -> &str {
    key.find('}').map_or("", |end| &key[..=end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_carries_its_shard_tag_and_the_members_spread_over_every_master() {
    let set = ClusterSet::start().await;
    let ports = set.ports();
    let b = StoreBackend::Cluster(set.into());
    let store = b.open();
    let now = real_now();
    store.secret_get_or_init(b"secret").await.unwrap();
    let mut members = Vec::new();
    for i in 0..48 {
        let u = user(&format!("member{i}@example.org"), now);
        store.user_insert(&u).await.unwrap();
        let (s, _) = session(&u.id, now);
        store.session_insert(&s, None).await.unwrap();
        store.device_remember(&u.id, &s.device_id).await.unwrap();
        store
            .attempt_begin(AttemptKey::Account(&u.email), now)
            .await
            .unwrap();
        members.push((u, s));
    }
    store
        .ip_attempt("192.0.2.7", &rule(), now)
        .await
        .unwrap()
        .unwrap();

    let mut holders = Vec::new();
    let mut all = Vec::new();
    for port in &ports {
        let keys: Vec<String> = command(*port, &["KEYS", "*"]).await.unwrap();
        for key in &keys {
            let tag = tag_of(key);
            assert!(
                tag == "{vigile}" || (tag.len() == 10 && tag.starts_with("{vigile:")),
                "{key} lacks a shard's hash tag"
            );
            // Nothing after the tag moves a key to another slot than its shard's.
            let of: i64 = command(*port, &["CLUSTER", "KEYSLOT", key]).await.unwrap();
            let shard: i64 = command(*port, &["CLUSTER", "KEYSLOT", tag]).await.unwrap();
            assert_eq!(of, shard, "{key} is outside its shard's slot");
        }
        holders.push(keys.len());
        all.extend(keys);
    }
    assert!(
        holders.iter().all(|n| *n > 0),
        "every master holds part of the store: {holders:?}"
    );
    // A member's records sit in their shard: account, session, devices; their address's
    // records in the address's shard (the same: the id was drawn there).
    for (u, s) in &members {
        let tag = format!("{{vigile:{}}}", Shard::of_user(&u.id).digit());
        for key in [
            format!("{tag}:user:{}", u.id),
            format!("{tag}:s:{}", s.id),
            format!("{tag}:known_devices:{}", u.id),
            format!("{tag}:user_email:{}", u.email),
            format!("{tag}:attempts:{}", u.email),
        ] {
            assert!(all.contains(&key), "{key} is not where its shard says");
        }
    }
    assert!(all.contains(&"{vigile}:secret".to_string()));

    // A second instance (another gateway) reads what the first wrote.
    let other = b.open();
    for (u, s) in &members {
        assert_eq!(
            other.session_by_token(&s.token_hash, now).await.unwrap(),
            Some(s.clone())
        );
        assert_eq!(
            other.user_by_email(&u.email).await.unwrap().map(|f| f.id),
            Some(u.id.clone())
        );
    }
    assert_eq!(other.session_count(now).await.unwrap(), 48);
    assert_eq!(other.user_counts().await.unwrap(), (48, 0));
}

/// A Cluster holding the one-slot store of an earlier build (every key under `{vigile}`)
/// is refused, loudly, rather than served as if empty: its members would not be found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_holding_the_one_slot_store_of_an_earlier_build_is_refused() {
    let set = ClusterSet::start().await;
    let master = set.store_master().await;
    let _: i64 = command(master, &["SADD", "{vigile}:users", "old-member"])
        .await
        .unwrap();
    let store = open_on(&set);
    let refused = store.ping().await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Unavailable(why) if why.contains("one-slot")),
        "{refused:?}"
    );
    assert!(store.user_by_email("a@example.org").await.is_err());

    // A gateway of the earlier build still writing after this version started: the
    // readiness check says so.
    let set = ClusterSet::start().await;
    let store = open_on(&set);
    store.ping().await.unwrap();
    let master = set.store_master().await;
    let _: i64 = command(master, &["INCR", "{vigile}:session_total"])
        .await
        .unwrap();
    let refused = store.ping().await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Unavailable(why) if why.contains("one-slot")),
        "{refused:?}"
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

/// A master the feed is not subscribed on going silent (pausing its writers: its
/// announcements stop, as for a node cut off from the subscriber's) makes the feed lost
/// too: the heartbeats of the shards it serves stop coming back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_master_of_other_shards_is_a_lost_feed() {
    let set = ClusterSet::start().await;
    let subscribed = set.store_master().await;
    let mut other = None;
    for shard in Shard::all() {
        let master = set
            .master_of(&format!("{{vigile:{}}}", shard.digit()))
            .await;
        if master != subscribed {
            other = Some(master);
            break;
        }
    }
    let other = other.expect("a shard on another master");
    let store = open_on(&set);
    let mut feed = store.changes();
    let first = tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(Change::Live));

    let _: String = command(other, &["CLIENT", "PAUSE", "3000", "WRITE"])
        .await
        .unwrap();
    assert!(
        next(&mut feed, Change::Lost).await,
        "the other master's silence is noticed"
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
    let tag = format!("{{vigile:{}}}", Shard::of_user(&u.id).digit());
    let from = set.master_of(&tag).await;
    let to = set.move_slot_of(&tag).await;
    assert_ne!(from, to);
    assert_eq!(set.master_of(&tag).await, to);

    // The very first calls after the move: a read, a script write, the readiness ping.
    assert_eq!(
        store.session_by_token(&s.token_hash, now).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.session_delete_all(&u.id).await.unwrap(), 1);
    store.ping().await.unwrap();
    let keys: Vec<String> = command(to, &["KEYS", "*"]).await.unwrap();
    assert!(
        keys.iter().any(|k| k.starts_with(&format!("{tag}:user:"))),
        "the member's shard moved with its keys: {keys:?}"
    );
}
