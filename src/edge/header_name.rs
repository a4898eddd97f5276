//! Header names as upstream frameworks compare them: lower-cased, every character but
//! letters and digits read as `-` (CGI, WSGI and PHP map `Remote-User`, `remote_user` and,
//! through Apache, `Remote.User` to one `HTTP_REMOTE_USER` variable). Used to strip what a
//! client sends under Vigile's identity names in any spelling, and to refuse identity names
//! that two headers would share.

/// `name`, folded.
pub fn fold(name: &str) -> String {
    name.bytes().map(|b| char::from(fold_byte(b))).collect()
}

pub fn fold_byte(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() {
        b.to_ascii_lowercase()
    } else {
        b'-'
    }
}

/// Headers an identity header must not be named after (folded): those that frame the
/// request or the connection, which Pingora reads from its own header map while the
/// identity headers go out after it, and those Vigile sets itself on every request.
pub const NOT_FOR_IDENTITY: [&str; 16] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "expect",
    "cookie",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-request-id",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_a_framework_reads_as_one_fold_to_one() {
        for n in ["Remote-User", "remote_user", "REMOTE.USER", "Remote~User"] {
            assert_eq!(fold(n), "remote-user", "{n}");
        }
        assert_ne!(fold("Remote-Users"), "remote-user");
    }
}
