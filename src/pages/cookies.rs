//! Every cookie Vigile reads or writes, built in one place with the `cookie` crate so the
//! attributes (HttpOnly, SameSite=Lax, Path=/, Secure + `__Host-` prefix over TLS) cannot
//! differ between pages.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::HeaderMap;

pub const SESSION: &str = "vigile_session";
pub const SESSION_SECURE: &str = "__Host-vigile_session";
pub const DEVICE: &str = "vigile_device";
pub const DEVICE_SECURE: &str = "__Host-vigile_device";
pub const LANG: &str = "vigile_lang";

/// Browsers cap cookie lifetimes at 400 days.
const DEVICE_LIFETIME: Duration = Duration::from_secs(400 * 86_400);
const LANG_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// The cookies Vigile cares about, read from a request.
#[derive(Debug, Default, Clone)]
pub struct RequestCookies {
    pub session: Option<String>,
    pub device: Option<String>,
    pub lang: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct CookieNames {
    pub secure: bool,
}

impl CookieNames {
    pub fn session(self) -> &'static str {
        if self.secure {
            SESSION_SECURE
        } else {
            SESSION
        }
    }

    pub fn device(self) -> &'static str {
        if self.secure {
            DEVICE_SECURE
        } else {
            DEVICE
        }
    }

    pub fn read(self, headers: &HeaderMap) -> RequestCookies {
        let mut out = RequestCookies::default();
        for header in headers.get_all(http::header::COOKIE) {
            // On bytes, with the tokenizer `strip_secrets` uses: the cookie Vigile reads
            // is exactly the one it takes out before forwarding.
            for pair in pairs(header.as_bytes()) {
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let value = &pair[eq + 1..];
                let slot = match name_of(pair) {
                    n if n == self.session().as_bytes() => &mut out.session,
                    n if n == self.device().as_bytes() => &mut out.device,
                    n if n == LANG.as_bytes() => &mut out.lang,
                    _ => continue,
                };
                let Ok(value) = std::str::from_utf8(value.trim_ascii()) else {
                    continue;
                };
                if slot.is_none() && !value.is_empty() {
                    *slot = Some(value.to_string());
                }
            }
        }
        out
    }

    fn build(self, name: &'static str, value: String, max_age: Option<Duration>) -> String {
        let mut c = Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.secure);
        if let Some(age) = max_age {
            c = c.max_age(cookie::time::Duration::seconds(age.as_secs() as i64));
        }
        c.build().to_string()
    }

    pub fn set_session(self, token: &str, lifetime: Duration) -> String {
        self.build(self.session(), token.to_string(), Some(lifetime))
    }

    pub fn clear_session(self) -> String {
        self.build(self.session(), String::new(), Some(Duration::ZERO))
    }

    pub fn set_device(self, id: &str) -> String {
        self.build(self.device(), id.to_string(), Some(DEVICE_LIFETIME))
    }

    pub fn set_lang(self, code: &str) -> String {
        self.build(LANG, code.to_string(), Some(LANG_LIFETIME))
    }

    /// The request's `Cookie` header with Vigile's session and device cookies taken out:
    /// the session secret never reaches the upstream application, nor the device id, which
    /// anchors CSRF tokens, known-device lockout counts and a pending device-cap choice.
    /// `None` if nothing is left.
    pub fn strip_secrets(self, header: &[u8]) -> Option<Vec<u8>> {
        let mut kept = Vec::with_capacity(header.len());
        for pair in pairs(header) {
            if is_secret_name(name_of(pair)) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
        (!kept.is_empty()).then_some(kept)
    }
}

/// `name` is one of Vigile's secret cookies (session, device), or a spelling another
/// parser could take for one (Unicode white space around it).
fn is_secret_name(name: &[u8]) -> bool {
    let loose = String::from_utf8_lossy(name);
    [SESSION, SESSION_SECURE, DEVICE, DEVICE_SECURE]
        .iter()
        .any(|s| s.as_bytes() == name || *s == loose.trim())
}

/// A `Set-Cookie` value (from the upstream) that would set one of Vigile's secret
/// cookies: the application must not choose a member's session or device id.
pub fn sets_secret(set_cookie: &[u8]) -> bool {
    let first = set_cookie.split(|&b| b == b';').next().unwrap_or_default();
    is_secret_name(name_of(first))
}

/// The pairs of a Cookie header, on bytes (a value that is not UTF-8 must not hide the
/// others), trimmed of ASCII white space; empty ones skipped.
fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    header
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
}

/// A pair's name (all of it when it has no `=`), trimmed of ASCII white space only.
fn name_of(pair: &[u8]) -> &[u8] {
    pair.split(|&b| b == b'=')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes() {
        let plain = CookieNames { secure: false };
        let c = plain.set_session("tok", Duration::from_secs(60));
        assert!(c.starts_with("vigile_session=tok"));
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(!c.contains("Secure"));
        let secure = CookieNames { secure: true };
        let c = secure.set_session("tok", Duration::from_secs(60));
        assert!(
            c.starts_with("__Host-vigile_session=tok") && c.contains("Secure"),
            "{c}"
        );
        assert!(!c.contains("Domain"));
    }

    #[test]
    fn read_and_strip() {
        let names = CookieNames { secure: false };
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; vigile_session=s3cret; vigile_device=d; vigile_lang=fr"
                .parse()
                .unwrap(),
        );
        let c = names.read(&h);
        assert_eq!(c.session.as_deref(), Some("s3cret"));
        assert_eq!(c.device.as_deref(), Some("d"));
        assert_eq!(c.lang.as_deref(), Some("fr"));
        let stripped = names
            .strip_secrets(
                b"a=1; vigile_session=s3cret; __Host-vigile_session=x; vigile_device=d; \
                 __Host-vigile_device=e; vigile_lang=fr; b=2",
            )
            .unwrap();
        assert_eq!(stripped, b"a=1; vigile_lang=fr; b=2");
        assert_eq!(
            names.strip_secrets(b"vigile_session=x; vigile_device=d"),
            None
        );
        // Bytes an application may set (UTF-8, Latin-1) neither stop the stripping nor
        // are changed.
        let mut odd = "pr\u{e9}nom=Jos\u{e9}; vigile_session=s3cret; l="
            .as_bytes()
            .to_vec();
        odd.push(0xe9);
        let kept = names.strip_secrets(&odd).unwrap();
        assert!(!kept.windows(6).any(|w| w == b"s3cret"));
        assert!(kept.starts_with("pr\u{e9}nom=Jos\u{e9}; ".as_bytes()));
        assert_eq!(kept.last(), Some(&0xe9));
        h.insert(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(&odd).unwrap(),
        );
        assert_eq!(names.read(&h).session.as_deref(), Some("s3cret"));
        // A name padded with Unicode white space is not Vigile's cookie to read, and
        // is never forwarded either.
        let padded = "\u{a0}vigile_session=s3cret; a=1\u{3000}; vigile_device\u{2003}=d";
        h.insert(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(padded.as_bytes()).unwrap(),
        );
        let c = names.read(&h);
        assert_eq!((c.session, c.device), (None, None));
        assert!(sets_secret(b"vigile_session=x; Path=/"));
        assert!(sets_secret("__Host-vigile_device\u{a0}=x".as_bytes()));
        assert!(!sets_secret(b"app_session=x; Path=/"));
        assert_eq!(
            names.strip_secrets(padded.as_bytes()).unwrap(),
            "a=1\u{3000}".as_bytes()
        );
    }
}
