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
//! - `vigile:address_claim:{email}`: the user id taking that address, while its account
//!   is written in a second step (`redis/addresses.rs`); TTL a minute.
//! - `vigile:users`: set of every user id (for `user_list`).
//! - `vigile:users_index`: sorted set (all scores 0, so ordered by bytes) of
//!   `{email}\n{user_id}` for every account, for `user_page`'s ordered, resumable walk.
//!   The account scripts name it `USERS .. '_index'` (one key fewer in their calling
//!   convention); a test pins the two spellings together. Built from `vigile:users` by
//!   the first instance that connects after an upgrade (`redis/migrate.rs`), which then
//!   sets `vigile:users_index_built`.
//! - `vigile:members_forgotten`: set once the second factors, known devices and caps of
//!   accounts deleted by an earlier version were removed (`redis/forgotten.rs`).
//! - Sessions (layout 2, issue 17: 539 bytes each in `bench/sessions_memory`, members
//!   apart, with a 70-byte user agent; about 600 with a 110-byte one; layout 1 took 1 749):
//!   - `vigile:s:{session_id}`: hash of one session; its TTL is the session's expiry.
//!     Short fields, so it stays a listpack (every value ≤ 64 bytes, Redis's default
//!     `hash-max-listpack-value`): `t` the token hash as its 32 raw bytes (scripts turn
//!     it back into the hex of [`TokenHash::as_str`]), `u` user id, `d` device id, `c`
//!     created_at, `l` last_seen, `i` idle_ms, `a` absolute_expiry (integers, which a
//!     listpack stores as integers), `p` ip, `g`, `g2`, `g3`… the user agent in 64-byte
//!     pieces, `v` the level when it is not `password`. The id is the key's own suffix.
//!   - `vigile:st:{hhh}`: one of 4 096 token buckets (`hhh` = the first 3 hex digits of
//!     the token hash), a hash from the next 24 hex digits of the token hash to the session
//!     id. 96 bits tell sessions apart (a clash is refused as a token in use) and a lookup
//!     compares the whole hash stored in the session. No TTL: an entry goes with its
//!     session, or with the sweep when Redis dropped the session by TTL first.
//!   - `vigile:sm:{hhh}`: one of 4 096 member buckets (`hhh` = the first 3 hex digits of
//!     the SHA-1 of the user id), a sorted set of `{user_id} {session_id} {token hhh}`
//!     scored by the session's current expiry: a member's sessions are the entries of
//!     their bucket that start with their id. The token bucket named last lets the sweep
//!     clean a session whose hash Redis already dropped. No TTL (the sweep empties it).
//!   - `vigile:session_buckets`: sorted set of member-bucket key names scored by a lower
//!     bound of the earliest expiry in them (lowered on insert, made exact by the sweep),
//!     so `sweep` and `session_count` visit only the buckets that may hold expired
//!     sessions.
//!   - `vigile:session_total`: the number of entries in all member buckets;
//!     `session_count(now)` is it minus the entries expired at `now`.
//!   - Why buckets rather than a key per member and a sorted set entry per session: a
//!     Redis key costs about 100 bytes before its content and a skiplist entry about 120,
//!     a listpack entry only its bytes. Up to about 500 000 sessions the buckets stay
//!     listpacks (128 entries per sorted set, 512 per hash by default); past that they
//!     turn into skiplists and hashtables one by one, which costs memory but changes
//!     nothing else.
//! - On a Redis Cluster every name starts with its shard's hash tag instead of `vigile:`
//!   ([`Namespace`], `shard.rs`): `{vigile:X}:` for the records of a member (account,
//!   sessions and their buckets, devices, caps in that shard's `member_caps`, second
//!   factors, codes), an address (its index key, failed-login counters), a token (links,
//!   `ended:`), a client address, a device, an organisation (with its members and
//!   invitations); `{vigile}:` for the secret, settings, campaigns, the layout marker,
//!   the outbox with its `sent` counters, and the audit stream with its member lists and
//!   hour counts. Each shard has its own indexes (`users`, `users_index`,
//!   `pending_users`, `session_buckets`, `session_total`, `expiring`, `ip_blocks`,
//!   `orgs`); listings merge them. `{vigile}:layout` is `shards`.
//! - `vigile:layout`: `2` once the sessions of layout 1 (below) were converted, by the
//!   first instance that connected (`redis/migrate.rs`).
//! - Layout 1, read only to convert it: `vigile:session:{id}` (hash with long field
//!   names), `vigile:session_token:{token_hash}` (→ id), `vigile:user_sessions:{user_id}`
//!   (sorted set of ids) and `vigile:session_expiry` (sorted set of every id).
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
//!   integer); its TTL is the end of its window (for scope `sent`, the messages the
//!   outbox sent per channel and hour: a day after it). The subject comes last since it
//!   may contain `:` (IPv6).
//! - `vigile:attempts:{email}`: hash of consecutive failed logins on that address:
//!   field `account`, and `device:{device_id}` per known device; its TTL is 30 days
//!   after the last attempt, and its name is in `vigile:expiring` with that score.
//! - `vigile:known_devices:{user_id}`: set of the device ids that signed in to the account.
//! - `vigile:ip:{ip}`: hash of one client address's failure window and block
//!   (`window_end`, `window_count`, `block_until`, `level`, `level_until`); its TTL is
//!   the latest of those instants, and its name is in `vigile:expiring` with that score.
//!   Since the console's list of blocks, a block also writes `blocked_at` (its start).
//! - `vigile:ip_blocks`: sorted set of the client addresses (as in `vigile:ip:{ip}`)
//!   whose block was set, scored by the block's end. The IP scripts keep it in step with
//!   the hashes (a block adds or re-scores the address, an unblock removes it) and `sweep`
//!   drops the entries whose block has ended, so `ip_blocks` reads only the blocks in
//!   force, never the whole keyspace. Blocks set by a Vigile before this index are not in
//!   it (they end within a day, `lockout.ip_block` doubled at most to 24 h).
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
//! - `vigile:audit`: stream of the stored audit trail (fields `a` at, `e` event, `b` by,
//!   `d` detail, and when present `m` admin, `u` user, `x` email, `i` ip), trimmed to
//!   about `[log] audit_keep_events` as it grows and by `audit_prune` to the kept days.
//! - `vigile:audit_member:{user_id}`: list of the stream ids of the member's
//!   `AUDIT_MEMBER_KEEP` most recent events, newest first; TTL the kept days.
//! - `vigile:audit_named:{user_id}`: the same for the events that name the member's
//!   address without being about them (a failed login typed with it, an invitation).
//! - `vigile:audit_hours:{day_start}`: hash of `{hour_start}\t{event}` → how many such
//!   events that hour, for the charts; expires `AUDIT_COUNTS_KEEP_MS` after its day.
//! - `vigile:expiring`: sorted set of the *names* of token and counter keys, scored by
//!   their expiry, so `sweep` removes them at a `now` ahead of Redis's clock too.

use super::shard::{Shard, COUNT};
use super::{
    Channel, CounterScope, DeviceId, Millis, OrgId, SessionId, TokenHash, TokenKind, UserId,
};

/// Common prefix of every key Vigile writes on one Redis (and through Sentinel).
pub const NAMESPACE: &str = "vigile:";

/// How key names are spelled. On one Redis (and through Sentinel): `vigile:…`. On a
/// Redis Cluster the store is spread over [`Shard`]s, each a hash tag: `{vigile:X}:…` for
/// the records of shard `X` (a member, an address, a token: `shard.rs`) and `{vigile}:…`
/// for what belongs to the whole site ([`Shard::GLOBAL`]). A script's keys, declared or
/// derived from a prefix it was given, are all spelled in the namespace it was called in,
/// so they share one slot (Cluster refuses a script reaching into another): a key derived
/// for a record of another shard is simply not there, which is why the store calls the
/// record's own shard for it. Every name is the plain one with its namespace swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Namespace {
    #[default]
    Plain,
    Cluster(Shard),
}

/// The hash tags of the shards, in order, then the site-wide one.
const TAGS: [&str; COUNT as usize + 1] = [
    "{vigile:0}:",
    "{vigile:1}:",
    "{vigile:2}:",
    "{vigile:3}:",
    "{vigile:4}:",
    "{vigile:5}:",
    "{vigile:6}:",
    "{vigile:7}:",
    "{vigile:8}:",
    "{vigile:9}:",
    "{vigile:a}:",
    "{vigile:b}:",
    "{vigile:c}:",
    "{vigile:d}:",
    "{vigile:e}:",
    "{vigile:f}:",
    "{vigile}:",
];

impl Namespace {
    /// What every key name starts with.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Plain => NAMESPACE,
            Namespace::Cluster(shard) => TAGS.get(shard.index()).copied().unwrap_or(TAGS[16]),
        }
    }

    /// `plain`, a name spelled in [`NAMESPACE`], spelled in this namespace.
    fn respell(self, plain: String) -> String {
        match self {
            Namespace::Plain => plain,
            Namespace::Cluster(_) => {
                let rest = plain.strip_prefix(NAMESPACE).unwrap_or(&plain);
                [self.as_str(), rest].concat()
            }
        }
    }
}

/// Declares [`Prefix`] from `Variant => "suffix"` lines: each prefix is the namespace
/// followed by its suffix, spelled out at compile time for both namespaces.
macro_rules! prefixes {
    ($($(#[$doc:meta])* $variant:ident => $suffix:literal,)+) => {
        /// Prefixes of the per-record keys, for Lua scripts that build keys from values
        /// they read. `Prefix::X.in_ns(ns) + id` is exactly what [`Key::name_in`] produces
        /// for the same record in the same namespace.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Prefix {
            $($(#[$doc])* $variant,)+
        }

        impl Prefix {
            /// What follows the namespace.
            const fn suffix(self) -> &'static str {
                match self {
                    $(Prefix::$variant => $suffix,)+
                }
            }
        }
    };
}

prefixes! {
    User => "user:",
    UserEmail => "user_email:",
    AddressClaim => "address_claim:",
    Session => "s:",
    SessionTokens => "st:",
    SessionMembers => "sm:",
    /// Layout 1 (`redis/migrate.rs` converts it).
    LegacySession => "session:",
    LegacySessionToken => "session_token:",
    LegacyUserSessions => "user_sessions:",
    OutboxMail => "outbox_mail:",
    OutboxFailedMail => "outbox_failed_mail:",
    Token => "token:",
    Counter => "counter:",
    Attempts => "attempts:",
    KnownDevices => "known_devices:",
    Ip => "ip:",
    Ended => "ended:",
    Org => "org:",
    OrgMembers => "org_members:",
    OrgInvites => "org_invites:",
    OrgInviteToken => "org_invite_token:",
    ContactCode => "contact_code:",
    ContactLink => "contact_link:",
    AuditMember => "audit_member:",
    AuditNamed => "audit_named:",
    AuditHours => "audit_hours:",
}

impl Prefix {
    /// The prefix in [`NAMESPACE`] (one Redis).
    pub fn as_str(self) -> String {
        self.in_ns(Namespace::Plain)
    }

    pub fn in_ns(self, ns: Namespace) -> String {
        [ns.as_str(), self.suffix()].concat()
    }

    fn with(self, suffix: &str) -> String {
        [NAMESPACE, self.suffix(), suffix].concat()
    }
}

/// Hex digits naming a session bucket: 16³ = 4 096 buckets of each kind.
pub const BUCKET_DIGITS: usize = 3;

/// The token bucket of a token hash: its first hex digits (a SHA-256, so evenly spread).
/// The session scripts compute the same from the hashes they read.
fn token_bucket(hash: &TokenHash) -> &str {
    hash.as_str().get(..BUCKET_DIGITS).unwrap_or(hash.as_str())
}

/// The member bucket of a user id: the first hex digits of its SHA-1, as the scripts
/// compute it with `redis.sha1hex` (ids are random, but a hash spreads any id evenly).
fn member_bucket(id: &UserId) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        id.as_str().as_bytes(),
    );
    let mut hex: String = digest
        .as_ref()
        .iter()
        .take(BUCKET_DIGITS.div_ceil(2))
        .map(|b| format!("{b:02x}"))
        .collect();
    hex.truncate(BUCKET_DIGITS);
    hex
}

/// One Redis key.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Secret,
    User(&'a UserId),
    UserEmail(&'a str),
    /// The id whose claim of this address is in progress (`redis/addresses.rs`).
    AddressClaim(&'a str),
    Users,
    /// See the module docs: every account's `{email}\n{id}`, ordered.
    UserIndex,
    /// Set once `UserIndex` was built from `Users` (after an upgrade).
    UserIndexBuilt,
    /// Set once the records of accounts deleted by an earlier version were removed.
    MembersForgotten,
    Session(&'a SessionId),
    /// The token bucket holding this hash's entry.
    SessionTokens(&'a TokenHash),
    /// The member bucket holding this member's sessions.
    SessionMembers(&'a UserId),
    SessionBuckets,
    SessionTotal,
    Layout,
    /// Layout 1's token key and expiry index, for the conversion.
    LegacySessionToken(&'a TokenHash),
    LegacySessionExpiry,
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
    /// Client addresses under a block, scored by its end.
    IpBlocks,
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
    /// The stored audit trail (a stream).
    Audit,
    /// A member's most recent audit entries (stream ids).
    AuditMember(&'a UserId),
    /// The most recent entries naming a member's address (stream ids).
    AuditNamed(&'a UserId),
}

impl Key<'_> {
    /// The key as sent to a Redis in namespace `ns`.
    pub fn name_in(&self, ns: Namespace) -> String {
        ns.respell(self.name())
    }

    /// The key as sent to one Redis ([`NAMESPACE`]).
    pub fn name(&self) -> String {
        match self {
            Key::Secret => "vigile:secret".to_string(),
            Key::Users => "vigile:users".to_string(),
            Key::UserIndex => "vigile:users_index".to_string(),
            Key::UserIndexBuilt => "vigile:users_index_built".to_string(),
            Key::MembersForgotten => "vigile:members_forgotten".to_string(),
            Key::SessionBuckets => "vigile:session_buckets".to_string(),
            Key::SessionTotal => "vigile:session_total".to_string(),
            Key::Layout => "vigile:layout".to_string(),
            Key::LegacySessionExpiry => "vigile:session_expiry".to_string(),
            Key::PendingUsers => "vigile:pending_users".to_string(),
            Key::Outbox => "vigile:outbox".to_string(),
            Key::OutboxMobile => "vigile:outbox_mobile".to_string(),
            Key::Campaigns => "vigile:campaigns".to_string(),
            Key::Audit => "vigile:audit".to_string(),
            Key::AuditMember(id) => Prefix::AuditMember.with(id.as_str()),
            Key::AuditNamed(id) => Prefix::AuditNamed.with(id.as_str()),
            Key::Kept(kind, key) => ["vigile:kept:", kind.as_str(), ":", key].concat(),
            Key::ContactCode(id, channel) => {
                Prefix::ContactCode.with(&[id.as_str(), ":", channel.as_str()].concat())
            }
            Key::ContactLink(hash) => Prefix::ContactLink.with(hash.as_str()),
            Key::OutboxFailed => "vigile:outbox_failed".to_string(),
            Key::Expiring => "vigile:expiring".to_string(),
            Key::IpBlocks => "vigile:ip_blocks".to_string(),
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
            Key::AddressClaim(email) => Prefix::AddressClaim.with(email),
            Key::Session(id) => Prefix::Session.with(id.as_str()),
            Key::SessionTokens(hash) => Prefix::SessionTokens.with(token_bucket(hash)),
            Key::SessionMembers(id) => Prefix::SessionMembers.with(&member_bucket(id)),
            Key::LegacySessionToken(hash) => Prefix::LegacySessionToken.with(hash.as_str()),
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
            (Key::UserIndex, None),
            (Key::UserIndexBuilt, None),
            (Key::MembersForgotten, None),
            (Key::SessionBuckets, None),
            (Key::SessionTotal, None),
            (Key::Layout, None),
            (Key::LegacySessionExpiry, None),
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
            (Key::IpBlocks, None),
            (Key::Audit, None),
            (Key::AuditMember(&user), Some((Prefix::AuditMember, "u1"))),
            (Key::AuditNamed(&user), Some((Prefix::AuditNamed, "u1"))),
            (Key::User(&user), Some((Prefix::User, "u1"))),
            (Key::UserEmail("a@b.c"), Some((Prefix::UserEmail, "a@b.c"))),
            (
                Key::AddressClaim("a@b.c"),
                Some((Prefix::AddressClaim, "a@b.c")),
            ),
            (Key::Session(&session), Some((Prefix::Session, "s1"))),
            (
                Key::SessionTokens(&hash),
                Some((Prefix::SessionTokens, "ab")),
            ),
            (
                Key::SessionMembers(&user),
                Some((Prefix::SessionMembers, "c5e")),
            ),
            (
                Key::LegacySessionToken(&hash),
                Some((Prefix::LegacySessionToken, "ab")),
            ),
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
            // On a Cluster, the hash tag is the first braces of every name, so nothing
            // after it (an address with braces, say) can move the key to another slot.
            for (shard, tag) in [(Shard::GLOBAL, "{vigile}"), (Shard::of("u1"), "{vigile:c}")] {
                let tagged = key.name_in(Namespace::Cluster(shard));
                assert_eq!(tagged, format!("{tag}{}", &name["vigile".len()..]));
                if let Some((prefix, suffix)) = prefix {
                    let ns = Namespace::Cluster(shard);
                    assert_eq!(tagged, format!("{}{suffix}", prefix.in_ns(ns)));
                }
            }
            assert_eq!(key.name_in(Namespace::Plain), name);
        }
    }

    #[test]
    fn every_shard_has_its_own_tag_and_the_site_keeps_the_old_one() {
        let tags: std::collections::HashSet<&str> = Shard::every()
            .map(|s| Namespace::Cluster(s).as_str())
            .collect();
        assert_eq!(tags.len(), usize::from(COUNT) + 1);
        assert_eq!(Namespace::Cluster(Shard::GLOBAL).as_str(), "{vigile}:");
        for shard in Shard::all() {
            let tag = Namespace::Cluster(shard).as_str();
            assert_eq!(tag, format!("{{vigile:{}}}:", shard.digit()));
        }
    }

    #[test]
    fn the_account_scripts_spell_address_claims_from_the_address_index_prefix() {
        // `user_prelude!`: P_CLAIM = P_EMAIL less `user_email:`, then `address_claim:`.
        for ns in [Namespace::Plain, Namespace::Cluster(Shard::of("x"))] {
            let email = Prefix::UserEmail.in_ns(ns);
            let base = email.strip_suffix("user_email:").unwrap();
            assert_eq!(
                Prefix::AddressClaim.in_ns(ns),
                format!("{base}address_claim:")
            );
        }
    }

    #[test]
    fn the_account_scripts_spell_the_user_index_as_the_user_set_and_a_suffix() {
        assert_eq!(
            Key::UserIndex.name(),
            format!("{}_index", Key::Users.name())
        );
    }

    #[test]
    fn session_buckets_are_the_first_hex_digits_of_the_hashes() {
        let token = TokenHash::of("abc");
        assert_eq!(
            Key::SessionTokens(&token).name(),
            "vigile:st:ba7",
            "sha256(abc) = ba7816bf…"
        );
        // sha1(u1) = c5ea7155…: what `redis.sha1hex('u1')` starts with in the scripts.
        assert_eq!(
            Key::SessionMembers(&UserId::from_string("u1")).name(),
            "vigile:sm:c5e"
        );
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
