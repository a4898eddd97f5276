//! Single-use links sent by email (activation, password reset) and admin invitations.
//!
//! Only the SHA-256 of a link's token is stored, like session tokens. A token is used up
//! by [`TokenStore::token_take`], atomically, so two clicks racing each other never both
//! succeed.

use super::timed_store;

use super::{Millis, StoreResult, TokenHash};

/// What a token is for. Each kind has its own key space: a reset token never activates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Activation,
    PasswordReset,
    /// An admin invited this address (invite mode); keyed by the hash of the address.
    Invite,
    /// Registering a company: the step-1 link (subject: the address it was mailed to).
    OrgRegistration,
}

impl TokenKind {
    pub const ALL: [TokenKind; 4] = [
        TokenKind::Activation,
        TokenKind::PasswordReset,
        TokenKind::Invite,
        TokenKind::OrgRegistration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Activation => "activation",
            TokenKind::PasswordReset => "reset",
            TokenKind::Invite => "invite",
            TokenKind::OrgRegistration => "org_register",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub kind: TokenKind,
    pub hash: TokenHash,
    /// Whom it is for: a user id (activation, reset) or a normalised address (invite).
    pub subject: String,
    /// Fingerprint of the account state the link was issued for (for a reset: of the
    /// password hash). The flow compares it, so a link dies when that state changes.
    /// Empty when unused.
    pub bind: String,
    pub expires_at: Millis,
}

timed_store! {
    pub trait TokenStore: Send + Sync {
        /// Stores a token until `expires_at`. `StoreError::Conflict` if `(kind, hash)` exists.
        async fn token_insert(&self, token: &TokenRecord) -> StoreResult<()>;
        /// The token if it exists and is valid at `now` (`now < expires_at`), left in place
        /// (to show a form before the token is used).
        async fn token_peek(
            &self,
            kind: TokenKind,
            hash: &TokenHash,
            now: Millis,
        ) -> StoreResult<Option<TokenRecord>>;
        /// Removes the token and returns it if it was valid at `now`. Atomic: of two
        /// concurrent takes, one gets the token and the other `None`. An expired token found
        /// here is removed too (and `None` returned).
        async fn token_take(
            &self,
            kind: TokenKind,
            hash: &TokenHash,
            now: Millis,
        ) -> StoreResult<Option<TokenRecord>>;
    }
}
