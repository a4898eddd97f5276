//! The only place Redis key names are spelled (after rauthy's `enum Cache`).
//!
//! Every key lives under `vigile:` so a Redis shared with other applications stays
//! tidy, and a glance at `redis-cli --scan --pattern 'vigile:*'` shows the whole layout.
//! Code elsewhere must never `format!` a key: it asks [`Key`] for it. Lua scripts that
//! derive a key from a value they read (a session's `user_id`, say) receive the matching
//! [`Prefix`] as an argument, so the spelling still comes from here.
//!
//! Layout:
//! - `vigile:secret`: the gateway secret (bytes).
//! - `vigile:user:{user_id}`: a [`super::User`] as JSON.
//! - `vigile:user_email:{email}`: the user id owning that (normalised) email.
//! - `vigile:users`: set of every user id (for `user_list`).
//! - `vigile:session:{session_id}`: hash of one session's fields; its TTL is the
//!   session's expiry.
//! - `vigile:session_token:{token_hash}`: the session id for a cookie token hash; same TTL.
//! - `vigile:user_sessions:{user_id}`: sorted set of a member's session ids, scored by
//!   their absolute expiry (the key itself expires with the last of them).
//! - `vigile:session_expiry`: sorted set of every session id scored by its current
//!   expiry, for an O(log n) `session_count` and for `sweep`.

use super::{SessionId, TokenHash, UserId};

/// Common prefix of every key Vigile writes.
pub const NAMESPACE: &str = "vigile:";

/// Prefixes of the per-record keys, for Lua scripts that build keys from values they
/// read. `Prefix::X.as_str() + id` is exactly what [`Key`] produces for the same record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    User,
    UserEmail,
    Session,
    SessionToken,
    UserSessions,
}

impl Prefix {
    pub const fn as_str(self) -> &'static str {
        match self {
            Prefix::User => "vigile:user:",
            Prefix::UserEmail => "vigile:user_email:",
            Prefix::Session => "vigile:session:",
            Prefix::SessionToken => "vigile:session_token:",
            Prefix::UserSessions => "vigile:user_sessions:",
        }
    }

    fn with(self, suffix: &str) -> String {
        let prefix = self.as_str();
        let mut key = String::with_capacity(prefix.len() + suffix.len());
        key.push_str(prefix);
        key.push_str(suffix);
        key
    }
}

/// One Redis key.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Secret,
    User(&'a UserId),
    UserEmail(&'a str),
    Users,
    Session(&'a SessionId),
    SessionToken(&'a TokenHash),
    UserSessions(&'a UserId),
    SessionExpiry,
}

impl Key<'_> {
    /// The key as sent to Redis.
    pub fn name(&self) -> String {
        match self {
            Key::Secret => "vigile:secret".to_string(),
            Key::Users => "vigile:users".to_string(),
            Key::SessionExpiry => "vigile:session_expiry".to_string(),
            Key::User(id) => Prefix::User.with(id.as_str()),
            Key::UserEmail(email) => Prefix::UserEmail.with(email),
            Key::Session(id) => Prefix::Session.with(id.as_str()),
            Key::SessionToken(hash) => Prefix::SessionToken.with(hash.as_str()),
            Key::UserSessions(id) => Prefix::UserSessions.with(id.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_namespaced_and_matches_its_prefix() {
        let user = UserId::from_string("u1");
        let session = SessionId::from_string("s1");
        let hash = TokenHash::from_hex("ab");
        let keys = [
            (Key::Secret, None),
            (Key::Users, None),
            (Key::SessionExpiry, None),
            (Key::User(&user), Some((Prefix::User, "u1"))),
            (Key::UserEmail("a@b.c"), Some((Prefix::UserEmail, "a@b.c"))),
            (Key::Session(&session), Some((Prefix::Session, "s1"))),
            (Key::SessionToken(&hash), Some((Prefix::SessionToken, "ab"))),
            (Key::UserSessions(&user), Some((Prefix::UserSessions, "u1"))),
        ];
        for (key, prefix) in keys {
            let name = key.name();
            assert!(name.starts_with(NAMESPACE), "{name}");
            if let Some((prefix, suffix)) = prefix {
                assert_eq!(name, format!("{}{suffix}", prefix.as_str()));
            }
        }
    }
}
