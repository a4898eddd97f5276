//! Where a Cluster store's records live apart (`store::shard`): an account and the index
//! key of its address after a confirmed change of address, an organisation member and
//! their address, two members' sessions. Each case is built so the two sit in different
//! shards, and the store must behave as on one Redis: one account per address, logins by
//! the current address only, nothing left behind, a crash between two steps healed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigile::store::shard::Shard;
use vigile::store::{
    AccountStatus, Cap, Channel, ContactCheck, DynStore, Opened, StoreError, User, UserId,
};

use crate::common::backend::StoreBackend;
use crate::common::consts::MINUTE;
use crate::common::records::{real_now, session, user};
use crate::common::sentinel::command;
use crate::store_contact::{confirm, email_code};
use crate::store_orgs::{member_of, registered};

/// An address `{name}N@example.org` whose shard is not `avoid`'s.
fn address_apart(name: &str, avoid: Shard) -> String {
    (0..)
        .map(|i| format!("{name}{i}@example.org"))
        .find(|a| Shard::of(a) != avoid)
        .unwrap()
}

/// The index key of `email` as the Cluster spells it, in the address's shard.
fn address_key(email: &str) -> String {
    format!("{{vigile:{}}}:user_email:{email}", Shard::of(email).digit())
}

/// An empty Cluster from the pool (`cluster_pool`).
async fn cluster() -> StoreBackend {
    StoreBackend::Cluster(crate::common::cluster_pool::lease().await)
}

/// What the address's index key holds, read on any master (following `MOVED` by hand is
/// not needed: every master is tried).
async fn holder_of(b: &StoreBackend, email: &str) -> Option<String> {
    let StoreBackend::Cluster(set) = b else {
        unreachable!()
    };
    let key = address_key(email);
    for port in set.ports() {
        if let Ok(v) = command::<Option<String>>(port, &["GET", &key]).await {
            return v;
        }
    }
    panic!("no master answered for {key}");
}

fn pending(email: &str, now: i64) -> User {
    User {
        status: AccountStatus::Pending,
        ..user(email, now)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_confirmed_in_another_shard_moves_the_login_and_frees_the_old_one() {
    let b = cluster().await;
    let store = b.open();
    let now = real_now();
    let u = user("old@example.org", now);
    store.user_insert(&u).await.unwrap();
    let new = address_apart("new", Shard::of_user(&u.id));
    let taken = address_apart("taken", Shard::of_user(&u.id));
    let other = user(&taken, now);
    store.user_insert(&other).await.unwrap();

    // Another account's address: refused after the right code; nothing claimed.
    let c = email_code(&u.id, &taken, "654321", now + MINUTE);
    store.contact_code_put(&u.id, &c).await.unwrap();
    assert_eq!(
        confirm(&store, &u.id, Channel::Email, "654321", now).await,
        ContactCheck::Taken
    );
    assert_eq!(holder_of(&b, &taken).await, Some(other.id.to_string()));

    let c = email_code(&u.id, &new, "123456", now + MINUTE);
    store.contact_code_put(&u.id, &c).await.unwrap();
    assert!(matches!(
        confirm(&store, &u.id, Channel::Email, "123456", now).await,
        ContactCheck::Confirmed { .. }
    ));
    // The login follows the address; the old one's key is gone from its shard.
    let found = store.user_by_email(&new).await.unwrap().unwrap();
    assert_eq!((found.id, found.email), (u.id.clone(), new.clone()));
    assert_eq!(store.user_by_email("old@example.org").await.unwrap(), None);
    assert_eq!(holder_of(&b, "old@example.org").await, None);
    assert_eq!(holder_of(&b, &new).await, Some(u.id.to_string()));
    // The new address is the account's: nobody signs up with it; the old one is free.
    let err = store
        .user_insert_pending(&pending(&new, now), now + MINUTE)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert!(matches!(
        store.user_insert(&user(&new, now)).await,
        Err(StoreError::Conflict)
    ));
    store
        .user_insert_pending(&pending("old@example.org", now), now + MINUTE)
        .await
        .unwrap();

    // Deleting the account releases the address in its own shard.
    assert!(store.user_delete(&u.id).await.unwrap());
    assert_eq!(holder_of(&b, &new).await, None);
    store.user_insert(&user(&new, now)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_beside_the_organisation_keeps_an_address_of_another_shard() {
    let b = cluster().await;
    let store = b.open();
    let now = real_now();
    let (org, _) = registered(&store, "boss@acme.example", now).await;
    let email = address_apart("ann", Shard::of(org.id.as_str()));
    // A pending sign-up of that address goes when its owner joins.
    store
        .user_insert_pending(&pending(&email, now), now + MINUTE)
        .await
        .unwrap();
    let ann = member_of(&store, &org, &email, now).await;
    assert_eq!(Shard::of_user(&ann.id), Shard::of(org.id.as_str()));
    assert_eq!(
        store.user_by_email(&email).await.unwrap().map(|u| u.id),
        Some(ann.id.clone())
    );
    assert_eq!(store.user_counts().await.unwrap(), (2, 0));

    assert!(store.org_remove(&org.id, &ann.id).await.unwrap());
    assert_eq!(store.user_by_email(&email).await.unwrap(), None);
    assert_eq!(holder_of(&b, &email).await, None);
    store
        .user_insert_pending(&pending(&email, now), now + MINUTE)
        .await
        .unwrap();
}

/// A crash between two steps leaves an address's key naming an account that does not
/// hold it (gone, or moved to another address): nobody signs in with it, and the next
/// sign-up or account for that address heals it, without touching the living account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_address_key_left_by_a_crash_is_healed() {
    let b = cluster().await;
    let store = b.open();
    let now = real_now();
    let StoreBackend::Cluster(set) = &b else {
        unreachable!()
    };
    let living = user("living@example.org", now);
    store.user_insert(&living).await.unwrap();
    let gone = UserId::random_in(Shard::of("gone@example.org"));
    for (email, holder) in [
        (address_apart("stale", Shard::of_user(&gone)), gone.clone()),
        (
            address_apart("moved", Shard::of_user(&living.id)),
            living.id.clone(),
        ),
    ] {
        let key = address_key(&email);
        let owner = set.master_of(&key[..key.find('}').unwrap() + 1]).await;
        let _: String = command(owner, &["SET", &key, holder.as_str()])
            .await
            .unwrap();
        assert_eq!(store.user_by_email(&email).await.unwrap(), None);
        store
            .user_insert_pending(&pending(&email, now), now + MINUTE)
            .await
            .unwrap();
        assert_eq!(
            store.user_by_email(&email).await.unwrap().map(|u| u.email),
            Some(email.clone())
        );
    }
    assert_eq!(
        store
            .user_by_email("living@example.org")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(living.id)
    );
}

/// The browser's old cookie may be another member's session, in another shard: opening
/// the new one still ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_replacing_another_members_in_another_shard_ends_it() {
    let b = cluster().await;
    let store: DynStore = b.open();
    let now = real_now();
    let a = user("a@example.org", now);
    let other = address_apart("b", Shard::of_user(&a.id));
    let bee = user(&other, now);
    store.user_insert(&a).await.unwrap();
    store.user_insert(&bee).await.unwrap();
    let (old, _) = session(&a.id, now);
    store.session_insert(&old, None).await.unwrap();
    let (new, _) = session(&bee.id, now);
    let cap = Cap {
        max: 3,
        evict_oldest: false,
    };
    let opened = store
        .session_open(&new, Some(&old.id), &[], cap, now)
        .await
        .unwrap();
    assert!(matches!(opened, Opened::Opened { .. }), "{opened:?}");
    assert_eq!(
        store.session_by_token(&old.token_hash, now).await.unwrap(),
        None
    );
    assert_eq!(
        store.session_by_token(&new.token_hash, now).await.unwrap(),
        Some(new.clone())
    );
    // The same through session_insert.
    let (newer, _) = session(&a.id, now);
    store.session_insert(&newer, Some(&new.id)).await.unwrap();
    assert_eq!(
        store.session_by_token(&new.token_hash, now).await.unwrap(),
        None
    );
    assert_eq!(store.session_count(now).await.unwrap(), 1);
}

/// A confirmation presented twice at once (a mail scanner fetching the link while the
/// member clicks it): one confirms, the other finds the code spent, and the address stays
/// the member's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_presented_twice_at_once_keeps_the_address() {
    let b = cluster().await;
    let (one, two) = (b.open(), b.open());
    let now = real_now();
    for i in 0..8 {
        let u = user(&format!("twice{i}@example.org"), now);
        one.user_insert(&u).await.unwrap();
        let new = address_apart(&format!("twice{i}-new"), Shard::of_user(&u.id));
        let c = email_code(&u.id, &new, "123456", now + MINUTE);
        one.contact_code_put(&u.id, &c).await.unwrap();
        let (a, b2) = tokio::join!(
            confirm(&one, &u.id, Channel::Email, "123456", now),
            confirm(&two, &u.id, Channel::Email, "123456", now),
        );
        let confirmed = [&a, &b2]
            .iter()
            .filter(|r| matches!(r, ContactCheck::Confirmed { .. }))
            .count();
        assert_eq!(confirmed, 1, "{a:?} / {b2:?}");
        assert_eq!(
            one.user_by_email(&new).await.unwrap().map(|f| f.id),
            Some(u.id.clone()),
            "run {i}: the member signs in with the new address"
        );
        assert!(matches!(
            one.user_insert_pending(&pending(&new, now), now + MINUTE)
                .await,
            Err(StoreError::Conflict)
        ));
    }
}

/// The same invitation sent twice at once (two ids drawn): one member joins and keeps
/// the address, whatever the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_sent_twice_at_once_joins_one_member_with_the_address() {
    let b = cluster().await;
    let (one, two) = (b.open(), b.open());
    let now = real_now();
    let (org, _) = registered(&one, "founder@example.org", now).await;
    for i in 0..8 {
        let email = address_apart(&format!("joiner{i}-"), Shard::of(org.id.as_str()));
        let (inv, first, second) = crate::store_orgs::invitation(&one, &org, &email, now).await;
        let (a, b2) = tokio::join!(
            one.org_join(&inv.token_hash, &first, now),
            two.org_join(&inv.token_hash, &second, now),
        );
        let (a, b2) = (a.unwrap(), b2.unwrap());
        let joined: Vec<&User> = [(&a, &first), (&b2, &second)]
            .into_iter()
            .filter(|(r, _)| **r == vigile::store::Joined::Joined)
            .map(|(_, u)| u)
            .collect();
        assert!(joined.len() <= 1, "{a:?} / {b2:?}");
        let holder = one.user_by_email(&email).await.unwrap().map(|u| u.id);
        assert_eq!(holder, joined.first().map(|u| u.id.clone()), "run {i}");
    }
}

/// While a claim is in progress (its account not written yet) the address is taken: a
/// sign-up or another account is refused, not handed the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_claimed_in_progress_is_taken() {
    let b = cluster().await;
    let store = b.open();
    let now = real_now();
    let StoreBackend::Cluster(set) = &b else {
        unreachable!()
    };
    let claimer = UserId::random_in(Shard::of("someone@example.org"));
    let email = address_apart("claimed", Shard::of_user(&claimer));
    let key = address_key(&email);
    let tag = &key[..key.find('}').unwrap() + 1];
    let master = set.master_of(tag).await;
    let claim = format!("{tag}:address_claim:{email}");
    for (k, v) in [(&key, claimer.as_str()), (&claim, claimer.as_str())] {
        let _: String = command(master, &["SET", k, v]).await.unwrap();
    }
    assert!(matches!(
        store
            .user_insert_pending(&pending(&email, now), now + MINUTE)
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.user_insert(&user(&email, now)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(holder_of(&b, &email).await, Some(claimer.to_string()));
    // Its lease over (the claim key gone), the key names nobody who holds the address.
    let _: i64 = command(master, &["DEL", &claim]).await.unwrap();
    store.user_insert(&user(&email, now)).await.unwrap();
}

/// A stale key (its account gone) does not stop an account made whole, nor a member
/// confirming that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_address_key_stops_neither_a_new_account_nor_a_confirmation() {
    let b = cluster().await;
    let store = b.open();
    let now = real_now();
    let StoreBackend::Cluster(set) = &b else {
        unreachable!()
    };
    let member = user("member@example.org", now);
    store.user_insert(&member).await.unwrap();
    for (i, name) in ["made", "confirmed"].into_iter().enumerate() {
        let gone = UserId::random_in(Shard::of(&format!("gone{i}@example.org")));
        let email = address_apart(name, Shard::of_user(&gone));
        let key = address_key(&email);
        let master = set.master_of(&key[..key.find('}').unwrap() + 1]).await;
        let _: String = command(master, &["SET", &key, gone.as_str()])
            .await
            .unwrap();
        if name == "made" {
            store.user_insert(&user(&email, now)).await.unwrap();
        } else {
            let c = email_code(&member.id, &email, "123456", now + MINUTE);
            store.contact_code_put(&member.id, &c).await.unwrap();
            assert!(matches!(
                confirm(&store, &member.id, Channel::Email, "123456", now).await,
                ContactCheck::Confirmed { .. }
            ));
        }
        assert_eq!(
            store.user_by_email(&email).await.unwrap().map(|u| u.email),
            Some(email.clone())
        );
    }
}
