//! Store contract of the console's operations sections, on both backends: the blocks in
//! force (newest first, seen by every instance, gone once lifted or ended), messages
//! counted when sent (per channel, over the last 24 hours, never twice), and "retry now".
//! Time is passed in, as in `store_suite`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigile::store::{
    Channel, Due, IpBlock, IpRule, Millis, OutboxMail, WaitingCursor, WaitingQuery, FAILED_KEEP_MS,
};

use crate::common::backend::StoreBackend;
use crate::common::consts::{HOUR, MINUTE};
use crate::common::records::real_now;
use crate::every_store;

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

/// Every page of `due` at `now`, `limit` at a time, from `store`: the ids in order, and the
/// total each page gave.
async fn walk(
    store: &vigile::store::DynStore,
    due: Due,
    now: Millis,
    limit: usize,
) -> (Vec<String>, Vec<u64>) {
    let (mut ids, mut totals) = (Vec::new(), Vec::new());
    let mut after: Option<WaitingCursor> = None;
    loop {
        let query = WaitingQuery {
            due,
            now,
            after: after.clone(),
            limit,
        };
        let page = store.outbox_page(&query).await.unwrap();
        assert!(page.mails.len() <= limit);
        totals.push(page.total);
        ids.extend(page.mails.iter().map(|m| m.id.clone()));
        match page.next {
            Some(next) => {
                assert_eq!(page.mails.len(), limit, "a page with a next is full");
                after = Some(WaitingCursor::parse(&next.to_param()).unwrap());
            }
            None => return (ids, totals),
        }
        assert!(ids.len() < 100, "the walk does not end");
    }
}

async fn waiting_messages_are_paged_soonest_first_without_bodies(b: StoreBackend) {
    let store = b.open();
    let other = b.open();
    let now = real_now();
    // Due now and later, on both channels, with ties on next_attempt (told apart by id).
    let mut all = Vec::new();
    for (i, at) in [-3, -2, -2, -2, 0, 1, 1, 1, 5, 9, 9, 12]
        .into_iter()
        .enumerate()
    {
        let channel = if i % 3 == 0 {
            Channel::Mobile
        } else {
            Channel::Email
        };
        let m = message(
            channel,
            &format!("m{i}@example.org"),
            now - HOUR,
            now + at * MINUTE,
        );
        store.outbox_push(&m).await.unwrap();
        all.push(m);
    }
    let sorted = |due: Due| {
        let mut picked: Vec<&OutboxMail> = all
            .iter()
            .filter(|m| (m.next_attempt <= now) == (due == Due::Now))
            .collect();
        picked.sort_by(|a, b| (a.next_attempt, &a.id).cmp(&(b.next_attempt, &b.id)));
        picked.into_iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    };
    let (due_now, due_later) = (sorted(Due::Now), sorted(Due::Later));
    assert_eq!((due_now.len(), due_later.len()), (5, 7));
    for limit in [1, 2, 3, 50] {
        let (ids, totals) = walk(&other, Due::Now, now, limit).await;
        assert_eq!(ids, due_now, "due now, {limit} a page");
        assert!(totals.iter().all(|t| *t == 5), "{totals:?}");
        let (ids, totals) = walk(&other, Due::Later, now, limit).await;
        assert_eq!(ids, due_later, "due later, {limit} a page");
        assert!(totals.iter().all(|t| *t == 7), "{totals:?}");
    }

    // A page lists who, what and the last answer; the bodies are not read.
    store
        .outbox_retry(&all[9].id, now + 9 * MINUTE, "421 try again later")
        .await
        .unwrap();
    let query = WaitingQuery {
        due: Due::Later,
        now,
        after: None,
        limit: 50,
    };
    let page = other.outbox_page(&query).await.unwrap();
    let listed = page.mails.iter().find(|m| m.id == all[9].id).unwrap();
    assert_eq!(
        (
            listed.attempts,
            listed.last_error.as_deref(),
            listed.channel
        ),
        (1, Some("421 try again later"), Channel::Mobile)
    );
    assert_eq!(listed.to, "m9@example.org");
    assert_eq!(listed.subject, "Activate your account");
    assert_eq!(
        other.outbox_get(&all[9].id).await.unwrap().as_ref(),
        Some(listed)
    );
    assert_eq!(other.outbox_get("no-such-mail").await.unwrap(), None);

    // The message a cursor names is sent meanwhile: the walk goes on after it.
    let first = other
        .outbox_page(&WaitingQuery {
            limit: 2,
            ..query.clone()
        })
        .await
        .unwrap();
    let cursor = first.next.clone().unwrap();
    assert!(store.outbox_sent(&cursor.id, now).await.unwrap());
    let rest = other
        .outbox_page(&WaitingQuery {
            after: Some(cursor),
            limit: 50,
            ..query.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest.mails.len(), 5);
    assert_eq!(rest.total, 6);
    assert_eq!(rest.mails[0].id, due_later[2]);

    // Refused for good (a text message too): no longer waiting, counted as failed until
    // it is purged.
    for m in [&all[0], &all[1]] {
        assert!(store.outbox_fail(&m.id, now, "550 no").await.unwrap());
    }
    let (ids, totals) = walk(&other, Due::Now, now, 2).await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(totals.iter().all(|t| *t == 3), "{totals:?}");
    assert_eq!(other.outbox_failed_count(now).await.unwrap(), 2);
    assert_eq!(
        other
            .outbox_failed_count(now + FAILED_KEEP_MS)
            .await
            .unwrap(),
        0
    );
    let none = WaitingQuery {
        limit: 0,
        ..query.clone()
    };
    assert!(other.outbox_page(&none).await.unwrap().mails.is_empty());
}

every_store!(
    ip_blocks_lists_the_blocks_in_force_newest_first,
    sent_messages_are_counted_per_channel_for_a_day,
    retry_now_makes_a_waiting_message_due,
    waiting_messages_are_paged_soonest_first_without_bodies,
);
