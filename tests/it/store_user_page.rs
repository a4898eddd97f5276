//! `Store::user_page`, the admin console's member search, on both backends: every account
//! once and in address order across pages, the text found in the address or the name
//! whatever its case, the state filter, accounts deleted or renamed followed at once; and
//! on Redis, an index built by the first instance that connects after an upgrade. Also
//! the overview's counts (`user_counts`, `outbox_waiting`), read without the records.

use std::collections::BTreeSet;

use vigile::store::keys::Key;
use vigile::store::{AccountStatus, Channel, DynStore, OutboxMail, User, UserQuery};

use crate::common::backend::StoreBackend;
use crate::common::records::{real_now, user};
use crate::every_store;

/// Every page of `query` (limit `per_page`), flattened: the addresses in order.
async fn walk(store: &DynStore, mut query: UserQuery, per_page: usize) -> Vec<String> {
    query.limit = per_page;
    let mut out = vec![];
    for _ in 0..1000 {
        let page = store.user_page(&query).await.unwrap();
        assert!(
            page.users.len() <= per_page,
            "a page of {}",
            page.users.len()
        );
        out.extend(page.users.into_iter().map(|u| u.email));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return out,
        }
    }
    panic!("no end after 1000 pages");
}

fn text(t: &str) -> UserQuery {
    UserQuery {
        text: t.into(),
        ..UserQuery::default()
    }
}

async fn seeded(b: &StoreBackend) -> (DynStore, Vec<User>) {
    let store = b.open();
    let now = real_now();
    let mut users = vec![];
    for i in 0..23 {
        let mut u = user(&format!("m{i:02}@example.org"), now);
        u.name = if i % 5 == 0 {
            format!("Zoé Martin-{i}")
        } else {
            format!("Member {i}")
        };
        if i % 4 == 0 {
            u.status = AccountStatus::Pending;
            store
                .user_insert_pending(&u, now + 3_600_000)
                .await
                .unwrap();
        } else {
            store.user_insert(&u).await.unwrap();
        }
        users.push(u);
    }
    (store, users)
}

async fn pages_walk_every_account_once_in_address_order(b: StoreBackend) {
    let (store, users) = seeded(&b).await;
    let all: Vec<String> = users.iter().map(|u| u.email.clone()).collect();
    for per_page in [1, 7, 23, 50] {
        assert_eq!(
            walk(&store, text(""), per_page).await,
            all,
            "{per_page} a page"
        );
    }
    // The last page says there is nothing after it.
    let full = store
        .user_page(&UserQuery {
            limit: 23,
            ..text("")
        })
        .await
        .unwrap();
    assert_eq!((full.users.len(), full.next), (23, None));
}
every_store!(pages_walk_every_account_once_in_address_order);

async fn text_and_state_narrow_the_walk(b: StoreBackend) {
    let (store, users) = seeded(&b).await;
    let expect = |keep: &dyn Fn(&User) -> bool| -> Vec<String> {
        users
            .iter()
            .filter(|u| keep(u))
            .map(|u| u.email.clone())
            .collect()
    };
    // In the name, whatever the case of the name.
    assert_eq!(
        walk(&store, text("martin"), 2).await,
        expect(&|u| u.name.starts_with("Zoé"))
    );
    // In the address.
    assert_eq!(
        walk(&store, text("m1"), 3).await,
        expect(&|u| u.email.starts_with("m1"))
    );
    let pending = UserQuery {
        status: Some(AccountStatus::Pending),
        ..text("")
    };
    assert_eq!(
        walk(&store, pending, 2).await,
        expect(&|u| u.status == AccountStatus::Pending)
    );
    let active_zoes = UserQuery {
        status: Some(AccountStatus::Active),
        ..text("zoé")
    };
    assert_eq!(
        walk(&store, active_zoes, 10).await,
        expect(&|u| u.name.starts_with("Zoé") && u.status == AccountStatus::Active)
    );
    assert!(walk(&store, text("nobody"), 5).await.is_empty());
}
every_store!(text_and_state_narrow_the_walk);

async fn deleted_and_renamed_accounts_are_followed_at_once(b: StoreBackend) {
    let (store, users) = seeded(&b).await;
    store.user_delete(&users[3].id).await.unwrap();
    store
        .user_set_profile(&users[7].id, "Renamed Person", None)
        .await
        .unwrap();
    let all: BTreeSet<String> = walk(&store, text(""), 5).await.into_iter().collect();
    assert!(!all.contains(&users[3].email) && all.len() == users.len() - 1);
    assert_eq!(
        walk(&store, text("renamed"), 5).await,
        vec![users[7].email.clone()]
    );
}
every_store!(deleted_and_renamed_accounts_are_followed_at_once);

async fn counts_are_read_without_the_records(b: StoreBackend) {
    let (store, users) = seeded(&b).await;
    let pending = users
        .iter()
        .filter(|u| u.status == AccountStatus::Pending)
        .count() as u64;
    assert_eq!(store.user_counts().await.unwrap(), (23, pending));
    store.user_delete(&users[1].id).await.unwrap();
    assert_eq!(store.user_counts().await.unwrap(), (22, pending));

    assert_eq!(store.outbox_waiting().await.unwrap(), 0);
    let now = real_now();
    for (channel, to) in [
        (Channel::Email, "a@example.org"),
        (Channel::Mobile, "+33612345678"),
    ] {
        let m = OutboxMail {
            id: OutboxMail::new_id(),
            channel,
            kind: "activation".into(),
            to: to.into(),
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
            created_at: now,
            attempts: 0,
            next_attempt: now,
            last_error: None,
        };
        store.outbox_push(&m).await.unwrap();
    }
    assert_eq!(store.outbox_waiting().await.unwrap(), 2);
}
every_store!(counts_are_read_without_the_records);

/// Accounts written before the index existed are found once an instance connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_accounts_from_before_the_index_are_indexed_when_an_instance_connects() {
    let b = StoreBackend::redis().await;
    let (store, users) = seeded(&b).await;
    let StoreBackend::Redis(server) = &b else {
        unreachable!()
    };
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(Key::UserIndex.name())
        .arg(Key::UserIndexBuilt.name())
        .query_async(&mut conn)
        .await
        .unwrap();
    drop(store);
    let fresh = b.open();
    // The first operation of a new store object brings the layout up to date.
    fresh.ping().await.unwrap();
    let all: Vec<String> = users.iter().map(|u| u.email.clone()).collect();
    assert_eq!(walk(&fresh, text(""), 6).await, all);
}
