//! Contact confirmation and SMS (issue 14) through the real binary, a real SMTP server, a
//! real HTTP server standing in for the SMS provider and both store backends, against the
//! page and CLI contract (`/work/notes/contact-contract.md`): campaigns started from the
//! CLI and the admin page, the post-login redirect to `/_vigile/contact`, codes mailed and
//! texted, their tries and resend limits (per member, and whoever asks), the mailed link,
//! address changes (the password a new login address needs), the password recovery rule,
//! the SMS outbox (provider down, restarts, two instances, texts outliving their code), the
//! configuration refusal, metrics, audit and wording.
//!
//! This file holds what the journeys share: a stack whose SMS go to the sink, members made
//! with the CLI, campaigns, the contact page read by its `data-*` hooks, its two forms as
//! a browser posts them, and the codes read from the mail and the SMS received.

mod campaigns;
mod change;
mod codes;
mod config;
mod journey;
mod limits;
mod links;
mod observability;
mod recovery;
mod signup;
mod site;
mod sms_outbox;
mod wording;

pub(crate) use site::*;

use reqwest::{Client, Response};

use crate::common::backend::Stack;
use crate::common::consts::PW;
use crate::common::gateway::{merge, Gateway};
use crate::common::http::{self, form_with_action, forms, get, get_page, header, submit};
use crate::common::smtp::ReceivedMail;

pub(crate) use crate::orgs::{assert_kept, error_next_to, input_value, redirect, text, Deferred};

/// A French mobile as a member types it, and as it is stored (E.164).
pub(crate) const MOBILE: &str = "06 12 34 56 78";
pub(crate) const MOBILE_E164: &str = "+33612345678";
/// Another one.
pub(crate) const MOBILE2_E164: &str = "+33698765432";

/// Where members were going when asked to sign in.
pub(crate) const RD: &str = "/courses/1";

pub(crate) const CONFIRM_SUBJECT: &str = "Confirm your email address";
pub(crate) const CONFIRM_SUBJECT_FR: &str = "Confirmez votre adresse e-mail";
pub(crate) const EMAIL_CHANGED_SUBJECT: &str = "Your email address was changed";
pub(crate) const MOBILE_CHANGED_SUBJECT: &str = "Your mobile number was changed";
pub(crate) const CONTACT_LINK: &str = "/_vigile/contact?token=";
pub(crate) const CONTACT: &str = "/_vigile/contact";

/// TOML snippets merged into one (later ones win, key by key), so a test's own `[sms]` or
/// `[contact]` can sit on top of [`sms_config`].
pub(crate) fn merged(snippets: &[&str]) -> String {
    let mut table = toml::Table::new();
    for snippet in snippets {
        let extra: toml::Table =
            toml::from_str(snippet).unwrap_or_else(|e| panic!("invalid TOML: {e}\n{snippet}"));
        merge(&mut table, extra);
    }
    toml::to_string(&table).expect("serialize TOML")
}

/// `vigile user add EMAIL --name <local part> [flags]` with [`PW`] on stdin; asserts success.
pub(crate) fn add_member(gw: &Gateway, email: &str, flags: &[&str]) {
    let name = email.split('@').next().unwrap_or(email);
    let mut args = vec!["user", "add", email, "--name", name];
    args.extend_from_slice(flags);
    gw.cli_ok(&args, Some(&format!("{PW}\n")));
}

/// A member whose email (and mobile, when given) is confirmed: `--confirmed`.
pub(crate) fn confirmed_member(gw: &Gateway, email: &str, mobile: Option<&str>) {
    match mobile {
        Some(m) => add_member(gw, email, &["--confirmed", "--mobile", m]),
        None => add_member(gw, email, &["--confirmed"]),
    }
}

/// `vigile campaign start ARGS`, asserting success and the line
/// `campaign <ID> started: N members asked`; returns (ID, N).
pub(crate) async fn campaign_start(gw: &Gateway, args: &[&str]) -> (String, u64) {
    let mut all = vec!["campaign", "start"];
    all.extend_from_slice(args);
    let out = gw.cli_async(&all, None).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vigile {} failed ({}):\n{stdout}\n{}",
        all.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_started(&stdout)
        .unwrap_or_else(|| panic!("no 'campaign ID started: N members asked' in:\n{stdout}"))
}

fn parse_started(stdout: &str) -> Option<(String, u64)> {
    stdout.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("campaign ")?;
        let (id, rest) = rest.split_once(" started: ")?;
        let n = rest.strip_suffix(" members asked")?.trim().parse().ok()?;
        Some((id.to_string(), n))
    })
}

/// The counts of one block of `vigile campaign status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    pub asked: u64,
    pub email: u64,
    pub mobile: u64,
    pub unseen: u64,
}

impl Progress {
    pub(crate) fn new(asked: u64, email: u64, mobile: u64, unseen: u64) -> Self {
        Progress {
            asked,
            email,
            mobile,
            unseen,
        }
    }
}

/// `vigile campaign status`: (ID, counts) per campaign, in the order printed (newest first).
pub(crate) async fn campaign_status(gw: &Gateway) -> Vec<(String, Progress)> {
    let out = gw.cli_async(&["campaign", "status"], None).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vigile campaign status: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut blocks = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.trim().strip_prefix("campaign ") else {
            continue;
        };
        let id = rest.split_whitespace().next().unwrap_or("").to_string();
        let number = |label: &str| -> u64 {
            let after = line
                .split(label)
                .nth(1)
                .unwrap_or_else(|| panic!("no {label:?} in the status line {line:?}"));
            let digits: String = after
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits
                .parse()
                .unwrap_or_else(|_| panic!("no number after {label:?} in {line:?}"))
        };
        blocks.push((
            id,
            Progress {
                asked: number("asked "),
                email: number("email confirmed "),
                mobile: number("mobile confirmed "),
                unseen: number("not yet seen "),
            },
        ));
    }
    assert!(
        !blocks.is_empty(),
        "no campaign line in `vigile campaign status`:\n{stdout}"
    );
    blocks
}

/// The progress of campaign `id` as `vigile campaign status` prints it.
pub(crate) async fn status_of(gw: &Gateway, id: &str) -> Progress {
    campaign_status(gw)
        .await
        .into_iter()
        .find(|(i, _)| i == id)
        .unwrap_or_else(|| panic!("campaign {id} not in `vigile campaign status`"))
        .1
}

/// `vigile user show EMAIL`, asserting success.
pub(crate) async fn user_show(gw: &Gateway, email: &str) -> String {
    let out = gw.cli_async(&["user", "show", email], None).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vigile user show {email}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The line of `user show` starting with `label:` (`email`, `mobile`, `campaign`), with
/// the padding that aligns the values squeezed: `email:    a@x.com` reads `email: a@x.com`.
pub(crate) fn show_line(show: &str, label: &str) -> Option<String> {
    show.lines().find_map(|l| {
        let value = l.trim().strip_prefix(&format!("{label}:"))?;
        Some(format!("{label}: {}", value.trim()))
    })
}

/// A `Location` (or link) read as a path and its decoded query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl Target {
    pub(crate) fn parse(location: &str) -> Target {
        let url = url::Url::parse("http://gateway.invalid/")
            .unwrap()
            .join(location)
            .unwrap_or_else(|e| panic!("not a location: {location:?}: {e}"));
        Target {
            path: url.path().to_string(),
            query: url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find_map(|(k, v)| (k == name).then_some(v.as_str()))
    }

    /// Whether this is the contact page with `rd` = `rd`.
    pub(crate) fn is_contact_for(&self, rd: &str) -> bool {
        self.path == CONTACT && self.param("rd") == Some(rd)
    }
}

/// Logs in with `rd` posted with the form (where the member was going); asserts a `303`
/// and returns its `Location`.
pub(crate) async fn login_to(c: &Client, gw: &str, email: &str, rd: &str) -> String {
    let resp = http::login_rd(c, gw, email, PW, Some(rd)).await;
    let (status, location) = redirect(resp).await;
    assert_eq!(status, 303, "login of {email} (rd {rd}):\n{location}");
    location
}

/// Logs in (going to [`RD`]) and asserts the contact page is where it leads.
pub(crate) async fn login_asked(c: &Client, gw: &str, email: &str) {
    let location = login_to(c, gw, email, RD).await;
    assert!(
        Target::parse(&location).is_contact_for(RD),
        "{email} was not sent to {CONTACT}?rd={RD} after login: {location}"
    );
}

/// Logs in (going to [`RD`]) and asserts the member goes straight there.
pub(crate) async fn login_straight(c: &Client, gw: &str, email: &str) {
    let location = login_to(c, gw, email, RD).await;
    assert_eq!(location, RD, "{email} should go straight to rd after login");
}

/// Signs `c` out from its account page.
pub(crate) async fn logout(c: &Client, gw: &str) {
    let resp = crate::devices::post_on(c, gw, "/_vigile/account", "/_vigile/logout", &[]).await;
    assert!(
        resp.status().is_redirection() || resp.status() == 200,
        "logout: {}",
        resp.status()
    );
}

/// The contact page as a member reads it.
#[derive(Debug, Clone)]
pub(crate) struct ContactPage {
    pub html: String,
}

impl ContactPage {
    /// The `<section id="contact-{channel}">`.
    pub(crate) fn section(&self, channel: &str) -> String {
        let id = format!("id=\"contact-{channel}\"");
        let at = self
            .html
            .find(&id)
            .unwrap_or_else(|| panic!("no <section {id}> on the contact page:\n{}", self.html));
        let end = self.html[at..]
            .find("</section>")
            .map_or(self.html.len(), |e| at + e);
        self.html[at..end].to_string()
    }

    /// `confirmed` or `unconfirmed`: the `data-state` inside the channel's section.
    pub(crate) fn state(&self, channel: &str) -> String {
        let section = self.section(channel);
        let needle = "data-state=\"";
        let at = section
            .find(needle)
            .unwrap_or_else(|| panic!("no data-state in the {channel} section:\n{section}"));
        section[at + needle.len()..]
            .split('"')
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// The prefilled value of the input `name` (`email`, `mobile`).
    pub(crate) fn value(&self, name: &str) -> String {
        assert!(
            self.html.contains(&format!("name=\"{name}\"")),
            "no input {name:?} on the contact page:\n{}",
            self.html
        );
        input_value(&self.html, name).unwrap_or_default()
    }

    /// The `href` of `<a id="contact-later">`.
    pub(crate) fn later(&self) -> Option<String> {
        let at = self.html.find("id=\"contact-later\"")?;
        let open = self.html[..at].rfind('<')?;
        let close = self.html[at..]
            .find('>')
            .map_or(self.html.len(), |e| at + e);
        let tag = &self.html[open..close];
        let href = tag.split("href=\"").nth(1)?.split('"').next()?;
        Some(http::decode_entities(href))
    }

    /// The page's text as a person reads it (tags removed, entities decoded).
    pub(crate) fn visible(&self) -> String {
        visible(&self.html)
    }
}

/// The text a person reads in an HTML document: tags removed, entities decoded.
pub(crate) fn visible(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    http::decode_entities(&out)
}

/// `GET /_vigile/contact?rd=RD` in `c`, asserting `200`.
pub(crate) async fn contact_page(c: &Client, gw: &str, rd: &str) -> ContactPage {
    let url = format!("{gw}{CONTACT}?rd={}", urlencode(rd));
    ContactPage {
        html: get_page(c, &url).await,
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The form of the contact page posting to `action` for `channel`: the one whose hidden
/// `channel` is `channel`, else the first posting to `action`.
fn channel_form(page: &str, action: &str, channel: &str) -> http::Form {
    let all: Vec<http::Form> = forms(page)
        .into_iter()
        .filter(|f| f.action.split('?').next() == Some(action))
        .collect();
    all.iter()
        .find(|f| f.hidden_value("channel") == Some(channel))
        .or_else(|| all.first())
        .cloned()
        .unwrap_or_else(|| panic!("no form to {action} on the contact page:\n{page}"))
}

/// Posts the contact page's send form for `channel` (`email` or `mobile`) with `value`
/// typed in, as a browser does from `/_vigile/contact?rd=RD`.
pub(crate) async fn send(c: &Client, gw: &str, channel: &str, value: &str, rd: &str) -> Response {
    send_with(c, gw, channel, value, rd, &[]).await
}

/// [`send`] with more fields typed in (the `password` a new login address needs).
pub(crate) async fn send_with(
    c: &Client,
    gw: &str,
    channel: &str,
    value: &str,
    rd: &str,
    more: &[(&str, &str)],
) -> Response {
    let page = contact_page(c, gw, rd).await;
    let form = channel_form(&page.html, "/_vigile/contact/send", channel);
    let mut fields = vec![("channel", channel), (channel, value)];
    fields.extend_from_slice(more);
    submit(c, gw, &form, &fields).await
}

/// [`send`], asserting the `303` to `/_vigile/contact?rd=RD&sent=CHANNEL`.
pub(crate) async fn send_ok(c: &Client, gw: &str, channel: &str, value: &str, rd: &str) {
    send_ok_with(c, gw, channel, value, rd, &[]).await
}

/// [`send_with`], asserting the `303` to `/_vigile/contact?rd=RD&sent=CHANNEL`.
pub(crate) async fn send_ok_with(
    c: &Client,
    gw: &str,
    channel: &str,
    value: &str,
    rd: &str,
    more: &[(&str, &str)],
) {
    let (status, location) = redirect(send_with(c, gw, channel, value, rd, more).await).await;
    let target = Target::parse(&location);
    assert!(
        status == 303 && target.is_contact_for(rd) && target.param("sent") == Some(channel),
        "send {channel} {value:?}: {status} {location}\n\
         (expected 303 to {CONTACT}?rd={rd}&sent={channel})"
    );
}

/// Asks for a new login address (the account's password typed with it, as the page asks).
pub(crate) async fn change_email(c: &Client, gw: &str, new: &str, rd: &str) {
    send_ok_with(c, gw, "email", new, rd, &[("password", PW)]).await
}

/// The contact page's confirm form for `channel`. The page offers it only while a code is
/// pending; otherwise (a tab left open, a code spent meanwhile) it is the same form as the
/// channel's send form (CSRF token, `rd`, `channel`) posting to the confirm action.
pub(crate) async fn confirm_form(c: &Client, gw: &str, channel: &str, rd: &str) -> http::Form {
    let page = contact_page(c, gw, rd).await;
    let pending = forms(&page.html).into_iter().find(|f| {
        f.action == "/_vigile/contact/confirm" && f.hidden_value("channel") == Some(channel)
    });
    pending.unwrap_or_else(|| http::Form {
        action: "/_vigile/contact/confirm".into(),
        ..channel_form(&page.html, "/_vigile/contact/send", channel)
    })
}

/// Posts the confirm form for `channel` with `code`, as a browser does from the contact
/// page (see [`confirm_form`]).
pub(crate) async fn confirm(c: &Client, gw: &str, channel: &str, code: &str, rd: &str) -> Response {
    let form = confirm_form(c, gw, channel, rd).await;
    submit(c, gw, &form, &[("channel", channel), ("code", code)]).await
}

/// [`confirm`], asserting the `303` to `/_vigile/contact?rd=RD&confirmed=CHANNEL`.
pub(crate) async fn confirm_ok(c: &Client, gw: &str, channel: &str, code: &str, rd: &str) {
    let (status, location) = redirect(confirm(c, gw, channel, code, rd).await).await;
    let target = Target::parse(&location);
    assert!(
        status == 303 && target.is_contact_for(rd) && target.param("confirmed") == Some(channel),
        "confirm {channel} with {code}: {status} {location}\n\
         (expected 303 to {CONTACT}?rd={rd}&confirmed={channel})"
    );
}

/// The only 6-digit run of `text` (digits not touching other letters or digits).
pub(crate) fn six_digits(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let before = start.checked_sub(1).map(|b| chars[b]);
            let after = chars.get(i).copied();
            let bounded = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
            if i - start == 6 && bounded(before) && bounded(after) {
                out.push(chars[start..i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The code of a mail (the only 6-digit run of its text part).
pub(crate) fn mail_code(mail: &ReceivedMail) -> String {
    let codes = six_digits(&mail.text);
    assert_eq!(
        codes.len(),
        1,
        "expected one 6-digit code in the mail to {:?} {:?}:\n{}",
        mail.to,
        mail.subject,
        mail.text
    );
    codes[0].clone()
}

/// The confirmation mails (subject containing `subject`) to `to`, in arrival order.
pub(crate) fn code_mails(s: &Stack, to: &str, subject: &str) -> Vec<ReceivedMail> {
    s.smtp
        .mails()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == to) && m.subject.contains(subject))
        .collect()
}

/// Waits for the `n`-th confirmation mail to `to` (English subject) and returns it.
pub(crate) async fn nth_code_mail(s: &Stack, to: &str, n: usize) -> ReceivedMail {
    nth_mail(s, to, CONFIRM_SUBJECT, n).await
}

/// Waits for the `n`-th mail to `to` whose subject contains `subject`.
pub(crate) async fn nth_mail(s: &Stack, to: &str, subject: &str, n: usize) -> ReceivedMail {
    s.smtp
        .wait_for(&format!("mail #{n} to {to} {subject:?}"), |_| {
            code_mails(s, to, subject).len() >= n
        })
        .await;
    code_mails(s, to, subject).remove(n - 1)
}

/// The code of the `n`-th confirmation mail to `to`.
pub(crate) async fn email_code(s: &Stack, to: &str, n: usize) -> String {
    mail_code(&nth_code_mail(s, to, n).await)
}

/// A page body from `c` at `path` (asserting 200).
pub(crate) async fn page(c: &Client, gw: &str, path: &str) -> String {
    get_page(c, &format!("{gw}{path}")).await
}

/// GET `path` with a browser's Accept; (status, Location or body).
pub(crate) async fn visit(c: &Client, gw: &str, path: &str) -> (u16, String) {
    redirect(get(c, &format!("{gw}{path}"), true).await).await
}

/// Posts `fields` on the form to `action` found on page `page_path` (hidden fields kept).
pub(crate) async fn post_from(
    c: &Client,
    gw: &str,
    page_path: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    let body = page(c, gw, page_path).await;
    let form = form_with_action(&body, action)
        .unwrap_or_else(|| panic!("no form to {action} on {page_path}:\n{body}"));
    submit(c, gw, &form, fields).await
}
