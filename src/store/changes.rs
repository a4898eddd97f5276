//! What other processes changed, for the session cache.
//!
//! Every gateway instance keeps validated sessions in memory for as long as they are
//! valid, so it must hear when one ends or an account changes anywhere: another instance,
//! the admin CLI, a sweep. Each backend announces those changes from inside the same
//! atomic operation that makes them (Redis: `PUBLISH` in the Lua scripts; SQLite: triggers
//! writing a `changes` table), so no code path can forget to, and [`super::Store::changes`]
//! delivers them as a feed. When the feed cannot be trusted (connection lost, a gap), it
//! says [`Change::Lost`]; the cache then falls back to a short lifetime until [`Change::Live`].

use tokio::sync::mpsc;

use super::{TokenHash, UserId};

/// Channel (Redis) on which the scripts announce changes; spelled in the Lua preludes too
/// (a unit test keeps them equal).
pub const CHANNEL: &str = "vigile:changes";

/// Room for changes not yet applied; past it the feed reports itself lost rather than
/// block the store's reader.
pub const FEED_CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The session of this token ended (logout, revocation, replacement, expiry).
    Session(TokenHash),
    /// This account changed or went: every identity cached for it is stale.
    User(UserId),
    /// Changes may have been missed: trust nothing cached beyond a short lifetime.
    Lost,
    /// The feed is (again) complete from here on.
    Live,
}

impl Change {
    /// Reads an announcement: `s:<token hash>` or `u:<user id>`.
    pub fn parse(message: &str) -> Option<Self> {
        if let Some(hash) = message.strip_prefix("s:") {
            return Some(Change::Session(TokenHash::from_hex(hash.to_string())));
        }
        message
            .strip_prefix("u:")
            .filter(|id| !id.is_empty())
            .map(|id| Change::User(UserId::from_string(id)))
    }
}

/// The receiving end of a store's change feed.
pub type ChangeFeed = mpsc::Receiver<Change>;

/// The sending end, with the rule every backend follows when the cache falls behind.
#[derive(Clone)]
pub struct FeedSender(mpsc::Sender<Change>);

impl FeedSender {
    pub fn channel() -> (Self, ChangeFeed) {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        (Self(tx), rx)
    }

    /// Sends one change; false once the cache is gone (the backend's task then stops).
    /// A full queue means changes would be dropped: it becomes a `Lost`, which the cache
    /// reads as "flush", after waiting for room.
    pub async fn send(&self, change: Change) -> bool {
        match self.0.try_send(change) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.0.send(Change::Lost).await.is_ok() && self.0.send(Change::Live).await.is_ok()
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_read_and_junk_ignored() {
        let hash = TokenHash::of("t");
        assert_eq!(
            Change::parse(&format!("s:{}", hash.as_str())),
            Some(Change::Session(hash))
        );
        assert_eq!(
            Change::parse("u:abc"),
            Some(Change::User(UserId::from_string("abc")))
        );
        assert_eq!(Change::parse("u:"), None);
        assert_eq!(Change::parse("x:1"), None);
        assert_eq!(Change::parse(""), None);
    }
}
