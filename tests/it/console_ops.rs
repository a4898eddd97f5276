//! The console's operations sections through the real binary, on both backends: blocked
//! addresses (listed with their end and time left, unblocked from the page for every
//! instance, `vigile ip list`) and the mail outbox (a mail queued while the SMTP server
//! is down is listed with its last error; "Retry now" delivers it once the server is back
//! and the 24-hour count moves; refused mails listed; `vigile mail list` / `retry`).
//! Admins only: a member gets 403 and an anonymous visitor the login page on every URL,
//! GET and POST, and a POST without the CSRF token changes nothing.

use std::net::{IpAddr, Ipv4Addr};

use reqwest::Client;

use crate::both_backends;
use crate::common::backend::{open_store, Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW, WRONG};
use crate::common::http::{self, client, client_from, get, get_page, login, login_ok, signup};
use crate::common::poll_for;

const BLOCKED: &str = "/_vigile/admin/blocked";
const OUTBOX: &str = "/_vigile/admin/outbox";
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const IP_RULE: &str = "[lockout]\nip_max_failures = 3\nip_window = \"10m\"\nip_block = \"15m\"\n";
/// After a failed attempt a mail waits an hour: only "Retry now" sends it sooner.
const SLOW_RETRY: &str = "[mail]\nretry_initial = \"1h\"\nretry_max = \"1h\"\ntimeout = \"20s\"\n";

/// The page in French (the language switch's cookie is not needed: `Accept-Language`).
async fn get_page_fr(c: &Client, url: &str) -> String {
    let resp = c
        .get(url)
        .header("accept", "text/html")
        .header("accept-language", "fr")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.text().await.unwrap()
}

/// As askama escapes text into a page.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// Follows a `303` from a console action; returns the page it leads to.
async fn followed(c: &Client, gw: &str, resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    let to = http::header(&resp, "location").unwrap();
    get_page(c, &format!("{gw}{to}")).await
}

/// `ip_max_failures` failed sign-ins from the attacker's address: it is blocked.
async fn block_attacker(gw: &str) -> Client {
    let (attacker, _) = client_from(ATTACKER);
    for _ in 0..3 {
        assert_eq!(login(&attacker, gw, ANN, WRONG).await.status(), 401);
    }
    let page = get(&attacker, &format!("{gw}/_vigile/login"), true).await;
    assert_eq!(page.status(), 429);
    attacker
}

async fn admin(s: &Stack) -> Client {
    s.gw.add_user(BOSS, PW, true);
    let c = client();
    login_ok(&c, &s.gw.url(), BOSS, PW).await;
    c
}

async fn blocked_address_is_listed_and_unblocked_for_every_instance(backend: Backend) {
    let s = backend.stack(IP_RULE).await;
    let second = s.second_instance(IP_RULE).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let boss = admin(&s).await;
    let empty = get_page(&boss, &format!("{gw}{BLOCKED}")).await;
    assert!(empty.contains("id=\"blocked-none\""), "{empty}");

    let attacker = block_attacker(&gw).await;
    assert_eq!(
        get(&attacker, &format!("{}/_vigile/login", second.url()), true)
            .await
            .status(),
        429,
        "blocked on the other instance too"
    );
    let page = get_page(&boss, &format!("{gw}{BLOCKED}")).await;
    let row = page
        .split("<tr>")
        .find(|r| r.contains("<td>127.0.0.2</td>"))
        .unwrap_or_else(|| panic!("no row for the attacker:\n{page}"));
    assert!(row.contains(" UTC</td>"), "its end: {row}");
    assert!(
        row.contains("<td>15 min 00 s</td>") || row.contains("<td>14 min "),
        "its time left: {row}"
    );
    assert!(
        !page.contains("<td>127.0.0.1</td>"),
        "the admin is not blocked"
    );
    let fr = get_page_fr(&boss, &format!("{gw}{BLOCKED}")).await;
    for text in ["Adresses bloquées", "Temps restant", "Débloquer"] {
        assert!(fr.contains(text), "{text}: {fr}");
    }
    // The CLI lists it for scripts: address, start, end, seconds left.
    let listed = s.gw.cli_ok(&["ip", "list"], None);
    let fields: Vec<&str> = listed.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 4, "{listed:?}");
    assert_eq!(fields[0], "127.0.0.2");
    assert!(
        fields[1].ends_with('Z') && fields[2].ends_with('Z'),
        "{listed:?}"
    );
    let left: u64 = fields[3].parse().unwrap();
    assert!((800..=900).contains(&left), "{listed:?}");

    // Unblocked from the page of the first instance...
    let form = http::forms(&page)
        .into_iter()
        .find(|f| f.action == BLOCKED && f.hidden_value("address") == Some("127.0.0.2"))
        .unwrap_or_else(|| panic!("no unblock form:\n{page}"));
    let after = followed(&boss, &gw, http::submit(&boss, &gw, &form, &[]).await).await;
    assert!(after.contains("127.0.0.2"), "the notice names it: {after}");
    assert!(after.contains("id=\"blocked-none\""), "{after}");
    assert!(s.gw.cli_ok(&["ip", "list"], None).is_empty());
    // ...the address signs in again on the second one.
    login_ok(&attacker, &second.url(), ANN, PW).await;
    let logs = s.gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("ip_unblock"))
        .unwrap_or_else(|| panic!("no audit line:\n{logs}"));
    for part in ["by=\"admin\"", "127.0.0.2", "ip=\"127.0.0.1\""] {
        assert!(line.contains(part), "{part} in {line}");
    }
}

/// The one message waiting (polled until its first attempt failed).
async fn waiting_after_a_failure(s: &Stack, to: &str) -> vigile::store::OutboxMail {
    let store = open_store(s);
    poll_for("a failed attempt", 400, || async {
        store
            .outbox_list()
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.to == to && m.attempts >= 1 && m.last_error.is_some())
    })
    .await
}

fn sent_count(page: &str) -> u64 {
    let after = page.split("id=\"outbox-sent\"><strong>").nth(1).unwrap();
    after.split('<').next().unwrap().parse().unwrap()
}

async fn outbox_lists_and_retry_now_delivers_once_the_server_is_back(backend: Backend) {
    let mut s = backend.stack(SLOW_RETRY).await;
    let gw = s.gw.url();
    let boss = admin(&s).await;
    let page = get_page(&boss, &format!("{gw}{OUTBOX}")).await;
    let sent_before = sent_count(&page);

    s.smtp.stop();
    let carl = "carl@example.com";
    assert_eq!(
        signup(&client(), &gw, carl, PW, PW, "en").await.status(),
        200
    );
    let mail = waiting_after_a_failure(&s, carl).await;
    let page = get_page(&boss, &format!("{gw}{OUTBOX}")).await;
    let retrying = page.split("id=\"outbox-retrying\"").nth(1).expect(&page);
    let row = retrying
        .split("<tr>")
        .find(|r| r.contains(carl))
        .unwrap_or_else(|| panic!("{page}"));
    for part in [
        "activation".to_string(),
        "<td>1</td>".to_string(),
        escaped(mail.last_error.as_deref().unwrap()),
        escaped(&mail.subject),
    ] {
        assert!(row.contains(&part), "{part} in {row}");
    }
    assert!(
        !page.contains("token=") && !page.contains("/_vigile/activate"),
        "never a mail's content:\n{page}"
    );
    let fr = get_page_fr(&boss, &format!("{gw}{OUTBOX}")).await;
    for text in [
        "File des e-mails",
        "Réessayer maintenant",
        "Dernière réponse",
    ] {
        assert!(fr.contains(text), "{text}: {fr}");
    }

    // The server is back; the mail waits an hour unless retried now.
    s.smtp.start_again().await;
    assert_eq!(s.smtp.count_to(carl), 0);
    let form = http::forms(&page)
        .into_iter()
        .find(|f| f.action == OUTBOX && f.hidden_value("id") == Some(mail.id.as_str()))
        .unwrap_or_else(|| panic!("no retry form:\n{page}"));
    let after = followed(&boss, &gw, http::submit(&boss, &gw, &form, &[]).await).await;
    assert!(
        after.contains(carl),
        "the notice names the recipient: {after}"
    );
    s.smtp.wait_for_to(carl, "Activate your account").await;
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to(carl), 1);
    let page = get_page(&boss, &format!("{gw}{OUTBOX}")).await;
    assert_eq!(
        sent_count(&page),
        sent_before + 1,
        "the 24-hour count moved"
    );
    assert!(!page.contains("id=\"outbox-retrying\""), "{page}");
    let logs = s.gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("mail_retried"))
        .unwrap_or_else(|| panic!("no audit line:\n{logs}"));
    for part in ["by=\"admin\"", carl, mail.id.as_str(), "ip=\"127.0.0.1\""] {
        assert!(line.contains(part), "{part} in {line}");
    }

    // The CLI does the same for scripts.
    s.smtp.stop();
    let dora = "dora@example.com";
    assert_eq!(
        signup(&client(), &gw, dora, PW, PW, "en").await.status(),
        200
    );
    let waiting = waiting_after_a_failure(&s, dora).await;
    let listed = s.gw.cli_ok(&["mail", "list"], None);
    let fields: Vec<&str> = listed.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 8, "{listed:?}");
    assert_eq!(
        &fields[..4],
        &[waiting.id.as_str(), "email", "activation", dora]
    );
    assert_eq!(fields[6], "1");
    assert!(!listed.contains("token="), "{listed}");
    s.smtp.start_again().await;
    let out = s.gw.cli_ok(&["mail", "retry", &waiting.id], None);
    assert!(out.contains("due now"), "{out}");
    s.smtp.wait_for_to(dora, "Activate your account").await;
    s.outbox_drained().await;
    let out = s.gw.cli(&["mail", "retry", &waiting.id], None);
    assert_eq!(out.status.code(), Some(1), "sent already: {out:?}");
    assert!(s
        .gw
        .cli_ok(&["mail", "retry", "--all"], None)
        .contains("0 message"));

    // A mail refused for good is listed apart (no retry: its content is not kept).
    let eve = "eve@example.com";
    s.smtp.refuse(eve, "550 5.1.1 No such user");
    assert_eq!(
        signup(&client(), &gw, eve, PW, PW, "en").await.status(),
        200
    );
    let store = open_store(&s);
    poll_for("the refused mail", 400, || async {
        let failed = store.outbox_failed(10).await.unwrap();
        (!failed.is_empty()).then_some(())
    })
    .await;
    let page = get_page(&boss, &format!("{gw}{OUTBOX}")).await;
    let failed = page.split("id=\"outbox-failed\"").nth(1).expect(&page);
    assert!(
        failed.contains(eve) && failed.contains("5.1.1 No such user"),
        "{page}"
    );
    assert!(!failed.contains("name=\"id\""), "{failed}");
}

async fn only_admins_reach_the_sections_and_csrf_is_checked(backend: Backend) {
    let mut s = backend.stack(&format!("{IP_RULE}{SLOW_RETRY}")).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let boss = admin(&s).await;
    block_attacker(&gw).await;
    s.smtp.stop();
    assert_eq!(
        signup(&client(), &gw, "carl@example.com", PW, PW, "en")
            .await
            .status(),
        200
    );
    let mail = waiting_after_a_failure(&s, "carl@example.com").await;
    let state = || async {
        let store = open_store(&s);
        let now = vigile::clock::now_ms();
        (
            store.ip_blocks(now, 10).await.unwrap().len(),
            store.outbox_list().await.unwrap(),
        )
    };
    let before = state().await;
    assert_eq!(before.0, 1);
    let posts: [(&str, Vec<(&str, &str)>); 3] = [
        (BLOCKED, vec![("address", "127.0.0.2")]),
        (OUTBOX, vec![("id", mail.id.as_str())]),
        (OUTBOX, vec![("all", "1")]),
    ];

    // A member: 403 everywhere, even with her own valid token.
    let ann = client();
    login_ok(&ann, &gw, ANN, PW).await;
    let csrf = http::csrf_from(&get_page(&ann, &format!("{gw}/_vigile/account")).await);
    for path in [BLOCKED, OUTBOX] {
        let resp = get(&ann, &format!("{gw}{path}"), true).await;
        assert_eq!(resp.status(), 403, "GET {path} by a member");
    }
    for (path, fields) in &posts {
        let mut fields = fields.clone();
        fields.push(("csrf", &csrf));
        let resp = http::post_form(&ann, &format!("{gw}{path}"), &fields).await;
        assert_eq!(resp.status(), 403, "POST {path} by a member");
    }
    // Anonymous: the login page, and back here after it.
    let anon = client();
    for path in [BLOCKED, OUTBOX] {
        let resp = get(&anon, &format!("{gw}{path}"), true).await;
        assert_eq!(resp.status(), 302, "GET {path} anonymously");
        let to = http::header(&resp, "location").unwrap();
        assert!(to.starts_with("/_vigile/login?rd="), "{to}");
        assert!(to.contains(&path.replace('/', "%2F")), "{to}");
    }
    for (path, fields) in &posts {
        let resp = http::post_form(&anon, &format!("{gw}{path}"), fields).await;
        let to = http::header(&resp, "location").unwrap_or_default();
        assert!(
            resp.status().is_redirection() && to.starts_with("/_vigile/login"),
            "POST {path} anonymously: {} {to}",
            resp.status()
        );
    }
    // The admin without the token, or with a wrong one: refused.
    for (path, fields) in &posts {
        let resp = http::post_form(&boss, &format!("{gw}{path}"), fields).await;
        assert_eq!(resp.status(), 403, "POST {path} without csrf");
        let mut fields = fields.clone();
        fields.push(("csrf", &csrf));
        let resp = http::post_form(&boss, &format!("{gw}{path}"), &fields).await;
        assert_eq!(
            resp.status(),
            403,
            "POST {path} with another browser's csrf"
        );
    }
    assert_eq!(state().await, before, "nothing changed");
    s.smtp.start_again().await;
}

/// The recipients of the rows of table `id` on an outbox page, in order.
fn recipients(page: &str, id: &str) -> Vec<String> {
    let Some(table) = page.split(&format!("id=\"{id}\"")).nth(1) else {
        return Vec::new();
    };
    let body = table.split("</table>").next().unwrap();
    body.split("<tr>")
        .skip(2)
        .map(|row| {
            let cell = row.split("<td>").nth(1).unwrap();
            cell.split("</td>").next().unwrap().to_string()
        })
        .collect()
}

/// The figure `id` of the outbox page's summary.
fn outbox_figure(page: &str, id: &str) -> u64 {
    let after = page
        .split(&format!("id=\"{id}\"><strong>"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {id}:\n{page}"));
    after.split('<').next().unwrap().parse().unwrap()
}

/// The `href` of the link with `id`, entities decoded.
fn link(page: &str, id: &str) -> Option<String> {
    let before = page.split(&format!("id=\"{id}\"")).next()?;
    if before.len() == page.len() {
        return None;
    }
    let href = before.rsplit("href=\"").next()?.split('"').next()?;
    Some(http::decode_entities(href))
}

async fn outbox_is_listed_fifty_at_a_time_with_exact_counts(backend: Backend) {
    let mut s = backend.stack(SLOW_RETRY).await;
    let gw = s.gw.url();
    let boss = admin(&s).await;
    let sent_before = sent_count(&get_page(&boss, &format!("{gw}{OUTBOX}")).await);
    // The mail server is down: 120 messages wait for their next attempt, an hour or so
    // away; three were refused for good.
    s.smtp.stop();
    let store = open_store(&s);
    let now = vigile::clock::now_ms();
    for i in 0..120i64 {
        let mail = vigile::store::OutboxMail {
            id: vigile::store::OutboxMail::new_id(),
            channel: vigile::store::Channel::Email,
            kind: "activation".to_string(),
            to: format!("m{i:03}@example.com"),
            subject: "Activate your account".to_string(),
            text: format!("{gw}/_vigile/activate?token=secret-{i}"),
            html: String::new(),
            created_at: now - 60_000,
            attempts: 0,
            next_attempt: now + 3_600_000 + i * 1000,
            last_error: None,
        };
        store.outbox_push(&mail).await.unwrap();
        store
            .outbox_retry(&mail.id, mail.next_attempt, "421 4.3.2 Try again later")
            .await
            .unwrap();
    }
    for i in 0..3 {
        let mail = vigile::store::OutboxMail {
            id: vigile::store::OutboxMail::new_id(),
            channel: vigile::store::Channel::Email,
            kind: "password_reset".to_string(),
            to: format!("gone{i}@example.com"),
            subject: "Reset".to_string(),
            text: String::new(),
            html: String::new(),
            created_at: now,
            attempts: 0,
            next_attempt: now + 7_200_000,
            last_error: None,
        };
        store.outbox_push(&mail).await.unwrap();
        store
            .outbox_fail(&mail.id, now, "550 5.1.1 No such user")
            .await
            .unwrap();
    }

    let mut seen = Vec::new();
    let mut url = format!("{gw}{OUTBOX}");
    for (n, want) in [50usize, 50, 20].into_iter().enumerate() {
        let page = get_page(&boss, &url).await;
        // The counts are the whole outbox's, on every page.
        assert_eq!(
            outbox_figure(&page, "outbox-retrying-total"),
            120,
            "page {n}"
        );
        assert_eq!(outbox_figure(&page, "outbox-queued-total"), 0, "page {n}");
        assert_eq!(outbox_figure(&page, "outbox-failed-total"), 3, "page {n}");
        let rows = recipients(&page, "outbox-retrying");
        assert_eq!(rows.len(), want, "page {n}:\n{page}");
        assert!(
            page.contains(&format!("{want} of 120 shown")),
            "page {n}:\n{page}"
        );
        assert!(!page.contains("secret-"), "never a mail's content");
        assert_eq!(
            link(&page, "outbox-retrying-first").is_some(),
            n > 0,
            "page {n}"
        );
        seen.extend(rows);
        match link(&page, "outbox-retrying-next") {
            Some(next) => url = format!("{gw}{next}"),
            None => {
                assert_eq!(n, 2, "no next page after page {n}");
                break;
            }
        }
    }
    // Every message once, soonest due first.
    let want: Vec<String> = (0..120).map(|i| format!("m{i:03}@example.com")).collect();
    assert_eq!(seen, want);
    let fr = get_page_fr(&boss, &format!("{gw}{OUTBOX}")).await;
    assert!(fr.contains("50 sur 120 affichés"), "{fr}");

    // The server is back: "Retry every waiting message now" reaches all 120, not only
    // the page shown.
    s.smtp.start_again().await;
    let page = get_page(&boss, &format!("{gw}{OUTBOX}")).await;
    let form = http::forms(&page)
        .into_iter()
        .find(|f| f.action == OUTBOX && f.hidden_value("all") == Some("1"))
        .unwrap_or_else(|| panic!("no retry-all form:\n{page}"));
    let after = followed(&boss, &gw, http::submit(&boss, &gw, &form, &[]).await).await;
    assert!(after.contains("120 message(s) will be sent"), "{after}");
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to("m119@example.com"), 1);
    let page = get_page(&boss, &format!("{gw}{OUTBOX}")).await;
    assert_eq!(outbox_figure(&page, "outbox-retrying-total"), 0);
    assert_eq!(
        sent_count(&page),
        sent_before + 120,
        "the 24-hour count moved"
    );
}

both_backends!(
    outbox_is_listed_fifty_at_a_time_with_exact_counts,
    blocked_address_is_listed_and_unblocked_for_every_instance,
    outbox_lists_and_retry_now_delivers_once_the_server_is_back,
    only_admins_reach_the_sections_and_csrf_is_checked,
);
