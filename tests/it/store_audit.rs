//! Store contract of the stored audit trail (the console's Security events), on both
//! backends: newest first, filtered by member, kind and date, walked page by page without
//! a gap or a repeat, an address that is an account's found under that member, hourly
//! counts per kind, and pruning by age and by number. Time is passed in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use vigile::store::{
    audit_hour, AuditKeep, AuditQuery, AuditRecord, Millis, UserId, AUDIT_HOUR_MS,
};

use crate::common::backend::StoreBackend;
use crate::common::consts::MINUTE;
use crate::common::records::{real_now, user};
use crate::every_store;

const KEEP: AuditKeep = AuditKeep {
    keep_ms: 90 * 24 * AUDIT_HOUR_MS,
    max_events: 100_000,
};

fn event(at: Millis, event: &str, user: Option<&UserId>, email: Option<&str>) -> AuditRecord {
    AuditRecord {
        at,
        event: event.to_string(),
        by: "visitor".to_string(),
        admin: None,
        user: user.map(|u| u.as_str().to_string()),
        email: email.map(str::to_string),
        ip: Some("192.0.2.7".to_string()),
        detail: format!("{{\"n\":{at}}}"),
    }
}

fn query() -> AuditQuery {
    AuditQuery {
        limit: 50,
        ..AuditQuery::default()
    }
}

/// Every page of `q`, followed through `next` (at most 1 000 calls).
async fn walk(store: &vigile::store::DynStore, mut q: AuditQuery) -> Vec<AuditRecord> {
    let mut all = Vec::new();
    for _ in 0..1000 {
        let page = store.audit_page(&q).await.unwrap();
        all.extend(page.entries.into_iter().map(|e| e.record));
        match page.next {
            Some(next) => q.before = Some(next),
            None => return all,
        }
    }
    panic!("the walk never ended");
}

async fn events_come_back_newest_first_with_every_field(b: StoreBackend) {
    let store = b.open();
    let other = b.open();
    let now = real_now();
    let ann = user("ann@example.com", now);
    store.user_insert(&ann).await.unwrap();
    let mut by_admin = event(now - 2 * MINUTE, "unlock", None, Some("bob@example.com"));
    by_admin.by = "admin".into();
    by_admin.admin = Some("admin-id".into());
    by_admin.ip = None;
    let records = vec![
        event(now - 3 * MINUTE, "login", Some(&ann.id), None),
        by_admin.clone(),
        event(now - MINUTE, "login_failed", None, Some("ann@example.com")),
    ];
    store.audit_append(&records, KEEP).await.unwrap();

    let page = other.audit_page(&query()).await.unwrap();
    assert_eq!(page.next, None);
    let got: Vec<AuditRecord> = page.entries.into_iter().map(|e| e.record).collect();
    assert_eq!(got, vec![records[2].clone(), by_admin, records[0].clone()]);

    // Only Ann's, whoever named her.
    let mine = AuditQuery {
        user: Some(ann.id.clone()),
        ..query()
    };
    let kinds: Vec<String> = walk(&store, mine.clone())
        .await
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(kinds, ["login_failed", "login"]);

    // Others naming her address, as often as they like, never crowd her own events out.
    let noise: Vec<AuditRecord> = (0..150)
        .map(|i| event(now + i, "org_invited", None, Some("ann@example.com")))
        .collect();
    store.audit_append(&noise, KEEP).await.unwrap();
    let logins = AuditQuery {
        kinds: vec!["login".into()],
        ..mine
    };
    assert_eq!(walk(&store, logins).await, vec![records[0].clone()]);
}

async fn a_walk_by_pages_sees_every_match_once(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let ann = UserId::random();
    let bob = UserId::random();
    let mut records = Vec::new();
    for i in 0..230 {
        let at = now - 24 * AUDIT_HOUR_MS + i * MINUTE;
        let (kind, who) = match i % 3 {
            0 => ("login", &ann),
            1 => ("login_failed", &bob),
            _ => ("ip_blocked", &bob),
        };
        records.push(event(at, kind, Some(who), None));
    }
    for chunk in records.chunks(70) {
        store.audit_append(chunk, KEEP).await.unwrap();
    }
    let everything = walk(&store, query()).await;
    let mut expected = records.clone();
    expected.reverse();
    assert_eq!(everything, expected);

    // By kind, over several pages of 7.
    let kinds = AuditQuery {
        kinds: vec!["login_failed".into(), "ip_blocked".into()],
        limit: 7,
        ..query()
    };
    let got = walk(&store, kinds).await;
    assert_eq!(got.len(), 153);
    assert!(got.iter().all(|r| r.event != "login"));

    // By member and kind and date: Ann's logins in the second hour of the range.
    let start = now - 24 * AUDIT_HOUR_MS;
    let q = AuditQuery {
        user: Some(ann.clone()),
        kinds: vec!["login".into()],
        from: Some(start + 60 * MINUTE),
        until: Some(start + 120 * MINUTE),
        limit: 4,
        ..query()
    };
    let got = walk(&store, q).await;
    let wanted: Vec<Millis> = expected
        .iter()
        .filter(|r| {
            r.event == "login" && r.at >= start + 60 * MINUTE && r.at < start + 120 * MINUTE
        })
        .map(|r| r.at)
        .collect();
    assert_eq!(wanted.len(), 20);
    assert_eq!(got.iter().map(|r| r.at).collect::<Vec<_>>(), wanted);

    // A cursor that is not one of ours starts from the newest.
    let odd = AuditQuery {
        before: Some("'; DROP TABLE audit; --".into()),
        limit: 1,
        ..query()
    };
    let page = store.audit_page(&odd).await.unwrap();
    assert_eq!(page.entries[0].record, expected[0]);

    // Nothing matches: an empty page, no next.
    let none = AuditQuery {
        kinds: vec!["no_such_kind".into()],
        ..query()
    };
    let page = store.audit_page(&none).await.unwrap();
    assert!(page.entries.is_empty());
    assert_eq!(page.next, None);
}

async fn each_kind_is_counted_per_hour(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let hour = audit_hour(now);
    let records = vec![
        event(hour - 2 * AUDIT_HOUR_MS + 5, "login", None, None),
        event(hour - 2 * AUDIT_HOUR_MS + 9, "login", None, None),
        event(hour - AUDIT_HOUR_MS, "login", None, None),
        event(hour - AUDIT_HOUR_MS + 1, "account_locked", None, None),
        event(hour, "login_failed", None, None),
        event(hour - 30 * AUDIT_HOUR_MS, "login", None, None),
    ];
    store.audit_append(&records, KEEP).await.unwrap();
    let counts = store
        .audit_counts(hour - 24 * AUDIT_HOUR_MS, hour + AUDIT_HOUR_MS)
        .await
        .unwrap();
    let got: BTreeSet<(Millis, String, u64)> = counts
        .into_iter()
        .map(|c| (c.hour, c.event, c.count))
        .collect();
    let expected: BTreeSet<(Millis, String, u64)> = [
        (hour - 2 * AUDIT_HOUR_MS, "login".to_string(), 2),
        (hour - AUDIT_HOUR_MS, "login".to_string(), 1),
        (hour - AUDIT_HOUR_MS, "account_locked".to_string(), 1),
        (hour, "login_failed".to_string(), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, expected);
}

async fn pruning_drops_the_oldest_by_age_and_by_number(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let day = 24 * AUDIT_HOUR_MS;
    let old: Vec<AuditRecord> = (0..5)
        .map(|i| event(now - 100 * day + i, "login", None, None))
        .collect();
    let recent: Vec<AuditRecord> = (0..20)
        .map(|i| event(now - day + i * MINUTE, "logout", None, None))
        .collect();
    store.audit_append(&old, KEEP).await.unwrap();
    store.audit_append(&recent, KEEP).await.unwrap();

    let dropped = store.audit_prune(KEEP, now).await.unwrap();
    assert_eq!(dropped, 5);
    let left = walk(&store, query()).await;
    assert_eq!(left.len(), 20);
    assert!(left.iter().all(|r| r.event == "logout"));

    let small = AuditKeep {
        max_events: 8,
        ..KEEP
    };
    assert_eq!(store.audit_prune(small, now).await.unwrap(), 12);
    let left = walk(&store, query()).await;
    let mut newest = recent[12..].to_vec();
    newest.reverse();
    assert_eq!(left, newest);
}

/// A rare kind under thousands of others (more than Redis looks at in one call) is still
/// reached, through pages that may come back short.
async fn a_rare_match_under_thousands_is_reached(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let rare = event(now - AUDIT_HOUR_MS, "account_locked", None, None);
    store
        .audit_append(std::slice::from_ref(&rare), KEEP)
        .await
        .unwrap();
    let noise: Vec<AuditRecord> = (0..6000)
        .map(|i| event(now - AUDIT_HOUR_MS + 1 + i, "login", None, None))
        .collect();
    for chunk in noise.chunks(500) {
        store.audit_append(chunk, KEEP).await.unwrap();
    }
    let q = AuditQuery {
        kinds: vec!["account_locked".into()],
        ..query()
    };
    assert_eq!(walk(&store, q).await, vec![rare]);
}

every_store!(
    a_rare_match_under_thousands_is_reached,
    events_come_back_newest_first_with_every_field,
    a_walk_by_pages_sees_every_match_once,
    each_kind_is_counted_per_hour,
    pruning_drops_the_oldest_by_age_and_by_number,
);
