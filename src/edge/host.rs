//! The Host authority, validated once: `host[:port]` where host is a DNS name, an IPv4
//! address or a bracketed IPv6 address, and port a number from 1 to 65535.
//!
//! Anything else (`127.0.0.1/admin/x?`, `#`, `\`, spaces, userinfo, `:99999`, empty) is
//! refused: the value goes upstream as `Host` and `X-Forwarded-Host`, where an app builds
//! absolute links and password-reset URLs from it. Names are lower-cased.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request has no Host")]
    Missing,
    #[error("the request has several Host values")]
    Several,
    #[error("the Host is not a valid authority")]
    Invalid,
    #[error("the Host is not one this gateway serves")]
    NotAllowed,
}

/// A validated authority.
#[derive(Clone, PartialEq, Eq)]
pub struct Authority {
    /// `host[:port]`, host lower-cased.
    text: String,
    /// Length of the host part in `text`.
    host_len: usize,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authority({:?})", self.text)
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const MAX_NAME: usize = 253;

impl Authority {
    pub fn parse(raw: &str) -> Result<Self, HostError> {
        let (host, port) = split_port(raw)?;
        // Written once, at its final size (every request's Host goes through here).
        let mut text = String::with_capacity(raw.len());
        if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(HostError::Invalid)?;
            inner.parse::<Ipv6Addr>().map_err(|_| HostError::Invalid)?;
            push_lowercase(&mut text, host);
        } else if host.parse::<Ipv4Addr>().is_ok() {
            text.push_str(host);
        } else if is_dns_name(host) {
            // `example.com.` is `example.com` (DNS root): one spelling for the allow-list.
            push_lowercase(&mut text, host.strip_suffix('.').unwrap_or(host));
        } else {
            return Err(HostError::Invalid);
        }
        let host_len = text.len();
        if let Some(port) = port {
            // The number, without the leading zeros a client may have sent.
            text.push(':');
            let digits = port.ilog10() + 1;
            for i in (0..digits).rev() {
                text.push(char::from(b'0' + (port / 10u16.pow(i) % 10) as u8));
            }
        }
        Ok(Self { text, host_len })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `host[:port]`, given up (the forwarded `Host` takes it without a copy).
    pub fn into_string(self) -> String {
        self.text
    }

    /// The host without its port.
    pub fn host(&self) -> &str {
        &self.text[..self.host_len]
    }

    /// Whether this authority is one of `allowed`: an entry with a port must match
    /// exactly, one without matches that host on any port. An empty list allows any.
    pub fn allowed_by(&self, allowed: &[Authority]) -> bool {
        allowed.is_empty()
            || allowed.iter().any(|a| {
                if a.host_len == a.text.len() {
                    a.text == self.host()
                } else {
                    a.text == self.text
                }
            })
    }
}

fn push_lowercase(text: &mut String, ascii: &str) {
    text.extend(ascii.chars().map(|c| c.to_ascii_lowercase()));
}

/// Splits `host:port`, validating the port; brackets keep IPv6 colons out of the split.
fn split_port(raw: &str) -> Result<(&str, Option<u16>), HostError> {
    let colon = if raw.starts_with('[') {
        let close = raw.find(']').ok_or(HostError::Invalid)?;
        match &raw[close + 1..] {
            "" => None,
            rest if rest.starts_with(':') => Some(close + 1),
            _ => return Err(HostError::Invalid),
        }
    } else {
        raw.find(':')
    };
    let Some(colon) = colon else {
        return Ok((raw, None));
    };
    let digits = &raw[colon + 1..];
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::Invalid);
    }
    let port: u16 = digits.parse().map_err(|_| HostError::Invalid)?;
    if port == 0 {
        return Err(HostError::Invalid);
    }
    Ok((&raw[..colon], Some(port)))
}

/// Letters, digits, `-` and `_` in non-empty labels of at most 63, separated by dots (a
/// trailing dot allowed, as in DNS). `_` appears in internal host names.
fn is_dns_name(host: &str) -> bool {
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = !trimmed.is_empty()
        && host.len() <= MAX_NAME
        && trimmed.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().any(|b| b.is_ascii_alphanumeric())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    // A name ending in a numeric label is an address to inet_aton-style readers (`127.1`,
    // `2130706433`, `0x7f.0.0.1`): only the dotted-quad form, checked above, is accepted.
    let last = trimmed.rsplit('.').next().unwrap_or("");
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.len() >= 2 && last.as_bytes()[..2].eq_ignore_ascii_case(b"0x"));
    labels_ok && !numeric
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn valid_authorities() {
        for (raw, text, host) in [
            ("example.com", "example.com", "example.com"),
            (
                "Courses.Example.COM:8443",
                "courses.example.com:8443",
                "courses.example.com",
            ),
            ("127.0.0.1:8000", "127.0.0.1:8000", "127.0.0.1"),
            ("[::1]:8000", "[::1]:8000", "[::1]"),
            ("[::1]", "[::1]", "[::1]"),
            ("localhost", "localhost", "localhost"),
            (
                "Courses.Example.com.",
                "courses.example.com",
                "courses.example.com",
            ),
            ("my_host.internal", "my_host.internal", "my_host.internal"),
            ("h:080", "h:80", "h"),
            ("h:00001", "h:1", "h"),
            ("H:65535", "h:65535", "h"),
            ("[::A]:10", "[::a]:10", "[::a]"),
        ] {
            let a = Authority::parse(raw).unwrap();
            assert_eq!((a.as_str(), a.host()), (text, host), "{raw}");
        }
    }

    #[test]
    fn the_reported_hosts_are_refused() {
        for raw in [
            "127.0.0.1/admin/x?",
            "127.0.0.1#x",
            "evil\\x",
            "a b",
            "",
            ":8000",
            "h:99999",
            "h:0",
            "h:",
            "h:+80",
            "user@h",
            "h..com",
            "[::1",
            "[zz]",
            "[::1]x",
            "h\u{ff0e}com",
            "h\r\nx",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "999.1.1.1",
            "1.2.3.4.5",
            "-a-.b",
            "_",
            "a.0x10",
            "0x",
        ] {
            assert_eq!(Authority::parse(raw), Err(HostError::Invalid), "{raw:?}");
        }
    }

    #[test]
    fn allow_list() {
        let list: Vec<Authority> = ["courses.example.com", "localhost:8000"]
            .iter()
            .map(|s| Authority::parse(s).unwrap())
            .collect();
        let ok = |s: &str| Authority::parse(s).unwrap().allowed_by(&list);
        assert!(ok("courses.example.com"));
        assert!(ok("COURSES.example.com:443"));
        assert!(ok("localhost:8000"));
        assert!(!ok("localhost:8001"));
        assert!(!ok("evil.example"));
        assert!(Authority::parse("evil.example").unwrap().allowed_by(&[]));
    }

    proptest! {
        #[test]
        fn the_port_is_written_as_its_number(port in 1u16.., zeros in 0usize..3) {
            let padded = format!("{}{port}", "0".repeat(zeros));
            prop_assume!(padded.len() <= 5);
            let a = Authority::parse(&format!("Example.com:{padded}")).unwrap();
            prop_assert_eq!(a.as_str(), format!("example.com:{port}"));
            prop_assert_eq!(a.host(), "example.com");
        }

        #[test]
        fn accepted_authorities_are_clean(raw in "\\PC{0,40}") {
            if let Ok(a) = Authority::parse(&raw) {
                prop_assert!(a.as_str().bytes().all(|b| b.is_ascii_alphanumeric()
                    || b"-_.:[]".contains(&b)));
                prop_assert_eq!(Authority::parse(a.as_str()).unwrap(), a.clone());
            }
        }
    }
}
