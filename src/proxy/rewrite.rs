//! Response headers that would send the browser to an upstream's own address, rewritten to
//! the public site, in Pingora's `upstream_response_filter`:
//!
//! - `Location` and the URL of `Refresh` (`5; url=...`): when the URL, read as a browser
//!   reads it on the public site, names the origin (scheme, host, port; default ports
//!   equal) of `[upstream]` or of any route's server, it becomes `public_url`'s origin +
//!   that route's stripped prefix + the path past the server's own path prefix, with the
//!   query and fragment. A scheme-relative `//host:port/x` naming a server is read with
//!   that server's scheme. Relative URLs, and absolute ones elsewhere, are left alone.
//! - `Set-Cookie` whose `Domain` names an upstream's host: the attribute is removed, so
//!   the cookie belongs to the public host alone. Cookies are read and written by the
//!   `cookie` crate, never by hand.
//!
//! Nothing else in the response is touched, and a response without these headers costs
//! three lookups.

use http::header::{HeaderName, HeaderValue, LOCATION, SET_COOKIE};
use pingora::http::ResponseHeader;
use url::{Origin, Url};

use crate::config::Config;

/// One upstream origin and how its paths map to public ones.
#[derive(Debug)]
struct Entry {
    origin: Origin,
    /// The server URL's own path prefix ("" for none), removed from the path…
    remove: String,
    /// …and the route's stripped prefix put back in its place.
    add: String,
    /// The route this server belongs to (`None`: `[upstream]`).
    route: Option<usize>,
}

pub struct Rewriter {
    public: Url,
    /// `scheme://host[:port]` of `public_url`.
    public_origin: String,
    entries: Vec<Entry>,
    /// Host names of every upstream, for cookie domains.
    hosts: Vec<String>,
    /// Per route (then `[upstream]` last): the first server's URL, to read a
    /// scheme-relative URL the way that server meant it.
    bases: Vec<Url>,
}

impl Rewriter {
    pub fn new(config: &Config) -> Self {
        let mut entries = Vec::new();
        let mut hosts: Vec<String> = Vec::new();
        let mut bases = Vec::new();
        let main = std::iter::once((None, "", std::slice::from_ref(&config.upstream)));
        let routes = config.routes.iter().enumerate().map(|(i, r)| {
            let add = r.strip.as_ref().map_or("", |s| s.wire.as_str());
            (Some(i), add, r.upstreams.as_slice())
        });
        for (route, add, servers) in routes.chain(main) {
            for server in servers {
                entries.push(Entry {
                    origin: server.origin.clone(),
                    remove: server.prefix.clone(),
                    add: add.to_string(),
                    route,
                });
                let host = server.sni.to_ascii_lowercase();
                if !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
            if let Some(base) = servers.first().and_then(|s| Url::parse(&s.label).ok()) {
                bases.push(base);
            }
        }
        let public = config.public_url.clone();
        Self {
            public_origin: public.origin().ascii_serialization(),
            public,
            entries,
            hosts,
            bases,
        }
    }

    /// Rewrites `resp`'s `Location`, `Refresh` and `Set-Cookie` headers (see the module
    /// doc) for a response to a request that matched `route`.
    pub fn response(&self, resp: &mut ResponseHeader, route: Option<usize>) {
        if let Some(new) = one(resp, &LOCATION, |v| self.location(v, route)) {
            let _ = resp.insert_header(LOCATION, new);
        }
        if let Some(new) = one(resp, &REFRESH, |v| self.refresh(v, route)) {
            let _ = resp.insert_header(REFRESH.clone(), new);
        }
        if resp.headers.contains_key(SET_COOKIE) {
            self.cookies(resp);
        }
    }

    fn cookies(&self, resp: &mut ResponseHeader) {
        let mut changed = false;
        let values: Vec<HeaderValue> = resp
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| {
                if crate::pages::cookies::sets_secret(v.as_bytes()) {
                    // Fixation: the application would choose the member's session.
                    tracing::warn!("the upstream set one of Vigile's cookies; dropped");
                    changed = true;
                    return None;
                }
                match v
                    .to_str()
                    .ok()
                    .and_then(|s| self.set_cookie(s))
                    .and_then(|s| HeaderValue::from_str(&s).ok())
                {
                    Some(new) => {
                        changed = true;
                        Some(new)
                    }
                    None => Some(v.clone()),
                }
            })
            .collect();
        if changed {
            resp.remove_header(&SET_COOKIE);
            for v in values {
                let _ = resp.append_header(SET_COOKIE, v);
            }
        }
    }

    /// The public form of a `Location` value naming an upstream, or `None` to keep it.
    pub fn location(&self, value: &str, route: Option<usize>) -> Option<String> {
        let value = value.trim_matches(|c: char| c <= ' ');
        if path_relative(value) {
            return None;
        }
        // As the browser reads it, on the public site.
        let resolved = self.public.join(value).ok()?;
        if let Some(entry) = self.entry_for(&resolved, route) {
            return Some(self.public_form(&resolved, entry));
        }
        if resolved.origin() == self.public.origin() {
            return None;
        }
        // Off-site: a scheme-relative `//host:port/x` may name a server with its scheme.
        let base = route
            .and_then(|i| self.bases.get(i))
            .or(self.bases.last())?;
        let as_meant = base.join(value).ok()?;
        let entry = self.entry_for(&as_meant, route)?;
        Some(self.public_form(&as_meant, entry))
    }

    /// `Refresh: 5; url=http://...` with its URL rewritten like a `Location` (the HTML
    /// parsing rules: a delay, `;` or `,`, an optional `url=`, an optional quote).
    pub fn refresh(&self, value: &str, route: Option<usize>) -> Option<String> {
        let b = value.as_bytes();
        let ws = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            i
        };
        let mut i = ws(0);
        while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
            i += 1;
        }
        i = ws(i);
        if matches!(b.get(i), Some(b';' | b',')) {
            i = ws(i + 1);
        }
        if value
            .get(i..i + 3)
            .is_some_and(|u| u.eq_ignore_ascii_case("url"))
        {
            let j = ws(i + 3);
            if b.get(j) == Some(&b'=') {
                i = ws(j + 1);
            }
        }
        let (start, end) = match b.get(i) {
            Some(q @ (b'"' | b'\'')) => {
                let close = value[i + 1..]
                    .find(char::from(*q))
                    .map_or(b.len(), |at| i + 1 + at);
                (i + 1, close)
            }
            _ => (i, b.len()),
        };
        let new = self.location(value.get(start..end)?, route)?;
        Some(format!("{}{new}{}", &value[..start], &value[end..]))
    }

    /// A `Set-Cookie` value without its `Domain` when that names an upstream's host.
    pub fn set_cookie(&self, value: &str) -> Option<String> {
        let mentions_domain = value
            .as_bytes()
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"domain"));
        if !mentions_domain {
            return None;
        }
        let mut cookie = cookie::Cookie::parse(value).ok()?;
        let domain = cookie.domain()?;
        let ours = self.hosts.iter().any(|h| h.eq_ignore_ascii_case(domain));
        if !ours {
            return None;
        }
        cookie.unset_domain();
        Some(cookie.to_string())
    }

    /// The entry `url` names: the request's own route first, then the server whose path
    /// prefix the path starts with (the longest), then the first listed.
    fn entry_for(&self, url: &Url, route: Option<usize>) -> Option<&Entry> {
        let origin = url.origin();
        let path = url.path();
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.origin == origin)
            .max_by_key(|(i, e)| {
                let under_prefix = under(path, &e.remove).map(|_| e.remove.len());
                (e.route == route, under_prefix, std::cmp::Reverse(*i))
            })
            .map(|(_, e)| e)
    }

    fn public_form(&self, url: &Url, entry: &Entry) -> String {
        let path = url.path();
        let rest = under(path, &entry.remove).unwrap_or(path);
        let mut out = String::with_capacity(self.public_origin.len() + path.len() + 16);
        out.push_str(&self.public_origin);
        out.push_str(&entry.add);
        if !rest.is_empty() {
            out.push_str(rest);
        } else if entry.add.is_empty() {
            out.push('/');
        }
        if let Some(q) = url.query() {
            out.push('?');
            out.push_str(q);
        }
        if let Some(f) = url.fragment() {
            out.push('#');
            out.push_str(f);
        }
        out
    }
}

/// A name known ahead, so that looking it up in every response parses nothing.
static REFRESH: HeaderName = HeaderName::from_static("refresh");

/// The one value of header `name`, mapped by `f`; `None` when absent, repeated, not text
/// or kept.
fn one(
    resp: &ResponseHeader,
    name: &HeaderName,
    f: impl Fn(&str) -> Option<String>,
) -> Option<HeaderValue> {
    let mut all = resp.headers.get_all(name).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return None;
    };
    HeaderValue::from_str(&f(v.to_str().ok()?)?).ok()
}

/// `/x`, `?q`, `#f`, `x/y`: resolved on the public site whatever it holds (a fast exit
/// for the common case; anything else goes through the URL parser).
fn path_relative(v: &str) -> bool {
    let b = v.as_bytes();
    match b.first() {
        Some(b'/') => !matches!(b.get(1), Some(b'/' | b'\\')),
        Some(b'?' | b'#') => true,
        _ => false,
    }
}

/// `path` past `prefix` at a segment boundary (`/app/x` under `/app` is `/x`, `/app` is
/// ""); `None` when it is not under it.
fn under<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests;
