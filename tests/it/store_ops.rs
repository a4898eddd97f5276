//! Store contract of the console's operations sections, on both backends: the blocks in
//! force (newest first, seen by every instance, gone once lifted or ended), messages
//! counted when sent (per channel, over the last 24 hours, never twice), and "retry now".
//! Time is passed in, as in `store_suite`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigile::store::{Channel, IpBlock, IpRule, Millis, OutboxMail};

use crate::both_backends;
use crate::common::backend::StoreBackend;
use crate::common::consts::{HOUR, MINUTE};
use crate::common::records::real_now;

fn rule() -> IpRule {
    IpRule {
        max: 3,
        window_ms: 10 * MINUTE,
        block_ms: 15 * MINUTE,
        max_block_ms: 24 * HOUR,
    }
}

fn block(ip: &str, blocked_at: Millis, until: Millis) -> IpBlock {
    IpBlock {
        ip: ip.to_string(),
        blocked_at,
        until,
    }
}

async fn ip_blocks_lists_the_blocks_in_force_newest_first(b: StoreBackend) {
    let store = b.open();
    let other = b.open();
    let now = real_now();
    let rule = rule();
    // Ended five minutes ago; in force for five more minutes; just set; set by failures.
    store
        .ip_block("192.0.2.1", &rule, now - 20 * MINUTE)
        .await
        .unwrap();
    store
        .ip_block("192.0.2.2", &rule, now - 10 * MINUTE)
        .await
        .unwrap();
    store
        .ip_block("2001:db8:1:2::/64", &rule, now)
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(store
            .ip_attempt("192.0.2.3", &rule, now - MINUTE)
            .await
            .unwrap()
            .is_ok());
    }
    assert_eq!(
        store
            .ip_attempt("192.0.2.3", &rule, now - MINUTE)
            .await
            .unwrap(),
        Err(now + 14 * MINUTE)
    );
    // An address with failures but no block is not listed.
    store
        .ip_attempt("192.0.2.4", &rule, now)
        .await
        .unwrap()
        .unwrap();

    let expected = vec![
        block("2001:db8:1:2::/64", now, now + 15 * MINUTE),
        block("192.0.2.3", now - MINUTE, now + 14 * MINUTE),
        block("192.0.2.2", now - 10 * MINUTE, now + 5 * MINUTE),
    ];
    assert_eq!(other.ip_blocks(now, 10).await.unwrap(), expected);
    assert_eq!(
        store.ip_blocks(now, 2).await.unwrap(),
        expected[..2].to_vec()
    );
    assert!(store.ip_blocks(now, 0).await.unwrap().is_empty());
    // Asking again while blocked changes nothing.
    store.ip_block("192.0.2.2", &rule, now).await.unwrap();
    assert_eq!(store.ip_blocks(now, 10).await.unwrap(), expected);

    // Lifted on one instance: gone for the other.
    assert!(other.ip_unblock("192.0.2.3", now).await.unwrap());
    assert_eq!(
        store.ip_blocks(now, 10).await.unwrap(),
        vec![expected[0].clone(), expected[2].clone()]
    );
    // A block ends at its `until`.
    assert_eq!(
        store.ip_blocks(now + 5 * MINUTE, 10).await.unwrap(),
        expected[..1].to_vec()
    );
    // A repeat within a day is listed with its new start and doubled length.
    store
        .ip_block("192.0.2.2", &rule, now + 6 * MINUTE)
        .await
        .unwrap();
    assert_eq!(
        store.ip_blocks(now + 6 * MINUTE, 10).await.unwrap(),
        vec![
            block("192.0.2.2", now + 6 * MINUTE, now + 36 * MINUTE),
            expected[0].clone(),
        ]
    );
    // Once every block ended and was swept, nothing is left to list (Redis: the index
    // is emptied too).
    store.sweep(now + HOUR).await.unwrap();
    assert!(store.ip_blocks(now + HOUR, 10).await.unwrap().is_empty());
    if let StoreBackend::Redis(server) = &b {
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let left: u64 = redis::cmd("ZCARD")
            .arg(vigile::store::keys::Key::IpBlocks.name())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 0, "ended blocks leave the index at the sweep");
    }
}

fn message(channel: Channel, to: &str, now: Millis, next_attempt: Millis) -> OutboxMail {
    OutboxMail {
        id: OutboxMail::new_id(),
        channel,
        kind: "activation".to_string(),
        to: to.to_string(),
        subject: "Activate your account".to_string(),
        text: "https://example.org/_vigile/activate?token=abc".to_string(),
        html: String::new(),
        created_at: now,
        attempts: 0,
        next_attempt,
        last_error: None,
    }
}

async fn sent_messages_are_counted_per_channel_for_a_day(b: StoreBackend) {
    let store = b.open();
    let other = b.open();
    let now = real_now();
    let a = message(Channel::Email, "a@example.org", now, now);
    let c = message(Channel::Email, "c@example.org", now, now);
    let text = message(Channel::Mobile, "+33612345678", now, now);
    let dropped = message(Channel::Email, "d@example.org", now, now);
    for m in [&a, &c, &text, &dropped] {
        store.outbox_push(m).await.unwrap();
    }
    assert!(store.outbox_sent(&a.id, now).await.unwrap());
    assert!(
        !other.outbox_sent(&a.id, now).await.unwrap(),
        "a message sent twice (two senders) is counted once"
    );
    assert!(other.outbox_sent(&c.id, now + HOUR).await.unwrap());
    assert!(store.outbox_sent(&text.id, now).await.unwrap());
    // Dropped unsent: not counted.
    assert!(store.outbox_done(&dropped.id).await.unwrap());
    assert!(store.outbox_list().await.unwrap().is_empty());

    let count = |channel, at| {
        let store = store.clone();
        async move { store.outbox_sent_count(channel, at).await.unwrap() }
    };
    assert_eq!(count(Channel::Email, now + HOUR).await, 2);
    assert_eq!(count(Channel::Mobile, now + HOUR).await, 1);
    // The hour of `now` is counted 23 hours later, no longer 24 hours later.
    assert_eq!(count(Channel::Email, now + 23 * HOUR).await, 2);
    assert_eq!(count(Channel::Email, now + 24 * HOUR).await, 1);
    assert_eq!(count(Channel::Mobile, now + 24 * HOUR).await, 0);
    assert_eq!(count(Channel::Email, now + 25 * HOUR).await, 0);
    // The sweep forgets counters a day after their hour; recent ones stay.
    store.sweep(now + 24 * HOUR + 1).await.unwrap();
    assert_eq!(count(Channel::Email, now + 24 * HOUR).await, 1);
}

async fn retry_now_makes_a_waiting_message_due(b: StoreBackend) {
    let store = b.open();
    let other = b.open();
    let now = real_now();
    let later = message(Channel::Email, "later@example.org", now - HOUR, now + HOUR);
    let text = message(Channel::Mobile, "+33612345678", now - HOUR, now + 2 * HOUR);
    let due = message(Channel::Email, "due@example.org", now - HOUR, now - MINUTE);
    for m in [&later, &text, &due] {
        store.outbox_push(m).await.unwrap();
    }
    store
        .outbox_retry(&later.id, now + HOUR, "421 try again later")
        .await
        .unwrap();
    assert!(
        store
            .outbox_claim(Channel::Email, now, MINUTE, 10)
            .await
            .unwrap()
            .len()
            == 1
    );

    // "Retry now" on another instance: due at `now`, claimed first, attempts kept.
    assert!(other.outbox_due_now(&later.id, now).await.unwrap());
    assert!(other.outbox_due_now(&text.id, now).await.unwrap());
    let claimed = store
        .outbox_claim(Channel::Email, now, MINUTE, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, later.id);
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(
        claimed[0].last_error.as_deref(),
        Some("421 try again later")
    );
    let texts = store
        .outbox_claim(Channel::Mobile, now, MINUTE, 10)
        .await
        .unwrap();
    assert_eq!(texts.len(), 1, "a text message too, on its own queue");
    // A message due already is left as it is; an unknown or sent one is not waiting.
    let fresh = message(Channel::Email, "f@example.org", now, now - 5);
    store.outbox_push(&fresh).await.unwrap();
    assert!(store.outbox_due_now(&fresh.id, now).await.unwrap());
    let listed = store.outbox_list().await.unwrap();
    let found = listed.iter().find(|m| m.id == fresh.id).unwrap();
    assert_eq!(found.next_attempt, now - 5);
    assert!(store.outbox_sent(&fresh.id, now).await.unwrap());
    assert!(!store.outbox_due_now(&fresh.id, now).await.unwrap());
    assert!(!store.outbox_due_now("no-such-mail", now).await.unwrap());
}

both_backends!(
    ip_blocks_lists_the_blocks_in_force_newest_first,
    sent_messages_are_counted_per_channel_for_a_day,
    retry_now_makes_a_waiting_message_due,
);
