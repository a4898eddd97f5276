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
//! - `vigile:pending_users`: sorted set of the ids of `Pending` accounts, scored by the
//!   instant they expire (their user and email keys carry the same instant as TTL);
//!   `sweep` deletes them by it, `user_activate` removes the entry.
//! - `vigile:token:{kind}:{token_hash}`: hash of one single-use token (`subject`,
//!   `bind`, `expires_at`); its TTL is the token's expiry.
//! - `vigile:outbox`: sorted set of waiting mail ids, scored by their `next_attempt`.
//! - `vigile:outbox_mail:{id}`: hash of one waiting mail's fields (no TTL: durable).
//! - `vigile:outbox_failed`: sorted set of the ids of mails refused for good, scored by
//!   the instant they failed.
//! - `vigile:outbox_failed_mail:{id}`: hash of one failed mail (no bodies); its TTL is
//!   `FAILED_KEEP_MS` after it failed, and its name is in `vigile:expiring` with that score.
//! - `vigile:counter:{scope}:{window_start}:{subject}`: a fixed-window counter (an
//!   integer); its TTL is the end of its window. The subject comes last since it may
//!   contain `:` (IPv6).
//! - `vigile:attempts:{email}`: hash of consecutive failed logins on that address:
//!   field `account`, and `device:{device_id}` per known device; its TTL is 30 days
//!   after the last attempt, and its name is in `vigile:expiring` with that score.
//! - `vigile:known_devices:{user_id}`: set of the device ids that signed in to the account.
//! - `vigile:ip:{ip}`: hash of one client address's failure window and block
//!   (`window_end`, `window_count`, `block_until`, `level`, `level_until`); its TTL is
//!   the latest of those instants, and its name is in `vigile:expiring` with that score.
//! - `vigile:ended:{token_hash}`: why the session of that token was ended (`replaced`,
//!   `revoked`), told to its device at its next request; TTL the session's own expiry,
//!   and its name is in `vigile:expiring` with that score.
//! - `vigile:challenge:{device_id}`: hash of a login stopped by the device cap
//!   (`user_id`, `code_hash`, `attempts`, `verified`, `rd`, `expires_at`); TTL its expiry.
//! - `vigile:settings`: hash of the admin settings (`max_per_member`, `on_overflow`).
//! - `vigile:member_caps`: hash of user id → that member's own session cap.
//! - `vigile:org:{org_id}`: a [`super::Org`] as JSON.
//! - `vigile:orgs`: set of every organisation id.
//! - `vigile:org_members:{org_id}`: set of the organisation's user ids (each user's JSON
//!   also names its organisation; account scripts keep the two in step).
//! - `vigile:org_invites:{org_id}`: hash of invited address → [`super::OrgInvite`] as JSON;
//!   entries past their `expires_at` are ignored and pruned by the next invitation.
//! - `vigile:org_invite_token:{token_hash}`: `{"org":…,"email":…}` of the invitation
//!   behind a link; TTL its expiry, and its name is in `vigile:expiring` with that score.
//! - `vigile:outbox_mobile`: sorted set of waiting text-message ids (their hashes are
//!   `vigile:outbox_mail:{id}` too, with `channel` = `mobile`).
//! - `vigile:contact_code:{user_id}:{channel}`: hash of a code waiting to confirm a
//!   channel (`value`, `code_hash`, `link_hash`, `attempts`, `expires_at`); TTL its expiry.
//! - `vigile:contact_link:{token_hash}`: the user id whose pending email code carries that
//!   mailed link; TTL the code's expiry.
//! - `vigile:campaigns`: hash of campaign id → [`super::Campaign`] as JSON.
//! - `vigile:kept:{kind}:{key}`: hash of one versioned document (`v` version, `d` the
//!   JSON, `x` expiry or empty); TTL its expiry when it has one.
//! - `vigile:expiring`: sorted set of the *names* of token and counter keys, scored by
//!   their expiry, so `sweep` removes them at a `now` ahead of Redis's clock too.

use super::{
    Channel, CounterScope, DeviceId, Millis, OrgId, SessionId, TokenHash, TokenKind, UserId,
};

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
    OutboxMail,
    OutboxFailedMail,
    Token,
    Counter,
    Attempts,
    KnownDevices,
    Ip,
    Ended,
    Org,
    OrgMembers,
    OrgInvites,
    OrgInviteToken,
    ContactCode,
    ContactLink,
}

impl Prefix {
    pub const fn as_str(self) -> &'static str {
        match self {
            Prefix::User => "vigile:user:",
            Prefix::UserEmail => "vigile:user_email:",
            Prefix::Session => "vigile:session:",
            Prefix::SessionToken => "vigile:session_token:",
            Prefix::UserSessions => "vigile:user_sessions:",
            Prefix::OutboxMail => "vigile:outbox_mail:",
            Prefix::OutboxFailedMail => "vigile:outbox_failed_mail:",
            Prefix::Token => "vigile:token:",
            Prefix::Counter => "vigile:counter:",
            Prefix::Attempts => "vigile:attempts:",
            Prefix::KnownDevices => "vigile:known_devices:",
            Prefix::Ip => "vigile:ip:",
            Prefix::Ended => "vigile:ended:",
            Prefix::Org => "vigile:org:",
            Prefix::OrgMembers => "vigile:org_members:",
            Prefix::OrgInvites => "vigile:org_invites:",
            Prefix::OrgInviteToken => "vigile:org_invite_token:",
            Prefix::ContactCode => "vigile:contact_code:",
            Prefix::ContactLink => "vigile:contact_link:",
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
    PendingUsers,
    Token(TokenKind, &'a TokenHash),
    /// Mails waiting; `OutboxMobile` holds the text messages.
    Outbox,
    OutboxMobile,
    OutboxMail(&'a str),
    OutboxFailed,
    OutboxFailedMail(&'a str),
    /// `(scope, subject, window_start)`.
    Counter(CounterScope, &'a str, Millis),
    Expiring,
    /// Failed-login counters of one address.
    Attempts(&'a str),
    KnownDevices(&'a UserId),
    Ip(&'a str),
    /// Why the session of this token hash was ended.
    Ended(&'a TokenHash),
    Challenge(&'a DeviceId),
    Settings,
    MemberCaps,
    Org(&'a OrgId),
    Orgs,
    OrgMembers(&'a OrgId),
    OrgInvites(&'a OrgId),
    OrgInviteToken(&'a TokenHash),
    /// A member's pending code for one channel.
    ContactCode(&'a UserId, Channel),
    /// The mailed confirmation link's hash → the member it confirms.
    ContactLink(&'a TokenHash),
    Campaigns,
    /// A versioned document ([`super::Kept`]).
    Kept(super::Kept, &'a str),
}

impl Key<'_> {
    /// The key as sent to Redis.
    pub fn name(&self) -> String {
        match self {
            Key::Secret => "vigile:secret".to_string(),
            Key::Users => "vigile:users".to_string(),
            Key::SessionExpiry => "vigile:session_expiry".to_string(),
            Key::PendingUsers => "vigile:pending_users".to_string(),
            Key::Outbox => "vigile:outbox".to_string(),
            Key::OutboxMobile => "vigile:outbox_mobile".to_string(),
            Key::Campaigns => "vigile:campaigns".to_string(),
            Key::Kept(kind, key) => ["vigile:kept:", kind.as_str(), ":", key].concat(),
            Key::ContactCode(id, channel) => {
                Prefix::ContactCode.with(&[id.as_str(), ":", channel.as_str()].concat())
            }
            Key::ContactLink(hash) => Prefix::ContactLink.with(hash.as_str()),
            Key::OutboxFailed => "vigile:outbox_failed".to_string(),
            Key::Expiring => "vigile:expiring".to_string(),
            Key::Settings => "vigile:settings".to_string(),
            Key::MemberCaps => "vigile:member_caps".to_string(),
            Key::Orgs => "vigile:orgs".to_string(),
            Key::Org(id) => Prefix::Org.with(id.as_str()),
            Key::OrgMembers(id) => Prefix::OrgMembers.with(id.as_str()),
            Key::OrgInvites(id) => Prefix::OrgInvites.with(id.as_str()),
            Key::OrgInviteToken(hash) => Prefix::OrgInviteToken.with(hash.as_str()),
            Key::Ended(hash) => Prefix::Ended.with(hash.as_str()),
            Key::Challenge(device) => "vigile:challenge:".to_string() + device.as_str(),
            Key::User(id) => Prefix::User.with(id.as_str()),
            Key::UserEmail(email) => Prefix::UserEmail.with(email),
            Key::Session(id) => Prefix::Session.with(id.as_str()),
            Key::SessionToken(hash) => Prefix::SessionToken.with(hash.as_str()),
            Key::UserSessions(id) => Prefix::UserSessions.with(id.as_str()),
            Key::OutboxMail(id) => Prefix::OutboxMail.with(id),
            Key::OutboxFailedMail(id) => Prefix::OutboxFailedMail.with(id),
            Key::Token(kind, hash) => Prefix::Token.with(&[kind.as_str(), hash.as_str()].join(":")),
            Key::Attempts(email) => Prefix::Attempts.with(email),
            Key::KnownDevices(id) => Prefix::KnownDevices.with(id.as_str()),
            Key::Ip(ip) => Prefix::Ip.with(ip),
            Key::Counter(scope, subject, window_start) => Prefix::Counter
                .with(&[scope.as_str(), &window_start.to_string(), subject].join(":")),
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
        let device = DeviceId::from_string("d1");
        let org = OrgId::from_string("o1");
        let keys = [
            (Key::Secret, None),
            (Key::Users, None),
            (Key::SessionExpiry, None),
            (Key::PendingUsers, None),
            (Key::Outbox, None),
            (Key::OutboxMobile, None),
            (Key::Campaigns, None),
            (Key::Kept(crate::store::Kept::Factors, "u1"), None),
            (
                Key::ContactCode(&user, Channel::Mobile),
                Some((Prefix::ContactCode, "u1:mobile")),
            ),
            (Key::ContactLink(&hash), Some((Prefix::ContactLink, "ab"))),
            (Key::Expiring, None),
            (Key::User(&user), Some((Prefix::User, "u1"))),
            (Key::UserEmail("a@b.c"), Some((Prefix::UserEmail, "a@b.c"))),
            (Key::Session(&session), Some((Prefix::Session, "s1"))),
            (Key::SessionToken(&hash), Some((Prefix::SessionToken, "ab"))),
            (Key::UserSessions(&user), Some((Prefix::UserSessions, "u1"))),
            (Key::OutboxMail("m1"), Some((Prefix::OutboxMail, "m1"))),
            (Key::OutboxFailed, None),
            (
                Key::OutboxFailedMail("m1"),
                Some((Prefix::OutboxFailedMail, "m1")),
            ),
            (
                Key::Token(TokenKind::PasswordReset, &hash),
                Some((Prefix::Token, "reset:ab")),
            ),
            (
                Key::Counter(CounterScope::FormsPerIp, "2001:db8::1", 60_000),
                Some((Prefix::Counter, "forms_ip:60000:2001:db8::1")),
            ),
            (Key::Attempts("a@b.c"), Some((Prefix::Attempts, "a@b.c"))),
            (Key::KnownDevices(&user), Some((Prefix::KnownDevices, "u1"))),
            (Key::Ip("2001:db8::1"), Some((Prefix::Ip, "2001:db8::1"))),
            (Key::Ended(&hash), Some((Prefix::Ended, "ab"))),
            (Key::Challenge(&device), None),
            (Key::Settings, None),
            (Key::MemberCaps, None),
            (Key::Orgs, None),
            (Key::Org(&org), Some((Prefix::Org, "o1"))),
            (Key::OrgMembers(&org), Some((Prefix::OrgMembers, "o1"))),
            (Key::OrgInvites(&org), Some((Prefix::OrgInvites, "o1"))),
            (
                Key::OrgInviteToken(&hash),
                Some((Prefix::OrgInviteToken, "ab")),
            ),
        ];
        for (key, prefix) in keys {
            let name = key.name();
            assert!(name.starts_with(NAMESPACE), "{name}");
            if let Some((prefix, suffix)) = prefix {
                assert_eq!(name, format!("{}{suffix}", prefix.as_str()));
            }
        }
    }

    #[test]
    fn record_keys_of_different_kinds_never_collide() {
        let hash = TokenHash::from_hex("ab");
        let names: std::collections::HashSet<String> = TokenKind::ALL
            .into_iter()
            .map(|k| Key::Token(k, &hash).name())
            .chain([
                Key::Counter(CounterScope::FormsPerIp, "x", 0).name(),
                Key::Counter(CounterScope::MailsPerAddress, "x", 0).name(),
                Key::Counter(CounterScope::MailsPerAddress, "x", 1).name(),
            ])
            .collect();
        assert_eq!(names.len(), TokenKind::ALL.len() + 3);
    }
}
