//! Redis only: how sessions are laid out (issue 17, `store/keys.rs`), which the shared
//! behaviour suite cannot see. Sessions stay compact (listpack encodings, the token hash
//! as raw bytes, short fields), sessions stored by the previous layout are converted when
//! an upgraded instance connects (two at once, again, or one of them written later by an
//! instance not upgraded yet), a session Redis dropped by TTL leaves nothing once swept,
//! and every end of a session or account write is still announced on `vigile:changes` in
//! the formats the session caches rely on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use vigile::store::keys::{Key, Prefix};
use vigile::store::{AuthLevel, DynStore, Millis, RedisStore, SessionRecord, TokenHash, User};

use crate::common::consts::MINUTE;
use crate::common::records::{real_now, session, user};
use crate::common::redis_server::RedisServer;

fn open(server: &RedisServer) -> DynStore {
    Arc::new(RedisStore::connect_lazy(&server.url(), false).unwrap())
}

async fn raw(server: &RedisServer) -> MultiplexedConnection {
    let client = redis::Client::open(server.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

async fn query<T: redis::FromRedisValue>(conn: &mut MultiplexedConnection, cmd: &redis::Cmd) -> T {
    cmd.query_async(conn).await.unwrap()
}

async fn encoding(conn: &mut MultiplexedConnection, key: &str) -> String {
    query(conn, redis::cmd("OBJECT").arg("ENCODING").arg(key)).await
}

async fn keys(conn: &mut MultiplexedConnection, pattern: &str) -> Vec<String> {
    query(conn, redis::cmd("KEYS").arg(pattern)).await
}

fn raw_hash(hash: &TokenHash) -> Vec<u8> {
    let hex = hash.as_str();
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

async fn lookup(store: &DynStore, s: &SessionRecord, now: Millis) -> Option<SessionRecord> {
    store.session_by_token(&s.token_hash, now).await.unwrap()
}

/// A member and a session of theirs with what makes a session big: a long user agent
/// (several 64-byte pieces, multi-byte characters cut between them), an IPv6 address,
/// a second factor.
fn long_session(u: &User, at: Millis) -> SessionRecord {
    let (mut s, _) = session(&u.id, at);
    s.user_agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
                    (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1 — ünïcödé "
        .repeat(3);
    s.ip = "2001:db8:85a3::8a2e:370:7334".into();
    s.level = AuthLevel::SecondFactor;
    s
}

/// Every session key is a listpack (not a hashtable: about three times the memory), with
/// the short fields of `keys.rs` and the token hash as 32 raw bytes; the buckets indexing
/// sessions are listpacks too; everything reads back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_are_compact_listpacks() {
    let server = RedisServer::start().await;
    let store = open(&server);
    let now = real_now();
    let u = user("ann@example.org", now);
    store.user_insert(&u).await.unwrap();
    let (plain, _) = session(&u.id, now);
    let long = long_session(&u, now + 1);
    store.session_insert(&plain, None).await.unwrap();
    store.session_insert(&long, None).await.unwrap();

    let mut conn = raw(&server).await;
    for s in [&plain, &long] {
        assert_eq!(lookup(&store, s, now + 2).await.as_ref(), Some(s));
        let key = Key::Session(&s.id).name();
        assert_eq!(encoding(&mut conn, &key).await, "listpack", "{key}");
        let token: Vec<u8> = query(&mut conn, redis::cmd("HGET").arg(&key).arg("t")).await;
        assert_eq!(token, raw_hash(&s.token_hash));
        let fields: Vec<String> = query(&mut conn, redis::cmd("HKEYS").arg(&key)).await;
        for f in &fields {
            assert!(
                f.len() <= 2,
                "{key}: field {f:?} is not one of the short names"
            );
        }
    }
    let pieces: Vec<String> = query(
        &mut conn,
        redis::cmd("HKEYS").arg(Key::Session(&long.id).name()),
    )
    .await;
    assert!(pieces.contains(&"g4".to_string()), "{pieces:?}");
    for key in [
        Key::SessionTokens(&plain.token_hash).name(),
        Key::SessionTokens(&long.token_hash).name(),
        Key::SessionMembers(&u.id).name(),
    ] {
        assert_eq!(encoding(&mut conn, &key).await, "listpack", "{key}");
    }
    assert_eq!(
        store.sessions_of(&u.id, now + 2).await.unwrap(),
        vec![plain.clone(), long.clone()]
    );
}

/// Writes `s` exactly as the previous version did (layout 1).
async fn write_layout_1(conn: &mut MultiplexedConnection, s: &SessionRecord, with_level: bool) {
    let key = format!("{}{}", Prefix::LegacySession.as_str(), s.id);
    let mut hset = redis::cmd("HSET");
    hset.arg(&key)
        .arg("id")
        .arg(s.id.as_str())
        .arg("token_hash")
        .arg(s.token_hash.as_str())
        .arg("user_id")
        .arg(s.user_id.as_str())
        .arg("device_id")
        .arg(s.device_id.as_str())
        .arg("created_at")
        .arg(s.created_at)
        .arg("last_seen")
        .arg(s.last_seen)
        .arg("idle_ms")
        .arg(s.idle_ms)
        .arg("absolute_expiry")
        .arg(s.absolute_expiry)
        .arg("ip")
        .arg(&s.ip)
        .arg("user_agent")
        .arg(&s.user_agent);
    // Sessions opened before second factors existed have no level.
    if with_level {
        hset.arg("level").arg(s.level.as_str());
    }
    let _: () = query(conn, &hset).await;
    let expires = s.expires_at();
    let token = Key::LegacySessionToken(&s.token_hash).name();
    let index = format!("{}{}", Prefix::LegacyUserSessions.as_str(), s.user_id);
    let mut pipe = redis::pipe();
    pipe.cmd("PEXPIREAT").arg(&key).arg(expires);
    pipe.cmd("SET").arg(&token).arg(s.id.as_str());
    pipe.cmd("PEXPIREAT").arg(&token).arg(expires);
    pipe.cmd("ZADD")
        .arg(&index)
        .arg(s.absolute_expiry)
        .arg(s.id.as_str());
    pipe.cmd("PEXPIREAT").arg(&index).arg(s.absolute_expiry);
    pipe.cmd("ZADD")
        .arg(Key::LegacySessionExpiry.name())
        .arg(expires)
        .arg(s.id.as_str());
    let _: () = pipe.query_async(conn).await.unwrap();
}

async fn layout_1_keys(conn: &mut MultiplexedConnection) -> Vec<String> {
    let mut left = vec![];
    for prefix in [
        Prefix::LegacySession,
        Prefix::LegacySessionToken,
        Prefix::LegacyUserSessions,
    ] {
        left.extend(keys(conn, &format!("{}*", prefix.as_str())).await);
    }
    left.extend(keys(conn, &Key::LegacySessionExpiry.name()).await);
    left
}

/// An upgrade signs nobody out: sessions of layout 1 are converted when upgraded instances
/// connect (two at once here, both converting), every one found by its token and in its
/// member's list with the same fields, and nothing of layout 1 is left. Converting again
/// (the layout mark lost) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_layout_1_sessions_are_converted_when_instances_connect() {
    let server = RedisServer::start().await;
    let mut conn = raw(&server).await;
    let now = real_now();
    let (ann, bob) = (user("ann@example.org", now), user("bob@example.org", now));
    let (ann_1, _) = session(&ann.id, now);
    let ann_2 = long_session(&ann, now + 1);
    let (bob_1, _) = session(&bob.id, now + 2);
    write_layout_1(&mut conn, &ann_1, false).await;
    write_layout_1(&mut conn, &ann_2, true).await;
    write_layout_1(&mut conn, &bob_1, true).await;
    // An index entry whose session Redis had already dropped.
    let _: () = query(
        &mut conn,
        redis::cmd("ZADD")
            .arg(Key::LegacySessionExpiry.name())
            .arg(now)
            .arg("gone"),
    )
    .await;

    let (a, b) = (open(&server), open(&server));
    let (count_a, count_b) = tokio::join!(a.session_count(now + 3), b.session_count(now + 3));
    assert_eq!((count_a.unwrap(), count_b.unwrap()), (3, 3));
    assert_eq!(layout_1_keys(&mut conn).await, Vec::<String>::new());
    let layout: String = query(&mut conn, redis::cmd("GET").arg(Key::Layout.name())).await;
    assert_eq!(layout, "2");

    for s in [&ann_1, &ann_2, &bob_1] {
        assert_eq!(lookup(&a, s, now + 3).await.as_ref(), Some(s));
        let key = Key::Session(&s.id).name();
        assert_eq!(encoding(&mut conn, &key).await, "listpack", "{key}");
    }
    assert_eq!(
        b.sessions_of(&ann.id, now + 3).await.unwrap(),
        vec![ann_1.clone(), ann_2.clone()]
    );
    assert_eq!(
        a.sessions_of(&bob.id, now + 3).await.unwrap(),
        vec![bob_1.clone()]
    );

    let _: () = query(&mut conn, redis::cmd("DEL").arg(Key::Layout.name())).await;
    let c = open(&server);
    assert_eq!(c.session_count(now + 3).await.unwrap(), 3);
    // Converted sessions live on as any other: touched, ended, swept.
    assert!(c.session_touch(&ann_1.id, now + MINUTE).await.unwrap());
    assert!(c.session_delete(&bob_1.id).await.unwrap());
    assert_eq!(lookup(&a, &bob_1, now + 3).await, None);
    assert_eq!(c.session_delete_all(&ann.id).await.unwrap(), 2);
    assert_eq!(c.session_count(now + 3).await.unwrap(), 0);
}

/// During a rolling upgrade an instance of the previous version still writes layout 1
/// after the conversion: that session is converted when its token is first presented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_layout_1_session_written_after_the_conversion_is_found_by_its_token() {
    let server = RedisServer::start().await;
    let store = open(&server);
    let now = real_now();
    let u = user("ann@example.org", now);
    store.user_insert(&u).await.unwrap();
    let (old, _) = session(&u.id, now);
    let mut conn = raw(&server).await;
    write_layout_1(&mut conn, &old, true).await;

    assert_eq!(lookup(&store, &old, now).await, Some(old.clone()));
    assert_eq!(layout_1_keys(&mut conn).await, Vec::<String>::new());
    assert_eq!(
        store.sessions_of(&u.id, now).await.unwrap(),
        vec![old.clone()]
    );
    assert_eq!(store.session_count(now).await.unwrap(), 1);
}

/// A session Redis drops by TTL (its expiry passed on Redis's clock) leaves its entries in
/// the shared buckets; the sweep removes them all, the token's included, and counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_session_dropped_by_ttl_leaves_nothing_once_swept() {
    let server = RedisServer::start().await;
    let store = open(&server);
    let now = real_now();
    let u = user("ann@example.org", now);
    store.user_insert(&u).await.unwrap();
    let (live, _) = session(&u.id, now);
    let (mut dead, _) = session(&u.id, now - 2 * MINUTE);
    dead.idle_ms = MINUTE;
    store.session_insert(&live, None).await.unwrap();
    store.session_insert(&dead, None).await.unwrap();
    let mut conn = raw(&server).await;
    let exists: u8 = query(
        &mut conn,
        redis::cmd("EXISTS").arg(Key::Session(&dead.id).name()),
    )
    .await;
    assert_eq!(exists, 0, "PEXPIREAT in the past drops the hash at once");

    assert_eq!(store.session_count(now).await.unwrap(), 1);
    assert_eq!(store.sweep(now).await.unwrap(), 1);
    let tokens: Vec<String> = query(
        &mut conn,
        redis::cmd("HVALS").arg(Key::SessionTokens(&dead.token_hash).name()),
    )
    .await;
    assert!(
        !tokens.contains(&dead.id.as_str().to_string()),
        "{tokens:?}"
    );
    let entries: Vec<String> = query(
        &mut conn,
        redis::cmd("ZRANGE")
            .arg(Key::SessionMembers(&u.id).name())
            .arg(0)
            .arg(-1),
    )
    .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].contains(live.id.as_str()));
    let total: u64 = query(&mut conn, redis::cmd("GET").arg(Key::SessionTotal.name())).await;
    assert_eq!(total, 1);
    assert_eq!(store.sweep(now).await.unwrap(), 0);
    assert_eq!(lookup(&store, &live, now).await, Some(live));
}

/// The session caches of every instance forget a session on `s:<token hash in hex>` and an
/// account's identities on `u:<user id>`: every end of a session says the first, every
/// account write the second, whatever the layout keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ends_of_sessions_and_account_writes_are_published() {
    let server = RedisServer::start().await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("vigile:changes").await.unwrap();
    let store = open(&server);
    let now = real_now();
    let u = user("ann@example.org", now);
    store.user_insert(&u).await.unwrap();
    let (one, _) = session(&u.id, now);
    let (two, _) = session(&u.id, now);
    store.session_insert(&one, None).await.unwrap();
    store.session_insert(&two, None).await.unwrap();
    assert!(store.session_delete(&one.id).await.unwrap());
    assert!(store.user_set_password(&u.id, "$argon2id$x").await.unwrap());
    assert!(store.user_delete(&u.id).await.unwrap());

    let mut messages = pubsub.on_message();
    let mut got = vec![];
    while got.len() < 4 {
        let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("a message on vigile:changes")
            .unwrap();
        got.push(msg.get_payload::<String>().unwrap());
    }
    let user_msg = format!("u:{}", u.id);
    assert_eq!(
        got,
        vec![
            format!("s:{}", one.token_hash.as_str()),
            user_msg.clone(),
            format!("s:{}", two.token_hash.as_str()),
            user_msg,
        ]
    );
}

/// An organisation's removal used to leave the member's second factors, known devices
/// and own cap behind: the first instance of this version to connect deletes those of
/// accounts that are gone, and nothing of an account that exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_records_of_accounts_deleted_before_are_removed_once() {
    let server = RedisServer::start().await;
    let mut conn = raw(&server).await;
    let now = real_now();
    let here = user("here@example.org", now);
    open(&server).user_insert(&here).await.unwrap();
    // As the previous version left things: the marker not set, records of a gone account.
    let _: () = query(&mut conn, redis::cmd("DEL").arg("vigile:members_forgotten")).await;
    for id in ["gone", here.id.as_str()] {
        let _: () = query(
            &mut conn,
            redis::cmd("SET")
                .arg(format!("vigile:kept:factors:{id}"))
                .arg("{}"),
        )
        .await;
        let _: () = query(
            &mut conn,
            redis::cmd("SADD")
                .arg(format!("vigile:known_devices:{id}"))
                .arg("laptop"),
        )
        .await;
        let _: () = query(
            &mut conn,
            redis::cmd("HSET").arg("vigile:member_caps").arg(id).arg(4),
        )
        .await;
    }

    let store = open(&server);
    store.ping().await.unwrap();
    let mut left = keys(&mut conn, "vigile:kept:*").await;
    left.extend(keys(&mut conn, "vigile:known_devices:*").await);
    left.sort();
    assert_eq!(
        left,
        [
            format!("vigile:kept:factors:{}", here.id.as_str()),
            format!("vigile:known_devices:{}", here.id.as_str()),
        ]
    );
    let caps: Vec<String> = query(&mut conn, redis::cmd("HKEYS").arg("vigile:member_caps")).await;
    assert_eq!(caps, [here.id.as_str()]);
    assert_eq!(store.member_cap(&here.id).await.unwrap(), Some(4));
}
