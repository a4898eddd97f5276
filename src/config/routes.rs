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
mod tests;
