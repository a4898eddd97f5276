//! The device-cap part of the store contract ([`vigile::store::DeviceStore`]), on both
//! backends like `store_suite`: the cap with victims, eviction and refusal, why a session
//! ended, the overflow challenge, settings and per-member caps, and the cap under 30
//! parallel opens from two instances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigile::config::OnOverflow;
use vigile::store::{
    Cap, Challenge, CodeCheck, DeviceId, DynStore, Opened, SessionRecord, Settings, SignedOut,
    TokenHash, User,
};

use crate::common::backend::StoreBackend;
use crate::common::consts::MINUTE;
use crate::common::records::{real_now, session, user};
use crate::every_store;

every_store!(
    cap_refuses_changes_nothing_or_ends_the_chosen_and_the_least_recently_used,
    same_device_and_rotated_session_take_no_slot,
    ended_sessions_say_why_until_they_would_have_expired,
    challenge_counts_tries_verifies_renews_and_is_per_device,
    settings_and_member_caps,
    thirty_parallel_opens_from_two_instances_keep_the_cap,
);

const CAP2: Cap = Cap {
    max: 2,
    evict_oldest: false,
};

async fn member(store: &DynStore, now: i64) -> User {
    let u = user(&format!("m{}@example.org", DeviceId::random()), now);
    store.user_insert(&u).await.unwrap();
    u
}

async fn open(
    store: &DynStore,
    s: &SessionRecord,
    victims: &[&SessionRecord],
    cap: Cap,
    now: i64,
) -> Opened {
    let victims: Vec<_> = victims.iter().map(|v| v.id.clone()).collect();
    store
        .session_open(s, None, &victims, cap, now)
        .await
        .unwrap()
}

async fn alive(store: &DynStore, s: &SessionRecord, now: i64) -> bool {
    store
        .session_by_token(&s.token_hash, now)
        .await
        .unwrap()
        .is_some()
}

async fn cap_refuses_changes_nothing_or_ends_the_chosen_and_the_least_recently_used(
    b: StoreBackend,
) {
    let store = b.open();
    let now = real_now();
    let u = member(&store, now).await;
    let (a, _) = session(&u.id, now);
    let (bb, _) = session(&u.id, now + 1);
    assert_eq!(
        open(&store, &a, &[], CAP2, now).await,
        Opened::Opened { ended: vec![] }
    );
    assert_eq!(
        open(&store, &bb, &[], CAP2, now + 1).await,
        Opened::Opened { ended: vec![] }
    );
    // a was used after b: b is now the least recently used.
    assert!(store.session_touch(&a.id, now + 5 * MINUTE).await.unwrap());

    let (c, _) = session(&u.id, now + 6 * MINUTE);
    assert_eq!(
        open(&store, &c, &[], CAP2, now + 6 * MINUTE).await,
        Opened::Full { active: 2 }
    );
    assert!(!alive(&store, &c, now + 6 * MINUTE).await);
    // Another member's session as a "victim" is ignored: still full, nothing ended.
    let other = member(&store, now).await;
    let (theirs, _) = session(&other.id, now);
    open(&store, &theirs, &[], CAP2, now).await;
    assert_eq!(
        open(&store, &c, &[&theirs], CAP2, now + 6 * MINUTE).await,
        Opened::Full { active: 2 }
    );
    assert!(alive(&store, &theirs, now + 6 * MINUTE).await);

    // The member's choice: a goes, c comes, in one operation.
    assert_eq!(
        open(&store, &c, &[&a], CAP2, now + 6 * MINUTE).await,
        Opened::Opened {
            ended: vec![a.id.clone()]
        }
    );
    assert!(!alive(&store, &a, now + 6 * MINUTE).await);
    // Evicting: the least recently used (b) makes room.
    let (d, _) = session(&u.id, now + 7 * MINUTE);
    let evict = Cap {
        max: 2,
        evict_oldest: true,
    };
    assert_eq!(
        open(&store, &d, &[], evict, now + 7 * MINUTE).await,
        Opened::Opened {
            ended: vec![bb.id.clone()]
        }
    );
    let left: Vec<_> = store
        .sessions_of(&u.id, now + 7 * MINUTE)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![c.id.clone(), d.id.clone()]);
    // A lowered cap evicts as many as needed; unlimited ends nobody.
    let (e, _) = session(&u.id, now + 8 * MINUTE);
    let one = Cap {
        max: 1,
        evict_oldest: true,
    };
    let Opened::Opened { ended } = open(&store, &e, &[], one, now + 8 * MINUTE).await else {
        panic!()
    };
    assert_eq!(ended.len(), 2);
    let (f, _) = session(&u.id, now + 9 * MINUTE);
    assert_eq!(
        open(&store, &f, &[], Cap::UNLIMITED, now + 9 * MINUTE).await,
        Opened::Opened { ended: vec![] }
    );
    assert_eq!(
        store
            .sessions_of(&u.id, now + 9 * MINUTE)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn same_device_and_rotated_session_take_no_slot(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let u = member(&store, now).await;
    let (a, _) = session(&u.id, now);
    open(
        &store,
        &a,
        &[],
        Cap {
            max: 1,
            evict_oldest: false,
        },
        now,
    )
    .await;
    // A new login on a's device replaces it quietly, even at the cap.
    let (mut again, _) = session(&u.id, now + 1);
    again.device_id = a.device_id.clone();
    assert_eq!(
        open(
            &store,
            &again,
            &[],
            Cap {
                max: 1,
                evict_oldest: false
            },
            now + 1
        )
        .await,
        Opened::Opened { ended: vec![] }
    );
    assert!(!alive(&store, &a, now + 1).await);
    assert_eq!(
        store.signed_out(&a.token_hash, now + 1).await.unwrap(),
        None
    );
    // The browser's previous session (`replaces`) does not count either.
    let (rotated, _) = session(&u.id, now + 2);
    let opened = store
        .session_open(
            &rotated,
            Some(&again.id),
            &[],
            Cap {
                max: 1,
                evict_oldest: false,
            },
            now + 2,
        )
        .await
        .unwrap();
    assert_eq!(opened, Opened::Opened { ended: vec![] });
    assert_eq!(
        store.sessions_of(&u.id, now + 2).await.unwrap(),
        vec![rotated]
    );
}

async fn ended_sessions_say_why_until_they_would_have_expired(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let u = member(&store, now).await;
    let (a, _) = session(&u.id, now);
    let (bb, _) = session(&u.id, now);
    open(&store, &a, &[], Cap::UNLIMITED, now).await;
    open(&store, &bb, &[], Cap::UNLIMITED, now).await;
    let (c, _) = session(&u.id, now);
    open(&store, &c, &[&a], Cap::UNLIMITED, now).await;
    assert_eq!(
        store.signed_out(&a.token_hash, now).await.unwrap(),
        Some(SignedOut::Replaced)
    );
    // Only the member's own session can be ended by them.
    let stranger = member(&store, now).await;
    assert!(!store
        .session_end(&stranger.id, &bb.id, SignedOut::Revoked, now)
        .await
        .unwrap());
    assert!(store
        .session_end(&u.id, &bb.id, SignedOut::Revoked, now)
        .await
        .unwrap());
    assert!(!store
        .session_end(&u.id, &bb.id, SignedOut::Revoked, now)
        .await
        .unwrap());
    assert_eq!(
        store.signed_out(&bb.token_hash, now).await.unwrap(),
        Some(SignedOut::Revoked)
    );
    assert_eq!(store.signed_out(&c.token_hash, now).await.unwrap(), None);
    assert_eq!(
        store
            .signed_out(&TokenHash::of("never"), now)
            .await
            .unwrap(),
        None
    );
    // After the ended session's own expiry, nothing is said (and sweep removes the record).
    let later = a.expires_at();
    assert_eq!(store.signed_out(&a.token_hash, later).await.unwrap(), None);
    assert!(store.sweep(later).await.unwrap() >= 2);
}

fn challenge(u: &User, code: &str, expires_at: i64) -> Challenge {
    Challenge {
        user_id: u.id.clone(),
        code_hash: TokenHash::of(code),
        attempts: 0,
        verified: false,
        rd: "/courses/1?x=é".to_string(),
        expires_at,
        // Not the default, so a store that dropped it would be seen.
        level: vigile::store::AuthLevel::SecondFactor,
    }
}

async fn challenge_counts_tries_verifies_renews_and_is_per_device(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let u = member(&store, now).await;
    let (d1, d2) = (DeviceId::random(), DeviceId::random());
    let ch = challenge(&u, "123456", now + 15 * MINUTE);
    assert!(!store.challenge_put(&d1, &ch).await.unwrap());
    assert!(
        store.challenge_put(&d1, &ch).await.unwrap(),
        "replacing says so"
    );
    assert_eq!(
        store.challenge_get(&d1, now).await.unwrap(),
        Some(ch.clone())
    );
    assert_eq!(store.challenge_get(&d2, now).await.unwrap(), None);
    assert_eq!(
        store.challenge_get(&d1, now + 15 * MINUTE).await.unwrap(),
        None,
        "expired"
    );

    let wrong = TokenHash::of("000000");
    let until = now + 30 * MINUTE;
    assert_eq!(
        store
            .challenge_check(&d2, &wrong, 3, until, now)
            .await
            .unwrap(),
        CodeCheck::Missing
    );
    assert_eq!(
        store
            .challenge_check(&d1, &wrong, 3, until, now)
            .await
            .unwrap(),
        CodeCheck::Wrong { left: 2 }
    );
    // A renewed code replaces the old one; the tries already made still count.
    assert!(store
        .challenge_renew(&d1, &TokenHash::of("654321"), now + 20 * MINUTE, now)
        .await
        .unwrap());
    assert_eq!(
        store
            .challenge_check(&d1, &ch.code_hash, 3, until, now)
            .await
            .unwrap(),
        CodeCheck::Wrong { left: 1 }
    );
    let CodeCheck::Verified(v) = store
        .challenge_check(&d1, &TokenHash::of("654321"), 3, until, now)
        .await
        .unwrap()
    else {
        panic!("right code refused")
    };
    assert!(v.verified && v.expires_at == until && v.rd == ch.rd && v.user_id == u.id);
    assert!(
        !store
            .challenge_renew(&d1, &wrong, until, now)
            .await
            .unwrap(),
        "verified: no new code"
    );
    assert!(matches!(
        store
            .challenge_check(&d1, &wrong, 3, until, now)
            .await
            .unwrap(),
        CodeCheck::Verified(_)
    ));
    assert!(store.challenge_delete(&d1).await.unwrap());
    assert!(!store.challenge_delete(&d1).await.unwrap());

    // The last try ends it, even when the tries race.
    store
        .challenge_put(&d2, &challenge(&u, "111111", now + 15 * MINUTE))
        .await
        .unwrap();
    let tries = (0..20).map(|_| {
        let store = store.clone();
        let (d2, wrong) = (d2.clone(), wrong.clone());
        tokio::spawn(async move {
            store
                .challenge_check(&d2, &wrong, 5, until, now)
                .await
                .unwrap()
        })
    });
    let mut outcomes = Vec::new();
    for t in tries {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, CodeCheck::Wrong { .. }))
            .count(),
        4
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == CodeCheck::Exhausted)
            .count(),
        1
    );
    assert_eq!(store.challenge_get(&d2, now).await.unwrap(), None);
}

async fn settings_and_member_caps(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    assert_eq!(store.settings_get().await.unwrap(), Settings::default());
    let s = Settings {
        max_per_member: Some(0),
        on_overflow: Some(OnOverflow::EvictOldest),
    };
    store.settings_set(&s).await.unwrap();
    // Seen by another instance.
    assert_eq!(b.open().settings_get().await.unwrap(), s);
    let partial = Settings {
        max_per_member: Some(5),
        on_overflow: None,
    };
    store.settings_set(&partial).await.unwrap();
    assert_eq!(store.settings_get().await.unwrap(), partial);

    let u = member(&store, now).await;
    assert_eq!(store.member_cap(&u.id).await.unwrap(), None);
    assert!(store.member_cap_set(&u.id, Some(7)).await.unwrap());
    assert_eq!(b.open().member_cap(&u.id).await.unwrap(), Some(7));
    assert!(store.member_cap_set(&u.id, None).await.unwrap());
    assert_eq!(store.member_cap(&u.id).await.unwrap(), None);
    let nobody = user("nobody@example.org", now);
    assert!(!store.member_cap_set(&nobody.id, Some(1)).await.unwrap());
}

async fn thirty_parallel_opens_from_two_instances_keep_the_cap(b: StoreBackend) {
    for evict_oldest in [false, true] {
        let stores = [b.open(), b.open()];
        let now = real_now();
        let u = member(&stores[0], now).await;
        let cap = Cap {
            max: 3,
            evict_oldest,
        };
        let opens = (0..30).map(|i| {
            let store = stores[i % 2].clone();
            let (s, _) = session(&u.id, now + i as i64);
            tokio::spawn(async move {
                store
                    .session_open(&s, None, &[], cap, now + 30)
                    .await
                    .unwrap()
            })
        });
        let mut opened = 0;
        for o in opens {
            opened += usize::from(matches!(o.await.unwrap(), Opened::Opened { .. }));
        }
        let active = stores[1].sessions_of(&u.id, now + 30).await.unwrap().len();
        assert_eq!(active, 3, "evict_oldest {evict_oldest}");
        assert_eq!(opened, if evict_oldest { 30 } else { 3 });
    }
}
