//! Organisations (issue 13) through the real binary, a real SMTP server and both store
//! backends, against the page contract (`/work/notes/orgs-contract.md`): the three
//! registration steps with the link read from the mail, what each step refuses and keeps,
//! what a taken address reveals (nothing), the link's single use and lifetime, racing
//! completions, the super-admin's pages and powers, invitations against seats, members
//! joining, promoted, handed the super-admin role and removed (seen by a second instance),
//! the organisation's device cap, the `[access]` organisation rules, the site admin's view,
//! metrics and audit events.
//!
//! This file holds what the journeys share: the company typed at step 2, each step as a
//! browser posts it, the members list read off `/_vigile/org`, a whole team (super-admin,
//! org admin, member) made through the pages.

mod access;
mod html;
mod invitations;
mod journey;
mod limits;
mod observability;
mod races;
mod refusals;
mod roles;
mod tampering;
mod wording;

use reqwest::{Client, Response};
use serde_json::Value;

use crate::common::backend::Stack;
use crate::common::consts::PW;
use crate::common::http::{self, form_with_action, get, get_page, header, submit, Form};
use crate::common::upstream::RecordedRequest;
use crate::devices::post_on;

pub(crate) use html::*;

/// The company's founder, its super-admin.
pub(crate) const OWNER: &str = "olga@acme.example";
pub(crate) const COMPANY: &str = "Acme Formation";
/// 14 digits with a valid Luhn key (spaces as people type them).
pub(crate) const SIRET: &str = "732 829 320 00074";
/// The same with the last digit changed: the Luhn key no longer holds.
pub(crate) const BAD_SIRET: &str = "732 829 320 00075";
/// FR + the key computed from the SIREN 732829320 + that SIREN.
pub(crate) const VAT: &str = "FR44732829320";
/// A French number in national form, as typed, and what it must be stored as.
pub(crate) const PHONE: &str = "06 12 34 56 78";
pub(crate) const PHONE_E164: &str = "+33612345678";
pub(crate) const ADDRESS: &str = "12 rue des Lilas, 75011 Paris";

pub(crate) const STEP_SUBJECT: &str = "Continue registering your company";
pub(crate) const TAKEN_SUBJECT: &str = "Someone tried to register a company with your address";
pub(crate) const INVITE_SUBJECT: &str = "You are invited to join";
pub(crate) const STEP_LINK: &str = "/_vigile/register?token=";
pub(crate) const JOIN_LINK: &str = "/_vigile/org/join?token=";

/// What step 2 asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Company<'a> {
    pub company: &'a str,
    pub id_type: &'a str,
    pub id_number: &'a str,
    pub phone: &'a str,
    pub address: &'a str,
}

pub(crate) const ACME: Company<'static> = Company {
    company: COMPANY,
    id_type: "siret",
    id_number: SIRET,
    phone: PHONE,
    address: ADDRESS,
};

impl<'a> Company<'a> {
    pub(crate) fn fields(&self) -> [(&'a str, &'a str); 5] {
        [
            ("company", self.company),
            ("id_type", self.id_type),
            ("id_number", self.id_number),
            ("phone", self.phone),
            ("address", self.address),
        ]
    }
}

/// Status and body of a response.
pub(crate) async fn text(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Status and `Location` of a response that should redirect (the body if it does not).
pub(crate) async fn redirect(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    match header(&resp, "location") {
        Some(location) => (status, location),
        None => (status, resp.text().await.unwrap_or_default()),
    }
}

/// Checks whose failure must not hide the rest of a journey (a wording the contract fixes,
/// say): collected as they fail, asserted together at the end.
#[derive(Default)]
pub(crate) struct Deferred(Vec<String>);

impl Deferred {
    pub(crate) fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.0.push(what.into());
        }
    }

    pub(crate) fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "failed along the way:\n{}",
            self.0.join("\n---\n")
        );
    }
}

/// The billing page shows "N / M seats used" (the contract's wording).
pub(crate) fn billing_says(body: &str, used: u32, seats: u32) -> bool {
    squeeze(body).contains(&format!("{used}/{seats}seatsused"))
}

/// Whether the response sets a session cookie.
pub(crate) fn sets_session(resp: &Response) -> bool {
    http::set_cookies(resp).iter().any(|c| {
        (c.starts_with("vigile_session=") && !c.starts_with("vigile_session=;"))
            || c.starts_with("__Host-vigile_session=")
    })
}

/// Step 1 as a browser posts it: the form of `/_vigile/register` with `email` and
/// `email_confirm`.
pub(crate) async fn step1(c: &Client, gw: &str, email: &str, confirm: &str) -> Response {
    let page = get_page(c, &format!("{gw}/_vigile/register")).await;
    let form = form_with_action(&page, "/_vigile/register")
        .unwrap_or_else(|| panic!("no step-1 form on /_vigile/register:\n{page}"));
    submit(
        c,
        gw,
        &form,
        &[("step", "1"), ("email", email), ("email_confirm", confirm)],
    )
    .await
}

/// Step 1 for `email`, asserting the "check your inbox" page.
pub(crate) async fn step1_ok(c: &Client, gw: &str, email: &str) {
    let (status, body) = text(step1(c, gw, email, email).await).await;
    assert_eq!(status, 200, "step 1 for {email}:\n{body}");
}

/// The first `n` step links mailed to `email`, in arrival order (waits for the n-th).
pub(crate) async fn step_links(s: &Stack, email: &str, n: usize) -> Vec<String> {
    let is_link = |m: &crate::common::smtp::ReceivedMail| {
        m.to.iter().any(|t| t == email) && m.text.contains(STEP_LINK)
    };
    s.smtp
        .wait_for(&format!("step link #{n} to {email}"), |_| {
            s.smtp.mails().iter().filter(|m| is_link(m)).count() >= n
        })
        .await;
    s.smtp
        .mails()
        .iter()
        .filter(|m| is_link(m))
        .take(n)
        .map(|m| m.link_containing(STEP_LINK))
        .collect()
}

/// The (first) step link mailed to `email`.
pub(crate) async fn step_link(s: &Stack, email: &str) -> String {
    step_links(s, email, 1).await.remove(0)
}

/// Opens the step link (step 2's form) and posts `company`; returns the answer.
pub(crate) async fn step2(c: &Client, gw: &str, link: &str, company: &Company<'_>) -> Response {
    let page = get_page(c, link).await;
    let form = form_with_action(&page, "/_vigile/register")
        .unwrap_or_else(|| panic!("no step-2 form behind {link}:\n{page}"));
    let mut fields = vec![("step", "2")];
    fields.extend(company.fields());
    submit(c, gw, &form, &fields).await
}

/// Step 2 accepted: the step-3 form (step-2 values and the token carried in it) and its page.
pub(crate) async fn step3_form(
    c: &Client,
    gw: &str,
    link: &str,
    company: &Company<'_>,
) -> (Form, String) {
    let (status, page) = text(step2(c, gw, link, company).await).await;
    assert_eq!(status, 200, "step 2 refused:\n{page}");
    let form = form_with_action(&page, "/_vigile/register")
        .unwrap_or_else(|| panic!("no step-3 form after step 2:\n{page}"));
    (form, page)
}

/// Posts step 3 (names, password twice, English) from `form`.
pub(crate) async fn step3(c: &Client, gw: &str, form: &Form, password: &str) -> Response {
    submit(
        c,
        gw,
        form,
        &[
            ("step", "3"),
            ("first_name", "Olga"),
            ("last_name", "Martin"),
            ("password", password),
            ("confirm", password),
            ("lang", "en"),
        ],
    )
    .await
}

/// The three steps for `email` and `company` in browser `c`, the link read from the mail;
/// asserts the landing on `/_vigile/org`, signed in. Returns the organisation id.
pub(crate) async fn register(s: &Stack, c: &Client, email: &str, company: &Company<'_>) -> String {
    let gw = s.gw.url();
    step1_ok(c, &gw, email).await;
    let link = step_link(s, email).await;
    let (form, _) = step3_form(c, &gw, &link, company).await;
    let resp = step3(c, &gw, &form, PW).await;
    let signed_in = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert_eq!(
        (status, location.as_str(), signed_in),
        (303, "/_vigile/org", true),
        "step 3 for {email}"
    );
    let me = api_me(c, &gw).await;
    me["org"]
        .as_str()
        .unwrap_or_else(|| panic!("no org in /_vigile/api/me after registering: {me}"))
        .to_string()
}

/// `/_vigile/api/me` as a script reads it (`null` when answered otherwise than 200).
pub(crate) async fn api_me(c: &Client, gw: &str) -> Value {
    let resp = get(c, &format!("{gw}/_vigile/api/me"), false).await;
    if resp.status() != 200 {
        return Value::Null;
    }
    resp.json().await.unwrap()
}

/// Browses `path` through gateway `gw` (asserting it is served) and returns the request
/// as the upstream received it.
pub(crate) async fn seen_upstream(s: &Stack, c: &Client, gw: &str, path: &str) -> RecordedRequest {
    let resp = get(c, &format!("{gw}{path}"), true).await;
    let status = resp.status();
    assert_eq!(
        status,
        200,
        "GET {path} on {gw}: {:?}\n{}",
        header(&resp, "location"),
        resp.text().await.unwrap_or_default()
    );
    s.upstream
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("{path} never reached the upstream"))
}

/// `Remote-Groups` and `Remote-Org` the upstream got for a request of `c` to `path`.
pub(crate) async fn identity(
    s: &Stack,
    c: &Client,
    gw: &str,
    path: &str,
) -> (Option<String>, Option<String>) {
    let seen = seen_upstream(s, c, gw, path).await;
    (
        seen.header("remote-groups").map(str::to_string),
        seen.header("remote-org").map(str::to_string),
    )
}

/// `s` without any whitespace, to compare "2 / 25" and "2/25" alike.
pub(crate) fn squeeze(s: &str) -> String {
    s.split_whitespace().collect()
}

/// The organisation page of `c`'s member.
pub(crate) async fn org_page(c: &Client, gw: &str) -> String {
    get_page(c, &format!("{gw}/_vigile/org")).await
}

/// Posts a form the organisation page offers (`action`), with `fields` over its hidden ones.
pub(crate) async fn org_post(
    c: &Client,
    gw: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    post_on(c, gw, "/_vigile/org", action, fields).await
}

/// Posts `fields` to `action` with a valid CSRF token of `c`'s own (from its account
/// page), as a member would forge a form their page does not offer.
pub(crate) async fn forged_post(
    c: &Client,
    gw: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    let account = get_page(c, &format!("{gw}/_vigile/account")).await;
    let csrf = http::csrf_from(&account);
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    http::post_form(c, &format!("{gw}{action}"), &all).await
}

/// The super-admin (or an org admin) `c` invites `email` from the organisation page.
pub(crate) async fn invite(c: &Client, gw: &str, email: &str) -> Response {
    org_post(c, gw, "/_vigile/org/invite", &[("email", email)]).await
}

/// The join link of the latest invitation mailed to `email`.
pub(crate) async fn join_link(s: &Stack, email: &str) -> String {
    s.smtp
        .wait_for(&format!("an invitation to {email}"), |m| {
            m.to.iter().any(|t| t == email) && m.text.contains(JOIN_LINK)
        })
        .await;
    s.smtp
        .mails()
        .iter()
        .rev()
        .find(|m| m.to.iter().any(|t| t == email) && m.text.contains(JOIN_LINK))
        .map(|m| m.link_containing(JOIN_LINK))
        .unwrap()
}

/// Opens a join link in `c`, sets names and `PW`; returns the answer to the POST.
pub(crate) async fn join(c: &Client, gw: &str, link: &str) -> Response {
    let page = get_page(c, link).await;
    let form = form_with_action(&page, "/_vigile/org/join")
        .unwrap_or_else(|| panic!("no join form behind {link}:\n{page}"));
    submit(
        c,
        gw,
        &form,
        &[
            ("first_name", "Invited"),
            ("last_name", "Person"),
            ("password", PW),
            ("confirm", PW),
            ("lang", "en"),
        ],
    )
    .await
}

/// Invites `email`, follows the mailed link in a fresh browser and sets the password;
/// asserts the landing signed in. Returns that browser.
pub(crate) async fn invite_and_join(s: &Stack, by: &Client, email: &str) -> Client {
    let gw = s.gw.url();
    let (status, location) = redirect(invite(by, &gw, email).await).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/_vigile/org"),
        "invite {email}"
    );
    let link = join_link(s, email).await;
    let c = http::client();
    let resp = join(&c, &gw, &link).await;
    let signed_in = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert_eq!(
        (status, location.as_str(), signed_in),
        (303, "/_vigile/account?welcome=1", true),
        "{email} joins"
    );
    c
}

pub(crate) const ADMIN: &str = "adam@acme.example";
pub(crate) const MEMBER: &str = "mia@acme.example";

/// An organisation with its super-admin, an org admin and a plain member, each signed in
/// on gateway `s.gw` in their own browser.
pub(crate) struct Team {
    pub org: String,
    pub owner: Client,
    pub admin: Client,
    pub member: Client,
    pub admin_id: String,
    pub member_id: String,
    pub owner_id: String,
}

/// Registers ACME, invites [`ADMIN`] and [`MEMBER`], both join; the owner promotes ADMIN.
pub(crate) async fn team(s: &Stack) -> Team {
    let gw = s.gw.url();
    let owner = http::client();
    let org = register(s, &owner, OWNER, &ACME).await;
    let admin = invite_and_join(s, &owner, ADMIN).await;
    let member = invite_and_join(s, &owner, MEMBER).await;
    let page = org_page(&owner, &gw).await;
    let (owner_id, admin_id, member_id) = (
        member_row(&page, OWNER).id,
        member_row(&page, ADMIN).id,
        member_row(&page, MEMBER).id,
    );
    let (status, _) = redirect(
        org_post(
            &owner,
            &gw,
            "/_vigile/org/role",
            &[("user", admin_id.as_str()), ("role", "admin")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 303, "promote {ADMIN}");
    Team {
        org,
        owner,
        admin,
        member,
        admin_id,
        member_id,
        owner_id,
    }
}

/// `vigile org list`: the lines naming `needle`.
pub(crate) async fn org_list_lines(s: &Stack, needle: &str) -> Vec<String> {
    let out = s.gw.cli_async(&["org", "list"], None).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vigile org list: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}
