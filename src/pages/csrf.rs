//! CSRF tokens: HMAC(gateway secret, device id). The device cookie is HttpOnly and
//! SameSite=Lax, and another site can neither read it nor compute the HMAC, so a
//! forged cross-site POST cannot carry a matching token. No server-side state needed,
//! and every instance sharing the store (hence the secret) accepts the same token.

use crate::crypto::{ct_eq, hmac_b64};

pub fn token(secret: &[u8], device: &str) -> String {
    hmac_b64(secret, &["csrf", device])
}

pub fn check(secret: &[u8], device: Option<&str>, submitted: &str) -> bool {
    match device {
        Some(d) if !submitted.is_empty() => ct_eq(&token(secret, d), submitted),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_device_and_secret() {
        let t = token(b"s", "dev1");
        assert!(check(b"s", Some("dev1"), &t));
        assert!(!check(b"s", Some("dev2"), &t));
        assert!(!check(b"other", Some("dev1"), &t));
        assert!(!check(b"s", None, &t));
        assert!(!check(b"s", Some("dev1"), ""));
    }
}
