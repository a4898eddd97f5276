//! HTTP clients that behave like a browser which does not follow redirects: a cookie
//! store, no proxy from the environment, and helpers for Vigile's forms (CSRF token in a
//! hidden input, `vigile_device` cookie set by the first page).
//!
//! Cookies are kept per host, not per port: one client talking to two gateways on
//! 127.0.0.1 sends the same cookies to both (that is one device seen by two instances).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use reqwest::{Client, Response};

/// `Accept` of a browser navigating to a page.
pub const ACCEPT_HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
/// `Accept` of a script calling an API.
pub const ACCEPT_JSON: &str = "application/json";
/// A desktop Chrome on Windows, for device descriptions.
pub const UA_CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// Firefox on Linux.
pub const UA_FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
/// Safari on an iPhone.
pub const UA_SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// A browser-like client: cookie store, no redirects followed, no proxy, Chrome UA.
pub fn client() -> Client {
    client_with_jar(UA_CHROME_WINDOWS).0
}

/// Like [`client`] with another `User-Agent` (another "device").
pub fn client_ua(user_agent: &str) -> Client {
    client_with_jar(user_agent).0
}

/// A browser-like client and its cookie jar, to read or plant cookies.
pub fn client_with_jar(user_agent: &str) -> (Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(Policy::none())
        .no_proxy()
        .user_agent(user_agent)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client");
    (client, jar)
}

/// A browser-like client whose connections come from `source` (any 127.0.0.0/8 address
/// reaches a gateway listening on 127.0.0.1): another client address as the gateway sees
/// it, for per-address rules. Its cookie jar is returned too.
pub fn client_from(source: std::net::IpAddr) -> (Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(Policy::none())
        .no_proxy()
        .user_agent(UA_CHROME_WINDOWS)
        .local_address(source)
        // Long: logins wait for the hashing queue on a loaded machine.
        .timeout(Duration::from_secs(120))
        .build()
        .expect("build reqwest client");
    (client, jar)
}

/// A browser-like client (cookies, no redirects) sending `headers` with every request,
/// e.g. a spoofed `X-Forwarded-For`.
pub fn client_with_headers(headers: &[(&str, &str)]) -> Client {
    client_with_headers_and_jar(headers).0
}

/// [`client_with_headers`] and its cookie jar, to read the cookies it was given.
pub fn client_with_headers_and_jar(headers: &[(&str, &str)]) -> (Client, Arc<Jar>) {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            reqwest::header::HeaderValue::from_str(value).expect("header value"),
        );
    }
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(Policy::none())
        .no_proxy()
        .user_agent(UA_CHROME_WINDOWS)
        .default_headers(map)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client");
    (client, jar)
}

/// A client without cookies (each request is a fresh visitor), not following redirects.
pub fn bare_client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client")
}

/// Value of cookie `name` that `jar` would send to `url`.
pub fn jar_cookie(jar: &Jar, url: &str, name: &str) -> Option<String> {
    let url: reqwest::Url = url.parse().expect("cookie url");
    let header = jar.cookies(&url)?;
    header.to_str().ok()?.split(';').find_map(|pair| {
        let (n, v) = pair.trim().split_once('=')?;
        (n == name).then(|| v.to_string())
    })
}

/// GET `url`, with a browser `Accept` when `accept_html`, else `application/json`.
pub async fn get(client: &Client, url: &str, accept_html: bool) -> Response {
    let accept = if accept_html {
        ACCEPT_HTML
    } else {
        ACCEPT_JSON
    };
    client
        .get(url)
        .header(reqwest::header::ACCEPT, accept)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// GET an HTML page, assert `200`, return its body.
pub async fn get_page(client: &Client, url: &str) -> String {
    let resp = get(client, url, true).await;
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {url} answered {status}:\n{body}");
    body
}

/// POST `fields` as `application/x-www-form-urlencoded` (with a browser `Accept`).
pub async fn post_form(client: &Client, url: &str, fields: &[(&str, &str)]) -> Response {
    client
        .post(url)
        .header(reqwest::header::ACCEPT, ACCEPT_HTML)
        .form(fields)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// Logs in like a browser: GET `/_vigile/login` (sets `vigile_device`, gives the CSRF
/// token), then POST `email`, `password` and the form's hidden fields (`csrf`, `rd`).
/// On success Vigile answers `303` to the `rd` target and sets `vigile_session`.
pub async fn login(client: &Client, gw_url: &str, email: &str, password: &str) -> Response {
    login_rd(client, gw_url, email, password, None).await
}

/// [`login`] with an explicit `rd` (return path) posted with the form.
pub async fn login_rd(
    client: &Client,
    gw_url: &str,
    email: &str,
    password: &str,
    rd: Option<&str>,
) -> Response {
    let page = get_page(client, &format!("{gw_url}/_vigile/login")).await;
    post_login(client, gw_url, &page, email, password, rd).await
}

/// Posts the login form of `page` (a login page already fetched) with these credentials.
pub async fn post_login(
    client: &Client,
    gw_url: &str,
    page: &str,
    email: &str,
    password: &str,
    rd: Option<&str>,
) -> Response {
    let form = form_with_action(page, "/_vigile/login")
        .unwrap_or_else(|| panic!("no login form on /_vigile/login:\n{page}"));
    let mut fields: Vec<(String, String)> = form
        .hidden
        .into_iter()
        .filter(|(name, _)| !(rd.is_some() && name == "rd"))
        .collect();
    if !fields.iter().any(|(name, _)| name == "csrf") {
        panic!("login form has no csrf field:\n{page}");
    }
    if let Some(rd) = rd {
        fields.push(("rd".into(), rd.into()));
    }
    fields.push(("email".into(), email.into()));
    fields.push(("password".into(), password.into()));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    post_form(client, &format!("{gw_url}/_vigile/login"), &fields).await
}

/// [`login`] and assert it succeeded (`303` with a `vigile_session` cookie); returns the
/// `Location` it redirects to.
pub async fn login_ok(client: &Client, gw_url: &str, email: &str, password: &str) -> String {
    let resp = login(client, gw_url, email, password).await;
    let status = resp.status();
    let location = header(&resp, "location");
    let sets_session = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .any(|v| {
            v.to_str().is_ok_and(|v| {
                v.starts_with("vigile_session=") || v.starts_with("__Host-vigile_session=")
            })
        });
    let body = resp.text().await.unwrap_or_default();
    assert!(
        status == 303 && sets_session,
        "login of {email} failed: {status}, location {location:?}, session cookie set: {sets_session}\n{body}"
    );
    location.unwrap_or_default()
}

/// Fills and posts the sign-up form like a browser (CSRF from the page).
pub async fn signup(
    c: &Client,
    gw: &str,
    email: &str,
    password: &str,
    confirm: &str,
    lang: &str,
) -> Response {
    let page = get_page(c, &format!("{gw}/_vigile/signup")).await;
    let form = form_with_action(&page, "/_vigile/signup")
        .unwrap_or_else(|| panic!("no sign-up form:\n{page}"));
    let fields = [
        ("email", email),
        ("password", password),
        ("confirm", confirm),
        ("lang", lang),
    ];
    submit(c, gw, &form, &fields).await
}

/// First value of response header `name`, as a string.
pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Set-Cookie` lines of a response.
pub fn set_cookies(resp: &Response) -> Vec<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

/// The CSRF token of the first form in `html` (`<input type="hidden" name="csrf" value="...">`).
pub fn csrf_from(html: &str) -> String {
    hidden_inputs(html)
        .into_iter()
        .find_map(|(name, value)| (name == "csrf").then_some(value))
        .unwrap_or_else(|| panic!("no csrf hidden input in page:\n{html}"))
}

/// A `<form>` as a browser would submit it, minus the fields a user types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub action: String,
    /// Lower-cased; `get` when absent.
    pub method: String,
    /// `<input type="hidden">` (name, value) pairs, entities decoded, in document order.
    pub hidden: Vec<(String, String)>,
}

impl Form {
    pub fn hidden_value(&self, name: &str) -> Option<&str> {
        self.hidden
            .iter()
            .find_map(|(n, v)| (n == name).then_some(v.as_str()))
    }
}

/// Every `<form>` of a page, in order.
pub fn forms(html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = find_tag(rest, "form") {
        let (attrs, after) = tag_attrs(&rest[start..]);
        let end = find_close(after, "form").unwrap_or(after.len());
        let body = &after[..end];
        out.push(Form {
            action: attr(&attrs, "action").unwrap_or_default(),
            method: attr(&attrs, "method")
                .unwrap_or_else(|| "get".into())
                .to_ascii_lowercase(),
            hidden: hidden_inputs(body),
        });
        rest = &after[end..];
    }
    out
}

/// The first form whose `action` is `action` (query string ignored).
pub fn form_with_action(html: &str, action: &str) -> Option<Form> {
    forms(html)
        .into_iter()
        .find(|f| f.action.split('?').next() == Some(action))
}

/// Submits `form` (its hidden fields plus `fields`, which replace hidden ones of the same
/// name) to `gw_url` + its action, by POST.
pub async fn submit(
    client: &Client,
    gw_url: &str,
    form: &Form,
    fields: &[(&str, &str)],
) -> Response {
    let mut all: Vec<(&str, &str)> = form
        .hidden
        .iter()
        .filter(|(n, _)| !fields.iter().any(|(f, _)| f == n))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    all.extend_from_slice(fields);
    let url = if form.action.starts_with("http") {
        form.action.clone()
    } else {
        format!("{gw_url}{}", form.action)
    };
    post_form(client, &url, &all).await
}

/// All `<input type="hidden">` (name, value) pairs of `html`, in document order.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = find_tag(rest, "input") {
        let (attrs, after) = tag_attrs(&rest[start..]);
        if attr(&attrs, "type").is_some_and(|t| t.eq_ignore_ascii_case("hidden")) {
            if let Some(name) = attr(&attrs, "name") {
                out.push((name, attr(&attrs, "value").unwrap_or_default()));
            }
        }
        rest = after;
    }
    out
}

/// Byte offset of the next `<name` tag (followed by whitespace, `>` or `/`), any case.
fn find_tag(html: &str, name: &str) -> Option<usize> {
    let lower = html.to_ascii_lowercase();
    let needle = format!("<{name}");
    let mut from = 0;
    while let Some(pos) = lower[from..].find(&needle) {
        let at = from + pos;
        let next = lower.as_bytes().get(at + needle.len()).copied();
        if matches!(next, Some(b) if b.is_ascii_whitespace() || b == b'>' || b == b'/') {
            return Some(at);
        }
        from = at + needle.len();
    }
    None
}

fn find_close(html: &str, name: &str) -> Option<usize> {
    html.to_ascii_lowercase().find(&format!("</{name}"))
}

/// Parses the attributes of the tag starting at `tag[0] == '<'`; returns them (names
/// lower-cased, values entity-decoded) and the text after the tag's `>`.
fn tag_attrs(tag: &str) -> (Vec<(String, String)>, &str) {
    let bytes = tag.as_bytes();
    let mut i = 1;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' && bytes[i] != b'/'
    {
        i += 1;
    }
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() {
            return (attrs, "");
        }
        if bytes[i] == b'>' {
            return (attrs, &tag[i + 1..]);
        }
        let name_start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
        {
            i += 1;
        }
        let name = tag[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let start = i + 1;
                let end = tag[start..]
                    .bytes()
                    .position(|b| b == quote)
                    .map_or(tag.len(), |p| start + p);
                value = decode_entities(&tag[start..end]);
                i = (end + 1).min(tag.len());
            } else {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                value = decode_entities(&tag[start..i]);
            }
        }
        attrs.push((name, value));
    }
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find_map(|(n, v)| (n == name).then(|| v.clone()))
}

/// Decodes the HTML entities template engines emit (`&amp;`, `&quot;`, `&#39;`, `&#x2F;`, ...).
/// The device rows (`<li>` with a `session` field) of the account or choose page: each
/// session id with its row's text, entities decoded.
pub fn device_rows(page: &str) -> Vec<(String, String)> {
    page.split("<li")
        .skip(1)
        .filter_map(|li| {
            let id = li
                .split("name=\"session\" value=\"")
                .nth(1)?
                .split('"')
                .next()?;
            Some((id.to_string(), decode_entities(li)))
        })
        .collect()
}

/// The session id of the first device row whose text `pick` accepts.
pub fn session_row(page: &str, pick: impl Fn(&str) -> bool) -> String {
    device_rows(page)
        .into_iter()
        .find(|(_, text)| pick(text))
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("no such device row in:\n{page}"))
}

pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &after[..end];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((ch, end))
        });
        match decoded {
            Some((ch, end)) => {
                out.push(ch);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
