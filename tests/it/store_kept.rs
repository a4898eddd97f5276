//! Versioned documents ([`vigile::store::KeptStore`]) on both backends: a write lands only
//! on the version it read (of 20 racing writers from two instances on one version, exactly
//! one wins), documents expire at the instant they were given, a delete is a write like
//! any other, and the two kinds never see each other's keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigile::store::Kept;

use crate::common::backend::StoreBackend;
use crate::common::consts::MINUTE;
use crate::common::records::real_now;
use crate::every_store;

every_store!(
    a_write_lands_only_on_the_version_it_read,
    racing_writers_on_one_version_leave_one_winner,
    documents_expire_and_delete_like_writes,
);

async fn a_write_lands_only_on_the_version_it_read(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let k = Kept::Factors;
    assert_eq!(store.kept_get(k, "u1", now).await.unwrap(), None);
    assert!(!store
        .kept_put(k, "u1", 1, Some("a"), None, now)
        .await
        .unwrap());
    assert!(store
        .kept_put(k, "u1", 0, Some("a"), None, now)
        .await
        .unwrap());
    let doc = store.kept_get(k, "u1", now).await.unwrap().unwrap();
    assert_eq!((doc.version, doc.doc.as_str()), (1, "a"));
    assert!(!store
        .kept_put(k, "u1", 0, Some("b"), None, now)
        .await
        .unwrap());
    assert!(store
        .kept_put(k, "u1", 1, Some("b"), None, now)
        .await
        .unwrap());
    let doc = store.kept_get(k, "u1", now).await.unwrap().unwrap();
    assert_eq!((doc.version, doc.doc.as_str()), (2, "b"));
    // The other kind has its own keys.
    assert_eq!(
        store.kept_get(Kept::SecondStep, "u1", now).await.unwrap(),
        None
    );
}

async fn racing_writers_on_one_version_leave_one_winner(b: StoreBackend) {
    let (one, two) = (b.open(), b.open());
    let now = real_now();
    assert!(one
        .kept_put(Kept::Factors, "race", 0, Some("start"), None, now)
        .await
        .unwrap());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(async move {
            let doc = format!("writer {i}");
            store
                .kept_put(Kept::Factors, "race", 1, Some(&doc), None, now)
                .await
                .unwrap()
                .then_some(doc)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let doc = one
        .kept_get(Kept::Factors, "race", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((doc.version, &doc.doc), (2, &winners[0]));
}

async fn documents_expire_and_delete_like_writes(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let k = Kept::SecondStep;
    let until = now + MINUTE;
    assert!(store
        .kept_put(k, "s", 0, Some("x"), Some(until), now)
        .await
        .unwrap());
    assert!(store.kept_get(k, "s", until - 1).await.unwrap().is_some());
    assert_eq!(store.kept_get(k, "s", until).await.unwrap(), None);
    // Past its instant it is absent for writers too: version 0 again.
    assert!(!store
        .kept_put(k, "s", 1, Some("y"), None, until)
        .await
        .unwrap());
    assert!(store
        .kept_put(k, "s", 0, Some("y"), Some(until + MINUTE), until)
        .await
        .unwrap());
    // A delete needs the version read, like a write.
    assert!(!store.kept_put(k, "s", 5, None, None, until).await.unwrap());
    assert!(store.kept_put(k, "s", 1, None, None, until).await.unwrap());
    assert_eq!(store.kept_get(k, "s", until).await.unwrap(), None);
}
