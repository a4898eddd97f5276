//! A configuration value that may carry credentials (a Redis or SMTP URL with a password,
//! an SMS provider token). Debug and Serialize print it redacted, so neither logs nor
//! `vigile check-config` can leak it; only `expose()` gives the real value.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value with any password and credential-like query parameters masked.
    pub fn redacted(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        redact_url(&self.0)
    }
}

const SECRET_PARAMS: &[&str] = &["password", "pass", "token", "key", "secret", "api_key"];

/// A query parameter whose value is a credential (`sentinel_password` included).
fn secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_PARAMS.contains(&key.as_str()) || key.ends_with("_password") || key.ends_with("_token")
}

/// `scheme://[user[:password]@]host,host,.../path?query` (Sentinel's list of hosts, which
/// `url` does not parse): the password and secret parameters masked, the rest kept.
fn redact_host_list(raw: &str) -> Option<String> {
    let (scheme, rest) = raw.split_once("://")?;
    let (main, query) = match rest.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let authority = match authority.rsplit_once('@') {
        Some((user, hosts)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{name}:****@{hosts}")
        }
        _ => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}/{path}");
    if let Some(query) = query {
        let masked: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| {
                let v = if secret_param(&k) { "****".into() } else { v };
                (k, v)
            }))
            .finish();
        out.push('?');
        out.push_str(&masked);
    }
    Some(out)
}

fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return redact_host_list(raw).unwrap_or_else(|| "<redacted>".into());
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("****"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let masked = secret_param(&k);
                (
                    k.into_owned(),
                    if masked {
                        "****".into()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

thread_local! {
    static EXPOSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with secrets serialized as they are, to compare two configurations (a reload
/// must see a changed password); what `f` produces must never be printed.
pub(crate) fn exposed<T>(f: impl FnOnce() -> T) -> T {
    EXPOSED.with(|e| e.set(true));
    let out = f();
    EXPOSED.with(|e| e.set(false));
    out
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if EXPOSED.with(std::cell::Cell::get) {
            return s.serialize_str(&self.0);
        }
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_are_masked() {
        let s = Secret::new("redis://:hunter2@10.0.0.1:6379/0");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(s.redacted().contains("****"));
        let t = Secret::new("https://sms.example/send?token=abc123&from=Vigile");
        assert!(!t.redacted().contains("abc123"));
        assert!(t.redacted().contains("from=Vigile"));
        assert_eq!(s.expose(), "redis://:hunter2@10.0.0.1:6379/0");
    }

    #[test]
    fn sentinel_host_lists_are_shown_with_their_secrets_masked() {
        let s = Secret::new(
            "redis+sentinel://app:hunter2@h1:26379,h2:26379/mymaster/0?sentinel_password=sp3c",
        );
        assert_eq!(
            s.redacted(),
            "redis+sentinel://app:****@h1:26379,h2:26379/mymaster/0?sentinel_password=****"
        );
        let plain = "redis+sentinel://h1:26379,h2:26379/mymaster/0";
        assert_eq!(Secret::new(plain).redacted(), plain);
    }

    #[test]
    fn plain_urls_are_unchanged() {
        assert_eq!(
            Secret::new("redis://127.0.0.1:6379/0").redacted(),
            "redis://127.0.0.1:6379/0"
        );
    }
}
