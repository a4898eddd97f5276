//! The behaviour every `Store` backend must show, run identically against SQLite (a
//! temporary file) and a real `redis-server`: one async fn per behaviour, instantiated
//! for both backends by `both_backends!` (tests are named `store_suite::sqlite::X` and
//! `store_suite::redis::X`).
//!
//! Time is passed in, never slept: expiry is tested by calling with a later `now`. The
//! base instant is the real clock because Redis also expires keys by its own clock.
//! "Two instances" means two store objects on the same file or the same Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;
use vigile::store::keys::{Key, NAMESPACE};
use vigile::store::{
    AccountStatus, DeviceId, DynStore, Millis, RedisStore, SessionId, SessionRecord, SqliteStore,
    StoreError, TokenHash, User, UserId,
};

use crate::common::redis_server::RedisServer;

const MINUTE: Millis = 60_000;
const IDLE: Millis = 30 * MINUTE;
const ABSOLUTE: Millis = 8 * 60 * MINUTE;

enum Backend {
    Sqlite { _dir: TempDir, path: PathBuf },
    Redis(RedisServer),
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/vigile.db");
        Backend::Sqlite { _dir: dir, path }
    }

    async fn redis() -> Self {
        Backend::Redis(RedisServer::start().await)
    }

    /// A new store object on the same data: another gateway instance, or the admin CLI.
    fn open(&self) -> DynStore {
        match self {
            Backend::Sqlite { path, .. } => std::sync::Arc::new(SqliteStore::open(path).unwrap()),
            Backend::Redis(server) => {
                std::sync::Arc::new(RedisStore::connect_lazy(&server.url()).unwrap())
            }
        }
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::sqlite().await).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::redis().await).await;
                }
            )*
        }
    };
}

both_backends!(
    users_are_found_by_email_and_id_and_listed_by_email,
    duplicate_email_is_a_conflict,
    session_is_found_by_token_hash,
    session_dies_after_idle_timeout_and_is_deleted,
    session_dies_at_absolute_expiry_despite_activity,
    touch_pushes_idle_expiry_only_forward_and_not_when_dead,
    rotation_replaces_the_old_session_atomically,
    delete_one_and_delete_all,
    sessions_of_is_oldest_first_and_skips_expired,
    session_count_counts_valid_sessions_without_destroying_any,
    secret_first_writer_wins_across_instances,
    sessions_are_shared_between_instances,
    sweep_removes_what_expired,
    concurrent_writes_from_two_instances_all_succeed,
);

fn real_now() -> Millis {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Millis::try_from(since.as_millis()).unwrap()
}

fn user(email: &str, now: Millis) -> User {
    User {
        id: UserId::random(),
        email: email.to_string(),
        name: format!("Name of {email}"),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_string(),
        admin: email.starts_with("admin"),
        status: AccountStatus::Active,
        lang: Some("fr".to_string()),
        created_at: now,
    }
}

/// A session created at `at`, and the cookie token it answers to.
fn session(user: &UserId, at: Millis) -> (SessionRecord, String) {
    let token = SessionId::random().as_str().to_string();
    let record = SessionRecord {
        id: SessionId::random(),
        token_hash: TokenHash::of(&token),
        user_id: user.clone(),
        device_id: DeviceId::random(),
        created_at: at,
        last_seen: at,
        idle_ms: IDLE,
        absolute_expiry: at + ABSOLUTE,
        ip: "192.0.2.7".to_string(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0 — é".to_string(),
    };
    (record, token)
}

/// The session answering to `s`'s token at `now`, if any.
async fn lookup(store: &DynStore, s: &SessionRecord, now: Millis) -> Option<SessionRecord> {
    store.session_by_token(&s.token_hash, now).await.unwrap()
}

/// A member with one session, the store, and the instant everything was created.
async fn member_with_session(b: &Backend) -> (DynStore, User, SessionRecord, Millis) {
    let store = b.open();
    let now = real_now();
    let u = user("member@example.org", now);
    store.user_insert(&u).await.unwrap();
    let (s, _) = session(&u.id, now);
    store.session_insert(&s, None).await.unwrap();
    (store, u, s, now)
}

async fn users_are_found_by_email_and_id_and_listed_by_email(b: Backend) {
    let store = b.open();
    let now = real_now();
    let zoe = user("zoe@example.org", now);
    let admin = user("admin@example.org", now + 1);
    store.user_insert(&zoe).await.unwrap();
    store.user_insert(&admin).await.unwrap();

    assert_eq!(
        store.user_by_email("zoe@example.org").await.unwrap(),
        Some(zoe.clone())
    );
    assert_eq!(
        store.user_by_id(&admin.id).await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(
        store.user_by_email("nobody@example.org").await.unwrap(),
        None
    );
    assert_eq!(store.user_by_id(&UserId::random()).await.unwrap(), None);
    assert_eq!(store.user_list().await.unwrap(), vec![admin, zoe]);
}

async fn duplicate_email_is_a_conflict(b: Backend) {
    let store = b.open();
    let now = real_now();
    let first = user("same@example.org", now);
    store.user_insert(&first).await.unwrap();
    let second = user("same@example.org", now);
    let err = store.user_insert(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(
        store.user_by_email("same@example.org").await.unwrap(),
        Some(first)
    );
    assert_eq!(store.user_by_id(&second.id).await.unwrap(), None);
    assert_eq!(store.user_list().await.unwrap().len(), 1);
}

async fn session_is_found_by_token_hash(b: Backend) {
    let (store, _u, s, now) = member_with_session(&b).await;
    assert_eq!(lookup(&store, &s, now).await, Some(s));
    let unknown = TokenHash::of("not a token");
    assert_eq!(store.session_by_token(&unknown, now).await.unwrap(), None);
}

async fn session_dies_after_idle_timeout_and_is_deleted(b: Backend) {
    let (store, u, s, now) = member_with_session(&b).await;
    let last_valid = now + IDLE - 1;
    assert!(lookup(&store, &s, last_valid).await.is_some());
    assert_eq!(lookup(&store, &s, now + IDLE).await, None);
    // Found expired, so deleted: gone even when asked about an earlier instant.
    assert_eq!(lookup(&store, &s, now).await, None);
    assert!(store.sessions_of(&u.id, now).await.unwrap().is_empty());
}

async fn session_dies_at_absolute_expiry_despite_activity(b: Backend) {
    let (store, _u, s, now) = member_with_session(&b).await;
    let mut t = now;
    while t + IDLE / 2 < s.absolute_expiry {
        t += IDLE / 2;
        assert!(
            store.session_touch(&s.id, t).await.unwrap(),
            "touch at +{}",
            t - now
        );
    }
    // Still recently active, but past the absolute limit.
    let just_before = s.absolute_expiry - 1;
    let found = lookup(&store, &s, just_before).await.unwrap();
    assert_eq!(
        found.expires_at(),
        s.absolute_expiry,
        "idle expiry capped by absolute"
    );
    assert_eq!(lookup(&store, &s, s.absolute_expiry).await, None);
    assert!(!store.session_touch(&s.id, s.absolute_expiry).await.unwrap());
}

async fn touch_pushes_idle_expiry_only_forward_and_not_when_dead(b: Backend) {
    let (store, _u, s, now) = member_with_session(&b).await;
    let later = now + 20 * MINUTE;
    assert!(store.session_touch(&s.id, later).await.unwrap());
    // Without the touch this instant would be past the idle timeout.
    let found = lookup(&store, &s, now + 40 * MINUTE).await.unwrap();
    assert_eq!(found.last_seen, later);
    assert_eq!(found.expires_at(), later + IDLE);

    // A late touch carrying an older instant does not move last_seen back.
    assert!(store.session_touch(&s.id, now + MINUTE).await.unwrap());
    let found = lookup(&store, &s, now).await.unwrap();
    assert_eq!(found.last_seen, later);

    // Too late: the touch does not resurrect it.
    assert!(!store.session_touch(&s.id, later + IDLE).await.unwrap());
    assert_eq!(lookup(&store, &s, later + IDLE).await, None);
    assert!(!store
        .session_touch(&SessionId::random(), now)
        .await
        .unwrap());
}

async fn rotation_replaces_the_old_session_atomically(b: Backend) {
    let (store, u, old, now) = member_with_session(&b).await;
    let (new, _) = session(&u.id, now + 1);
    store.session_insert(&new, Some(&old.id)).await.unwrap();
    assert_eq!(lookup(&store, &old, now + 1).await, None);
    assert_eq!(lookup(&store, &new, now + 1).await, Some(new.clone()));
    assert_eq!(
        store.sessions_of(&u.id, now + 1).await.unwrap(),
        vec![new.clone()]
    );
    assert_eq!(store.session_count(now + 1).await.unwrap(), 1);

    // A rotation that fails (token already in use) deletes nothing.
    let (other, _) = session(&u.id, now + 2);
    store.session_insert(&other, None).await.unwrap();
    let (mut clash, _) = session(&u.id, now + 3);
    clash.token_hash = other.token_hash.clone();
    let err = store
        .session_insert(&clash, Some(&new.id))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(lookup(&store, &new, now + 3).await, Some(new));
    assert_eq!(lookup(&store, &other, now + 3).await, Some(other));
}

async fn delete_one_and_delete_all(b: Backend) {
    let (store, u, s1, now) = member_with_session(&b).await;
    let (s2, _) = session(&u.id, now + 1);
    let (s3, _) = session(&u.id, now + 2);
    store.session_insert(&s2, None).await.unwrap();
    store.session_insert(&s3, None).await.unwrap();
    let other = user("other@example.org", now);
    store.user_insert(&other).await.unwrap();
    let (theirs, _) = session(&other.id, now);
    store.session_insert(&theirs, None).await.unwrap();

    assert!(store.session_delete(&s1.id).await.unwrap());
    assert!(!store.session_delete(&s1.id).await.unwrap());
    assert_eq!(lookup(&store, &s1, now).await, None);

    assert_eq!(store.session_delete_all(&u.id).await.unwrap(), 2);
    assert_eq!(lookup(&store, &s2, now).await, None);
    assert_eq!(lookup(&store, &s3, now).await, None);
    assert!(store.sessions_of(&u.id, now).await.unwrap().is_empty());
    assert_eq!(store.session_delete_all(&u.id).await.unwrap(), 0);
    // Another member is not affected.
    assert_eq!(lookup(&store, &theirs, now).await, Some(theirs));
}

async fn sessions_of_is_oldest_first_and_skips_expired(b: Backend) {
    let (store, u, middle, now) = member_with_session(&b).await;
    let (newest, _) = session(&u.id, now + 2000);
    let (mut oldest, _) = session(&u.id, now - 2000);
    oldest.idle_ms = MINUTE; // dies long before the others
    store.session_insert(&newest, None).await.unwrap();
    store.session_insert(&oldest, None).await.unwrap();
    let other = user("other@example.org", now);
    store.user_insert(&other).await.unwrap();
    store
        .session_insert(&session(&other.id, now).0, None)
        .await
        .unwrap();

    let all = store.sessions_of(&u.id, now).await.unwrap();
    assert_eq!(all, vec![oldest, middle.clone(), newest.clone()]);
    let later = store.sessions_of(&u.id, now + 2 * MINUTE).await.unwrap();
    assert_eq!(later, vec![middle, newest]);
    assert!(store
        .sessions_of(&u.id, now + ABSOLUTE + 2000)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .sessions_of(&UserId::random(), now)
        .await
        .unwrap()
        .is_empty());
}

async fn session_count_counts_valid_sessions_without_destroying_any(b: Backend) {
    let (store, u, _s, now) = member_with_session(&b).await;
    let (mut short, _) = session(&u.id, now);
    short.idle_ms = MINUTE;
    store.session_insert(&short, None).await.unwrap();
    let other = user("other@example.org", now);
    store.user_insert(&other).await.unwrap();
    store
        .session_insert(&session(&other.id, now).0, None)
        .await
        .unwrap();

    let (ninety_s, fifty_s) = (now + 90_000, now + 50_000);
    assert_eq!(store.session_count(now).await.unwrap(), 3);
    assert_eq!(store.session_count(ninety_s).await.unwrap(), 2);
    assert_eq!(store.session_count(now + ABSOLUTE).await.unwrap(), 0);
    // Counting at a later instant must not have removed anything.
    assert_eq!(store.session_count(now).await.unwrap(), 3);
    // A touch moves a session's expiry in the count as well.
    assert!(store.session_touch(&short.id, fifty_s).await.unwrap());
    assert_eq!(store.session_count(ninety_s).await.unwrap(), 3);
}

async fn secret_first_writer_wins_across_instances(b: Backend) {
    let (a, c) = (b.open(), b.open());
    let binary: Vec<u8> = (0..=255).collect();
    let (from_a, from_c) = tokio::join!(
        a.secret_get_or_init(&binary),
        c.secret_get_or_init(b"second candidate")
    );
    let (from_a, from_c) = (from_a.unwrap(), from_c.unwrap());
    assert_eq!(from_a, from_c, "both instances must share one secret");
    assert!(from_a == binary || from_a == b"second candidate");
    let third = b.open().secret_get_or_init(b"too late").await.unwrap();
    assert_eq!(third, from_a);
}

async fn sessions_are_shared_between_instances(b: Backend) {
    let (gateway_a, u, s, now) = member_with_session(&b).await;
    let gateway_b = b.open();
    assert_eq!(gateway_b.user_by_id(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(lookup(&gateway_b, &s, now).await, Some(s.clone()));
    assert!(gateway_b.session_touch(&s.id, now + MINUTE).await.unwrap());
    let seen = lookup(&gateway_a, &s, now + MINUTE).await.unwrap();
    assert_eq!(seen.last_seen, now + MINUTE);

    // `vigile user revoke` from the admin CLI: a third store object.
    let cli = b.open();
    assert_eq!(cli.session_delete_all(&u.id).await.unwrap(), 1);
    assert_eq!(lookup(&gateway_a, &s, now + MINUTE).await, None);
    assert_eq!(gateway_b.session_count(now).await.unwrap(), 0);
}

async fn sweep_removes_what_expired(b: Backend) {
    let (store, u, long, now) = member_with_session(&b).await;
    let (mut short, _) = session(&u.id, now);
    short.idle_ms = MINUTE;
    store.session_insert(&short, None).await.unwrap();

    assert_eq!(store.sweep(now).await.unwrap(), 0);
    assert_eq!(store.sweep(now + 2 * MINUTE).await.unwrap(), 1);
    assert_eq!(store.sweep(now + 2 * MINUTE).await.unwrap(), 0);
    // Removed for good, even when asked about an instant at which it was valid.
    assert_eq!(lookup(&store, &short, now).await, None);
    assert_eq!(
        store.sessions_of(&u.id, now).await.unwrap(),
        vec![long.clone()]
    );
    assert_eq!(store.session_count(now).await.unwrap(), 1);
    assert_eq!(store.sweep(now + ABSOLUTE).await.unwrap(), 1);
    assert_eq!(lookup(&store, &long, now).await, None);
}

async fn concurrent_writes_from_two_instances_all_succeed(b: Backend) {
    let (a, u, _s, now) = member_with_session(&b).await;
    let c = b.open();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { c.clone() };
        let (s, _) = session(&u.id, now + i);
        tasks.spawn(async move {
            store.session_insert(&s, None).await.unwrap();
            assert!(store.session_touch(&s.id, now + MINUTE).await.unwrap());
            assert!(lookup(&store, &s, now + MINUTE).await.is_some());
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    assert_eq!(c.session_count(now + MINUTE).await.unwrap(), 41);
    assert_eq!(a.sessions_of(&u.id, now).await.unwrap().len(), 41);
}

// ---- Redis only: what is specific to the shared backend -------------------------------

/// Redis dying makes calls fail fast with `Unavailable`; Redis coming back is picked up
/// without recreating the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_then_recovers_by_itself() {
    let mut server = RedisServer::start().await;
    let store = RedisStore::connect_lazy(&server.url()).unwrap();
    let store: DynStore = std::sync::Arc::new(store);
    store.ping().await.unwrap();

    server.stop();
    // A refused connection must be reported well within the store's own deadline.
    let bound = Duration::from_secs(2);
    for _ in 0..3 {
        let result = tokio::time::timeout(bound, store.ping())
            .await
            .expect("ping hung");
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        let now = real_now();
        let hash = TokenHash::of("x");
        let lookup = tokio::time::timeout(bound, store.session_by_token(&hash, now)).await;
        let lookup = lookup.expect("lookup hung");
        assert!(
            matches!(lookup, Err(StoreError::Unavailable(_))),
            "{lookup:?}"
        );
    }

    server.start_again().await;
    crate::common::poll_until("the store to reconnect", 200, || {
        let store = store.clone();
        async move { store.ping().await.is_ok() }
    })
    .await;
    // Scripts are reloaded transparently on the fresh (empty) server.
    let now = real_now();
    let u = user("back@example.org", now);
    store.user_insert(&u).await.unwrap();
    assert_eq!(store.user_by_email(&u.email).await.unwrap(), Some(u));
}

/// Keys are namespaced and sessions carry their expiry as a TTL, so Redis drops them by
/// itself even if no sweep ever runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_are_namespaced_and_sessions_expire_by_ttl() {
    let b = Backend::redis().await;
    let Backend::Redis(server) = &b else {
        unreachable!()
    };
    let (store, u, s, now) = member_with_session(&b).await;
    store.secret_get_or_init(b"secret").await.unwrap();

    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(key.starts_with(NAMESPACE), "{key} is outside the namespace");
    }

    let pttl = |key: String| {
        let mut conn = conn.clone();
        async move {
            let ms: i64 = ::redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            ms
        }
    };
    for key in [
        Key::Session(&s.id).name(),
        Key::SessionToken(&s.token_hash).name(),
    ] {
        let ttl = pttl(key.clone()).await;
        assert!(ttl > IDLE - MINUTE && ttl <= IDLE, "{key}: PTTL {ttl}");
    }
    assert!(store.session_touch(&s.id, now + 10 * MINUTE).await.unwrap());
    let ttl = pttl(Key::Session(&s.id).name()).await;
    assert!(
        ttl > IDLE + 9 * MINUTE,
        "touch must extend the TTL (PTTL {ttl})"
    );
    let index_ttl = pttl(Key::UserSessions(&u.id).name()).await;
    assert!(
        index_ttl > ABSOLUTE - MINUTE && index_ttl <= ABSOLUTE,
        "PTTL {index_ttl}"
    );
}
