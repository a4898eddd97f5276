//! Two-factor authentication (issue 15) through the real binary, a real SMTP server, a
//! real HTTP server standing in for the SMS provider, a recording upstream and both store
//! backends, against the contract (`/work/notes/twofactor-contract.md`): enrolment on the
//! account page (TOTP, email and SMS codes, the ten recovery codes shown once), the second
//! step at login (`/_vigile/2fa`, `rd` kept, no session before it), replayed TOTP codes,
//! recovery codes, `required_for`, trusted devices, the shared lockout, step-up on
//! `[access] twofactor` paths, `Remote-Auth-Level` upstream, admin resets (CLI and page),
//! a second instance, metrics, audit, secrets at rest, wording and `check-config`.
//!
//! TOTP codes are computed here with `totp-rs` from the secret the page shows, never with
//! Vigile's own code.
//!
//! # What these tests assume where the contract leaves the detail open
//!
//! - Forms are told apart by the value of their `action` field: a hidden input
//!   `name="action"`, or the submit button (`<button name="action" value="...">`) that
//!   posts it. A form without an `action` attribute posts to the page it is on. Every form
//!   carries its `csrf` hidden field; hidden fields are posted back as a browser does.
//! - The `/_vigile/2fa` form for a method is the `action=verify` form whose hidden `method`
//!   is that method (or one without a hidden `method`, which then gets it posted); when the
//!   page shows another method, the page's link whose `href` holds `method=M` is followed
//!   (else `?method=M` is added to the page's URL).
//! - An answer to a form may be the page itself (200) or a redirect to it (302/303): the
//!   tests follow redirects like a browser before reading a page.
//! - Unlocking the account page with the right password shows the page without the
//!   `action=unlock` form; within the 10 minutes it is not asked again.
//! - A wrong code at enrolment (`confirm-totp`, `confirm-code`) answers a 4xx page.
//! - The recovery codes are read from the elements whose class list holds exactly
//!   `recovery-code` (a container class such as `recovery-codes` is not one): the first
//!   `xxxx-xxxx-xxxx` token (lowercase letters and digits) of each.
//! - The TOTP secret is the text of the element `id="totp-secret"` (or its `value` if it is
//!   an input), spaces ignored; base32 (RFC 4648, case ignored, padding ignored).
//! - The `vigile user show` line reads `second factors: totp, email` (methods joined by
//!   `, `) or `second factors: none`.
//! - Code mails and texts are recognised by holding exactly one 6-digit number; the mail
//!   sent to the member by an admin's reset is any new mail to them after it.
//! - The API client's refusal on a step-up path is `401` with a JSON body whose `error` is
//!   `second_factor_required` and `url` is `/_vigile/2fa`.
//! - Vigile accepts a TOTP code of the previous, current or next 30 s step, and refuses one
//!   of a step at or before the last one it accepted for that factor (the enrolling code
//!   included or not: the codes used here always move forward).
//! - After a lock, a right code on `/_vigile/2fa` neither opens a session nor goes to `rd`
//!   (the pending login is gone: a redirect to `/_vigile/login`, or a 4xx page).

mod admin_reset;
mod codes;
mod config;
mod device_cap;
mod headers;
mod instances;
mod kit;
mod lockout;
mod manage;
mod observability;
mod recovery;
mod required;
mod secrets;
mod step_up;
mod totp;
mod trust;
mod wording;

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::{Client, Response};
use serde_json::Value;

use crate::common::backend::Stack;
use crate::common::consts::PW;
use crate::common::gateway::Gateway;
use crate::common::http::{self, get, header, submit, Form};
use crate::common::smtp::ReceivedMail;
use crate::common::{poll_for, poll_until};
use crate::contact::{redirect, show_line, six_digits, user_show, Site, Target};
use crate::orgs::sets_session;

/// The second step of a login, and the step-up page.
pub(crate) const TWOFA: &str = "/_vigile/2fa";
/// The member's two-factor settings.
pub(crate) const ACCOUNT_2FA: &str = "/_vigile/account/2fa";
/// Where members were going when asked to sign in.
pub(crate) const RD: &str = "/course/1";
/// Generous IP limits, so the account rules are what a test sees.
pub(crate) const NO_IP_LIMIT: &str = "[lockout]\nip_max_failures = 0\n";

// ---------------------------------------------------------------------------------------
// Pages and forms
// ---------------------------------------------------------------------------------------

/// A form of a page, with the values its `action` field can take (hidden input or the
/// submit buttons named `action`).
#[derive(Debug, Clone)]
pub(crate) struct ActionForm {
    pub form: Form,
    pub actions: Vec<String>,
}

/// The value of attribute `name` in the opening tag `tag` (entities decoded).
fn tag_attr(tag: &str, name: &str) -> Option<String> {
    let tag: String = tag
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    let lower = tag.to_ascii_lowercase();
    for quote in ['"', '\''] {
        let needle = format!(" {name}={quote}");
        if let Some(at) = lower.find(&needle) {
            let rest = &tag[at + needle.len()..];
            let value = rest.split(quote).next()?;
            return Some(http::decode_entities(value));
        }
    }
    None
}

/// The opening tags `<name ...>` of `html`.
fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let lower = html.to_ascii_lowercase();
    let needle = format!("<{name}");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(&needle) {
        let at = from + pos;
        let next = lower.as_bytes().get(at + needle.len()).copied();
        let end = lower[at..].find('>').map_or(html.len(), |e| at + e);
        if matches!(next, Some(b) if b.is_ascii_whitespace() || b == b'>' || b == b'/') {
            out.push(&html[at..end]);
        }
        from = at + needle.len();
    }
    out
}

/// Every form of `page` posting to `path` (query ignored; a form without `action` posts
/// to `path`, the page it is on).
pub(crate) fn action_forms(page: &str, path: &str) -> Vec<ActionForm> {
    let lower = page.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("<form") {
        let start = from + pos;
        let end = lower[start..]
            .find("</form")
            .map_or(page.len(), |e| start + e);
        let block = &page[start..end];
        if let Some(mut form) = http::forms(block).into_iter().next() {
            if form.action.is_empty() {
                form.action = path.to_string();
            }
            if form.action.split('?').next() == Some(path) {
                let mut actions: Vec<String> = form
                    .hidden
                    .iter()
                    .filter(|(n, _)| n == "action")
                    .map(|(_, v)| v.clone())
                    .collect();
                for tag in tags(block, "button")
                    .into_iter()
                    .chain(tags(block, "input"))
                {
                    let is_submit = tag.to_ascii_lowercase().starts_with("<button")
                        || tag_attr(tag, "type").is_some_and(|t| t.eq_ignore_ascii_case("submit"));
                    if is_submit && tag_attr(tag, "name").as_deref() == Some("action") {
                        actions.extend(tag_attr(tag, "value"));
                    }
                }
                out.push(ActionForm { form, actions });
            }
        }
        from = end.max(start + 5);
    }
    out
}

/// The form of `page` posting `action` to `path`.
pub(crate) fn find_action(page: &str, path: &str, action: &str) -> Option<ActionForm> {
    action_forms(page, path)
        .into_iter()
        .find(|f| f.actions.iter().any(|a| a == action))
}

/// Posts the form of `page` (served at `path`) whose action is `action`, with `fields`
/// typed in (and `action` itself, as its button would).
pub(crate) async fn act(
    c: &Client,
    gw: &str,
    page: &str,
    path: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    let found = find_action(page, path, action)
        .unwrap_or_else(|| panic!("no form with action={action} posting to {path} on:\n{page}"));
    let mut all = vec![("action", action)];
    all.extend_from_slice(fields);
    submit(c, gw, &found.form, &all).await
}

/// Follows redirects like a browser (GET, up to 5), then returns the final status and body.
pub(crate) async fn settle(c: &Client, gw: &str, resp: Response) -> (u16, String) {
    let mut resp = resp;
    for _ in 0..5 {
        let status = resp.status().as_u16();
        let location = header(&resp, "location");
        match location {
            Some(loc) if matches!(status, 301 | 302 | 303 | 307 | 308) => {
                let url = if loc.starts_with("http") {
                    loc
                } else {
                    format!("{gw}{loc}")
                };
                resp = get(c, &url, true).await;
            }
            _ => return (status, resp.text().await.unwrap_or_default()),
        }
    }
    panic!("more than 5 redirects in a row");
}

/// GET `path` (a Vigile page, relative to `gw`), asserting 200.
pub(crate) async fn page(c: &Client, gw: &str, path: &str) -> String {
    http::get_page(c, &format!("{gw}{path}")).await
}

/// The account's two-factor page, unlocked with the password if it asks for it.
pub(crate) async fn account_page(c: &Client, gw: &str) -> String {
    account_page_with(c, gw, PW).await
}

/// [`account_page`] for a member whose password is `password`.
pub(crate) async fn account_page_with(c: &Client, gw: &str, password: &str) -> String {
    let locked = page(c, gw, ACCOUNT_2FA).await;
    if find_action(&locked, ACCOUNT_2FA, "unlock").is_none() {
        return locked;
    }
    let resp = act(
        c,
        gw,
        &locked,
        ACCOUNT_2FA,
        "unlock",
        &[("password", password)],
    )
    .await;
    let (status, body) = settle(c, gw, resp).await;
    assert_eq!(
        status, 200,
        "unlocking {ACCOUNT_2FA} with the password:\n{body}"
    );
    assert!(
        find_action(&body, ACCOUNT_2FA, "unlock").is_none(),
        "{ACCOUNT_2FA} still asks the password after the right one:\n{body}"
    );
    body
}

/// Every `href` of `html` (entities decoded).
pub(crate) fn hrefs(html: &str) -> Vec<String> {
    tags(html, "a")
        .into_iter()
        .filter_map(|t| tag_attr(t, "href"))
        .collect()
}

/// The page's link to another method (`href` holding `method=M`).
pub(crate) fn method_link(html: &str, method: &str) -> Option<String> {
    let needle = format!("method={method}");
    hrefs(html)
        .into_iter()
        .find(|h| h.split(['?', '&']).any(|pair| pair == needle))
}

// ---------------------------------------------------------------------------------------
// TOTP
// ---------------------------------------------------------------------------------------

const STEP_SECS: u64 = 30;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An authenticator app holding a secret read from a page: its codes, computed here.
pub(crate) struct Authenticator {
    /// The secret as shown (base32, spaces removed).
    pub secret: String,
    totp: totp_rs::Totp,
    /// The last step a code was handed out for.
    last: Option<u64>,
}

impl Authenticator {
    pub(crate) fn new(secret: &str) -> Authenticator {
        let clean: String = secret
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase();
        assert!(
            clean.len() >= 16 && clean.chars().all(|c| matches!(c, 'A'..='Z' | '2'..='7')),
            "the TOTP secret shown is not base32 of at least 80 bits: {secret:?}"
        );
        let bytes = totp_rs::Secret::try_from_base32(&clean)
            .unwrap_or_else(|e| panic!("the TOTP secret {clean:?} is not base32: {e}"));
        let totp = totp_rs::Builder::new()
            .with_secret(bytes)
            .build_noncompliant();
        Authenticator {
            secret: clean,
            totp,
            last: None,
        }
    }

    /// The app set up from the enrolment page (`id="totp-secret"`).
    pub(crate) fn from_page(html: &str) -> Authenticator {
        Authenticator::new(&totp_secret(html))
    }

    /// The secret's bytes.
    pub(crate) fn secret_bytes(&self) -> Vec<u8> {
        totp_rs::Secret::try_from_base32(&self.secret)
            .expect("checked base32")
            .as_ref()
            .to_vec()
    }

    /// The code of 30 s step `step`.
    pub(crate) fn code_at(&self, step: u64) -> String {
        self.totp.generate(step * STEP_SECS).to_string()
    }

    /// A code Vigile has not seen and accepts now: the earliest step after the last one
    /// handed out that is within one step of the clock (the previous step only while more
    /// than 10 s of the current one remain, so the clock cannot pass it before the gateway
    /// checks). Waits for the clock when the next unused step is still ahead of it.
    pub(crate) async fn fresh_code(&mut self) -> String {
        loop {
            let now = unix_now();
            let step = now / STEP_SECS;
            let left = STEP_SECS - now % STEP_SECS;
            let lowest = if left > 10 { step - 1 } else { step };
            let wanted = match self.last {
                Some(last) => lowest.max(last + 1),
                None => lowest,
            };
            if wanted <= step + 1 {
                self.last = Some(wanted);
                return self.code_at(wanted);
            }
            let reached = wanted - 1;
            poll_until(
                "the clock to reach the next 30 s step",
                800,
                move || async move { unix_now() / STEP_SECS >= reached },
            )
            .await;
        }
    }

    /// The last code handed out (to replay it).
    pub(crate) fn last_code(&self) -> String {
        self.code_at(self.last.expect("a code was handed out"))
    }

    /// Six digits that are no code of this secret within two steps of now.
    pub(crate) fn wrong_code(&self) -> String {
        let step = unix_now() / STEP_SECS;
        let near: Vec<String> = (step - 2..=step + 2).map(|s| self.code_at(s)).collect();
        (0..)
            .map(|n: u32| format!("{:06}", (n * 137_911) % 1_000_000))
            .find(|c| !near.contains(c))
            .expect("some six digits are not a code")
    }
}

/// The text of the element `id="totp-secret"` (or its `value`).
pub(crate) fn totp_secret(html: &str) -> String {
    let at = html
        .find("id=\"totp-secret\"")
        .unwrap_or_else(|| panic!("no element id=\"totp-secret\" on the enrolment page:\n{html}"));
    let open = html[..at].rfind('<').expect("inside a tag");
    let close = html[at..].find('>').map_or(html.len(), |e| at + e);
    let tag = &html[open..close];
    let text = if tag.to_ascii_lowercase().starts_with("<input") {
        tag_attr(tag, "value").unwrap_or_default()
    } else {
        let after = &html[(close + 1).min(html.len())..];
        let end = after.find("</").unwrap_or(after.len());
        crate::contact::visible(&after[..end])
    };
    text.split_whitespace().collect()
}

/// Whether `s` is a recovery code as the contract writes them (`xxxx-xxxx-xxxx`, lowercase
/// letters and digits).
pub(crate) fn is_recovery_code(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            p.len() == 4
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The recovery codes a page shows: one per element of class `recovery-code` (its first
/// token in the code format, else what it holds, so a malformed one is seen).
pub(crate) fn recovery_codes(html: &str) -> Vec<String> {
    let mut starts = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find('<') {
        let at = from + pos;
        let end = lower[at..].find('>').map_or(html.len(), |e| at + e);
        let tag = &html[at..end];
        if tag_attr(tag, "class")
            .is_some_and(|c| c.split_whitespace().any(|k| k == "recovery-code"))
        {
            starts.push((at, end));
        }
        from = at + 1;
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &(_, end))| {
            let stop = starts.get(i + 1).map_or(html.len(), |&(s, _)| s);
            let slice = &html[(end + 1).min(stop)..stop];
            let mut cut = slice.len().min(400);
            while !slice.is_char_boundary(cut) {
                cut -= 1;
            }
            let slice = &slice[..cut];
            let text = crate::contact::visible(slice);
            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .find(|t| is_recovery_code(t))
                .map(str::to_string)
                .unwrap_or_else(|| format!("<not a code: {:?}>", text.trim()))
        })
        .collect()
}

/// Asserts `codes` are ten distinct codes in the contract's format.
pub(crate) fn assert_ten_codes(codes: &[String], page: &str) {
    assert_eq!(
        codes.len(),
        10,
        "ten recovery codes expected: {codes:?}\n{page}"
    );
    assert!(
        codes.iter().all(|c| is_recovery_code(c)),
        "recovery codes not in the xxxx-xxxx-xxxx format: {codes:?}"
    );
    let distinct: std::collections::BTreeSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 10, "recovery codes repeat: {codes:?}");
}

/// From `page` (served at `path`: the account page, or `/_vigile/2fa` at a login that must
/// enrol), enrols an authenticator app with a code from the secret shown; returns the app
/// and the page shown after the code (the recovery codes, for a first factor).
pub(crate) async fn enrol_totp_from(
    c: &Client,
    gw: &str,
    page: &str,
    path: &str,
) -> (Authenticator, String) {
    let resp = act(c, gw, page, path, "enrol-totp", &[]).await;
    let (status, shown) = settle(c, gw, resp).await;
    assert_eq!(status, 200, "enrol-totp on {path}:\n{shown}");
    assert!(
        shown.contains("<svg"),
        "no inline SVG QR code on the enrolment page:\n{shown}"
    );
    let mut app = Authenticator::from_page(&shown);
    let code = app.fresh_code().await;
    let resp = act(c, gw, &shown, path, "confirm-totp", &[("code", &code)]).await;
    let (status, after) = settle(c, gw, resp).await;
    assert_eq!(
        status, 200,
        "confirm-totp with a right code on {path}:\n{after}"
    );
    (app, after)
}

/// Enrols a first factor, an authenticator app, on the account page (unlocking it);
/// returns the app and the ten recovery codes shown.
pub(crate) async fn enrol_totp(c: &Client, gw: &str) -> (Authenticator, Vec<String>) {
    let account = account_page(c, gw).await;
    let (app, after) = enrol_totp_from(c, gw, &account, ACCOUNT_2FA).await;
    let codes = recovery_codes(&after);
    assert_ten_codes(&codes, &after);
    (app, codes)
}

// ---------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------

/// Asserts the answer to a right password is the second step: 303 to `/_vigile/2fa`, no
/// session cookie.
pub(crate) async fn assert_second_step(resp: Response, who: &str) {
    let sets = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert!(
        status == 303 && location.starts_with('/') && Target::parse(&location).path == TWOFA,
        "{who}: the right password answered {status} {location} (expected 303 to {TWOFA})"
    );
    assert!(
        !sets,
        "{who}: a session cookie was set before the second factor"
    );
}

/// Logs in with the password (and `rd`) and asserts the second step is asked.
pub(crate) async fn password_step(c: &Client, gw: &str, email: &str, rd: &str) {
    let resp = http::login_rd(c, gw, email, PW, Some(rd)).await;
    assert_second_step(resp, email).await
}

/// Asserts the answer opens a session (303 with a session cookie) and goes to `rd`.
pub(crate) async fn assert_signed_in(resp: Response, rd: &str, what: &str) {
    let sets = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert!(
        status == 303 && sets && location == rd,
        "{what}: {status} {location}, session cookie set: {sets} (expected 303 to {rd} \
         opening a session)"
    );
}

/// Asserts the answer refuses the code: 401, no session.
pub(crate) async fn assert_refused(resp: Response, what: &str) -> String {
    let sets = sets_session(&resp);
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 401, "{what}: expected 401:\n{body}");
    assert!(!sets, "{what}: a session cookie was set");
    body
}

/// The `action=verify` form of `html` for `method`: the one whose hidden `method` is it,
/// else one without a hidden `method`.
pub(crate) fn verify_form_in(html: &str, method: &str) -> Option<Form> {
    let verify: Vec<ActionForm> = action_forms(html, TWOFA)
        .into_iter()
        .filter(|f| f.actions.iter().any(|a| a == "verify"))
        .collect();
    verify
        .iter()
        .find(|f| f.form.hidden_value("method") == Some(method))
        .or_else(|| {
            verify
                .iter()
                .find(|f| f.form.hidden_value("method").is_none())
        })
        .map(|f| f.form.clone())
}

/// `url` with `method=M` added to its query.
fn with_method(url: &str, method: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}method={method}")
}

/// `link` (an `href` of the page at `url`) as a path and query on the gateway.
pub(crate) fn resolve(url: &str, link: &str) -> String {
    let base = url::Url::parse("http://gateway.invalid/")
        .and_then(|b| b.join(url))
        .and_then(|b| b.join(link))
        .unwrap_or_else(|e| panic!("not a link: {link:?} on {url}: {e}"));
    match base.query() {
        Some(q) => format!("{}?{q}", base.path()),
        None => base.path().to_string(),
    }
}

/// The verify form for `method` as a member reaches it from `url` (`/_vigile/2fa`, or a
/// step-up's `/_vigile/2fa?rd=...`): on that page, else behind its link to the method.
pub(crate) async fn verify_form(c: &Client, gw: &str, url: &str, method: &str) -> Form {
    let first = page(c, gw, url).await;
    if let Some(form) = verify_form_in(&first, method) {
        if form.hidden_value("method") == Some(method) {
            return form;
        }
    }
    let link = match method_link(&first, method) {
        Some(href) => resolve(url, &href),
        None => with_method(url, method),
    };
    let other = page(c, gw, &link).await;
    verify_form_in(&other, method)
        .unwrap_or_else(|| panic!("no verify form for {method} on {link}:\n{other}"))
}

/// Verifies `code` by `method` on the second step reached from `url`, with "trust this
/// device" when `trust`.
pub(crate) async fn verify(
    c: &Client,
    gw: &str,
    url: &str,
    method: &str,
    code: &str,
    trust: bool,
) -> Response {
    let form = verify_form(c, gw, url, method).await;
    verify_with(c, gw, &form, method, code, trust).await
}

/// Posts `form` (a verify form) with `method`, `code` and `trust`.
pub(crate) async fn verify_with(
    c: &Client,
    gw: &str,
    form: &Form,
    method: &str,
    code: &str,
    trust: bool,
) -> Response {
    let mut fields = vec![("action", "verify"), ("method", method), ("code", code)];
    if trust {
        fields.push(("trust", "1"));
    }
    submit(c, gw, form, &fields).await
}

/// Password, then a fresh TOTP code from `app`: asserts the session opens at `rd`.
pub(crate) async fn login_with_totp(
    c: &Client,
    gw: &str,
    email: &str,
    app: &mut Authenticator,
    trust: bool,
) {
    password_step(c, gw, email, RD).await;
    let code = app.fresh_code().await;
    let resp = verify(c, gw, TWOFA, "totp", &code, trust).await;
    assert_signed_in(resp, RD, &format!("{email}'s TOTP code")).await;
}

/// Logs in and asserts the password alone opens the session at `rd`.
pub(crate) async fn login_straight(c: &Client, gw: &str, email: &str) {
    let resp = http::login_rd(c, gw, email, PW, Some(RD)).await;
    assert_signed_in(resp, RD, &format!("{email}'s password alone")).await;
}

/// The `Remote-Auth-Level` values the upstream got for `c`'s request to `path` (asserting
/// it was served).
pub(crate) async fn level_seen(s: &Stack, c: &Client, gw: &str, path: &str) -> Vec<String> {
    crate::orgs::seen_upstream(s, c, gw, path)
        .await
        .header_all("remote-auth-level")
        .to_vec()
}

/// Asserts a request of `c` to `path` reaches the upstream at level `level` (one value).
pub(crate) async fn assert_level(s: &Stack, c: &Client, gw: &str, path: &str, level: &str) {
    let seen = level_seen(s, c, gw, path).await;
    assert_eq!(
        seen,
        vec![level.to_string()],
        "Remote-Auth-Level the upstream got for {path}"
    );
}

/// Asserts `c` has no session: a protected page is not served but sends it to sign in
/// (the login page, or the second step of a login under way).
pub(crate) async fn assert_no_session(c: &Client, gw: &str, what: &str) {
    let resp = get(c, &format!("{gw}{RD}"), true).await;
    let (status, location) = redirect(resp).await;
    let redirected = matches!(status, 302 | 303);
    let path = if redirected {
        Target::parse(&location).path
    } else {
        String::new()
    };
    assert!(
        redirected && (path == "/_vigile/login" || path == TWOFA),
        "{what}: {RD} answered {status} {location} (expected a redirect to sign in)"
    );
}

// ---------------------------------------------------------------------------------------
// What the member and the operator read: CLI, mails, texts, metrics, audit
// ---------------------------------------------------------------------------------------

/// The methods `vigile user show` lists on its `second factors:` line (`none` if none).
pub(crate) async fn second_factors(gw: &Gateway, email: &str) -> String {
    let show = user_show(gw, email).await;
    show_line(&show, "second factors")
        .unwrap_or_else(|| panic!("no 'second factors:' line in `vigile user show`:\n{show}"))
        .trim_start_matches("second factors:")
        .trim()
        .to_string()
}

/// Mails received for `to`, in arrival order.
pub(crate) fn mails_to(s: &Stack, to: &str) -> Vec<ReceivedMail> {
    s.smtp
        .mails()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .collect()
}

/// The code of the first mail to `to` after the first `before` that holds one 6-digit
/// number (waiting for it).
pub(crate) async fn mailed_code(s: &Stack, to: &str, before: usize) -> String {
    s.smtp
        .wait_for(&format!("a code mail to {to} (after {before})"), |_| {
            mails_to(s, to)
                .iter()
                .skip(before)
                .any(|m| six_digits(&m.text).len() == 1)
        })
        .await;
    let found = mails_to(s, to)
        .into_iter()
        .skip(before)
        .find(|m| six_digits(&m.text).len() == 1)
        .expect("seen a moment ago");
    six_digits(&found.text).remove(0)
}

/// The code of the first text delivered to `to` after the first `before` (waiting for it).
pub(crate) async fn texted_code(site: &Site, to: &str, before: usize) -> String {
    let text = poll_for(&format!("an SMS to {to} (after {before})"), 400, || async {
        site.sms
            .delivered()
            .into_iter()
            .filter(|c| c.to == to)
            .nth(before)
            .map(|c| c.text)
    })
    .await;
    let codes = crate::common::sms_sink::six_digit_runs(&text);
    assert_eq!(codes.len(), 1, "one 6-digit code in the SMS: {text:?}");
    codes[0].clone()
}

/// Texts delivered to `to` so far.
pub(crate) fn texts_to(site: &Site, to: &str) -> usize {
    site.sms.delivered().iter().filter(|c| c.to == to).count()
}

/// `vigile_second_factor_total{method,result}` (0 when absent).
pub(crate) async fn factor_metric(gw: &Gateway, method: &str, result: &str) -> f64 {
    gw.metric(&format!(
        "vigile_second_factor_total{{method=\"{method}\",result=\"{result}\"}}"
    ))
    .await
    .unwrap_or(0.0)
}

/// `[log] audit_file` for the tests that read the audit log.
pub(crate) const AUDIT: &str = "[log]\naudit_file = \"audit.log\"\n";

/// The audit log's text and its lines as JSON.
pub(crate) fn audit_lines(gw: &Gateway) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(gw.dir().join("audit.log")).unwrap_or_default();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (text, lines)
}

/// Waits until the audit log holds at least `n` lines of `event`; returns them.
pub(crate) async fn audit_events(gw: &Gateway, event: &str, n: usize) -> Vec<Value> {
    poll_for(&format!("{n} '{event}' audit line(s)"), 400, || async {
        let (_, lines) = audit_lines(gw);
        let found: Vec<Value> = lines.into_iter().filter(|l| l["event"] == event).collect();
        (found.len() >= n).then_some(found)
    })
    .await
}
