//! The `rd` (return-to) parameter: only ever a local path, so a login link can never be
//! turned into an open redirect (`//evil.example`, `https://evil.example`, `/\evil`).

use crate::edge::path::CanonicalPath;
use crate::routes::Route;

/// The canonical form of `rd` when it is a safe local path, else `None`. Its path goes
/// through the request canonicaliser, so dot segments (`/..//evil.example`), empty segments,
/// encoded separators and backslashes are refused, never resolved into a `//` that a browser
/// would read as another host.
pub fn safe_rd(rd: &str) -> Option<String> {
    if rd.len() > 2048
        || rd.contains('\\')
        || rd.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return None;
    }
    let (rest, fragment) = match rd.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rd, None),
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = CanonicalPath::parse(path).ok()?;
    let mut out = path.wire().to_string();
    for (mark, part) in [('?', query), ('#', fragment)] {
        if let Some(part) = part {
            out.push(mark);
            out.push_str(part);
        }
    }
    Some(out)
}

/// `rd` if safe, else `/`.
pub fn or_home(rd: Option<&str>) -> String {
    rd.and_then(safe_rd).unwrap_or_else(|| "/".to_string())
}

/// `/_vigile/login?rd=...` for a path the visitor was trying to reach.
pub fn login_url(original: &str) -> String {
    match safe_rd(original) {
        Some(rd) if rd != "/" => Route::Login.with_query(&[("rd", &rd)]),
        _ => Route::Login.path().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths() {
        for good in ["/", "/courses/1?x=2", "/a/b#c"] {
            assert_eq!(safe_rd(good).as_deref(), Some(good));
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
            "/..//evil.example",
            "/.//evil.example",
            "/%2e%2e//evil.example",
            "/a/../..//evil.example",
            "/\t/evil.example",
        ] {
            assert_eq!(safe_rd(bad), None, "{bad}");
        }
        assert_eq!(or_home(Some("//evil.example")), "/");
        assert_eq!(or_home(Some("/%61b?x#y")), "/ab?x#y");
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
