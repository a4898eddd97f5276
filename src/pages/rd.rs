//! The `rd` (return-to) parameter: only ever a local path, so a login link can never be
//! turned into an open redirect (`//evil.example`, `https://evil.example`, `/\evil`).

/// `Some(rd)` when `rd` is a safe local path, else `None`.
pub fn safe_rd(rd: &str) -> Option<&str> {
    let ok = rd.starts_with('/')
        && !rd.starts_with("//")
        && !rd.contains('\\')
        && !rd.chars().any(|c| c.is_control() || c.is_whitespace())
        && rd.len() <= 2048;
    // Browsers treat `/%5C` and `/%2F` prefixes literally, but refuse them anyway.
    let lower = rd.get(..4).unwrap_or("").to_ascii_lowercase();
    let encoded_prefix = lower.starts_with("/%2f") || lower.starts_with("/%5c");
    (ok && !encoded_prefix).then_some(rd)
}

/// `rd` if safe, else `/`.
pub fn or_home(rd: Option<&str>) -> String {
    rd.and_then(safe_rd).unwrap_or("/").to_string()
}

/// `/_vigile/login?rd=...` for a path the visitor was trying to reach.
pub fn login_url(original: &str) -> String {
    match safe_rd(original) {
        Some(rd) if rd != "/" => format!(
            "/_vigile/login?rd={}",
            form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        ),
        _ => "/_vigile/login".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths() {
        for good in ["/", "/courses/1?x=2", "/a/b#c"] {
            assert_eq!(safe_rd(good), Some(good));
        }
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "\\\\evil",
            "evil.example",
            "",
            "/%2F%2Fevil.example",
            "/%5cevil",
            "/a\r\nSet-Cookie: x=1",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_rd(bad), None, "{bad}");
        }
        assert_eq!(or_home(Some("//evil.example")), "/");
    }

    #[test]
    fn login_url_encodes() {
        assert_eq!(
            login_url("/c?a=1&b=2"),
            "/_vigile/login?rd=%2Fc%3Fa%3D1%26b%3D2"
        );
        assert_eq!(login_url("/"), "/_vigile/login");
    }
}
