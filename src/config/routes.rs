//! Where forwarded requests go: `[upstream] url` and the optional `[[route]]` table, as the
//! operator writes them ([`RouteSection`]) and validated once ([`UpstreamRoute`],
//! [`UpstreamTarget`]).
//!
//! A route takes the paths its glob matches (the `[access]` syntax, matched exactly as
//! written, like public rules) to its own server(s); the first route that matches wins,
//! any other path goes to `[upstream]`. Nothing here opens a connection or resolves a
//! name: the pools and their health checks are built by `proxy::upstreams` at start.
//!
//! Paths are rewritten on the canonical path only (`edge::path`), segment by segment, so
//! the upstream reads the path the rules matched, minus the stripped prefix.

use std::sync::Arc;
use std::time::Duration;

use globset::GlobSet;
use serde::{Deserialize, Serialize};

use super::{key_err, ConfigError, FileConfig};
use crate::access::AccessRules;
use crate::config::AccessSection;
use crate::edge::path::{CanonicalPath, Target};

/// One `[[route]]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Paths this route takes (glob, `[access]` syntax; `/videos/**` also covers `/videos`).
    pub path: String,
    /// The one server for these paths (`http://` or `https://`, may carry a path prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Several servers of one application instead (round robin among the healthy ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<String>,
    /// A literal prefix of `path` removed before forwarding (`/videos/a.mp4` → `/a.mp4`).
    #[serde(default)]
    pub strip_prefix: String,
    /// When stripping, tell the upstream what was stripped (`X-Forwarded-Prefix`).
    #[serde(default = "yes")]
    pub forwarded_prefix: bool,
    /// With `upstreams`: "" checks that a TCP connection opens; "/path" sends `GET /path`
    /// and expects a 2xx or 3xx answer.
    #[serde(default)]
    pub health_check: String,
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// Replaces `[access]` for this route's paths; lists not given are empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<RouteAccessSection>,
}

fn yes() -> bool {
    true
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

/// `[route.access]`: the keys of `[access]`, with empty lists by default (a path none
/// names needs a member session), not `[access]`'s defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteAccessSection {
    pub public: Vec<String>,
    pub member: Vec<String>,
    pub admin: Vec<String>,
    pub org_member: Vec<String>,
    pub org_admin: Vec<String>,
    pub org_super_admin: Vec<String>,
    pub twofactor: Vec<String>,
}

impl From<&RouteAccessSection> for AccessSection {
    fn from(a: &RouteAccessSection) -> Self {
        AccessSection {
            public: a.public.clone(),
            member: a.member.clone(),
            admin: a.admin.clone(),
            org_member: a.org_member.clone(),
            org_admin: a.org_admin.clone(),
            org_super_admin: a.org_super_admin.clone(),
            twofactor: a.twofactor.clone(),
        }
    }
}

/// One upstream server, pre-computed for Pingora's `HttpPeer` and for the response rewrite.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// `host:port` to connect to.
    pub address: String,
    pub tls: bool,
    /// SNI / certificate name when `tls`; also the host name compared with cookie domains.
    pub sni: String,
    /// The URL's path without its trailing `/` ("" for none), sent before every path.
    pub prefix: String,
    /// scheme, host and port (default ports made explicit): what a `Location` naming this
    /// server is recognised by.
    pub origin: url::Origin,
    /// The URL as written, normalised: the `upstream` label of `vigile_upstream_healthy`.
    pub label: String,
}

/// A validated `[[route]]`.
#[derive(Debug, Clone)]
pub struct UpstreamRoute {
    /// `path` as written, for logs.
    pub pattern: String,
    matcher: GlobSet,
    /// One server, or several (a pool); all with the same path prefix.
    pub upstreams: Vec<UpstreamTarget>,
    /// Given as `upstreams` (even of one): load-balanced and health-checked.
    pub pooled: bool,
    pub strip: Option<StripPrefix>,
    /// `X-Forwarded-Prefix` to send: the stripped prefix, when `forwarded_prefix`.
    pub forwarded_prefix: Option<Arc<str>>,
    pub health_check: String,
    pub health_check_interval: Duration,
    /// `[route.access]`, compiled; `None` shares `[access]`.
    pub access: Option<AccessRules>,
}

/// A `strip_prefix`, as a canonical path.
#[derive(Debug, Clone)]
pub struct StripPrefix {
    /// Decoded, as the route glob matched it.
    decoded: String,
    /// Canonical wire form: what the public URL carries (and `X-Forwarded-Prefix`).
    pub wire: String,
    /// Path segments it spans (`/videos` = 1).
    segments: usize,
}

impl UpstreamRoute {
    /// Whether this route takes `path` (Vigile's own pages never reach here).
    pub fn matches(&self, path: &CanonicalPath) -> bool {
        self.matcher.is_match(path.as_str())
    }

    /// The path prefix all this route's servers share.
    pub fn prefix(&self) -> &str {
        self.upstreams.first().map_or("", |u| u.prefix.as_str())
    }

    /// The request-target this route's server receives for `target`, or `None` when it
    /// is the canonical target unchanged (no strip, no prefix).
    pub fn rewrite(&self, target: &Target) -> Option<String> {
        upstream_target(self.strip.as_ref(), self.prefix(), target)
    }
}

/// The first route taking `path`, by index.
pub fn route_for(routes: &[UpstreamRoute], path: &CanonicalPath) -> Option<usize> {
    routes.iter().position(|r| r.matches(path))
}

/// `strip`ped `target`, with `prefix` before it and the query as sent; `None` when that
/// is `target.wire()` itself. Works on whole segments of the canonical wire form, so a
/// prefix is removed whatever escapes its segments were spelled with.
pub fn upstream_target(
    strip: Option<&StripPrefix>,
    prefix: &str,
    target: &Target,
) -> Option<String> {
    let wire = target.path.wire();
    let rest = match strip {
        Some(s) if strips(s, target.path.as_str()) => after_segments(wire, s.segments),
        _ if prefix.is_empty() => return None,
        _ => wire,
    };
    let mut out = String::with_capacity(prefix.len() + rest.len() + 1);
    out.push_str(prefix);
    out.push_str(rest);
    if let Some(q) = &target.query {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

/// `decoded` starts with the prefix at a segment boundary.
fn strips(s: &StripPrefix, decoded: &str) -> bool {
    decoded
        .strip_prefix(s.decoded.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `/a/b/c` without its first `n` segments: `/c` for 2, `/` when nothing is left.
fn after_segments(wire: &str, n: usize) -> &str {
    match wire.match_indices('/').nth(n) {
        Some((at, _)) => &wire[at..],
        None => "/",
    }
}

/// Parses an upstream URL: http(s), a host, an optional path prefix; no query, fragment
/// or credentials.
pub fn parse_upstream(raw: &str) -> Result<UpstreamTarget, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        s => return Err(format!("unsupported scheme `{s}` (http or https)")),
    };
    let host = url.host_str().ok_or("URL has no host")?.to_string();
    let port = url.port_or_known_default().ok_or("URL has no port")?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(
            "a query or fragment is not supported; give scheme://host:port[/prefix]".into(),
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not supported".into());
    }
    let prefix = url.path().trim_end_matches('/').to_string();
    if !prefix.is_empty() {
        CanonicalPath::parse(&prefix)
            .map_err(|e| format!("path prefix `{prefix}` refused: {e}"))?;
    }
    // IPv6 literals keep their brackets in host_str, which is what host:port needs.
    Ok(UpstreamTarget {
        address: format!("{host}:{port}"),
        tls,
        sni: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        prefix,
        origin: url.origin(),
        label: url.as_str().trim_end_matches('/').to_string(),
    })
}

/// Validates every `[[route]]`.
pub(super) fn check_routes(
    file: &FileConfig,
    source: &str,
) -> Result<Vec<UpstreamRoute>, ConfigError> {
    file.route
        .iter()
        .enumerate()
        .map(|(i, r)| {
            check_route(r)
                .map_err(|(key, reason)| key_err(source, &format!("route[{i}].{key}"), reason))
        })
        .collect()
}

type KeyError = (&'static str, String);

fn check_route(r: &RouteSection) -> Result<UpstreamRoute, KeyError> {
    let matcher = crate::access::compile_globs(std::slice::from_ref(&r.path), false)
        .map_err(|e| ("path", e))?;
    let urls: Vec<&String> = match (&r.upstream, r.upstreams.is_empty()) {
        (Some(one), true) => vec![one],
        (None, false) => r.upstreams.iter().collect(),
        (Some(_), false) => {
            return Err((
                "upstreams",
                "give `upstream` or `upstreams`, not both".into(),
            ))
        }
        (None, true) => return Err(("upstream", "missing: give `upstream` or `upstreams`".into())),
    };
    let mut upstreams = Vec::with_capacity(urls.len());
    for raw in urls {
        let key = if r.upstream.is_some() {
            "upstream"
        } else {
            "upstreams"
        };
        let target = parse_upstream(raw).map_err(|e| (key, format!("{raw}: {e}")))?;
        if upstreams
            .iter()
            .any(|u: &UpstreamTarget| u.address == target.address && u.tls == target.tls)
        {
            return Err((key, format!("{raw} is listed twice")));
        }
        if let Some(first) = upstreams.first() {
            if first.prefix != target.prefix {
                return Err((
                    key,
                    "the servers of one route must have the same path prefix".into(),
                ));
            }
        }
        upstreams.push(target);
    }
    let strip = check_strip(&r.path, &r.strip_prefix).map_err(|e| ("strip_prefix", e))?;
    let pool = r.upstream.is_none();
    if !r.health_check.is_empty() {
        if !pool {
            return Err((
                "health_check",
                "health checks run for `upstreams` (a pool of servers), not `upstream`".into(),
            ));
        }
        let valid = r.health_check.starts_with('/')
            && r.health_check.parse::<http::uri::PathAndQuery>().is_ok();
        if !valid {
            return Err((
                "health_check",
                format!(
                    "expected \"\" (TCP) or a path such as \"/healthz\": {}",
                    r.health_check
                ),
            ));
        }
    }
    if r.health_check_interval.is_zero() {
        return Err(("health_check_interval", "must be positive".into()));
    }
    let access = match &r.access {
        Some(a) => Some(
            AccessRules::from_section(&AccessSection::from(a))
                .map_err(|(k, e)| (access_key(k), e))?,
        ),
        None => None,
    };
    let forwarded_prefix = match &strip {
        Some(s) if r.forwarded_prefix => Some(Arc::from(s.wire.as_str())),
        _ => None,
    };
    Ok(UpstreamRoute {
        pattern: r.path.clone(),
        matcher,
        upstreams,
        pooled: pool,
        strip,
        forwarded_prefix,
        health_check: r.health_check.clone(),
        health_check_interval: r.health_check_interval,
        access,
    })
}

fn access_key(list: &str) -> &'static str {
    match list {
        "public" => "access.public",
        "member" => "access.member",
        "admin" => "access.admin",
        "org_member" => "access.org_member",
        "org_admin" => "access.org_admin",
        "org_super_admin" => "access.org_super_admin",
        "twofactor" => "access.twofactor",
        _ => "access",
    }
}

/// `strip_prefix` must be a literal prefix of `pattern` ending at a segment boundary, so
/// every path the route takes starts with it: `/videos` for `/videos/**`, not `/vid`.
fn check_strip(pattern: &str, strip: &str) -> Result<Option<StripPrefix>, String> {
    if strip.is_empty() {
        return Ok(None);
    }
    if !strip.starts_with('/') || strip == "/" || strip.ends_with('/') {
        return Err(format!(
            "expected a path such as \"/videos\" (no trailing `/`): {strip}"
        ));
    }
    if strip.contains(['*', '?', '[', ']', '{', '}', '\\', '!']) {
        return Err(format!("must be literal, without glob characters: {strip}"));
    }
    let implied = pattern
        .strip_prefix(strip)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if !implied {
        return Err(format!(
            "`{strip}` is not a prefix every path of `{pattern}` starts with \
             (it must be the start of the pattern, ending at a `/`)"
        ));
    }
    let canonical = CanonicalPath::parse(strip).map_err(|e| format!("{strip}: {e}"))?;
    Ok(Some(StripPrefix {
        decoded: canonical.as_str().to_string(),
        wire: canonical.wire().to_string(),
        segments: strip.matches('/').count(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(toml_text: &str) -> Result<UpstreamRoute, KeyError> {
        let r: RouteSection = toml::from_str(toml_text).unwrap();
        check_route(&r)
    }

    fn target(raw: &str) -> Target {
        Target::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn strip_then_prefix_on_whole_segments() {
        let r = route(
            "path = \"/videos/**\"\nupstream = \"http://127.0.0.1:8081/media/\"\nstrip_prefix = \"/videos\"",
        )
        .unwrap();
        assert_eq!(r.prefix(), "/media");
        let t = |raw: &str| r.rewrite(&target(raw)).unwrap();
        assert_eq!(t("/videos/a.mp4"), "/media/a.mp4");
        assert_eq!(t("/videos"), "/media/");
        assert_eq!(t("/videos/"), "/media/");
        assert_eq!(t("/videos/x/y?q=1&r=%2F"), "/media/x/y?q=1&r=%2F");
        // Escapes in the stripped segment do not hide it.
        assert_eq!(t("/vide%6Fs/a"), "/media/a");
        assert!(r.matches(&target("/videos").path));
        assert!(!r.matches(&target("/videosx/a").path));
        assert!(!r.matches(&target("/VIDEOS/a").path));

        let plain = route("path = \"/api/**\"\nupstream = \"http://h:1\"").unwrap();
        assert_eq!(plain.rewrite(&target("/api/x?y")), None);
        let strip_only =
            route("path = \"/api/**\"\nupstream = \"http://h:1\"\nstrip_prefix = \"/api\"")
                .unwrap();
        assert_eq!(strip_only.rewrite(&target("/api")).unwrap(), "/");
        assert_eq!(strip_only.rewrite(&target("/api/v1?x")).unwrap(), "/v1?x");
        assert_eq!(strip_only.forwarded_prefix.as_deref(), Some("/api"));
        let deep = route(
            "path = \"/a/b/**\"\nupstream = \"http://h:1/p\"\nstrip_prefix = \"/a/b\"\nforwarded_prefix = false",
        )
        .unwrap();
        assert_eq!(deep.rewrite(&target("/a/b/c/d")).unwrap(), "/p/c/d");
        assert_eq!(deep.forwarded_prefix, None);
    }

    #[test]
    fn main_upstream_prefix_joins_without_double_slashes() {
        let up = parse_upstream("http://h:8080/app/").unwrap();
        let t = |raw: &str| upstream_target(None, &up.prefix, &target(raw)).unwrap();
        assert_eq!(t("/x"), "/app/x");
        assert_eq!(t("/"), "/app/");
        assert_eq!(t("/x/?a=b"), "/app/x/?a=b");
        let root = parse_upstream("http://h:8080/").unwrap();
        assert_eq!(upstream_target(None, &root.prefix, &target("/x")), None);
    }

    #[test]
    fn upstream_urls() {
        let u = parse_upstream("https://App.Example:8443/base").unwrap();
        assert_eq!(u.address, "app.example:8443");
        assert!(u.tls);
        assert_eq!(u.sni, "app.example");
        assert_eq!(u.prefix, "/base");
        assert_eq!(u.label, "https://app.example:8443/base");
        let d = parse_upstream("http://h").unwrap();
        assert_eq!(d.address, "h:80");
        assert_eq!(d.origin, parse_upstream("http://h:80/x").unwrap().origin);
        for bad in [
            "ftp://h",
            "http://h/?q=1",
            "http://h/#f",
            "http://u:p@h/",
            "nope",
            "http://h/a%2Fb",
        ] {
            assert!(parse_upstream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_routes_name_the_key() {
        let key = |t: &str| route(t).unwrap_err().0;
        assert_eq!(key("path = \"/a/**\""), "upstream");
        assert_eq!(
            key("path = \"/a/**\"\nupstream = \"http://h:1\"\nupstreams = [\"http://h:2\"]"),
            "upstreams"
        );
        assert_eq!(
            key("path = \"/a/**\"\nupstreams = [\"http://h:1\", \"http://h:1/\"]"),
            "upstreams"
        );
        assert_eq!(
            key("path = \"/a/**\"\nupstreams = [\"http://h:1/x\", \"http://h:2/y\"]"),
            "upstreams"
        );
        assert_eq!(key("path = \"a/**\"\nupstream = \"http://h:1\""), "path");
        for strip in ["/vid", "/b", "/a/", "/", "a", "/a*", "/a/b"] {
            assert_eq!(
                key(&format!(
                    "path = \"/a/**\"\nupstream = \"http://h:1\"\nstrip_prefix = \"{strip}\""
                )),
                "strip_prefix",
                "{strip}"
            );
        }
        assert_eq!(
            key("path = \"/a/**\"\nupstream = \"http://h:1\"\nhealth_check = \"/h\""),
            "health_check"
        );
        assert_eq!(
            key("path = \"/a/**\"\nupstreams = [\"http://h:1\"]\nhealth_check = \"h\""),
            "health_check"
        );
        assert_eq!(
            key("path = \"/a/**\"\nupstreams = [\"http://h:1\"]\nhealth_check_interval = \"0s\""),
            "health_check_interval"
        );
        assert_eq!(
            key("path = \"/a/**\"\nupstream = \"http://h:1\"\n[access]\nadmin = [\"x\"]"),
            "access.admin"
        );
        let ok = route(
            "path = \"/a/**\"\nupstreams = [\"http://h:1\", \"http://h:2\"]\nhealth_check = \"/healthz\"\n[access]\npublic = [\"/a/free/**\"]",
        )
        .unwrap();
        assert_eq!(ok.upstreams.len(), 2);
        let rules = ok.access.unwrap();
        let p = |s: &str| CanonicalPath::parse(s).unwrap();
        assert_eq!(
            rules.classify(&p("/a/free/x")),
            crate::access::Access::Public
        );
        // Lists not given are empty, not [access]'s defaults: `/` is not public here.
        assert_eq!(rules.classify(&p("/a/x")), crate::access::Access::Member);
        assert_eq!(rules.classify(&p("/")), crate::access::Access::Member);
    }

    #[test]
    fn the_commented_example_route_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/vigile.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("\n# [[route]]\n").unwrap() + 1;
        let end = start + text[start..].find("\n[store]").unwrap();
        let block: String = text[start..end]
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
            .collect();
        let config = format!("[upstream]\nurl = \"http://127.0.0.1:8080\"\n{block}");
        let c = crate::config::from_str(&config, "example", std::iter::empty()).unwrap();
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].forwarded_prefix.as_deref(), Some("/videos"));
        assert!(c.routes[0].access.is_some());
    }

    #[test]
    fn first_matching_route_wins() {
        let routes = vec![
            route("path = \"/api/admin/**\"\nupstream = \"http://h:1\"").unwrap(),
            route("path = \"/api/**\"\nupstream = \"http://h:2\"").unwrap(),
        ];
        let p = |s: &str| CanonicalPath::parse(s).unwrap();
        assert_eq!(route_for(&routes, &p("/api/admin/x")), Some(0));
        assert_eq!(route_for(&routes, &p("/api/x")), Some(1));
        assert_eq!(route_for(&routes, &p("/api")), Some(1));
        assert_eq!(route_for(&routes, &p("/other")), None);
    }
}
