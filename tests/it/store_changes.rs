//! The store's change feed (`Store::changes`), on both backends: a second store object
//! (another gateway instance) hears of every session that ends and every account written
//! by the first, whatever the operation, and of nothing else. The session cache of every
//! instance relies on it to keep sessions for as long as they are valid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use vigile::store::changes::{Change, ChangeFeed};
use vigile::store::{AccountStatus, DynStore, OrgRole, TokenHash, UserId};

use crate::common::backend::StoreBackend;
use crate::common::records::{real_now, session, user};
use crate::every_store;
use crate::store_orgs::{member_of, registered};

every_store!(
    every_session_that_ends_is_announced_once_and_no_other,
    every_account_written_is_announced,
);

/// Generous: a loaded CI box; the feed itself answers within ~200 ms.
const BOUND: Duration = Duration::from_secs(10);

/// The feed of `store`, once it says it is complete.
async fn live(store: &DynStore) -> ChangeFeed {
    let mut feed = store.changes();
    loop {
        let change = tokio::time::timeout(BOUND, feed.recv())
            .await
            .expect("the change feed goes live")
            .expect("the feed is open");
        if change == Change::Live {
            return feed;
        }
    }
}

/// What the feed announces until `done` holds of it (or the bound passes: then fails
/// naming what was heard).
async fn heard_until(
    feed: &mut ChangeFeed,
    done: impl Fn(&HashSet<String>, &HashSet<String>) -> bool,
) -> (HashSet<String>, HashSet<String>) {
    let (mut sessions, mut users) = (HashSet::new(), HashSet::new());
    let deadline = tokio::time::Instant::now() + BOUND;
    while !done(&sessions, &users) {
        let change = tokio::time::timeout_at(deadline, feed.recv())
            .await
            .unwrap_or_else(|_| panic!("heard only sessions {sessions:?}, users {users:?}"))
            .expect("the feed is open");
        match change {
            Change::Session(h) => {
                sessions.insert(h.as_str().to_string());
            }
            Change::User(u) => {
                users.insert(u.as_str().to_string());
            }
            Change::Lost | Change::Live => panic!("the feed was lost during the test"),
        }
    }
    (sessions, users)
}

fn hashes<'a>(of: impl IntoIterator<Item = &'a TokenHash>) -> HashSet<String> {
    of.into_iter().map(|h| h.as_str().to_string()).collect()
}

fn ids<'a>(of: impl IntoIterator<Item = &'a UserId>) -> HashSet<String> {
    of.into_iter().map(|u| u.as_str().to_string()).collect()
}

async fn every_session_that_ends_is_announced_once_and_no_other(b: StoreBackend) {
    let (writer, watcher) = (b.open(), b.open());
    let mut feed = live(&watcher).await;
    let now = real_now();
    let (ann, bob) = (user("ann@example.org", now), user("bob@example.org", now));
    writer.user_insert(&ann).await.unwrap();
    writer.user_insert(&bob).await.unwrap();
    let s: Vec<_> = (0..5).map(|i| session(&ann.id, now + i).0).collect();
    for one in &s[..4] {
        writer.session_insert(one, None).await.unwrap();
    }
    let (mut short, _) = session(&bob.id, now);
    short.absolute_expiry = now + 1000;
    let (kept, _) = session(&bob.id, now);
    writer.session_insert(&short, None).await.unwrap();
    writer.session_insert(&kept, None).await.unwrap();
    // Activity changes no one's identity: nothing is announced for it.
    writer.session_touch(&kept.id, now + 5).await.unwrap();

    // Logout; rotation at login; "sign out everywhere"; expiry swept.
    writer.session_delete(&s[0].id).await.unwrap();
    writer.session_insert(&s[4], Some(&s[1].id)).await.unwrap();
    writer.session_delete_all(&ann.id).await.unwrap();
    writer.sweep(now + 2000).await.unwrap();

    let ended = hashes([&s[0], &s[1], &s[2], &s[3], &s[4], &short].map(|x| &x.token_hash));
    let (sessions, users) = heard_until(&mut feed, |heard, _| heard.is_superset(&ended)).await;
    assert!(
        !sessions.contains(kept.token_hash.as_str()),
        "a session still valid was announced as ended"
    );
    assert!(users.is_empty(), "no account was written: {users:?}");

    // The account goes, with its last session.
    writer.user_delete(&bob.id).await.unwrap();
    let (sessions, users) = heard_until(&mut feed, |heard, u| {
        heard.contains(kept.token_hash.as_str()) && u.contains(bob.id.as_str())
    })
    .await;
    assert_eq!(users, ids([&bob.id]));
    assert!(sessions.is_subset(&hashes([&kept.token_hash, &short.token_hash])));
}

async fn every_account_written_is_announced(b: StoreBackend) {
    let (writer, watcher) = (b.open(), b.open());
    let mut feed = live(&watcher).await;
    let now = real_now();
    let mut pending = user("pending@example.org", now);
    pending.status = AccountStatus::Pending;
    writer
        .user_insert_pending(&pending, now + 60_000)
        .await
        .unwrap();
    let ann = user("ann@example.org", now);
    writer.user_insert(&ann).await.unwrap();

    writer.user_activate(&pending.id, now).await.unwrap();
    writer.user_set_password(&ann.id, "new hash").await.unwrap();
    let (_, users) = heard_until(&mut feed, |_, u| u.len() >= 2).await;
    assert_eq!(users, ids([&pending.id, &ann.id]));
    // The display name is part of the identity sent upstream. (Whatever the writes above
    // announced twice is drained first, so only this write can be heard now.)
    while tokio::time::timeout(Duration::from_millis(500), feed.recv())
        .await
        .is_ok()
    {}
    writer
        .user_set_profile(&pending.id, "Renamed", Some("en"))
        .await
        .unwrap();
    let (_, users) = heard_until(&mut feed, |_, u| !u.is_empty()).await;
    assert_eq!(users, ids([&pending.id]));

    // An organisation's roles are part of the identity sent upstream.
    let (org, owner) = registered(&writer, "owner@example.org", now).await;
    let member = member_of(&writer, &org, "member@example.org", now).await;
    // Whatever registration and joining announced, a role change must be heard.
    while tokio::time::timeout(Duration::from_millis(500), feed.recv())
        .await
        .is_ok()
    {}
    assert!(writer
        .org_set_role(&org.id, &member.id, OrgRole::Admin)
        .await
        .unwrap());
    let (_, users) = heard_until(&mut feed, |_, u| u.contains(member.id.as_str())).await;
    assert_eq!(users, ids([&member.id]));
    assert!(writer
        .org_transfer(&org.id, &owner.id, &member.id)
        .await
        .unwrap());
    let (_, users) = heard_until(&mut feed, |_, u| u.len() >= 2).await;
    assert_eq!(users, ids([&owner.id, &member.id]));
}
