//! Activity written behind, against a real (SQLite) store, on explicit instants: the
//! store learns of a request at the request's own instant, so batching can delay what
//! other instances see of a session's activity but never push its end past what the
//! requests themselves justify.

use super::*;
use crate::config::{PasswordSection, SessionsSection};
use crate::store::{AccountStatus, Contact, DeviceId, DynStore, SqliteStore, Via};

const MIN: Millis = 60_000;
const T0: Millis = 1_700_000_000_000;

async fn auth_on(dir: &std::path::Path) -> (Arc<Auth>, DynStore) {
    let store: DynStore = Arc::new(SqliteStore::open(&dir.join("v.db")).unwrap());
    let hasher = super::super::password::Hasher::new(
        &PasswordSection {
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..PasswordSection::default()
        },
        None,
    )
    .unwrap();
    let auth = Auth::new(store.clone(), hasher, &SessionsSection::default(), None);
    // As the server's feed follower would: the cache may keep sessions long.
    auth.cache.apply(crate::store::changes::Change::Live);
    (auth, store)
}

async fn member_session(
    store: &DynStore,
    idle_ms: Millis,
    absolute: Millis,
) -> (String, SessionId) {
    let user = User {
        id: UserId::random(),
        email: "ann@example.org".into(),
        name: "Ann".into(),
        password_hash: "x".into(),
        admin: false,
        status: AccountStatus::Active,
        lang: None,
        created_at: T0,
        org: None,
        contact: Contact::email_proved(T0, Via::Admin),
    };
    store.user_insert(&user).await.unwrap();
    let token = "the member's cookie".to_string();
    let record = SessionRecord {
        id: SessionId::random(),
        token_hash: TokenHash::of(&token),
        user_id: user.id.clone(),
        device_id: DeviceId::random(),
        created_at: T0,
        last_seen: T0,
        idle_ms,
        absolute_expiry: T0 + absolute,
        ip: "192.0.2.1".into(),
        user_agent: "test".into(),
        level: crate::store::AuthLevel::Password,
    };
    store.session_insert(&record, None).await.unwrap();
    (token, record.id)
}

async fn last_seen(store: &DynStore, token: &str, now: Millis) -> Option<Millis> {
    store
        .session_by_token(&TokenHash::of(token), now)
        .await
        .unwrap()
        .map(|s| s.last_seen)
}

#[tokio::test]
async fn activity_reaches_the_store_at_its_own_instant_and_never_extends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, store) = auth_on(dir.path()).await;
    let (token, _) = member_session(&store, 10 * MIN, 8 * 60 * MIN).await;

    assert!(auth.identify(&token, T0 + 1000).await.unwrap().is_some());
    assert!(auth.identify(&token, T0 + 5 * MIN).await.unwrap().is_some());
    // Not written yet: the store still has the login's instant.
    assert_eq!(last_seen(&store, &token, T0 + 5 * MIN).await, Some(T0));
    // Written later (the background batch), yet at the request's own instant.
    assert_eq!(auth.write_activity().await.unwrap(), 1);
    assert_eq!(
        last_seen(&store, &token, T0 + 5 * MIN).await,
        Some(T0 + 5 * MIN)
    );
    assert_eq!(auth.write_activity().await.unwrap(), 0, "nothing new");

    // Idle from that request: gone at T0 + 15 min, here and in the store.
    assert!(auth
        .identify(&token, T0 + 15 * MIN - 1)
        .await
        .unwrap()
        .is_some());
    assert!(auth
        .identify(&token, T0 + 30 * MIN)
        .await
        .unwrap()
        .is_none());
    assert_eq!(last_seen(&store, &token, T0 + 30 * MIN).await, None);
}

#[tokio::test]
async fn steady_activity_stops_at_the_absolute_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, store) = auth_on(dir.path()).await;
    let (token, _) = member_session(&store, 10 * MIN, 20 * MIN).await;
    let mut now = T0 + 1000;
    while now < T0 + 20 * MIN {
        assert!(
            auth.identify(&token, now).await.unwrap().is_some(),
            "at {now}"
        );
        auth.write_activity().await.unwrap();
        now += 4 * MIN;
    }
    assert!(auth
        .identify(&token, T0 + 20 * MIN)
        .await
        .unwrap()
        .is_none());
    // A late batch cannot bring it back.
    auth.write_activity().await.unwrap();
    assert!(auth
        .identify(&token, T0 + 20 * MIN + 1)
        .await
        .unwrap()
        .is_none());
    assert_eq!(last_seen(&store, &token, T0 + 20 * MIN).await, None);
}

#[tokio::test]
async fn a_session_ended_elsewhere_is_trusted_until_its_end_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, store) = auth_on(dir.path()).await;
    let (token, id) = member_session(&store, 10 * MIN, 8 * 60 * MIN).await;
    assert!(auth.identify(&token, T0 + 1000).await.unwrap().is_some());
    // Another process ends it: this cache cannot know until the store says so...
    store.session_delete(&id).await.unwrap();
    assert!(auth.identify(&token, T0 + 2 * MIN).await.unwrap().is_some());
    // ...and drops it as soon as it does.
    auth.cache
        .apply(crate::store::changes::Change::Session(TokenHash::of(
            &token,
        )));
    assert!(auth.identify(&token, T0 + 2 * MIN).await.unwrap().is_none());
    assert!(!auth
        .still_valid(&TokenDigest::of(&token), T0 + 2 * MIN)
        .await
        .unwrap());
}
