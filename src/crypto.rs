//! Randomness and keyed hashes. Nothing here is hand-rolled: getrandom for entropy,
//! RustCrypto HMAC-SHA256 for derived tokens, subtle for constant-time comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// `bytes` random bytes from the OS, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    URL_SAFE_NO_PAD.encode(&buf)
}

/// A fresh 6-digit code (device cap, contact confirmation), uniformly drawn.
pub fn six_digit_code() -> String {
    loop {
        let mut b = [0u8; 4];
        fill_random(&mut b);
        let n = u32::from_le_bytes(b);
        // Rejection sampling: the last partial block of 10^6 would bias low codes.
        if n < u32::MAX - u32::MAX % 1_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

pub fn fill_random(buf: &mut [u8]) {
    // The OS entropy source failing is unrecoverable for an authentication gateway.
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("OS random number generator unavailable");
}

/// HMAC-SHA256(key, parts joined by 0x00), base64url.
pub fn hmac_b64(key: &[u8], parts: &[&str]) -> String {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(&[0]);
        }
        mac.update(p.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_depends_on_key_and_parts() {
        let a = hmac_b64(b"k1", &["a", "b"]);
        assert_eq!(a, hmac_b64(b"k1", &["a", "b"]));
        assert_ne!(a, hmac_b64(b"k2", &["a", "b"]));
        assert_ne!(a, hmac_b64(b"k1", &["ab"]));
        assert!(ct_eq(&a, &a.clone()));
        assert!(!ct_eq(&a, "x"));
    }
}
