//! The request's untrusted framing, checked before any rule: the target (canonical path),
//! the Host authority and the Content-Length. A request that fails here gets a 400 and
//! nothing else happens.

use http::{header, HeaderMap, Version};
use pingora::http::RequestHeader;

use crate::edge::host::{Authority, HostError};
use crate::edge::path::{PathError, Target};

/// What was refused, for the log line and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("Content-Length values disagree or are not numbers")]
    ContentLength,
}

impl EdgeError {
    pub fn label(self) -> &'static str {
        match self {
            EdgeError::Path(_) => "path",
            EdgeError::Host(_) => "host",
            EdgeError::ContentLength => "content_length",
        }
    }
}

/// The request facts every later step works on.
#[derive(Debug)]
pub struct Edge {
    pub target: Target,
    pub host: Option<Authority>,
    /// `Some(n)` when the client sent Content-Length as a list, repeated (all equal) or
    /// with leading zeros: the upstream then receives the one plain value.
    pub content_length_to_normalise: Option<u64>,
    /// The body length the client declared (its agreed Content-Length), if any.
    pub declared_length: Option<u64>,
    /// The request line's target is the canonical one already (nearly always).
    pub target_is_canonical: bool,
}

impl Edge {
    pub fn read(req: &RequestHeader, allowed_hosts: &[Authority]) -> Result<Self, EdgeError> {
        // The raw bytes of the request line: what the upstream would otherwise receive.
        let target = if req.raw_path_is_utf8() {
            Target::parse(req.raw_path())?
        } else {
            return Err(PathError::Encoding.into());
        };
        let host = host(req, target.authority.as_deref(), allowed_hosts)?;
        let (declared_length, content_length_to_normalise) = content_length(&req.headers)?;
        Ok(Self {
            target_is_canonical: target.is_wire(req.raw_path()),
            target,
            host,
            content_length_to_normalise,
            declared_length,
        })
    }
}

/// The authority from the Host header and/or the target (absolute form, or HTTP/2's
/// `:authority`): present, one value, valid, the same in both places, and allowed.
fn host(
    req: &RequestHeader,
    target_authority: Option<&str>,
    allowed: &[Authority],
) -> Result<Option<Authority>, HostError> {
    let mut values = req.headers.get_all(header::HOST).iter();
    let header = match (values.next(), values.next()) {
        (_, Some(_)) => return Err(HostError::Several),
        (Some(v), None) => Some(v.to_str().map_err(|_| HostError::Invalid)?),
        (None, None) => None,
    };
    let uri_authority = req.uri.authority().map(|a| a.as_str());
    let from_target = target_authority.or(uri_authority);
    let authority = match (header, from_target) {
        (Some(h), Some(t)) => {
            let (h, t) = (Authority::parse(h)?, Authority::parse(t)?);
            if h != t {
                return Err(HostError::Invalid);
            }
            h
        }
        (Some(one), None) => Authority::parse(one)?,
        // HTTP/2 carries the authority as `:authority`; HTTP/1 must send Host (RFC 9112
        // 3.2), even with an absolute-form target, and the upstream needs one to build
        // links, so an HTTP/1.0 request without it is refused too.
        (None, Some(one)) if req.version == Version::HTTP_2 => Authority::parse(one)?,
        (None, _) => return Err(HostError::Missing),
    };
    if !authority.allowed_by(allowed) {
        return Err(HostError::NotAllowed);
    }
    Ok(Some(authority))
}

/// Every Content-Length value (repeated headers, comma lists) must be the same number.
/// Returns that number, and again when the client's spelling was not one plain number
/// (the value to send instead).
fn content_length(headers: &HeaderMap) -> Result<(Option<u64>, Option<u64>), EdgeError> {
    let mut agreed: Option<u64> = None;
    let mut tokens = 0usize;
    let mut plain = true;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| EdgeError::ContentLength)?;
        for token in text.split(',') {
            let token = token.trim();
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
                return Err(EdgeError::ContentLength);
            }
            let n: u64 = token.parse().map_err(|_| EdgeError::ContentLength)?;
            if agreed.is_some_and(|a| a != n) {
                return Err(EdgeError::ContentLength);
            }
            agreed = Some(n);
            tokens += 1;
            // `010` is 10 to Pingora but 8 to a strtol(…, 0) reader: sent as `10`.
            plain &= token.len() == 1 || !token.starts_with('0');
        }
    }
    Ok((agreed, agreed.filter(|_| tokens > 1 || !plain)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &[u8], headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", target, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn host_is_required_single_valid_and_allowed() {
        let ok = Edge::read(&req(b"/x", &[("Host", "Example.com:8000")]), &[]).unwrap();
        assert_eq!(ok.host.unwrap().as_str(), "example.com:8000");
        let err = |r: RequestHeader, allowed: &[Authority]| Edge::read(&r, allowed).unwrap_err();
        assert_eq!(
            err(req(b"/x", &[]), &[]),
            EdgeError::Host(HostError::Missing)
        );
        assert_eq!(
            err(req(b"/x", &[("Host", "a"), ("Host", "a")]), &[]),
            EdgeError::Host(HostError::Several)
        );
        for bad in ["127.0.0.1/admin/x?", "h#x", "h\\x", "", "h:99999"] {
            assert_eq!(
                err(req(b"/x", &[("Host", bad)]), &[]),
                EdgeError::Host(HostError::Invalid),
                "{bad}"
            );
        }
        let allowed = [Authority::parse("courses.example.com").unwrap()];
        assert_eq!(
            err(req(b"/x", &[("Host", "evil.example")]), &allowed),
            EdgeError::Host(HostError::NotAllowed)
        );
        // Absolute form: the target's authority must be the Host.
        assert_eq!(
            err(req(b"http://evil.example/x", &[("Host", "a")]), &[]),
            EdgeError::Host(HostError::Invalid)
        );
        let abs = Edge::read(&req(b"http://a/x", &[("Host", "A")]), &[]).unwrap();
        assert_eq!(abs.target.wire(), "/x");
    }

    #[test]
    fn http1_always_needs_host() {
        let mut r = req(b"/x", &[]);
        r.set_version(Version::HTTP_10);
        assert_eq!(
            Edge::read(&r, &[]).unwrap_err(),
            EdgeError::Host(HostError::Missing)
        );
        let r = req(b"http://evil.example/x", &[]);
        assert_eq!(
            Edge::read(&r, &[]).unwrap_err(),
            EdgeError::Host(HostError::Missing)
        );
    }

    #[test]
    fn content_length_lists_must_agree() {
        let h = |v: &[&str]| {
            let mut r = req(b"/x", &[("Host", "h")]);
            for x in v {
                r.append_header("Content-Length", *x).unwrap();
            }
            Edge::read(&r, &[]).map(|e| e.content_length_to_normalise)
        };
        assert_eq!(h(&["5"]), Ok(None));
        assert_eq!(h(&[]), Ok(None));
        assert_eq!(h(&["5, 5"]), Ok(Some(5)));
        assert_eq!(h(&["5", "5"]), Ok(Some(5)));
        assert_eq!(h(&["010"]), Ok(Some(10)));
        assert_eq!(h(&["0"]), Ok(None));
        for bad in [
            &["5, 6"][..],
            &["5", "6"],
            &["+5"],
            &["5,"],
            &["-1"],
            &["0x5"],
        ] {
            assert_eq!(h(bad), Err(EdgeError::ContentLength), "{bad:?}");
        }
    }
}
