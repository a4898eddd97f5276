//! Records the store contract tests plant directly in a store, and the clock they start
//! from: the real one, because Redis also expires keys by its own clock.

use std::time::{SystemTime, UNIX_EPOCH};

use vigile::store::shard::Shard;
use vigile::store::AccountStatus;
use vigile::store::{DeviceId, Millis, SessionId, SessionRecord, TokenHash, User, UserId};

use super::consts::MINUTE;

/// Idle timeout of a [`session`].
pub const IDLE: Millis = 30 * MINUTE;
/// Lifetime of a [`session`], whatever its activity.
pub const ABSOLUTE: Millis = 8 * 60 * MINUTE;

pub fn real_now() -> Millis {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Millis::try_from(since.as_millis()).unwrap()
}

pub fn user(email: &str, now: Millis) -> User {
    User {
        // As Vigile draws it: in its address's shard (`store::shard`).
        id: UserId::for_address(email),
        email: email.to_string(),
        name: format!("Name of {email}"),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_string(),
        admin: email.starts_with("admin"),
        status: AccountStatus::Active,
        lang: Some("fr".to_string()),
        created_at: now,
        org: None,
        // An admin-made account with a known-good address (recovery mails reach it).
        contact: vigile::store::Contact::email_proved(now, vigile::store::Via::Admin),
    }
}

/// A session created at `at`, and the cookie token it answers to.
pub fn session(user: &UserId, at: Millis) -> (SessionRecord, String) {
    // As `new_session` draws them: in the member's shard.
    let shard = Shard::of_user(user);
    let token = vigile::store::shard::token_in(shard, 16);
    let record = SessionRecord {
        id: SessionId::random_in(shard),
        token_hash: TokenHash::of(&token),
        user_id: user.clone(),
        device_id: DeviceId::random(),
        created_at: at,
        last_seen: at,
        idle_ms: IDLE,
        absolute_expiry: at + ABSOLUTE,
        ip: "192.0.2.7".to_string(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0 — é".to_string(),
        level: Default::default(),
    };
    (record, token)
}
