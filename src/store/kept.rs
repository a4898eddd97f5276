//! Versioned documents: a member's second factors, a login waiting for its second factor.
//!
//! The flows read a document, change it in memory and write it back only if nobody wrote
//! in between ([`KeptStore::kept_put`] compares the version it read). One compare-and-set
//! covers every change those documents need (a TOTP step used once, a recovery code spent
//! once, a passkey counter, a trust added), so each backend implements one small atomic
//! operation instead of one script per change.

use super::timed_store;

use super::{Millis, StoreResult};

/// What a document is; each kind has its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kept {
    /// A member's second factors, recovery codes and trusted devices (key: user id).
    Factors,
    /// A login or step-up waiting for its second factor, or an enrolment in progress
    /// (key: chosen by the flow, bound to the browser).
    SecondStep,
}

impl Kept {
    pub fn as_str(self) -> &'static str {
        match self {
            Kept::Factors => "factors",
            Kept::SecondStep => "second_step",
        }
    }
}

/// A document and the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// 1 for the first write, one more at each write; an absent document is version 0.
    pub version: u64,
    pub doc: String,
}

timed_store! {
    pub trait KeptStore: Send + Sync {
        /// The document and its version, if there is one and it has not expired at `now`.
        async fn kept_get(&self, kind: Kept, key: &str, now: Millis) -> StoreResult<Option<Versioned>>;
        /// Writes `doc` (or deletes the document when `None`) if its current version is
        /// `expected` (0: absent or expired), atomically; the new version is `expected + 1`.
        /// `expires_at`: when it disappears by itself (`None`: never). Returns whether it
        /// wrote; `false` changes nothing (someone wrote since it was read).
        async fn kept_put(
            &self,
            kind: Kept,
            key: &str,
            expected: u64,
            doc: Option<&str>,
            expires_at: Option<Millis>,
            now: Millis,
        ) -> StoreResult<bool>;
    }
}
