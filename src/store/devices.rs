//! The device cap: opening a session within a member's limit, ending sessions with a
//! reason the ended device is told, the pending overflow challenge (a code mailed to the
//! member), and the runtime settings admins change without a restart.
//!
//! [`DeviceStore::session_open`] is the one place the cap is enforced, in one atomic
//! operation (a SQL transaction, a Lua script), so simultaneous logins on several
//! instances can never leave more than the cap active.

use super::timed_store;

use super::{DeviceId, Millis, SessionId, SessionRecord, StoreResult, TokenHash, UserId};
use crate::config::OnOverflow;

/// The limit a new session must fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// Sessions the member may hold at once; 0 = unlimited.
    pub max: u32,
    /// Over the cap, end the least recently used sessions instead of refusing.
    pub evict_oldest: bool,
}

impl Cap {
    pub const UNLIMITED: Cap = Cap {
        max: 0,
        evict_oldest: false,
    };
}

/// What [`DeviceStore::session_open`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The session is stored; `ended` are the sessions ended to make room (chosen by the
    /// member or, with `evict_oldest`, the least recently used), each told it was replaced.
    Opened { ended: Vec<SessionId> },
    /// Over the cap and not allowed to evict: nothing changed. `active` is how many
    /// sessions the member holds (the same device's excluded).
    Full { active: u64 },
}

/// Why a session ended, as its device is told at its next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedOut {
    /// Another device took its place (device cap).
    Replaced,
    /// The member ended it from another device, or an admin did.
    Revoked,
}

impl SignedOut {
    pub fn as_str(self) -> &'static str {
        match self {
            SignedOut::Replaced => "replaced",
            SignedOut::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "replaced" => Some(SignedOut::Replaced),
            "revoked" => Some(SignedOut::Revoked),
            _ => None,
        }
    }
}

/// A login stopped by the cap, waiting for the member's code then their choice. One per
/// device (the browser's `vigile_device` cookie), replaced by a newer login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub user_id: UserId,
    /// Hash of the mailed code, bound to the device (never the code itself).
    pub code_hash: TokenHash,
    /// Wrong codes entered so far.
    pub attempts: u32,
    /// The code was entered: the member may now choose a device to replace.
    pub verified: bool,
    /// Where the member was going, for after the choice.
    pub rd: String,
    pub expires_at: Millis,
    /// What the login proved so far; the session it opens gets it.
    pub level: super::AuthLevel,
}

/// Result of entering a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right code (or already verified): the challenge, verified.
    Verified(Challenge),
    /// Wrong code; this many tries are left.
    Wrong { left: u32 },
    /// That was the last try: the challenge is gone.
    Exhausted,
    /// No challenge for this device (never, expired, or used).
    Missing,
}

/// Admin settings saved in the store, read at every login by every instance. `None`
/// falls back to `[sessions]` in the configuration file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub max_per_member: Option<u32>,
    pub on_overflow: Option<OnOverflow>,
}

timed_store! {
    pub trait DeviceStore: Send + Sync {
        /// Opens `session` for its member within `cap`, atomically:
        /// - `replaces` (the browser's previous session, whoever it belonged to) and every
        ///   other session of the member on the same device are ended quietly: that device
        ///   is the one signing in, and it takes no extra slot;
        /// - `victims` (sessions the member chose to replace; ids of other members or
        ///   ended sessions are ignored) are ended, told [`SignedOut::Replaced`];
        /// - if the member still holds `cap.max` sessions or more: with `evict_oldest`, the
        ///   least recently used are ended (told `Replaced`) until the new one fits;
        ///   otherwise nothing at all changes and [`Opened::Full`] is returned.
        ///
        /// `StoreError::Conflict` (nothing changed) if the session id or token hash is in use.
        async fn session_open(
            &self,
            session: &SessionRecord,
            replaces: Option<&SessionId>,
            victims: &[SessionId],
            cap: Cap,
            now: Millis,
        ) -> StoreResult<Opened>;
        /// Ends `user`'s session `id`, telling its device `why` at its next request. Returns
        /// false if there is no such session of that member.
        async fn session_end(
            &self,
            user: &UserId,
            id: &SessionId,
            why: SignedOut,
            now: Millis,
        ) -> StoreResult<bool>;
        /// Why the session behind `token_hash` was ended, if it was ended by
        /// [`Self::session_open`] or [`Self::session_end`] and would not have expired by `now`.
        async fn signed_out(
            &self,
            token_hash: &TokenHash,
            now: Millis,
        ) -> StoreResult<Option<SignedOut>>;

        /// Stores the device's challenge, replacing any previous one. Returns whether one
        /// was replaced (an abandoned overflow).
        async fn challenge_put(&self, device: &DeviceId, challenge: &Challenge) -> StoreResult<bool>;
        /// The device's challenge if it is valid at `now`.
        async fn challenge_get(&self, device: &DeviceId, now: Millis)
            -> StoreResult<Option<Challenge>>;
        /// Counts one try of `code_hash`, atomically: of parallel tries at most `max_tries`
        /// are compared. The right code marks the challenge verified until `verified_until`.
        async fn challenge_check(
            &self,
            device: &DeviceId,
            code_hash: &TokenHash,
            max_tries: u32,
            verified_until: Millis,
            now: Millis,
        ) -> StoreResult<CodeCheck>;
        /// A new code for an unverified challenge valid at `now`: replaces its hash and
        /// validity. Returns false (nothing changed) if there is none.
        async fn challenge_renew(
            &self,
            device: &DeviceId,
            code_hash: &TokenHash,
            expires_at: Millis,
            now: Millis,
        ) -> StoreResult<bool>;
        /// Removes the device's challenge. Returns whether there was one.
        async fn challenge_delete(&self, device: &DeviceId) -> StoreResult<bool>;

        async fn settings_get(&self) -> StoreResult<Settings>;
        async fn settings_set(&self, settings: &Settings) -> StoreResult<()>;
        /// A member's own cap (admin override of `max_per_member`), if any.
        async fn member_cap(&self, user: &UserId) -> StoreResult<Option<u32>>;
        /// Sets or (with `None`) removes a member's own cap. False if there is no such account.
        async fn member_cap_set(&self, user: &UserId, cap: Option<u32>) -> StoreResult<bool>;
    }
}

/// How `on_overflow` is spelled in the configuration, the store and the admin form.
pub fn overflow_str(o: OnOverflow) -> &'static str {
    match o {
        OnOverflow::Choose => "choose",
        OnOverflow::EvictOldest => "evict-oldest",
        OnOverflow::Deny => "deny",
    }
}

pub fn overflow_parse(s: &str) -> Option<OnOverflow> {
    [
        OnOverflow::Choose,
        OnOverflow::EvictOldest,
        OnOverflow::Deny,
    ]
    .into_iter()
    .find(|o| overflow_str(*o) == s)
}
