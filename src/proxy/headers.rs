//! Identity header hygiene, in one place: what the client sent is removed (whatever its
//! case, `-` or `_` spelling), what Vigile vouches for is added, and the session and device
//! cookies are taken out of the `Cookie` header so the upstream never sees Vigile's secrets.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;
use pingora::http::{PreparedHeaderName, RequestHeader};
use pingora::{ErrorType::InvalidHTTPHeader, OrErr};

use super::edge::Edge;
use crate::auth::Identity;
use crate::config::{HeadersSection, UserValue};
use crate::edge::header_name::{fold, fold_byte, FRAMING};
use crate::edge::host::Authority;
use crate::pages::cookies::CookieNames;

/// `name`, folded, starts with the already folded `prefix`.
fn folded_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(a, b)| fold_byte(a) == b)
}

/// Whole families of identity headers, by prefix: `Remote-*` is Vigile's and Authelia's
/// namespace; the others are what oauth2-proxy, Cloudflare Access, Google IAP, AWS ALB,
/// Azure App Service, authentik, Pomerium and Grafana's auth proxy send. An app once
/// configured for one of them must not read a client's claim.
const STRIP_PREFIXES: [&str; 12] = [
    "remote-",
    "x-remote-",
    "x-auth-request-",
    "x-forwarded-access-token",
    "cf-access-",
    "x-goog-authenticated-",
    "x-goog-iap-",
    "x-amzn-oidc-",
    "x-ms-client-principal",
    "x-authentik-",
    "x-pomerium-",
    "x-webauth-",
];

/// `name` equals the already folded `folded`, without allocating (runs for every header
/// of every request).
fn same_folded(name: &str, folded: &str) -> bool {
    name.len() == folded.len()
        && name
            .bytes()
            .zip(folded.bytes())
            .all(|(a, b)| fold_byte(a) == b)
}

/// Header names fixed at start-up, keeping the operator's casing on HTTP/1: checked and
/// lowered once, then inserted per request without a parse or a copy (the operator's
/// names are leaked once, on purpose).
struct Names {
    user: PreparedHeaderName,
    email: PreparedHeaderName,
    name: PreparedHeaderName,
    groups: PreparedHeaderName,
    org: PreparedHeaderName,
    session: PreparedHeaderName,
    auth_level: PreparedHeaderName,
    forwarded_for: PreparedHeaderName,
    forwarded_proto: PreparedHeaderName,
    forwarded_host: PreparedHeaderName,
    forwarded_prefix: PreparedHeaderName,
    request_id: PreparedHeaderName,
    host: PreparedHeaderName,
    content_length: PreparedHeaderName,
    cookie: PreparedHeaderName,
}

/// `name`, already checked as a header name by the configuration.
fn prepared(name: &'static str) -> Result<PreparedHeaderName, String> {
    PreparedHeaderName::new(name).map_err(|_| format!("not a valid header name: {name}"))
}

/// A header value from text Vigile built or validated; a value that still fails is an
/// error for this request (as Pingora's `insert_header` would make it), never sent.
fn value<T>(text: T) -> pingora::Result<HeaderValue>
where
    HeaderValue: TryFrom<T, Error = http::header::InvalidHeaderValue>,
{
    HeaderValue::try_from(text).or_err(InvalidHTTPHeader, "invalid forwarded header value")
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

pub struct HeaderPlan {
    /// Folded names of every identity header, plus forwarding headers Vigile sets itself:
    /// removed in any spelling. Indexed by length, so a request's header is compared with
    /// the few names as long as it rather than with all of them.
    strip: Vec<Vec<String>>,
    names: Names,
    user_value: UserValue,
}

/// Authelia's identity headers, stripped even when the operator renamed Vigile's: an app
/// written for them must never receive a client-forged value. Remote-Auth-Level is
/// Vigile's to set (SPEC 4.5; `password` until two-factor lands): no client claims `2fa`.
const AUTHELIA: [&str; 5] = [
    "remote-user",
    "remote-email",
    "remote-name",
    "remote-groups",
    "remote-auth-level",
];

/// Identity headers other gateways set (oauth2-proxy, Apache, Pomerium-style): an app
/// configured for one of them must not read a client's claim either.
const OTHER_GATEWAYS: [&str; 19] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-remote-user",
    "x-remote-email",
    "x-user",
    "x-email",
    "x-username",
    "x-authenticated-user",
    "x-authenticated-email",
    "x-auth-user",
    "x-auth-email",
    "x-auth-username",
    "x-auth-groups",
];

/// Client-address, scheme, host and path hints Vigile does not vouch for: it sets
/// X-Forwarded-For/-Proto/-Host itself; an app must not read a forged `Forwarded`, and
/// Symfony, Laravel, IIS and Envoy-fronted apps take the path from X-Original-URL and
/// friends, which would route around the rules that matched the request line.
const HINTS: [&str; 28] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-request-id",
    "forwarded",
    "x-real-ip",
    "x-forwarded-port",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-url-scheme",
    "front-end-https",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-envoy-original-path",
    "x-request-uri",
    "x-host",
    "x-http-host-override",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
];

impl HeaderPlan {
    /// Fails only on a header name the configuration should have refused.
    pub fn new(names: &HeadersSection) -> Result<Self, String> {
        let ours = [
            &names.user,
            &names.email,
            &names.name,
            &names.groups,
            &names.org,
            &names.session,
            &names.auth_level,
        ];
        let mut strip: Vec<Vec<String>> = Vec::new();
        let folded = ours.iter().map(|n| fold(n)).chain(
            AUTHELIA
                .iter()
                .chain(&OTHER_GATEWAYS)
                .chain(&HINTS)
                .map(|n| n.to_string()),
        );
        for name in folded {
            if strip.len() <= name.len() {
                strip.resize_with(name.len() + 1, Vec::new);
            }
            strip[name.len()].push(name);
        }
        Ok(Self {
            strip,
            names: Names {
                user: prepared(leak(&names.user))?,
                email: prepared(leak(&names.email))?,
                name: prepared(leak(&names.name))?,
                groups: prepared(leak(&names.groups))?,
                org: prepared(leak(&names.org))?,
                session: prepared(leak(&names.session))?,
                auth_level: prepared(leak(&names.auth_level))?,
                forwarded_for: prepared("X-Forwarded-For")?,
                forwarded_proto: prepared("X-Forwarded-Proto")?,
                forwarded_host: prepared("X-Forwarded-Host")?,
                forwarded_prefix: prepared("X-Forwarded-Prefix")?,
                request_id: prepared("X-Request-Id")?,
                host: prepared("Host")?,
                content_length: prepared("Content-Length")?,
                cookie: prepared("Cookie")?,
            },
            user_value: names.user_value,
        })
    }

    /// Removes every client-supplied identity header from `req`.
    pub fn strip(&self, req: &mut RequestHeader) {
        let doomed: Vec<String> = req
            .headers
            .keys()
            .map(|k| k.as_str())
            .filter(|k| {
                self.strip
                    .get(k.len())
                    .is_some_and(|same_len| same_len.iter().any(|s| same_folded(k, s)))
                    || STRIP_PREFIXES.iter().any(|p| folded_prefix(k, p))
                    || (k.bytes().any(|b| !b.is_ascii_alphanumeric() && b != b'-')
                        && FRAMING.iter().any(|f| same_folded(k, f)))
            })
            .map(str::to_string)
            .collect();
        for name in doomed {
            req.remove_header(&name);
        }
    }

    /// Prepares the request for upstream: strip, then inject identity and forwarding headers.
    ///
    /// Headers Vigile adds whole (identity, `X-Forwarded-*`, `X-Request-Id`) are written
    /// as wire lines after the client's, not entered in the header maps: nothing reads them
    /// back, and two map insertions plus a copy of each value was a tenth of a member
    /// request's work (issue 17). Headers that replace a client's value Pingora reads
    /// (`Host`, `Content-Length`, `Cookie`) stay in the maps.
    pub fn apply(
        &self,
        req: &mut RequestHeader,
        identity: Option<&Identity>,
        forwarded: &Forwarded,
        cookies: CookieNames,
    ) -> pingora::Result<()> {
        self.strip(req);
        // As `strip` for the maps: a second call replaces what a first one added.
        req.clear_h1_lines();
        let n = &self.names;
        // The canonical request-target (same meaning, one spelling; origin form).
        if let Some(target) = &forwarded.target {
            req.set_raw_path(target.as_bytes())?;
        }
        if let Some(host) = &forwarded.host {
            // Only a Host that differs from its validated spelling is rewritten.
            let sent = req.headers.get(http::header::HOST).map(|v| v.as_bytes());
            if sent.is_some_and(|v| v != host.as_bytes()) {
                req.insert_prepared(&n.host, value(host)?);
            }
        }
        if let Some(len) = forwarded.content_length {
            req.insert_prepared(&n.content_length, HeaderValue::from(len));
        }
        self.cookies(req, cookies)?;
        req.reserve_h1_lines(LINES_BYTES);
        if let Some(id) = identity {
            let user = match self.user_value {
                UserValue::Id => id.user_id.as_str(),
                // Members sign in with their email address: it is their login name.
                UserValue::Email | UserValue::Username => &id.email,
            };
            push_text(req, &n.user, user)?;
            push_text(req, &n.email, &id.email)?;
            push_text(req, &n.name, &id.name)?;
            // Fixed words (roles, levels).
            req.push_h1_line(&n.groups, id.groups().as_bytes())?;
            push_text(req, &n.session, id.session_id.as_str())?;
            req.push_h1_line(&n.auth_level, id.level.as_str().as_bytes())?;
            if let Some(m) = &id.org {
                push_text(req, &n.org, m.org.as_str())?;
            }
        }
        req.push_h1_line(&n.forwarded_for, forwarded.for_chain.as_bytes())?;
        req.push_h1_line(&n.forwarded_proto, forwarded.proto.as_bytes())?;
        if let Some(host) = &forwarded.host {
            req.push_h1_line(&n.forwarded_host, host.as_bytes())?;
        }
        req.push_h1_line(&n.request_id, forwarded.request_id.as_bytes())?;
        if let Some(prefix) = &forwarded.prefix {
            req.push_h1_line(&n.forwarded_prefix, prefix.as_bytes())?;
        }
        Ok(())
    }

    /// Takes the session and device cookies out of `Cookie` (the whole header goes when
    /// nothing else is left).
    fn cookies(&self, req: &mut RequestHeader, cookies: CookieNames) -> pingora::Result<()> {
        let mut sent = req.headers.get_all(http::header::COOKIE).iter();
        let Some(first) = sent.next() else {
            return Ok(());
        };
        // Browsers send one Cookie header; HTTP/2 clients may split it.
        let kept = match sent.next() {
            None => cookies.strip_secrets(first.as_bytes()),
            Some(_) => {
                let all: Vec<&[u8]> = req
                    .headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .map(HeaderValue::as_bytes)
                    .collect();
                cookies.strip_secrets(&all.join(&b"; "[..]))
            }
        };
        req.remove_header(&http::header::COOKIE);
        if let Some(kept) = kept {
            req.insert_prepared(&self.names.cookie, value(kept)?);
        }
        Ok(())
    }
}

/// Room made once for the wire lines `apply` adds (a member's, typically 250-350 bytes).
const LINES_BYTES: usize = 384;

/// A header line from account data (a name, an address, an id): control characters (CR,
/// LF, NUL, C1...) dropped, so a stored value can never split or forge a header.
fn push_text(
    req: &mut RequestHeader,
    name: &PreparedHeaderName,
    text: &str,
) -> pingora::Result<()> {
    // Nearly every value is printable ASCII: one byte scan (counted, so vectorised), no
    // character decoding.
    if text.bytes().filter(|b| !(0x20..0x7f).contains(b)).count() == 0 {
        return req.push_h1_line(name, text.as_bytes());
    }
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    req.push_h1_line(name, clean.as_bytes())
}

/// Forwarding facts computed once per request.
pub struct Forwarded {
    pub for_chain: String,
    pub proto: &'static str,
    /// The validated authority: `Host` and `X-Forwarded-Host` upstream.
    pub host: Option<String>,
    /// The request-target sent upstream instead of the request's own: its canonical form,
    /// or a `[[route]]`'s rewrite. `None`: the request's own is canonical, and sent as is.
    pub target: Option<String>,
    /// One Content-Length for a client's repeated or listed (agreeing) values.
    pub content_length: Option<u64>,
    /// The body length the client declared, checked against `max_request_body`.
    pub declared_length: Option<u64>,
    pub request_id: String,
    /// `X-Forwarded-Prefix`: what a `[[route]]` stripped from the path (a client's own
    /// value is always removed).
    pub prefix: Option<Arc<str>>,
}

/// The address as text, IPv4 written digit by digit: `Display` goes through the
/// formatter's padding machinery, a tenth of a forwarded request's own work otherwise.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

impl Forwarded {
    /// `X-Forwarded-For`: the chain received from a trusted proxy plus the peer, or just the
    /// client address when the peer is not trusted (a client-sent chain is dropped).
    pub fn new(
        peer: IpAddr,
        peer_trusted: bool,
        incoming_xff: Option<&str>,
        tls: bool,
        edge: &mut Edge,
        request_id: String,
    ) -> Self {
        let for_chain = match incoming_xff {
            Some(chain) if peer_trusted && !chain.trim().is_empty() => format!("{chain}, {peer}"),
            _ => ip_text(peer),
        };
        Self {
            for_chain,
            proto: if tls { "https" } else { "http" },
            // Read by nothing else once the request passed the edge checks.
            host: edge.host.take().map(Authority::into_string),
            target: (!edge.target_is_canonical).then(|| edge.target.wire()),
            content_length: edge.content_length_to_normalise,
            declared_length: edge.declared_length,
            request_id,
            prefix: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeviceId, SessionId, UserId};

    /// The header lines `r` puts on the wire to the upstream, read back by httparse.
    fn on_wire(r: &RequestHeader) -> Vec<(String, String)> {
        let mut wire = Vec::new();
        r.header_to_h1_wire(&mut wire);
        wire.extend_from_slice(b"\r\n");
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let httparse::Status::Complete((len, headers)) =
            httparse::parse_headers(&wire, &mut slots).unwrap()
        else {
            panic!(
                "incomplete header block: {:?}",
                String::from_utf8_lossy(&wire)
            );
        };
        assert_eq!(len, wire.len(), "bytes after the header block");
        headers
            .iter()
            .map(|h| {
                let value = String::from_utf8(h.value.to_vec()).unwrap();
                (h.name.to_string(), value)
            })
            .collect()
    }

    /// Every value sent under `name` (any case), in order.
    fn sent(r: &RequestHeader, name: &str) -> Vec<String> {
        on_wire(r)
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut addresses: Vec<IpAddr> = (0..=255u8)
            .flat_map(|o| {
                [
                    IpAddr::from([o, 0, 0, 0]),
                    IpAddr::from([1, o, 10, 100]),
                    IpAddr::from([255, 99, o, 9]),
                    IpAddr::from([0, 100, 10, o]),
                ]
            })
            .collect();
        addresses.push("2001:db8::1".parse().unwrap());
        addresses.push("::ffff:1.2.3.4".parse().unwrap());
        for ip in addresses {
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn every_role_list_and_level_is_a_valid_fixed_header_value() {
        use crate::store::{roles, AuthLevel, OrgRole};
        let orgs = [
            None,
            Some(OrgRole::Member),
            Some(OrgRole::Admin),
            Some(OrgRole::SuperAdmin),
        ];
        for admin in [false, true] {
            for org in orgs {
                // `from_static` would panic on a byte a header value cannot hold.
                let v = HeaderValue::from_static(roles(admin, org));
                assert!(v.to_str().unwrap().starts_with("member"));
            }
        }
        for level in [AuthLevel::Password, AuthLevel::SecondFactor] {
            assert_eq!(HeaderValue::from_static(level.as_str()), level.as_str());
        }
    }

    fn edge(target: &[u8], headers: &[(&str, &str)]) -> Edge {
        let mut r = RequestHeader::build("GET", target, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        Edge::read(&r, &[]).unwrap()
    }

    #[test]
    fn framing_spellings_path_overrides_and_target_are_cleaned() {
        let plan = HeaderPlan::new(&HeadersSection::default()).unwrap();
        let raw: &[u8] = b"/%61dmin;x/y?q=%2F";
        let mut r = RequestHeader::build("POST", raw, None).unwrap();
        for (k, v) in [
            ("Host", "Example.COM"),
            ("Transfer_Encoding", "chunked"),
            ("content_length", "0"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("x_forwarded_host", "evil"),
            ("X_Forwarded_Proto", "https"),
            ("X-Original-URL", "/admin"),
            ("X_Rewrite_Url", "/admin"),
            ("Content-Length", "5, 5"),
            ("X-Custom_Thing", "kept"),
        ] {
            r.append_header(k.to_string(), v).unwrap();
        }
        let mut e = Edge::read(&r, &[]).unwrap();
        let fwd = Forwarded::new(
            "1.2.3.4".parse().unwrap(),
            false,
            None,
            false,
            &mut e,
            "rid".into(),
        );
        plan.apply(&mut r, None, &fwd, CookieNames { secure: false })
            .unwrap();
        let names: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
        for gone in [
            "transfer_encoding",
            "content_length",
            "x_forwarded_for",
            "x_forwarded_host",
            "x_forwarded_proto",
            "x-original-url",
            "x_rewrite_url",
        ] {
            assert!(!names.contains(&gone), "{gone} kept: {names:?}");
        }
        let wire: Vec<String> = on_wire(&r).into_iter().map(|(n, _)| n).collect();
        for gone in ["Transfer_Encoding", "content_length", "X_Forwarded_For"] {
            assert!(!wire.iter().any(|n| n == gone), "{gone} sent: {wire:?}");
        }
        assert_eq!(sent(&r, "x-custom_thing"), ["kept"]);
        assert_eq!(sent(&r, "content-length"), ["5"]);
        assert_eq!(sent(&r, "host"), ["example.com"]);
        assert_eq!(sent(&r, "x-forwarded-host"), ["example.com"]);
        assert_eq!(sent(&r, "x-forwarded-for"), ["1.2.3.4"]);
        assert_eq!(sent(&r, "x-forwarded-proto"), ["http"]);
        assert_eq!(sent(&r, "x-request-id"), ["rid"]);
        assert_eq!(r.raw_path(), b"/admin;x/y?q=%2F");
    }

    fn req() -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/x", None).unwrap();
        r.append_header("Remote-User", "forged").unwrap();
        r.append_header("remote_user", "forged2").unwrap();
        r.append_header("REMOTE-GROUPS", "admin").unwrap();
        r.append_header("Cookie", "a=1; vigile_session=secret")
            .unwrap();
        r.append_header("X-Other", "kept").unwrap();
        r.append_header("Forwarded", "for=6.6.6.6;proto=https")
            .unwrap();
        r.append_header("X-Real-IP", "6.6.6.6").unwrap();
        r
    }

    /// Member `u1` with session `s1`.
    fn member(email: &str, name: &str) -> Identity {
        Identity::new(
            UserId::from_string("u1"),
            email.into(),
            name.into(),
            false,
            SessionId::from_string("s1"),
            DeviceId::from_string("d1"),
            None,
        )
    }

    /// A request for `/x` from 1.2.3.4, an untrusted peer.
    fn forwarded(xff: Option<&str>) -> Forwarded {
        Forwarded::new(
            "1.2.3.4".parse().unwrap(),
            false,
            xff,
            false,
            &mut edge(b"/x", &[("Host", "h")]),
            "rid".into(),
        )
    }

    #[test]
    fn strips_forged_and_injects_real() {
        let plan = HeaderPlan::new(&HeadersSection::default()).unwrap();
        let mut r = req();
        let id = member("a@b.c", "Ann\r\nX: y");
        let fwd = forwarded(Some("6.6.6.6"));
        plan.apply(&mut r, Some(&id), &fwd, CookieNames { secure: false })
            .unwrap();
        let get = |n: &str| sent(&r, n);
        assert_eq!(get("remote-user"), vec!["u1"]);
        assert!(get("remote_user").is_empty());
        assert_eq!(get("remote-groups"), vec!["member"]);
        assert_eq!(get("remote-name"), vec!["AnnX: y"]);
        assert!(get("x").is_empty(), "a stored name forged a header");
        assert_eq!(get("remote-email"), vec!["a@b.c"]);
        assert_eq!(get("remote-session"), vec!["s1"]);
        assert_eq!(get("remote-auth-level"), vec!["password"]);
        assert_eq!(get("cookie"), vec!["a=1"]);
        assert_eq!(get("x-other"), vec!["kept"]);
        assert_eq!(get("x-forwarded-for"), vec!["1.2.3.4"]);
        assert!(get("forwarded").is_empty() && get("x-real-ip").is_empty());
    }

    #[test]
    fn applied_twice_the_request_carries_one_set() {
        let plan = HeaderPlan::new(&HeadersSection::default()).unwrap();
        let mut r = req();
        let id = member("a@b.c", "Ann");
        for _ in 0..2 {
            plan.apply(
                &mut r,
                Some(&id),
                &forwarded(None),
                CookieNames { secure: false },
            )
            .unwrap();
        }
        for name in [
            "remote-user",
            "remote-email",
            "x-forwarded-for",
            "x-request-id",
        ] {
            assert_eq!(sent(&r, name).len(), 1, "{name}");
        }
    }

    #[test]
    fn a_forwarded_chain_that_could_split_a_line_fails_the_request() {
        let plan = HeaderPlan::new(&HeadersSection::default()).unwrap();
        let mut r = req();
        // From a trusted proxy (a client's own chain is replaced, not copied).
        let fwd = Forwarded::new(
            "1.2.3.4".parse().unwrap(),
            true,
            Some("5.5.5.5\r\nRemote-User: admin"),
            false,
            &mut edge(b"/x", &[("Host", "h")]),
            "rid".into(),
        );
        assert!(plan
            .apply(&mut r, None, &fwd, CookieNames { secure: false })
            .is_err());
    }

    proptest::proptest! {
        /// Whatever an account's name or address holds, the upstream reads exactly the
        /// headers Vigile meant to send, each once, the value being the text without its
        /// control characters.
        #[test]
        fn account_text_never_adds_or_splits_a_header(name in "\\PC*|[\\x00-\\x7f\\u{80}-\\u{a0}]{0,40}", email in ".{0,40}") {
            let plan = HeaderPlan::new(&HeadersSection::default()).unwrap();
            let mut r = RequestHeader::build("GET", b"/x", None).unwrap();
            let id = member(&email, &name);
            plan.apply(&mut r, Some(&id), &forwarded(None), CookieNames { secure: false })
                .unwrap();
            // Without its control characters; the spaces around a value are not part of it.
            let clean = |t: &str| {
                let kept: String = t.chars().filter(|c| !c.is_control()).collect();
                kept.trim_matches(' ').to_string()
            };
            let wire = on_wire(&r);
            let names: Vec<&str> = wire.iter().map(|(n, _)| n.as_str()).collect();
            proptest::prop_assert_eq!(names, [
                "Remote-User", "Remote-Email", "Remote-Name", "Remote-Groups",
                "Remote-Session", "Remote-Auth-Level", "X-Forwarded-For",
                "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id",
            ]);
            proptest::prop_assert_eq!(&wire[1].1, &clean(&email));
            proptest::prop_assert_eq!(&wire[2].1, &clean(&name));
        }
    }

    #[test]
    fn user_value_chooses_what_the_user_header_carries() {
        let id = member("ann@example.org", "Ann");
        let fwd = forwarded(None);
        for (value, expected) in [
            (UserValue::Id, "u1"),
            (UserValue::Email, "ann@example.org"),
            (UserValue::Username, "ann@example.org"),
        ] {
            let names = HeadersSection {
                user_value: value,
                ..HeadersSection::default()
            };
            let mut r = req();
            HeaderPlan::new(&names)
                .unwrap()
                .apply(&mut r, Some(&id), &fwd, CookieNames { secure: false })
                .unwrap();
            assert_eq!(sent(&r, "remote-user"), [expected], "{value:?}");
            assert_eq!(sent(&r, "remote-email"), ["ann@example.org"]);
        }
    }

    #[test]
    fn folding_matches_case_and_underscore_variants() {
        for n in ["Remote-User", "remote_user", "REMOTE_USER", "remote-user"] {
            assert!(same_folded(n, "remote-user"), "{n}");
        }
        assert!(!same_folded("remote-users", "remote-user"));
        assert!(same_folded("remote.user", "remote-user"));
        assert!(same_folded("Remote~User", "remote-user"));
        assert!(!same_folded("remote__user", "remote-user"));
    }

    #[test]
    fn anonymous_requests_carry_no_identity() {
        let plan = HeaderPlan::new(&HeadersSection::default()).unwrap();
        let mut r = req();
        let fwd = Forwarded::new(
            "1.2.3.4".parse().unwrap(),
            true,
            Some("5.5.5.5"),
            true,
            &mut edge(b"/x", &[("Host", "h")]),
            "rid".into(),
        );
        plan.apply(&mut r, None, &fwd, CookieNames { secure: false })
            .unwrap();
        for name in [
            "remote-user",
            "remote_user",
            "remote-groups",
            "remote-session",
        ] {
            assert!(sent(&r, name).is_empty(), "{name}");
        }
        assert_eq!(sent(&r, "x-forwarded-for"), ["5.5.5.5, 1.2.3.4"]);
        assert_eq!(sent(&r, "x-forwarded-proto"), ["https"]);
    }

    #[test]
    fn every_listed_and_configured_name_is_stripped_in_any_spelling() {
        // One configured name longer than any listed one, one with other punctuation.
        let long = "X-Our-Portal-Authenticated-Member-Login-Name";
        let names = HeadersSection {
            user: long.into(),
            org: "X~Tenant.Id".into(),
            ..HeadersSection::default()
        };
        let plan = HeaderPlan::new(&names).unwrap();
        let listed = AUTHELIA.iter().chain(&OTHER_GATEWAYS).chain(&HINTS);
        let longest = listed.clone().map(|n| n.len()).max().unwrap();
        assert!(long.len() > longest);
        let folded_long = long.to_lowercase();
        let configured = [
            &*folded_long,
            "x-tenant-id",
            "remote-email",
            "remote-session",
        ];
        for name in listed.copied().chain(configured) {
            let mut r = RequestHeader::build("GET", b"/x", None).unwrap();
            let spellings = [
                name.to_string(),
                name.to_uppercase(),
                name.replace('-', "_"),
                name.replace('-', "."),
                name.replace('-', "~"),
            ];
            for spelling in spellings {
                r.append_header(spelling, "forged").unwrap();
            }
            // As long as the name, but not on any list.
            let kept = "k".repeat(name.len());
            r.append_header(kept.clone(), "kept").unwrap();
            plan.strip(&mut r);
            let left: Vec<_> = r.headers.keys().map(|k| k.as_str().to_string()).collect();
            assert_eq!(left, vec![kept], "{name}");
        }
    }
}
