//! The cache's rules on explicit instants: what a hit may trust, what an announcement
//! drops, what a lost feed changes, and when activity is written.

use super::*;
use crate::store::{AuthLevel, DeviceId};

const MIN: Millis = 60_000;
const IDLE: Millis = 30 * MIN;
const T0: Millis = 1_700_000_000_000;

struct Session {
    token: String,
    record: SessionRecord,
}

fn session(user: &str, n: u32) -> Session {
    let token = format!("token-{user}-{n}");
    Session {
        record: SessionRecord {
            id: SessionId::from_string(format!("s-{user}-{n}")),
            token_hash: TokenHash::of(&token),
            user_id: UserId::from_string(user),
            device_id: DeviceId::from_string(format!("d{n}")),
            created_at: T0,
            last_seen: T0,
            idle_ms: IDLE,
            absolute_expiry: T0 + 8 * 60 * MIN,
            ip: "192.0.2.1".into(),
            user_agent: "test".into(),
            level: AuthLevel::Password,
        },
        token,
    }
}

fn live_cache() -> SessionCache {
    let cache = SessionCache::new(1000, None);
    cache.apply(Change::Live);
    cache
}

fn member(user: &str) -> Member {
    Member::new(
        UserId::from_string(user),
        format!("{user}@example.org"),
        user.into(),
        false,
        None,
    )
}

/// What `Auth::identify` does on a miss, without a store.
fn read_in(cache: &SessionCache, s: &Session, now: Millis) {
    let mark = cache.mark();
    let m = cache
        .member(&s.record.user_id, &mark)
        .unwrap_or_else(|| cache.adopt(member(s.record.user_id.as_str()), &mark));
    cache.insert(
        digest(&s.record.token_hash),
        Identity::of(m, &s.record),
        now,
        &mark,
    );
}

fn hit(cache: &SessionCache, s: &Session, now: Millis) -> bool {
    cache
        .lookup(&digest(&TokenHash::of(&s.token)), now, true)
        .is_some()
}

#[test]
fn the_digest_is_the_hash_read_back() {
    let h = TokenHash::of("abc");
    let d = digest(&h);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, h.as_str());
}

#[test]
fn a_session_is_kept_until_its_own_expiry_not_a_short_ttl() {
    let cache = live_cache();
    let s = session("ann", 1);
    read_in(&cache, &s, T0);
    assert!(hit(&cache, &s, T0 + 10 * MIN), "cached well past 0.5 s");
    // Idle from the last activity seen here: T0 + 10 min + IDLE.
    assert!(hit(&cache, &s, T0 + 10 * MIN + IDLE - 1));
    assert!(!hit(&cache, &s, T0 + 40 * MIN + IDLE), "idle expiry");
}

#[test]
fn activity_never_outlives_the_absolute_expiry() {
    let cache = live_cache();
    let s = session("ann", 1);
    read_in(&cache, &s, T0);
    let end = s.record.absolute_expiry;
    let mut now = T0;
    while now < end - MIN {
        assert!(hit(&cache, &s, now));
        now += 20 * MIN;
    }
    assert!(!hit(&cache, &s, end), "absolute expiry");
}

#[test]
fn an_ended_session_is_dropped_and_others_stay() {
    let cache = live_cache();
    let (a1, a2, b) = (session("ann", 1), session("ann", 2), session("bob", 1));
    for s in [&a1, &a2, &b] {
        read_in(&cache, s, T0);
    }
    cache.apply(Change::Session(a1.record.token_hash.clone()));
    assert!(!hit(&cache, &a1, T0 + 1));
    assert!(hit(&cache, &a2, T0 + 1));
    assert!(hit(&cache, &b, T0 + 1));
}

#[test]
fn a_changed_account_sends_all_its_sessions_back_to_the_store() {
    let cache = live_cache();
    let (a1, a2, b) = (session("ann", 1), session("ann", 2), session("bob", 1));
    for s in [&a1, &a2, &b] {
        read_in(&cache, s, T0);
    }
    // One member shared by both of ann's sessions.
    let i1 = cache
        .lookup(&digest(&a1.record.token_hash), T0, false)
        .unwrap();
    let i2 = cache
        .lookup(&digest(&a2.record.token_hash), T0, false)
        .unwrap();
    assert!(Arc::ptr_eq(&i1.member, &i2.member));
    cache.apply(Change::User(UserId::from_string("ann")));
    assert!(!hit(&cache, &a1, T0 + 1));
    assert!(!hit(&cache, &a2, T0 + 1));
    assert!(hit(&cache, &b, T0 + 1));
    // Read again: a fresh member, cached again.
    read_in(&cache, &a1, T0 + 2);
    assert!(hit(&cache, &a1, T0 + 3));
}

#[test]
fn a_read_overlapping_an_announcement_is_not_kept() {
    let cache = live_cache();
    let s = session("ann", 1);
    let mark = cache.mark();
    let m = cache.adopt(member("ann"), &mark);
    // The session ends while its (stale) record is being read.
    cache.apply(Change::Session(s.record.token_hash.clone()));
    cache.insert(
        digest(&s.record.token_hash),
        Identity::of(m, &s.record),
        T0,
        &mark,
    );
    assert!(!hit(&cache, &s, T0 + 1));
    assert!(cache.member(&s.record.user_id, &cache.mark()).is_none());
}

#[test]
fn without_a_live_feed_entries_last_half_a_second() {
    let cache = SessionCache::new(1000, None); // no Live yet: as at start-up
    let s = session("ann", 1);
    read_in(&cache, &s, T0);
    assert!(hit(&cache, &s, T0 + 499));
    assert!(!hit(&cache, &s, T0 + 500));
}

#[test]
fn losing_the_feed_flushes_and_shortens_and_its_return_flushes_again() {
    let cache = live_cache();
    let s = session("ann", 1);
    read_in(&cache, &s, T0);
    cache.apply(Change::Lost);
    assert!(!cache.is_live());
    assert!(!hit(&cache, &s, T0 + 1), "flushed on loss");
    read_in(&cache, &s, T0 + 10);
    assert!(hit(&cache, &s, T0 + 10 + 499));
    assert!(!hit(&cache, &s, T0 + 10 + 500), "short lifetime while lost");
    read_in(&cache, &s, T0 + 1000);
    cache.apply(Change::Live);
    assert!(cache.is_live());
    assert!(!hit(&cache, &s, T0 + 1001), "flushed on return");
    read_in(&cache, &s, T0 + 2000);
    assert!(hit(&cache, &s, T0 + 2000 + 10 * MIN), "long lifetime again");
}

#[test]
fn activity_is_written_at_its_own_instant_at_most_once_a_minute() {
    let cache = live_cache();
    let s = session("ann", 1);
    read_in(&cache, &s, T0 + 1000); // the store's last_seen is T0: too recent to write
    assert!(cache.take_touches().is_empty());
    for sec in [10, 30, 59] {
        assert!(hit(&cache, &s, T0 + sec * 1000));
    }
    assert!(
        cache.take_touches().is_empty(),
        "within a minute of the last write"
    );
    assert!(hit(&cache, &s, T0 + 61_000));
    assert!(hit(&cache, &s, T0 + 62_000));
    assert_eq!(
        cache.take_touches(),
        vec![(s.record.id.clone(), T0 + 61_000)],
        "once, at the request's own instant"
    );
    assert!(hit(&cache, &s, T0 + 100_000));
    assert!(cache.take_touches().is_empty());
    assert!(hit(&cache, &s, T0 + 121_000));
    assert_eq!(
        cache.take_touches(),
        vec![(s.record.id.clone(), T0 + 121_000)]
    );
}

#[test]
fn a_short_idle_timeout_is_written_four_times_per_timeout() {
    let cache = live_cache();
    let mut s = session("ann", 1);
    s.record.idle_ms = 2 * MIN;
    read_in(&cache, &s, T0);
    assert!(hit(&cache, &s, T0 + 29_000));
    assert!(cache.take_touches().is_empty());
    assert!(hit(&cache, &s, T0 + 30_000));
    assert_eq!(
        cache.take_touches(),
        vec![(s.record.id.clone(), T0 + 30_000)]
    );
}

#[test]
fn a_full_cache_stays_within_its_size() {
    let cache = SessionCache::new(SHARDS * 4, None);
    cache.apply(Change::Live);
    for n in 0..(SHARDS as u32 * 20) {
        read_in(&cache, &session("ann", n), T0);
    }
    assert!(cache.len() <= SHARDS * 4, "{} entries", cache.len());
    assert!(!cache.is_empty());
}

#[test]
fn sweeping_drops_the_unusable_and_unshared_members() {
    let cache = live_cache();
    let (a, b) = (session("ann", 1), session("bob", 1));
    read_in(&cache, &a, T0);
    read_in(&cache, &b, T0 + 20 * MIN);
    cache.sweep(T0 + IDLE + 1); // ann's idled out, bob's did not
    assert_eq!(cache.len(), 1);
    assert!(cache
        .member(&UserId::from_string("ann"), &cache.mark())
        .is_none());
    assert!(cache
        .member(&UserId::from_string("bob"), &cache.mark())
        .is_some());
}

#[test]
fn an_overlapped_read_retires_the_member_its_other_sessions_share() {
    let cache = live_cache();
    let (phone, laptop) = (session("ann", 1), session("ann", 2));
    read_in(&cache, &laptop, T0);
    // The phone's read shares the laptop's member, and an announcement (about anyone)
    // arrives meanwhile: that member may be stale, for the laptop too.
    let mark = cache.mark();
    let shared = cache.member(&phone.record.user_id, &mark).unwrap();
    cache.apply(Change::Session(TokenHash::of("someone else")));
    cache.insert(
        digest(&phone.record.token_hash),
        Identity::of(shared, &phone.record),
        T0,
        &mark,
    );
    assert!(
        !hit(&cache, &laptop, T0 + 1),
        "the laptop reads the store again"
    );
    assert!(!hit(&cache, &phone, T0 + 1));
}
