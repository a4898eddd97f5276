//! Which shard of the store a record lives in (layout in `keys.rs`). On a Redis Cluster
//! the store is spread over [`COUNT`] hash tags, each a whole sub-store (its own indexes,
//! its own sweep), so its keys spread over the masters while every script still touches
//! one slot; on one Redis every shard is spelled the same. What belongs to the whole site
//! is in [`Shard::GLOBAL`].
//!
//! A record's shard comes from its owner: the first hex digit of the SHA-1 of a user id,
//! session id, address, organisation id or device id (the same digest whose first three
//! digits name a member's session bucket, so bucket `hhh` sits in shard `h`), and the
//! first hex digit of a token hash itself (a SHA-256: token bucket `ttt` in shard `t`).
//! Ids and tokens Vigile draws for a record that must sit beside another are drawn again
//! until their shard matches ([`draw_in`]): a session's token beside its member, say.

use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};

use super::{TokenHash, UserId};

/// How many shards a Cluster store has.
pub const COUNT: u8 = 16;

/// Draws [`draw_in`] makes before it gives up and returns a draw from another shard (a
/// chance of (15/16)^4096, about 10^-115: never, but a bound all the same).
const MAX_DRAWS: u32 = 4096;

/// One of the [`COUNT`] shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard(u8);

impl Shard {
    /// Where what belongs to the whole site lives (the secret, settings, campaigns, the
    /// outbox, the audit trail): spelled `{vigile}` on a Cluster, as before shards.
    pub const GLOBAL: Shard = Shard(COUNT);

    /// Every shard of records, in order (not [`Shard::GLOBAL`]).
    pub fn all() -> impl Iterator<Item = Shard> {
        (0..COUNT).map(Shard)
    }

    /// Every shard and then [`Shard::GLOBAL`]: what a pass over the whole store visits.
    pub fn every() -> impl Iterator<Item = Shard> {
        (0..=COUNT).map(Shard)
    }

    /// Position in [`Shard::every`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    pub fn of_user(id: &UserId) -> Shard {
        Shard::of(id.as_str())
    }

    /// The shard of an id or an address: the first hex digit of its SHA-1.
    pub fn of(text: &str) -> Shard {
        let d = digest(&SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes());
        Shard(d.as_ref().first().map_or(0, |b| b >> 4))
    }

    /// The shard of a token hash: its own first hex digit.
    pub fn of_token(hash: &TokenHash) -> Shard {
        let first = hash.as_str().chars().next().and_then(|c| c.to_digit(16));
        Shard(first.and_then(|d| u8::try_from(d).ok()).unwrap_or(0))
    }

    /// The hex digit naming this shard in a hash tag (`g` for [`Shard::GLOBAL`], which
    /// has none).
    pub fn digit(self) -> char {
        char::from_digit(u32::from(self.0), 17).unwrap_or('g')
    }
}

/// Draws with `draw` until `shard_of` puts the draw in `want`. Each draw lands in a given
/// shard with a chance of 1/[`COUNT`], so this takes [`COUNT`] draws on average.
pub fn draw_in<T>(want: Shard, mut draw: impl FnMut() -> T, shard_of: impl Fn(&T) -> Shard) -> T {
    let mut last = draw();
    for _ in 1..MAX_DRAWS {
        if shard_of(&last) == want {
            break;
        }
        last = draw();
    }
    last
}

/// A random token of `bytes` bytes whose hash ([`TokenHash::of`]) falls in `want`: a
/// session's beside its member, a link's beside what it opens (4 bits fewer to guess).
pub fn token_in(want: Shard, bytes: usize) -> String {
    draw_in(
        want,
        || crate::crypto::random_token(bytes),
        |t| Shard::of_token(&TokenHash::of(t)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random_token;

    #[test]
    fn the_shard_of_a_member_is_the_first_digit_of_their_session_bucket() {
        // sha1(u1) = c5ea7155…: member bucket `c5e` (keys.rs), shard `c`.
        assert_eq!(Shard::of("u1").digit(), 'c');
        let hash = TokenHash::of("abc"); // ba7816bf…: token bucket `ba7`, shard `b`.
        assert_eq!(Shard::of_token(&hash).digit(), 'b');
    }

    #[test]
    fn ids_spread_over_every_shard() {
        // Fixed ids, so the count is the same on every run.
        let mut seen = [0u32; COUNT as usize];
        for i in 0..3200 {
            seen[usize::from(Shard::of(&format!("member-{i}")).0)] += 1;
        }
        // 200 expected per shard; a shard under 100 or over 320 is a broken spread.
        assert!(seen.iter().all(|n| (100..=320).contains(n)), "{seen:?}");
    }

    #[test]
    fn a_draw_lands_in_the_wanted_shard() {
        for want in Shard::all() {
            let token = draw_in(
                want,
                || random_token(32),
                |t| Shard::of_token(&TokenHash::of(t)),
            );
            assert_eq!(Shard::of_token(&TokenHash::of(&token)), want);
            let id = draw_in(want, || random_token(16), |id| Shard::of(id));
            assert_eq!(Shard::of(&id), want);
        }
    }

    #[test]
    fn digits_name_every_shard_once() {
        let digits: String = Shard::all().map(Shard::digit).collect();
        assert_eq!(digits, "0123456789abcdef");
    }
}
