//! The contact part of the store contract ([`vigile::store::ContactStore`]) on both
//! backends: a code confirms the value it was sent to and nothing else, tries are counted
//! atomically (20 racing wrong tries from two instances compare at most `max_tries`), a new
//! address replaces the login address only when proved and never one another account
//! holds, campaigns clear what they ask for and keep the values, and the outbox keeps mail
//! and text messages in separate queues.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigile::store::{
    AccountStatus, CampaignMark, Channel, Channels, Confirmed, Contact, ContactCheck, ContactCode,
    DynStore, OutboxMail, Proof, TokenHash, UserId, Via,
};

use vigile::store::shard::Shard;

use crate::common::backend::StoreBackend;
use crate::common::consts::MINUTE;
use crate::common::records::{real_now, user};
use crate::every_store;

every_store!(
    a_code_confirms_its_value_once,
    tries_are_counted_atomically_across_instances,
    a_new_address_replaces_the_login_only_when_proved,
    the_mailed_link_confirms_without_a_try,
    campaigns_clear_what_they_ask_and_keep_values,
    activation_confirms_the_address,
    mail_and_texts_wait_in_separate_queues,
);

fn code(channel: Channel, value: &str, secret: &str, expires_at: i64) -> ContactCode {
    ContactCode {
        channel,
        value: value.into(),
        code_hash: TokenHash::of(secret),
        link_hash: None,
        attempts: 0,
        expires_at,
    }
}

/// An address code for `owner`, with its mailed link drawn as Vigile draws it: beside the
/// member (`store::shard`).
pub(crate) fn email_code(
    owner: &UserId,
    value: &str,
    secret: &str,
    expires_at: i64,
) -> ContactCode {
    let link = vigile::store::shard::token_in(Shard::of_user(owner), 16);
    ContactCode {
        link_hash: Some(TokenHash::of(&link)),
        ..code(Channel::Email, value, secret, expires_at)
    }
}

fn by_code(now: i64) -> Confirmed {
    Confirmed {
        at: now,
        via: Via::Code,
    }
}

pub(crate) async fn confirm(
    store: &DynStore,
    id: &UserId,
    channel: Channel,
    secret: &str,
    now: i64,
) -> ContactCheck {
    let hash = TokenHash::of(secret);
    store
        .contact_confirm(id, channel, Proof::Code(&hash), 5, by_code(now), now)
        .await
        .unwrap()
}

async fn a_code_confirms_its_value_once(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let mut u = user("ana@example.org", now);
    u.contact = Contact::default();
    store.user_insert(&u).await.unwrap();

    // No code yet, or an expired one: nothing to confirm.
    assert_eq!(
        confirm(&store, &u.id, Channel::Mobile, "111111", now).await,
        ContactCheck::Missing
    );
    let expired = code(Channel::Mobile, "+33612345678", "111111", now);
    assert!(store.contact_code_put(&u.id, &expired).await.unwrap());
    assert_eq!(
        confirm(&store, &u.id, Channel::Mobile, "111111", now).await,
        ContactCheck::Missing
    );
    assert!(store
        .contact_code_get(&u.id, Channel::Mobile, now)
        .await
        .unwrap()
        .is_none());

    // A code for someone who does not exist is not stored.
    let c = code(Channel::Mobile, "+33612345678", "222222", now + MINUTE);
    assert!(!store.contact_code_put(&UserId::random(), &c).await.unwrap());

    assert!(store.contact_code_put(&u.id, &c).await.unwrap());
    let pending = store
        .contact_code_get(&u.id, Channel::Mobile, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.value, "+33612345678");
    // The mobile is the account's only once proved.
    let before = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(before.contact.mobile, None);

    assert_eq!(
        confirm(&store, &u.id, Channel::Mobile, "999999", now).await,
        ContactCheck::Wrong { left: 4 }
    );
    match confirm(&store, &u.id, Channel::Mobile, "222222", now + 1).await {
        ContactCheck::Confirmed { user, previous } => {
            assert_eq!(previous, None);
            assert_eq!(user.contact.mobile.as_deref(), Some("+33612345678"));
            assert_eq!(user.contact.mobile_confirmed, Some(by_code(now + 1)));
            // The email channel was not touched.
            assert_eq!(user.contact.email_confirmed, None);
        }
        other => panic!("expected confirmed, got {other:?}"),
    }
    let stored = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(stored.contact.mobile.as_deref(), Some("+33612345678"));
    assert_eq!(stored.contact.mobile_confirmed, Some(by_code(now + 1)));
    // Spent.
    assert_eq!(
        confirm(&store, &u.id, Channel::Mobile, "222222", now + 2).await,
        ContactCheck::Missing
    );

    // A new number replacing a confirmed one reports the old one.
    let c = code(Channel::Mobile, "+33700000000", "333333", now + MINUTE);
    store.contact_code_put(&u.id, &c).await.unwrap();
    match confirm(&store, &u.id, Channel::Mobile, "333333", now + 3).await {
        ContactCheck::Confirmed { previous, .. } => {
            assert_eq!(previous.as_deref(), Some("+33612345678"))
        }
        other => panic!("expected confirmed, got {other:?}"),
    }
}

async fn tries_are_counted_atomically_across_instances(b: StoreBackend) {
    let (one, two) = (b.open(), b.open());
    let now = real_now();
    let u = user("bob@example.org", now);
    one.user_insert(&u).await.unwrap();
    let c = code(Channel::Mobile, "+33612345678", "424242", now + MINUTE);
    one.contact_code_put(&u.id, &c).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { one.clone() } else { two.clone() };
        let id = u.id.clone();
        tasks.push(tokio::spawn(async move {
            confirm(&store, &id, Channel::Mobile, &format!("{i:06}"), now).await
        }));
    }
    let mut wrong = 0;
    let mut exhausted = 0;
    let mut missing = 0;
    for t in tasks {
        match t.await.unwrap() {
            ContactCheck::Wrong { .. } => wrong += 1,
            ContactCheck::Exhausted => exhausted += 1,
            ContactCheck::Missing => missing += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Four wrong tries leave tries; the fifth spends the code; the rest find nothing.
    assert_eq!((wrong, exhausted, missing), (4, 1, 15));
    // Even the right code is too late now.
    assert_eq!(
        confirm(&one, &u.id, Channel::Mobile, "424242", now).await,
        ContactCheck::Missing
    );
}

async fn a_new_address_replaces_the_login_only_when_proved(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let u = user("old@example.org", now);
    let other = user("taken@example.org", now);
    store.user_insert(&u).await.unwrap();
    store.user_insert(&other).await.unwrap();

    let c = email_code(&u.id, "new@example.org", "123456", now + MINUTE);
    store.contact_code_put(&u.id, &c).await.unwrap();
    // Until proved, the account signs in with its old address.
    assert!(store
        .user_by_email("new@example.org")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .user_by_email("old@example.org")
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
    match confirm(&store, &u.id, Channel::Email, "123456", now).await {
        ContactCheck::Confirmed { user, previous } => {
            assert_eq!(user.email, "new@example.org");
            assert_eq!(previous.as_deref(), Some("old@example.org"));
        }
        other => panic!("expected confirmed, got {other:?}"),
    }
    assert_eq!(
        store
            .user_by_email("new@example.org")
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
    assert!(store
        .user_by_email("old@example.org")
        .await
        .unwrap()
        .is_none());
    // The old address is free for someone else.
    store
        .user_insert(&user("old@example.org", now))
        .await
        .unwrap();

    // Another account's address: refused after the right code, nothing changed.
    let c = email_code(&u.id, "taken@example.org", "654321", now + MINUTE);
    store.contact_code_put(&u.id, &c).await.unwrap();
    assert_eq!(
        confirm(&store, &u.id, Channel::Email, "654321", now).await,
        ContactCheck::Taken
    );
    let after = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(after.email, "new@example.org");
    assert_eq!(
        store
            .user_by_email("taken@example.org")
            .await
            .unwrap()
            .unwrap()
            .id,
        other.id
    );
    // The code is spent.
    assert_eq!(
        confirm(&store, &u.id, Channel::Email, "654321", now).await,
        ContactCheck::Missing
    );
}

async fn the_mailed_link_confirms_without_a_try(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let mut u = user("cleo@example.org", now);
    u.contact = Contact::default();
    store.user_insert(&u).await.unwrap();
    let c = email_code(&u.id, "cleo@example.org", "777777", now + MINUTE);
    let link = c.link_hash.clone().unwrap();
    store.contact_code_put(&u.id, &c).await.unwrap();

    assert_eq!(
        store.contact_link(&link, now).await.unwrap(),
        Some(u.id.clone())
    );
    assert_eq!(
        store.contact_link(&link, now + MINUTE).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store
            .contact_link(&TokenHash::of("made-up"), now)
            .await
            .unwrap(),
        None
    );

    // A newer code replaces the link.
    let newer = email_code(&u.id, "cleo@example.org", "888888", now + MINUTE);
    let newer_link = newer.link_hash.clone().unwrap();
    store.contact_code_put(&u.id, &newer).await.unwrap();
    assert_eq!(store.contact_link(&link, now).await.unwrap(), None);
    assert_eq!(
        store.contact_link(&newer_link, now).await.unwrap(),
        Some(u.id.clone())
    );

    let by_link = Confirmed {
        at: now,
        via: Via::Link,
    };
    // The first link, looked up before the newer code replaced it, confirms nothing now
    // (the check is in the same atomic step as the confirmation).
    let stale = store
        .contact_confirm(&u.id, Channel::Email, Proof::Link(&link), 5, by_link, now)
        .await
        .unwrap();
    assert_eq!(stale, ContactCheck::Missing);
    assert!(store
        .user_by_id(&u.id)
        .await
        .unwrap()
        .unwrap()
        .contact
        .email_confirmed
        .is_none());
    let done = store
        .contact_confirm(
            &u.id,
            Channel::Email,
            Proof::Link(&newer_link),
            5,
            by_link,
            now,
        )
        .await
        .unwrap();
    assert!(matches!(
        done,
        ContactCheck::Confirmed { previous: None, .. }
    ));
    let stored = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(stored.contact.email_confirmed, Some(by_link));
    assert_eq!(store.contact_link(&newer_link, now).await.unwrap(), None);
}

async fn campaigns_clear_what_they_ask_and_keep_values(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let mut u = user("dan@example.org", now);
    u.contact.mobile = Some("+33612345678".into());
    u.contact.mobile_confirmed = Some(by_code(now));
    store.user_insert(&u).await.unwrap();

    let mark = CampaignMark {
        id: "spring".into(),
        channels: Channels {
            email: false,
            mobile: true,
        },
        asked_at: now,
        seen_at: None,
    };
    assert!(store.contact_ask(&u.id, &mark).await.unwrap());
    assert!(!store.contact_ask(&UserId::random(), &mark).await.unwrap());
    let asked = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(asked.contact.mobile.as_deref(), Some("+33612345678"));
    assert_eq!(asked.contact.mobile_confirmed, None);
    assert!(asked.contact.email_confirmed.is_some(), "not asked for");
    assert_eq!(asked.contact.campaign.as_ref(), Some(&mark));

    assert!(!store.contact_seen(&u.id, "other", now).await.unwrap());
    assert!(store.contact_seen(&u.id, "spring", now + 5).await.unwrap());
    assert!(!store.contact_seen(&u.id, "spring", now + 9).await.unwrap());
    let seen = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(seen.contact.campaign.unwrap().seen_at, Some(now + 5));

    let both = CampaignMark {
        id: "autumn".into(),
        channels: Channels {
            email: true,
            mobile: true,
        },
        asked_at: now + 10,
        seen_at: None,
    };
    store.contact_ask(&u.id, &both).await.unwrap();
    let again = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(again.contact.email_confirmed, None);
    assert_eq!(again.contact.campaign.unwrap().id, "autumn");
    assert_eq!(again.email, "dan@example.org");

    for (id, at) in [("spring", now), ("autumn", now + 10)] {
        let c = vigile::store::Campaign {
            id: id.into(),
            started_at: at,
            by: "cli".into(),
            scope: "all".into(),
            channels: both.channels,
            asked: 1,
        };
        store.campaign_insert(&c).await.unwrap();
    }
    let ids: Vec<String> = store
        .campaign_list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["autumn", "spring"], "newest first");
}

async fn activation_confirms_the_address(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let mut u = user("eve@example.org", now);
    u.status = AccountStatus::Pending;
    u.contact = Contact::default();
    store.user_insert_pending(&u, now + MINUTE).await.unwrap();
    assert!(store.user_activate(&u.id, now + 7).await.unwrap());
    let active = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(
        active.contact.email_confirmed,
        Some(Confirmed {
            at: now + 7,
            via: Via::Activation
        })
    );
}

async fn mail_and_texts_wait_in_separate_queues(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let message = |channel: Channel, to: &str| OutboxMail {
        id: OutboxMail::new_id(),
        channel,
        kind: "contact_code".into(),
        to: to.into(),
        subject: String::new(),
        text: "Code 123456".into(),
        html: String::new(),
        created_at: now,
        attempts: 0,
        next_attempt: now,
        last_error: None,
    };
    let mail = message(Channel::Email, "a@example.org");
    let sms = message(Channel::Mobile, "+33612345678");
    store.outbox_push(&mail).await.unwrap();
    store.outbox_push(&sms).await.unwrap();

    let texts = store
        .outbox_claim(Channel::Mobile, now, MINUTE, 10)
        .await
        .unwrap();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].id, sms.id);
    assert_eq!(texts[0].channel, Channel::Mobile);
    let mails = store
        .outbox_claim(Channel::Email, now, MINUTE, 10)
        .await
        .unwrap();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].id, mail.id);

    // A retried text stays a text.
    store
        .outbox_retry(&sms.id, now + 5, "HTTP 500")
        .await
        .unwrap();
    assert!(store
        .outbox_claim(Channel::Email, now + 5, MINUTE, 10)
        .await
        .unwrap()
        .is_empty());
    let again = store
        .outbox_claim(Channel::Mobile, now + 5, MINUTE, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(store.outbox_list().await.unwrap().len(), 2);
    assert!(store.outbox_done(&sms.id).await.unwrap());
    assert_eq!(store.outbox_list().await.unwrap().len(), 1);
}
