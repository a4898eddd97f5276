//! The behaviour every `Store` backend must show, run identically against SQLite (a
//! temporary file) and a real `redis-server`: one async fn per behaviour, instantiated
//! for both backends by `every_store!` (tests are named `store_suite::X::sqlite` and
//! `store_suite::X::redis`).
//!
//! Time is passed in, never slept: expiry is tested by calling with a later `now`. The
//! base instant is the real clock because Redis also expires keys by its own clock.
//! "Two instances" means two store objects on the same file or the same Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use vigile::store::keys::{Key, NAMESPACE};
use vigile::store::{
    AccountStatus, AttemptKey, Channel, CounterScope, DeviceId, DynStore, FailedMail, IpRule,
    Millis, OutboxMail, RedisStore, SessionId, SessionRecord, StoreError, TokenHash, TokenKind,
    TokenRecord, User, UserId, FAILED_KEEP_MS,
};

use crate::common::backend::StoreBackend;
use crate::common::consts::{DAY, HOUR, MINUTE};
use crate::common::records::{real_now, session, user, ABSOLUTE, IDLE};
use crate::common::redis_server::RedisServer;
use crate::every_store;

every_store!(
    users_are_found_by_email_and_id_and_listed_by_email,
    duplicate_email_is_a_conflict,
    session_is_found_by_token_hash,
    session_dies_after_idle_timeout_and_is_deleted,
    session_dies_at_absolute_expiry_despite_activity,
    touch_pushes_idle_expiry_only_forward_and_not_when_dead,
    rotation_replaces_the_old_session_atomically,
    delete_one_and_delete_all,
    sessions_of_is_oldest_first_and_skips_expired,
    session_count_counts_valid_sessions_without_destroying_any,
    secret_first_writer_wins_across_instances,
    sessions_are_shared_between_instances,
    sweep_removes_what_expired,
    concurrent_writes_from_two_instances_all_succeed,
    token_is_single_use_even_when_takes_race,
    token_expires_at_the_now_passed_in,
    token_peek_does_not_consume_and_kinds_are_separate,
    outbox_claim_leases_mails_until_the_lease_ends,
    outbox_retry_done_and_list_order,
    outbox_two_instances_never_claim_the_same_mail,
    outbox_failed_mails_are_kept_apart_then_purged,
    counters_count_per_fixed_window,
    pending_account_is_replaced_by_a_new_sign_up_not_over_an_active_one,
    activation_makes_a_pending_account_permanent,
    sweep_removes_expired_sign_ups_and_frees_their_address,
    set_password_replaces_the_hash_and_keeps_a_sign_up_expiring,
    set_profile_replaces_name_and_language_and_nothing_else,
    user_delete_removes_the_account_its_address_and_its_sessions,
    attempts_count_until_cleared_per_address_and_device,
    attempts_from_two_instances_are_all_counted,
    attempts_are_forgotten_a_month_after_the_last_one,
    known_devices_are_remembered_and_go_with_the_account,
    ip_window_blocks_beyond_max_and_refuses_during_the_block,
    ip_blocks_double_within_a_day_and_reset_after,
    ip_refund_unblock_and_sweep,
    ip_bursts_from_two_instances_never_pass_more_than_max,
);

/// The session answering to `s`'s token at `now`, if any.
async fn lookup(store: &DynStore, s: &SessionRecord, now: Millis) -> Option<SessionRecord> {
    store.session_by_token(&s.token_hash, now).await.unwrap()
}

/// A member with one session, the store, and the instant everything was created.
pub(crate) async fn member_with_session(
    b: &StoreBackend,
) -> (DynStore, User, SessionRecord, Millis) {
    let store = b.open();
    let now = real_now();
    let u = user("member@example.org", now);
    store.user_insert(&u).await.unwrap();
    let (s, _) = session(&u.id, now);
    store.session_insert(&s, None).await.unwrap();
    (store, u, s, now)
}

async fn users_are_found_by_email_and_id_and_listed_by_email(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let zoe = user("zoe@example.org", now);
    let admin = user("admin@example.org", now + 1);
    store.user_insert(&zoe).await.unwrap();
    store.user_insert(&admin).await.unwrap();

    assert_eq!(
        store.user_by_email("zoe@example.org").await.unwrap(),
        Some(zoe.clone())
    );
    assert_eq!(
        store.user_by_id(&admin.id).await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(
        store.user_by_email("nobody@example.org").await.unwrap(),
        None
    );
    assert_eq!(store.user_by_id(&UserId::random()).await.unwrap(), None);
    assert_eq!(store.user_list().await.unwrap(), vec![admin, zoe]);
}

async fn duplicate_email_is_a_conflict(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let first = user("same@example.org", now);
    store.user_insert(&first).await.unwrap();
    let second = user("same@example.org", now);
    let err = store.user_insert(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(
        store.user_by_email("same@example.org").await.unwrap(),
        Some(first)
    );
    assert_eq!(store.user_by_id(&second.id).await.unwrap(), None);
    assert_eq!(store.user_list().await.unwrap().len(), 1);
}

async fn session_is_found_by_token_hash(b: StoreBackend) {
    let (store, _u, s, now) = member_with_session(&b).await;
    assert_eq!(lookup(&store, &s, now).await, Some(s));
    let unknown = TokenHash::of("not a token");
    assert_eq!(store.session_by_token(&unknown, now).await.unwrap(), None);
}

async fn session_dies_after_idle_timeout_and_is_deleted(b: StoreBackend) {
    let (store, u, s, now) = member_with_session(&b).await;
    let last_valid = now + IDLE - 1;
    assert!(lookup(&store, &s, last_valid).await.is_some());
    assert_eq!(lookup(&store, &s, now + IDLE).await, None);
    // Found expired, so deleted: gone even when asked about an earlier instant.
    assert_eq!(lookup(&store, &s, now).await, None);
    assert!(store.sessions_of(&u.id, now).await.unwrap().is_empty());
}

async fn session_dies_at_absolute_expiry_despite_activity(b: StoreBackend) {
    let (store, _u, s, now) = member_with_session(&b).await;
    let mut t = now;
    while t + IDLE / 2 < s.absolute_expiry {
        t += IDLE / 2;
        assert!(
            store.session_touch(&s.id, t).await.unwrap(),
            "touch at +{}",
            t - now
        );
    }
    // Still recently active, but past the absolute limit.
    let just_before = s.absolute_expiry - 1;
    let found = lookup(&store, &s, just_before).await.unwrap();
    assert_eq!(
        found.expires_at(),
        s.absolute_expiry,
        "idle expiry capped by absolute"
    );
    assert_eq!(lookup(&store, &s, s.absolute_expiry).await, None);
    assert!(!store.session_touch(&s.id, s.absolute_expiry).await.unwrap());
}

async fn touch_pushes_idle_expiry_only_forward_and_not_when_dead(b: StoreBackend) {
    let (store, _u, s, now) = member_with_session(&b).await;
    let later = now + 20 * MINUTE;
    assert!(store.session_touch(&s.id, later).await.unwrap());
    // Without the touch this instant would be past the idle timeout.
    let found = lookup(&store, &s, now + 40 * MINUTE).await.unwrap();
    assert_eq!(found.last_seen, later);
    assert_eq!(found.expires_at(), later + IDLE);

    // A late touch carrying an older instant does not move last_seen back.
    assert!(store.session_touch(&s.id, now + MINUTE).await.unwrap());
    let found = lookup(&store, &s, now).await.unwrap();
    assert_eq!(found.last_seen, later);

    // Too late: the touch does not resurrect it.
    assert!(!store.session_touch(&s.id, later + IDLE).await.unwrap());
    assert_eq!(lookup(&store, &s, later + IDLE).await, None);
    assert!(!store
        .session_touch(&SessionId::random(), now)
        .await
        .unwrap());
}

async fn rotation_replaces_the_old_session_atomically(b: StoreBackend) {
    let (store, u, old, now) = member_with_session(&b).await;
    let (new, _) = session(&u.id, now + 1);
    store.session_insert(&new, Some(&old.id)).await.unwrap();
    assert_eq!(lookup(&store, &old, now + 1).await, None);
    assert_eq!(lookup(&store, &new, now + 1).await, Some(new.clone()));
    assert_eq!(
        store.sessions_of(&u.id, now + 1).await.unwrap(),
        vec![new.clone()]
    );
    assert_eq!(store.session_count(now + 1).await.unwrap(), 1);

    // A rotation that fails (token already in use) deletes nothing.
    let (other, _) = session(&u.id, now + 2);
    store.session_insert(&other, None).await.unwrap();
    let (mut clash, _) = session(&u.id, now + 3);
    clash.token_hash = other.token_hash.clone();
    let err = store
        .session_insert(&clash, Some(&new.id))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(lookup(&store, &new, now + 3).await, Some(new));
    assert_eq!(lookup(&store, &other, now + 3).await, Some(other));
}

async fn delete_one_and_delete_all(b: StoreBackend) {
    let (store, u, s1, now) = member_with_session(&b).await;
    let (s2, _) = session(&u.id, now + 1);
    let (s3, _) = session(&u.id, now + 2);
    store.session_insert(&s2, None).await.unwrap();
    store.session_insert(&s3, None).await.unwrap();
    let other = user("other@example.org", now);
    store.user_insert(&other).await.unwrap();
    let (theirs, _) = session(&other.id, now);
    store.session_insert(&theirs, None).await.unwrap();

    assert!(store.session_delete(&s1.id).await.unwrap());
    assert!(!store.session_delete(&s1.id).await.unwrap());
    assert_eq!(lookup(&store, &s1, now).await, None);

    assert_eq!(store.session_delete_all(&u.id).await.unwrap(), 2);
    assert_eq!(lookup(&store, &s2, now).await, None);
    assert_eq!(lookup(&store, &s3, now).await, None);
    assert!(store.sessions_of(&u.id, now).await.unwrap().is_empty());
    assert_eq!(store.session_delete_all(&u.id).await.unwrap(), 0);
    // Another member is not affected.
    assert_eq!(lookup(&store, &theirs, now).await, Some(theirs));
}

async fn sessions_of_is_oldest_first_and_skips_expired(b: StoreBackend) {
    let (store, u, middle, now) = member_with_session(&b).await;
    let (newest, _) = session(&u.id, now + 2000);
    let (mut oldest, _) = session(&u.id, now - 2000);
    oldest.idle_ms = MINUTE; // dies long before the others
    store.session_insert(&newest, None).await.unwrap();
    store.session_insert(&oldest, None).await.unwrap();
    let other = user("other@example.org", now);
    store.user_insert(&other).await.unwrap();
    store
        .session_insert(&session(&other.id, now).0, None)
        .await
        .unwrap();

    let all = store.sessions_of(&u.id, now).await.unwrap();
    assert_eq!(all, vec![oldest, middle.clone(), newest.clone()]);
    let later = store.sessions_of(&u.id, now + 2 * MINUTE).await.unwrap();
    assert_eq!(later, vec![middle, newest]);
    assert!(store
        .sessions_of(&u.id, now + ABSOLUTE + 2000)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .sessions_of(&UserId::random(), now)
        .await
        .unwrap()
        .is_empty());
}

async fn session_count_counts_valid_sessions_without_destroying_any(b: StoreBackend) {
    let (store, u, _s, now) = member_with_session(&b).await;
    let (mut short, _) = session(&u.id, now);
    short.idle_ms = MINUTE;
    store.session_insert(&short, None).await.unwrap();
    let other = user("other@example.org", now);
    store.user_insert(&other).await.unwrap();
    store
        .session_insert(&session(&other.id, now).0, None)
        .await
        .unwrap();

    let (ninety_s, fifty_s) = (now + 90_000, now + 50_000);
    assert_eq!(store.session_count(now).await.unwrap(), 3);
    assert_eq!(store.session_count(ninety_s).await.unwrap(), 2);
    assert_eq!(store.session_count(now + ABSOLUTE).await.unwrap(), 0);
    // Counting at a later instant must not have removed anything.
    assert_eq!(store.session_count(now).await.unwrap(), 3);
    // A touch moves a session's expiry in the count as well.
    assert!(store.session_touch(&short.id, fifty_s).await.unwrap());
    assert_eq!(store.session_count(ninety_s).await.unwrap(), 3);
}

async fn secret_first_writer_wins_across_instances(b: StoreBackend) {
    let (a, c) = (b.open(), b.open());
    let binary: Vec<u8> = (0..=255).collect();
    let (from_a, from_c) = tokio::join!(
        a.secret_get_or_init(&binary),
        c.secret_get_or_init(b"second candidate")
    );
    let (from_a, from_c) = (from_a.unwrap(), from_c.unwrap());
    assert_eq!(from_a, from_c, "both instances must share one secret");
    assert!(from_a == binary || from_a == b"second candidate");
    let third = b.open().secret_get_or_init(b"too late").await.unwrap();
    assert_eq!(third, from_a);
}

async fn sessions_are_shared_between_instances(b: StoreBackend) {
    let (gateway_a, u, s, now) = member_with_session(&b).await;
    let gateway_b = b.open();
    assert_eq!(gateway_b.user_by_id(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(lookup(&gateway_b, &s, now).await, Some(s.clone()));
    assert!(gateway_b.session_touch(&s.id, now + MINUTE).await.unwrap());
    let seen = lookup(&gateway_a, &s, now + MINUTE).await.unwrap();
    assert_eq!(seen.last_seen, now + MINUTE);

    // `vigile user revoke` from the admin CLI: a third store object.
    let cli = b.open();
    assert_eq!(cli.session_delete_all(&u.id).await.unwrap(), 1);
    assert_eq!(lookup(&gateway_a, &s, now + MINUTE).await, None);
    assert_eq!(gateway_b.session_count(now).await.unwrap(), 0);
}

async fn sweep_removes_what_expired(b: StoreBackend) {
    let (store, u, long, now) = member_with_session(&b).await;
    let (mut short, _) = session(&u.id, now);
    short.idle_ms = MINUTE;
    store.session_insert(&short, None).await.unwrap();

    assert_eq!(store.sweep(now).await.unwrap(), 0);
    assert_eq!(store.sweep(now + 2 * MINUTE).await.unwrap(), 1);
    assert_eq!(store.sweep(now + 2 * MINUTE).await.unwrap(), 0);
    // Removed for good, even when asked about an instant at which it was valid.
    assert_eq!(lookup(&store, &short, now).await, None);
    assert_eq!(
        store.sessions_of(&u.id, now).await.unwrap(),
        vec![long.clone()]
    );
    assert_eq!(store.session_count(now).await.unwrap(), 1);
    assert_eq!(store.sweep(now + ABSOLUTE).await.unwrap(), 1);
    assert_eq!(lookup(&store, &long, now).await, None);
}

async fn concurrent_writes_from_two_instances_all_succeed(b: StoreBackend) {
    let (a, u, _s, now) = member_with_session(&b).await;
    let c = b.open();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { c.clone() };
        let (s, _) = session(&u.id, now + i);
        tasks.spawn(async move {
            store.session_insert(&s, None).await.unwrap();
            assert!(store.session_touch(&s.id, now + MINUTE).await.unwrap());
            assert!(lookup(&store, &s, now + MINUTE).await.is_some());
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    assert_eq!(c.session_count(now + MINUTE).await.unwrap(), 41);
    assert_eq!(a.sessions_of(&u.id, now).await.unwrap().len(), 41);
}

// ---- Tokens ---------------------------------------------------------------------------

fn token(kind: TokenKind, subject: &str, expires_at: Millis) -> (TokenRecord, String) {
    let secret = SessionId::random().as_str().to_string();
    let record = TokenRecord {
        kind,
        hash: TokenHash::of(&secret),
        subject: subject.to_string(),
        bind: "fingerprint-é".to_string(),
        expires_at,
    };
    (record, secret)
}

async fn token_is_single_use_even_when_takes_race(b: StoreBackend) {
    let (a, c) = (b.open(), b.open());
    let now = real_now();
    for round in 0..5 {
        let (t, _) = token(TokenKind::Activation, &format!("user-{round}"), now + HOUR);
        a.token_insert(&t).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let store = if i % 2 == 0 { a.clone() } else { c.clone() };
            let hash = t.hash.clone();
            tasks.spawn(async move { store.token_take(TokenKind::Activation, &hash, now).await });
        }
        let mut winners = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            winners.extend(joined.unwrap().unwrap());
        }
        assert_eq!(
            winners,
            vec![t.clone()],
            "round {round}: exactly one take wins"
        );
        assert_eq!(
            a.token_peek(TokenKind::Activation, &t.hash, now)
                .await
                .unwrap(),
            None
        );
    }
}

async fn token_expires_at_the_now_passed_in(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let expires_at = now + 2 * DAY;
    let (t, _) = token(TokenKind::PasswordReset, "user-1", expires_at);
    store.token_insert(&t).await.unwrap();
    let kind = TokenKind::PasswordReset;
    assert_eq!(
        store
            .token_peek(kind, &t.hash, expires_at - 1)
            .await
            .unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        store.token_peek(kind, &t.hash, expires_at).await.unwrap(),
        None
    );
    // An expired take returns nothing and removes the token: gone even for an earlier now.
    assert_eq!(
        store.token_take(kind, &t.hash, expires_at).await.unwrap(),
        None
    );
    assert_eq!(store.token_peek(kind, &t.hash, now).await.unwrap(), None);
    assert_eq!(store.token_take(kind, &t.hash, now).await.unwrap(), None);

    // Sweep removes expired tokens only, and counts them.
    let (short, _) = token(kind, "user-2", now + HOUR);
    let (long, _) = token(kind, "user-3", now + DAY);
    store.token_insert(&short).await.unwrap();
    store.token_insert(&long).await.unwrap();
    assert_eq!(store.sweep(now + HOUR - 1).await.unwrap(), 0);
    assert_eq!(store.sweep(now + HOUR).await.unwrap(), 1);
    assert_eq!(
        store.token_peek(kind, &short.hash, now).await.unwrap(),
        None
    );
    assert_eq!(
        store.token_take(kind, &long.hash, now).await.unwrap(),
        Some(long)
    );
}

async fn token_peek_does_not_consume_and_kinds_are_separate(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let (t, secret) = token(TokenKind::Invite, "guest@example.org", now + DAY);
    store.token_insert(&t).await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            store
                .token_peek(TokenKind::Invite, &t.hash, now)
                .await
                .unwrap(),
            Some(t.clone())
        );
    }
    // The same secret under another kind is another token.
    for other in [TokenKind::Activation, TokenKind::PasswordReset] {
        assert_eq!(store.token_peek(other, &t.hash, now).await.unwrap(), None);
        assert_eq!(store.token_take(other, &t.hash, now).await.unwrap(), None);
    }
    let err = store.token_insert(&t).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let same_secret_other_kind = TokenRecord {
        kind: TokenKind::Activation,
        ..t.clone()
    };
    store.token_insert(&same_secret_other_kind).await.unwrap();
    assert_eq!(
        store
            .token_take(TokenKind::Invite, &TokenHash::of(&secret), now)
            .await
            .unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        store
            .token_peek(TokenKind::Activation, &t.hash, now)
            .await
            .unwrap(),
        Some(same_secret_other_kind)
    );
}

// ---- Outbox ---------------------------------------------------------------------------

fn mail(to: &str, now: Millis, next_attempt: Millis) -> OutboxMail {
    OutboxMail {
        id: OutboxMail::new_id(),
        channel: Channel::Email,
        kind: "activation".to_string(),
        to: to.to_string(),
        subject: "Activez votre compte — Vigile".to_string(),
        text: "Bonjour,\nhttps://example.org/_vigile/activate?token=abc\n".to_string(),
        html: "<p>Bonjour, <a href=\"https://example.org/\">activer</a></p>".to_string(),
        created_at: now,
        attempts: 0,
        next_attempt,
        last_error: None,
    }
}

async fn outbox_claim_leases_mails_until_the_lease_ends(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let lease = 5 * MINUTE;
    let first = mail("a@example.org", now, now - 2000);
    let second = mail("b@example.org", now, now - 1000);
    let later = mail("c@example.org", now, now + HOUR);
    for m in [&later, &second, &first] {
        store.outbox_push(m).await.unwrap();
    }
    let err = store.outbox_push(&first).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert!(store
        .outbox_claim(Channel::Email, now, lease, 0)
        .await
        .unwrap()
        .is_empty());

    // Earliest due first, up to the limit, with their next_attempt moved to the lease end.
    let claimed = store
        .outbox_claim(Channel::Email, now, lease, 1)
        .await
        .unwrap();
    let leased = |m: &OutboxMail, at: Millis| OutboxMail {
        next_attempt: at + lease,
        ..m.clone()
    };
    assert_eq!(claimed, vec![leased(&first, now)]);
    let claimed = store
        .outbox_claim(Channel::Email, now, lease, 10)
        .await
        .unwrap();
    assert_eq!(claimed, vec![leased(&second, now)]);
    // Leased: nobody gets them again before the lease ends, and `later` is not due.
    assert!(store
        .outbox_claim(Channel::Email, now + lease - 1, lease, 10)
        .await
        .unwrap()
        .is_empty());
    // A sender that died mid-send: the mails come back by themselves.
    let again = store
        .outbox_claim(Channel::Email, now + lease, lease, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = again.iter().map(|m| m.id.as_str()).collect();
    let mut expected = [first.id.as_str(), second.id.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "equal due instants are ordered by id");
    assert!(again
        .iter()
        .all(|m| m.next_attempt == now + 2 * lease && m.attempts == 0));
    // Sent: gone for good.
    for m in [&first, &second] {
        assert!(store.outbox_done(&m.id).await.unwrap());
    }
    let due_later = store
        .outbox_claim(Channel::Email, now + HOUR, lease, 10)
        .await
        .unwrap();
    assert_eq!(due_later, vec![leased(&later, now + HOUR)]);
}

async fn outbox_retry_done_and_list_order(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let a = mail("a@example.org", now, now);
    let c = mail("c@example.org", now, now + 2);
    let d = mail("d@example.org", now, now + 1);
    for m in [&a, &c, &d] {
        store.outbox_push(m).await.unwrap();
    }
    assert_eq!(
        store.outbox_list().await.unwrap(),
        vec![a.clone(), d.clone(), c.clone()]
    );

    let claimed = store
        .outbox_claim(Channel::Email, now, MINUTE, 1)
        .await
        .unwrap();
    assert_eq!(claimed[0].id, a.id);
    assert!(store
        .outbox_retry(&a.id, now + 10 * MINUTE, "421 try again later")
        .await
        .unwrap());
    assert!(store
        .outbox_retry(&a.id, now + 20 * MINUTE, "connection refused")
        .await
        .unwrap());
    let retried = OutboxMail {
        attempts: 2,
        next_attempt: now + 20 * MINUTE,
        last_error: Some("connection refused".to_string()),
        ..a.clone()
    };
    assert_eq!(
        store.outbox_list().await.unwrap(),
        vec![d.clone(), c.clone(), retried.clone()]
    );
    // Not due before its new next_attempt.
    let due = store
        .outbox_claim(Channel::Email, now + 20 * MINUTE - 1, MINUTE, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|m| m.id != a.id));

    assert!(store.outbox_done(&d.id).await.unwrap());
    assert!(!store.outbox_done(&d.id).await.unwrap());
    assert!(!store.outbox_retry(&d.id, now, "gone").await.unwrap());
    assert!(store.outbox_done(&c.id).await.unwrap());
    assert_eq!(store.outbox_list().await.unwrap(), vec![retried.clone()]);
    // The outbox is durable: sweep never touches it.
    store.sweep(now + 1000 * DAY).await.unwrap();
    assert_eq!(store.outbox_list().await.unwrap(), vec![retried]);
}

async fn outbox_two_instances_never_claim_the_same_mail(b: StoreBackend) {
    let (a, c) = (b.open(), b.open());
    let now = real_now();
    let mut pushed = Vec::new();
    for i in 0..60 {
        let m = mail(&format!("m{i}@example.org"), now, now - 60 + i);
        a.outbox_push(&m).await.unwrap();
        pushed.push(m.id);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let store = if i % 2 == 0 { a.clone() } else { c.clone() };
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .outbox_claim(Channel::Email, now, HOUR, 4)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|m| m.id));
            }
        });
    }
    let mut claimed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        claimed.extend(joined.unwrap());
    }
    claimed.sort();
    pushed.sort();
    assert_eq!(claimed, pushed, "every mail claimed exactly once");
}

/// A mail refused for good leaves the waiting mails at once (never claimed again), is
/// listed apart without its bodies, and is purged by `sweep` `FAILED_KEEP_MS` later.
async fn outbox_failed_mails_are_kept_apart_then_purged(b: StoreBackend) {
    let (store, other) = (b.open(), b.open());
    let now = real_now();
    let (a, c, d) = (
        mail("a@example.org", now, now),
        mail("c@example.org", now, now),
        mail("d@example.org", now, now + 1),
    );
    for m in [&a, &c, &d] {
        store.outbox_push(m).await.unwrap();
    }
    let claimed = store
        .outbox_claim(Channel::Email, now, MINUTE, 2)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(store
        .outbox_retry(&a.id, now, "421 try later")
        .await
        .unwrap());
    assert!(store
        .outbox_fail(&a.id, now + 10, "550 5.1.1 no such user")
        .await
        .unwrap());
    assert!(other
        .outbox_fail(&c.id, now + 20, "553 mailbox name not allowed")
        .await
        .unwrap());
    assert!(!store.outbox_fail(&a.id, now + 30, "again").await.unwrap());
    assert!(!store.outbox_fail("nope", now, "x").await.unwrap());

    // Gone from the waiting mails: not listed, never claimed, whatever the instant.
    assert_eq!(store.outbox_list().await.unwrap(), vec![d.clone()]);
    let later = store
        .outbox_claim(Channel::Email, now + DAY, MINUTE, 10)
        .await
        .unwrap();
    assert_eq!(later.iter().map(|m| &m.id).collect::<Vec<_>>(), vec![&d.id]);
    assert!(!store.outbox_done(&a.id).await.unwrap());
    assert!(!store.outbox_retry(&a.id, now, "e").await.unwrap());

    let failed = |m: &OutboxMail, attempts, at, error: &str| FailedMail {
        id: m.id.clone(),
        kind: m.kind.clone(),
        to: m.to.clone(),
        subject: m.subject.clone(),
        created_at: m.created_at,
        attempts,
        failed_at: at,
        last_error: error.to_string(),
    };
    let both = vec![
        failed(&c, 1, now + 20, "553 mailbox name not allowed"),
        failed(&a, 2, now + 10, "550 5.1.1 no such user"),
    ];
    assert_eq!(other.outbox_failed(10).await.unwrap(), both, "newest first");
    assert_eq!(store.outbox_failed(1).await.unwrap(), both[..1].to_vec());
    assert!(store.outbox_failed(0).await.unwrap().is_empty());

    // Kept through sweeps until FAILED_KEEP_MS after failing, then purged (one record each).
    store.sweep(now + 10 + FAILED_KEEP_MS - 1).await.unwrap();
    assert_eq!(store.outbox_failed(10).await.unwrap(), both);
    assert_eq!(store.sweep(now + 10 + FAILED_KEEP_MS).await.unwrap(), 1);
    assert_eq!(store.outbox_failed(10).await.unwrap(), both[..1].to_vec());
    assert_eq!(store.sweep(now + 20 + FAILED_KEEP_MS).await.unwrap(), 1);
    assert!(store.outbox_failed(10).await.unwrap().is_empty());
    assert_eq!(
        store.outbox_list().await.unwrap(),
        vec![OutboxMail {
            next_attempt: now + DAY + MINUTE,
            ..d
        }]
    );
}

// ---- Counters -------------------------------------------------------------------------

async fn counters_count_per_fixed_window(b: StoreBackend) {
    let (a, c) = (b.open(), b.open());
    let window = 10 * MINUTE;
    let start = real_now() / window * window + window;
    let ip = "2001:db8::7";
    let scope = CounterScope::FormsPerIp;
    assert_eq!(a.counter_hit(scope, ip, window, start).await.unwrap(), 1);
    assert_eq!(
        c.counter_hit(scope, ip, window, start + 1).await.unwrap(),
        2
    );
    assert_eq!(
        a.counter_hit(scope, ip, window, start + window - 1)
            .await
            .unwrap(),
        3
    );
    // Other subjects and scopes count apart.
    assert_eq!(
        a.counter_hit(scope, "192.0.2.1", window, start)
            .await
            .unwrap(),
        1
    );
    let mails = CounterScope::MailsPerAddress;
    assert_eq!(a.counter_hit(mails, ip, window, start).await.unwrap(), 1);
    // A new window starts from zero.
    assert_eq!(
        c.counter_hit(scope, ip, window, start + window)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        a.counter_hit(scope, ip, window, start + window + 5)
            .await
            .unwrap(),
        2
    );

    // Concurrent hits are all counted.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { c.clone() };
        tasks.spawn(async move {
            store
                .counter_hit(scope, "burst", window, start + 3 * window)
                .await
                .unwrap()
        });
    }
    let mut seen = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        seen.push(joined.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());

    // Counters live no longer than their window: 3 counters of the first window, 1 of
    // the second, 1 of the fourth.
    assert_eq!(a.sweep(start + window - 1).await.unwrap(), 0);
    assert_eq!(a.sweep(start + window).await.unwrap(), 3);
    assert_eq!(a.sweep(start + 4 * window).await.unwrap(), 2);
}

// ---- Sign-up accounts -----------------------------------------------------------------

fn pending(email: &str, now: Millis) -> User {
    User {
        status: AccountStatus::Pending,
        ..user(email, now)
    }
}

async fn pending_account_is_replaced_by_a_new_sign_up_not_over_an_active_one(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let expires_at = now + 7 * DAY;
    let first = pending("new@example.org", now);
    store.user_insert_pending(&first, expires_at).await.unwrap();
    assert_eq!(
        store.user_by_email("new@example.org").await.unwrap(),
        Some(first.clone())
    );
    let (s, _) = session(&first.id, now);
    store.session_insert(&s, None).await.unwrap();

    // Signing up again replaces the pending account, with its sessions.
    let second = pending("new@example.org", now + 1);
    store
        .user_insert_pending(&second, expires_at + 1)
        .await
        .unwrap();
    assert_eq!(store.user_by_id(&first.id).await.unwrap(), None);
    assert_eq!(
        store.user_by_email("new@example.org").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(lookup(&store, &s, now).await, None);
    assert_eq!(store.user_list().await.unwrap(), vec![second.clone()]);

    // A new sign-up whose id is taken by another address changes nothing.
    let mut clash = pending("new@example.org", now + 2);
    let other = user("other@example.org", now);
    store.user_insert(&other).await.unwrap();
    clash.id = other.id.clone();
    let err = store
        .user_insert_pending(&clash, expires_at)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(
        store.user_by_email("new@example.org").await.unwrap(),
        Some(second)
    );

    // An active account is never replaced, and plain inserts do not replace sign-ups.
    let err = store
        .user_insert_pending(&pending("other@example.org", now), expires_at)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(
        store.user_by_email("other@example.org").await.unwrap(),
        Some(other)
    );
    let err = store
        .user_insert(&user("new@example.org", now))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
}

async fn activation_makes_a_pending_account_permanent(b: StoreBackend) {
    let (a, c) = (b.open(), b.open());
    let now = real_now();
    let expires_at = now + 7 * DAY;
    let u = pending("new@example.org", now);
    a.user_insert_pending(&u, expires_at).await.unwrap();
    assert!(c.user_activate(&u.id, now + 1).await.unwrap());
    assert!(
        !a.user_activate(&u.id, now + 2).await.unwrap(),
        "not pending any more"
    );
    assert!(!a.user_activate(&UserId::random(), now).await.unwrap());
    // The activation link proved the address.
    let mut active = User {
        status: AccountStatus::Active,
        ..u.clone()
    };
    active.contact.email_confirmed = Some(vigile::store::Confirmed {
        at: now + 1,
        via: vigile::store::Via::Activation,
    });
    assert_eq!(a.user_by_id(&u.id).await.unwrap(), Some(active.clone()));

    assert_eq!(a.sweep(expires_at + 1000 * DAY).await.unwrap(), 0);
    assert_eq!(
        a.user_by_email("new@example.org").await.unwrap(),
        Some(active.clone())
    );
    assert_eq!(a.user_list().await.unwrap(), vec![active]);
    // Now active: a new sign-up for the address is refused.
    let err = a
        .user_insert_pending(&pending("new@example.org", now), expires_at)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    // An account created active was never pending.
    let direct = user("direct@example.org", now);
    a.user_insert(&direct).await.unwrap();
    assert!(!a.user_activate(&direct.id, 0).await.unwrap());
}

async fn sweep_removes_expired_sign_ups_and_frees_their_address(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let expires_at = now + 7 * DAY;
    let u = pending("late@example.org", now);
    store.user_insert_pending(&u, expires_at).await.unwrap();
    let (s, _) = session(&u.id, now);
    store.session_insert(&s, None).await.unwrap();
    let member = user("member@example.org", now);
    store.user_insert(&member).await.unwrap();

    assert_eq!(store.sweep(now).await.unwrap(), 0);
    // At expires_at: the session had died long before (1 record), then the account.
    assert_eq!(store.sweep(expires_at - 1).await.unwrap(), 1);
    assert!(store.user_by_id(&u.id).await.unwrap().is_some());
    assert_eq!(store.sweep(expires_at).await.unwrap(), 1);
    assert_eq!(store.user_by_id(&u.id).await.unwrap(), None);
    assert_eq!(store.user_by_email("late@example.org").await.unwrap(), None);
    assert_eq!(store.user_list().await.unwrap(), vec![member.clone()]);
    assert_eq!(store.sweep(expires_at).await.unwrap(), 0);

    // The address is free again, for a sign-up or an account created directly.
    let again = pending("late@example.org", expires_at);
    store
        .user_insert_pending(&again, expires_at + 7 * DAY)
        .await
        .unwrap();
    assert!(store.user_delete(&again.id).await.unwrap());
    let direct = user("late@example.org", expires_at);
    store.user_insert(&direct).await.unwrap();
    assert_eq!(store.user_list().await.unwrap(), vec![direct, member]);

    // A pending account's live sessions are removed with it, and counted.
    let v = pending("vanishing@example.org", now);
    store.user_insert_pending(&v, now + HOUR).await.unwrap();
    let (live, _) = session(&v.id, now + HOUR - MINUTE);
    store.session_insert(&live, None).await.unwrap();
    assert_eq!(store.sweep(now + HOUR).await.unwrap(), 2);
    assert_eq!(lookup(&store, &live, now + HOUR - MINUTE).await, None);
}

async fn set_password_replaces_the_hash_and_keeps_a_sign_up_expiring(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let member = user("member@example.org", now);
    store.user_insert(&member).await.unwrap();
    let new_hash = "$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3aGFzaA";
    assert!(store.user_set_password(&member.id, new_hash).await.unwrap());
    let expected = User {
        password_hash: new_hash.to_string(),
        ..member.clone()
    };
    assert_eq!(
        store.user_by_id(&member.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.user_by_email("member@example.org").await.unwrap(),
        Some(expected)
    );
    assert!(!store
        .user_set_password(&UserId::random(), new_hash)
        .await
        .unwrap());

    let expires_at = now + DAY;
    let p = pending("pending@example.org", now);
    store.user_insert_pending(&p, expires_at).await.unwrap();
    assert!(store.user_set_password(&p.id, new_hash).await.unwrap());
    let found = store.user_by_id(&p.id).await.unwrap().unwrap();
    assert_eq!(found.password_hash, new_hash);
    assert_eq!(found.status, AccountStatus::Pending);
    assert_eq!(store.sweep(expires_at).await.unwrap(), 1);
    assert_eq!(store.user_by_id(&p.id).await.unwrap(), None);
}

async fn set_profile_replaces_name_and_language_and_nothing_else(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let member = user("member@example.org", now);
    store.user_insert(&member).await.unwrap();
    assert!(store
        .user_set_profile(&member.id, "Zoé d'Arc", Some("fr"))
        .await
        .unwrap());
    let expected = User {
        name: "Zoé d'Arc".into(),
        lang: Some("fr".into()),
        ..member.clone()
    };
    assert_eq!(
        store.user_by_email("member@example.org").await.unwrap(),
        Some(expected.clone())
    );
    // No language: the browser's decides again.
    assert!(store
        .user_set_profile(&member.id, "Zoé d'Arc", None)
        .await
        .unwrap());
    assert_eq!(
        store.user_by_id(&member.id).await.unwrap(),
        Some(User {
            lang: None,
            ..expected
        })
    );
    assert!(!store
        .user_set_profile(&UserId::random(), "Nobody", Some("en"))
        .await
        .unwrap());
}

async fn user_delete_removes_the_account_its_address_and_its_sessions(b: StoreBackend) {
    let (store, u, s1, now) = member_with_session(&b).await;
    let (s2, _) = session(&u.id, now + 1);
    store.session_insert(&s2, None).await.unwrap();
    let other = user("other@example.org", now);
    store.user_insert(&other).await.unwrap();
    let (theirs, _) = session(&other.id, now);
    store.session_insert(&theirs, None).await.unwrap();

    assert!(b.open().user_delete(&u.id).await.unwrap());
    assert!(!store.user_delete(&u.id).await.unwrap());
    assert_eq!(store.user_by_id(&u.id).await.unwrap(), None);
    assert_eq!(store.user_by_email(&u.email).await.unwrap(), None);
    assert_eq!(store.user_list().await.unwrap(), vec![other.clone()]);
    assert_eq!(lookup(&store, &s1, now).await, None);
    assert_eq!(lookup(&store, &s2, now).await, None);
    assert!(store.sessions_of(&u.id, now).await.unwrap().is_empty());
    assert_eq!(store.session_count(now).await.unwrap(), 1);
    assert_eq!(lookup(&store, &theirs, now).await, Some(theirs));
    // The address can be used again.
    store.user_insert(&user(&u.email, now)).await.unwrap();
}

// ---- Redis only: what is specific to the shared backend -------------------------------

/// Redis dying makes calls fail fast with `Unavailable`; Redis coming back is picked up
/// without recreating the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_then_recovers_by_itself() {
    let mut server = RedisServer::start().await;
    let store = RedisStore::connect_lazy(&server.url(), false).unwrap();
    let store: DynStore = std::sync::Arc::new(store);
    store.ping().await.unwrap();

    server.stop();
    // A refused connection must be reported well within the store's own deadline.
    let bound = Duration::from_secs(2);
    for _ in 0..3 {
        let result = tokio::time::timeout(bound, store.ping())
            .await
            .expect("ping hung");
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        let now = real_now();
        let hash = TokenHash::of("x");
        let lookup = tokio::time::timeout(bound, store.session_by_token(&hash, now)).await;
        let lookup = lookup.expect("lookup hung");
        assert!(
            matches!(lookup, Err(StoreError::Unavailable(_))),
            "{lookup:?}"
        );
    }

    server.start_again().await;
    crate::common::poll_until("the store to reconnect", 200, || {
        let store = store.clone();
        async move { store.ping().await.is_ok() }
    })
    .await;
    // Scripts are reloaded transparently on the fresh (empty) server.
    let now = real_now();
    let u = user("back@example.org", now);
    store.user_insert(&u).await.unwrap();
    assert_eq!(store.user_by_email(&u.email).await.unwrap(), Some(u));
}

/// Keys are namespaced and sessions carry their expiry as a TTL, so Redis drops them by
/// itself even if no sweep ever runs; the shared buckets indexing them have none (their
/// entries go with the session, or with the sweep: `store_redis_layout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_are_namespaced_and_sessions_expire_by_ttl() {
    let b = StoreBackend::redis().await;
    let StoreBackend::Redis(server) = &b else {
        unreachable!()
    };
    let (store, u, s, now) = member_with_session(&b).await;
    store.secret_get_or_init(b"secret").await.unwrap();

    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(key.starts_with(NAMESPACE), "{key} is outside the namespace");
    }

    let pttl = |key: String| {
        let mut conn = conn.clone();
        async move {
            let ms: i64 = ::redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            ms
        }
    };
    let ttl = pttl(Key::Session(&s.id).name()).await;
    assert!(ttl > IDLE - MINUTE && ttl <= IDLE, "session PTTL {ttl}");
    assert!(store.session_touch(&s.id, now + 10 * MINUTE).await.unwrap());
    let ttl = pttl(Key::Session(&s.id).name()).await;
    assert!(
        ttl > IDLE + 9 * MINUTE,
        "touch must extend the TTL (PTTL {ttl})"
    );
    for key in [
        Key::SessionTokens(&s.token_hash).name(),
        Key::SessionMembers(&u.id).name(),
    ] {
        assert_eq!(pttl(key.clone()).await, -1, "{key} is shared: no TTL");
    }
}

/// A sign-up's keys carry its expiry as a TTL (so Redis drops an abandoned one by
/// itself), activation makes them permanent; tokens and counters carry theirs; the
/// outbox never expires. Every key stays in the namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sign_ups_tokens_and_counters_expire_by_ttl() {
    let server = RedisServer::start().await;
    let store: DynStore =
        std::sync::Arc::new(RedisStore::connect_lazy(&server.url(), false).unwrap());
    let client = ::redis::Client::open(server.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl = |key: String| {
        let mut conn = conn.clone();
        async move {
            let ms: i64 = ::redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            ms
        }
    };

    let now = real_now();
    let u = pending("new@example.org", now);
    store.user_insert_pending(&u, now + DAY).await.unwrap();
    for key in [Key::User(&u.id).name(), Key::UserEmail(&u.email).name()] {
        let ttl = pttl(key.clone()).await;
        assert!(ttl > DAY - MINUTE && ttl <= DAY, "{key}: PTTL {ttl}");
    }
    // Changing the password keeps the sign-up's expiry.
    store
        .user_set_password(&u.id, "$argon2id$other")
        .await
        .unwrap();
    assert!(pttl(Key::User(&u.id).name()).await > DAY - MINUTE);
    assert!(store.user_activate(&u.id, 0).await.unwrap());
    for key in [Key::User(&u.id).name(), Key::UserEmail(&u.email).name()] {
        assert_eq!(pttl(key.clone()).await, -1, "{key} must be permanent");
    }

    let (t, _) = token(TokenKind::Activation, u.id.as_str(), now + HOUR);
    store.token_insert(&t).await.unwrap();
    let ttl = pttl(Key::Token(TokenKind::Activation, &t.hash).name()).await;
    assert!(ttl > HOUR - MINUTE && ttl <= HOUR, "token PTTL {ttl}");

    let window = HOUR;
    let start = now / window * window;
    store
        .counter_hit(CounterScope::MailsPerAddress, &u.email, window, now)
        .await
        .unwrap();
    let key = Key::Counter(CounterScope::MailsPerAddress, &u.email, start).name();
    let ttl = pttl(key).await;
    assert!(ttl > 0 && ttl <= start + window - now, "counter PTTL {ttl}");

    let m = mail(&u.email, now, now);
    store.outbox_push(&m).await.unwrap();
    assert_eq!(pttl(Key::OutboxMail(&m.id).name()).await, -1);

    let mut conn = conn.clone();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.len() >= 8, "{keys:?}");
    for key in &keys {
        assert!(key.starts_with(NAMESPACE), "{key} is outside the namespace");
    }
}

/// A sign-up that Redis already dropped by TTL leaves its id in the user set until the
/// sweep: listing skips it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_user_list_skips_sign_ups_dropped_by_ttl() {
    let server = RedisServer::start().await;
    let store: DynStore =
        std::sync::Arc::new(RedisStore::connect_lazy(&server.url(), false).unwrap());
    let now = real_now();
    let member = user("member@example.org", now);
    store.user_insert(&member).await.unwrap();
    // Already past by Redis's clock: PEXPIREAT drops the keys at once.
    let gone = pending("gone@example.org", now - DAY);
    store.user_insert_pending(&gone, now - HOUR).await.unwrap();
    assert_eq!(store.user_by_id(&gone.id).await.unwrap(), None);
    assert_eq!(store.user_list().await.unwrap(), vec![member.clone()]);
    // The sweep removes what is left of it (its index entries) and counts the account.
    assert_eq!(store.sweep(now).await.unwrap(), 1);
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let members: Vec<String> = ::redis::cmd("SMEMBERS")
        .arg(Key::Users.name())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members, vec![member.id.as_str().to_string()]);
    // And the address is free for a new sign-up.
    store
        .user_insert_pending(&pending("gone@example.org", now), now + DAY)
        .await
        .unwrap();
}

async fn attempts_count_until_cleared_per_address_and_device(b: StoreBackend) {
    let store = b.open();
    let (ann, bob) = ("ann@example.org", "bob@example.org");
    let laptop = DeviceId::random();
    for n in 1..=3 {
        assert_eq!(
            store
                .attempt_begin(AttemptKey::Account(ann), real_now())
                .await
                .unwrap(),
            n
        );
    }
    assert_eq!(
        store
            .attempt_begin(AttemptKey::Device(ann, &laptop), real_now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .attempt_begin(AttemptKey::Account(bob), real_now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.attempts_of(AttemptKey::Account(ann)).await.unwrap(),
        3
    );
    store
        .attempts_clear(AttemptKey::Account(ann))
        .await
        .unwrap();
    assert_eq!(
        store.attempts_of(AttemptKey::Account(ann)).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .attempts_of(AttemptKey::Device(ann, &laptop))
            .await
            .unwrap(),
        1
    );
    store
        .attempt_begin(AttemptKey::Account(ann), real_now())
        .await
        .unwrap();
    assert_eq!(store.attempts_clear_all(ann).await.unwrap(), 2);
    assert_eq!(
        store
            .attempts_of(AttemptKey::Device(ann, &laptop))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.attempts_of(AttemptKey::Account(bob)).await.unwrap(),
        1,
        "others untouched"
    );
}

async fn attempts_from_two_instances_are_all_counted(b: StoreBackend) {
    let (a, c) = (b.open(), b.open());
    let mut tasks = vec![];
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { c.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .attempt_begin(AttemptKey::Account("ann@example.org"), real_now())
                .await
                .unwrap()
        }));
    }
    let mut counts = vec![];
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<u64>>());
}

async fn known_devices_are_remembered_and_go_with_the_account(b: StoreBackend) {
    let store = b.open();
    let u = user("ann@example.org", real_now());
    store.user_insert(&u).await.unwrap();
    let (laptop, phone) = (DeviceId::random(), DeviceId::random());
    store.device_remember(&u.id, &laptop).await.unwrap();
    store.device_remember(&u.id, &laptop).await.unwrap();
    assert!(store.device_known(&u.id, &laptop).await.unwrap());
    assert!(!store.device_known(&u.id, &phone).await.unwrap());
    assert!(store.user_delete(&u.id).await.unwrap());
    assert!(!store.device_known(&u.id, &laptop).await.unwrap());
}

fn ip_rule() -> IpRule {
    IpRule {
        max: 3,
        window_ms: 10 * MINUTE,
        block_ms: 15 * MINUTE,
        max_block_ms: 40 * MINUTE,
    }
}

async fn ip_window_blocks_beyond_max_and_refuses_during_the_block(b: StoreBackend) {
    let store = b.open();
    let (rule, ip, now) = (ip_rule(), "2001:db8::9", real_now());
    for n in 1..=3 {
        assert_eq!(
            store.ip_attempt(ip, &rule, now + n).await.unwrap(),
            Ok(n as u64)
        );
    }
    let until = now + 4 + 15 * MINUTE;
    assert_eq!(
        store.ip_attempt(ip, &rule, now + 4).await.unwrap(),
        Err(until)
    );
    assert_eq!(
        store.ip_attempt(ip, &rule, now + 5).await.unwrap(),
        Err(until),
        "refused, not counted"
    );
    assert_eq!(
        store.ip_blocked_until(ip, until - 1).await.unwrap(),
        Some(until)
    );
    assert_eq!(
        store.ip_blocked_until(ip, until).await.unwrap(),
        None,
        "ends at until"
    );
    assert_eq!(
        store.ip_blocked_until("192.0.2.1", now).await.unwrap(),
        None
    );
    // After the block, a fresh window.
    assert_eq!(store.ip_attempt(ip, &rule, until).await.unwrap(), Ok(1));
    // A window that ended starts over.
    let other = "192.0.2.2";
    store.ip_attempt(other, &rule, now).await.unwrap().unwrap();
    store.ip_attempt(other, &rule, now).await.unwrap().unwrap();
    assert_eq!(
        store
            .ip_attempt(other, &rule, now + 10 * MINUTE)
            .await
            .unwrap(),
        Ok(1)
    );
}

async fn ip_blocks_double_within_a_day_and_reset_after(b: StoreBackend) {
    let store = b.open();
    let (rule, ip, now) = (ip_rule(), "192.0.2.3", real_now());
    let first = store.ip_block(ip, &rule, now).await.unwrap();
    assert_eq!(first, now + 15 * MINUTE);
    assert_eq!(
        store.ip_block(ip, &rule, now + 1).await.unwrap(),
        first,
        "already blocked"
    );
    let second = store.ip_block(ip, &rule, first).await.unwrap();
    assert_eq!(second, first + 30 * MINUTE);
    let third = store.ip_block(ip, &rule, second).await.unwrap();
    assert_eq!(third, second + 40 * MINUTE, "capped");
    // More than a day after the last block ended: back to the first length.
    let later = third + 24 * 60 * MINUTE;
    assert_eq!(
        store.ip_block(ip, &rule, later).await.unwrap(),
        later + 15 * MINUTE
    );
}

async fn ip_refund_unblock_and_sweep(b: StoreBackend) {
    let store = b.open();
    let (rule, ip, now) = (ip_rule(), "192.0.2.4", real_now());
    store.ip_attempt(ip, &rule, now).await.unwrap().unwrap();
    store.ip_attempt(ip, &rule, now).await.unwrap().unwrap();
    store.ip_refund(ip).await.unwrap();
    assert_eq!(
        store.ip_attempt(ip, &rule, now).await.unwrap(),
        Ok(2),
        "a success was taken back"
    );
    store.ip_block(ip, &rule, now).await.unwrap();
    assert!(store.ip_unblock(ip, now).await.unwrap());
    assert!(!store.ip_unblock(ip, now).await.unwrap());
    assert_eq!(store.ip_blocked_until(ip, now).await.unwrap(), None);
    // History forgotten: the next block is a first one again.
    assert_eq!(
        store.ip_block(ip, &rule, now).await.unwrap(),
        now + 15 * MINUTE
    );
    // Once the block and its repeat memory are over, sweep forgets the address.
    let far = now + 3 * 24 * 60 * MINUTE;
    assert!(store.sweep(far).await.unwrap() >= 1);
    assert_eq!(
        store.ip_block(ip, &rule, far).await.unwrap(),
        far + 15 * MINUTE
    );
}

async fn ip_bursts_from_two_instances_never_pass_more_than_max(b: StoreBackend) {
    let (a, c) = (b.open(), b.open());
    let now = real_now();
    let mut tasks = vec![];
    for i in 0..30 {
        let store = if i % 2 == 0 { a.clone() } else { c.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .ip_attempt("192.0.2.5", &ip_rule(), now)
                .await
                .unwrap()
        }));
    }
    let mut passed = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            passed += 1;
        }
    }
    assert_eq!(passed, 3);
}

async fn attempts_are_forgotten_a_month_after_the_last_one(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let month = 30 * 24 * 60 * MINUTE;
    let laptop = DeviceId::random();
    store
        .attempt_begin(AttemptKey::Account("a@example.org"), now)
        .await
        .unwrap();
    store
        .attempt_begin(AttemptKey::Device("a@example.org", &laptop), now + 10)
        .await
        .unwrap();
    store
        .attempt_begin(AttemptKey::Account("b@example.org"), now + month)
        .await
        .unwrap();
    store.sweep(now + month + 9).await.unwrap();
    assert_eq!(
        store
            .attempts_of(AttemptKey::Account("a@example.org"))
            .await
            .unwrap(),
        1,
        "not yet"
    );
    store.sweep(now + month + 10).await.unwrap();
    assert_eq!(
        store
            .attempts_of(AttemptKey::Account("a@example.org"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .attempts_of(AttemptKey::Device("a@example.org", &laptop))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .attempts_of(AttemptKey::Account("b@example.org"))
            .await
            .unwrap(),
        1
    );
}
