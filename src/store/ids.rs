//! Typed identifiers, so a session id is never passed where a user id is expected, and
//! token hashes are compared in constant time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::shard::{draw_in, Shard};
use crate::crypto::random_token;

macro_rules! string_id {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id (128 bits, URL-safe).
            pub fn random() -> Self {
                Self(random_token(16))
            }

            /// A fresh random id in `shard` (`shard::draw_in`: 124 bits left to guess),
            /// for a record a store script writes beside another.
            pub fn random_in(shard: Shard) -> Self {
                Self(draw_in(shard, || random_token(16), |id| Shard::of(id)))
            }

            /// Wraps an id read from the store, a cookie or the command line.
            pub fn from_string(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(UserId, "Stable account id, sent upstream as `Remote-User`.");
string_id!(SessionId, "Public session handle (not the cookie secret).");
string_id!(DeviceId, "Value of the long-lived `vigile_device` cookie.");
string_id!(
    OrgId,
    "Stable organisation id, sent upstream as `Remote-Org`."
);

impl UserId {
    /// A new account's id, in its address's shard: a sign-up, its activation and its
    /// sweep then change the account and its address in one script on a Cluster.
    pub fn for_address(email: &str) -> Self {
        Self::random_in(Shard::of(email))
    }
}

/// The SHA-256 of a session token, raw: what the session cache keys by and what a
/// forwarded request keeps of its cookie (for the watch's session check), so the token
/// itself is not copied past the lookup.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(TokenHash::digest_of(token))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The stored form.
    pub fn hash(&self) -> TokenHash {
        TokenHash::from_digest(&self.0)
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A store key: not for logs.
        f.write_str("TokenDigest(..)")
    }
}

/// SHA-256 of a session token, hex-encoded. The only form in which tokens are stored.
#[derive(Clone, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self::from_digest(&Self::digest_of(token))
    }

    /// The SHA-256 of a token, raw: what the session cache keys by, so a request answered
    /// from memory never spells the hash out.
    pub fn digest_of(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The hash of a token whose digest is known (one allocation, no formatting machinery).
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for &b in digest {
            hex.push(HEX[usize::from(b >> 4)] as char);
            hex.push(HEX[usize::from(b & 0xf)] as char);
        }
        Self(hex)
    }

    pub fn from_hex(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for TokenHash {
    // A hash is not the secret, but it is the lookup key: keep it out of logs anyway.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        // echo -n abc | sha256sum
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(SessionId::random(), SessionId::random());
        assert_eq!(UserId::random().as_str().len(), 22);
    }
}
