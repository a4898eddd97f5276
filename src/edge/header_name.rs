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

/// Headers that frame the message or the connection. Pingora reads their `-` spelling;
/// another spelling (`Transfer_Encoding`, `Content.Length`) is what a CGI/WSGI-style
/// upstream would read as the same variable.
pub const FRAMING: [&str; 10] = [
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
];

/// Headers Vigile writes on every forwarded request (Cookie without Vigile's cookies).
const VIGILE_WRITES: [&str; 6] = [
    "cookie",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-request-id",
];

/// Whether an identity header may not be named `folded`: a framing header, which Pingora
/// reads from its own header map while the identity headers go out after it, or one
/// Vigile writes itself.
pub fn not_for_identity(folded: &str) -> bool {
    FRAMING.contains(&folded) || VIGILE_WRITES.contains(&folded)
}

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
