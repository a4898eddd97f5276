//! The console's Security events and the overview's charts through the real binary, on
//! both backends: what happened on two gateway instances and on the command line is
//! listed newest first, filtered by member, kind and day, paged, exported as CSV (no cell
//! a spreadsheet would run), counted on the overview's charts; bad filters get a clear
//! error; only admins see any of it.

use reqwest::Client;

use crate::both_backends;
use crate::common::backend::{open_store, Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW, WRONG};
use crate::common::http::{self, client, client_from, get, get_page, login, login_ok};
use crate::common::poll_for;
use crate::common::records::real_now;

const EVENTS: &str = "/_vigile/admin/events";
const CSV: &str = "/_vigile/admin/events.csv";
const IP_RULE: &str = "[lockout]\nip_max_failures = 3\nip_window = \"10m\"\nip_block = \"15m\"\n";
const ATTACKER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));
/// A valid address a spreadsheet would take for a formula.
const FORMULA: &str = "=cmd@example.com";

/// The `data-event` of each row of an events page, in order.
fn kinds(page: &str) -> Vec<String> {
    page.split("<tr data-event=\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap_or_default().to_string())
        .collect()
}

/// The row of the first event of `kind` on the page.
fn row<'a>(page: &'a str, kind: &str) -> &'a str {
    page.split(&format!("<tr data-event=\"{kind}\""))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no {kind} row:\n{page}"))
}

/// An events page whose status is `status`.
async fn events_page(c: &Client, gw: &str, query: &str, status: u16) -> String {
    let resp = get(c, &format!("{gw}{EVENTS}{query}"), true).await;
    assert_eq!(resp.status().as_u16(), status, "{query}");
    resp.text().await.unwrap()
}

/// The chart total the overview shows for a series and span.
fn chart_total(page: &str, series: &str, span: &str) -> u64 {
    let row = page
        .split(&format!("data-series=\"{series}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {series} chart:\n{page}"));
    let cell = row
        .split(&format!("data-span=\"{span}\" data-total=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {span} chart of {series}"));
    cell.split('"').next().unwrap().parse().unwrap()
}

/// An attribute's value as the browser reads it.
fn unescape(href: &str) -> String {
    href.replace("&#38;", "&").replace("&amp;", "&")
}

async fn admin(s: &Stack) -> Client {
    s.gw.add_user(BOSS, PW, true);
    let c = client();
    login_ok(&c, &s.gw.url(), BOSS, PW).await;
    c
}

async fn events_are_listed_filtered_exported_and_charted(backend: Backend) {
    let s = backend.stack(IP_RULE).await;
    let gw = s.gw.url();
    let second = s.second_instance(IP_RULE).await;
    let admin = admin(&s).await;
    s.gw.add_user(ANN, PW, false);
    // On the second instance: Ann signs in; a wrong password for her, then for an address
    // shaped like a formula, from the attacker's address, which gets it blocked.
    let ann = client();
    login_ok(&ann, &second.url(), ANN, PW).await;
    let (attacker, _) = client_from(ATTACKER);
    assert_eq!(
        login(&attacker, &second.url(), ANN, WRONG).await.status(),
        401
    );
    assert_eq!(
        login(&attacker, &second.url(), FORMULA, WRONG)
            .await
            .status(),
        401
    );
    assert_eq!(
        login(&attacker, &second.url(), "nobody@example.com", WRONG)
            .await
            .status(),
        401
    );
    // On the command line: Ann's devices signed out.
    s.gw.cli_ok(&["user", "revoke", ANN, "--all"], None);

    let page = poll_for("the events on the console", 50, || {
        let (admin, gw) = (admin.clone(), gw.clone());
        async move {
            let page = get_page(&admin, &format!("{gw}{EVENTS}")).await;
            kinds(&page)
                .contains(&"sessions_revoked".to_string())
                .then_some(page)
        }
    })
    .await;
    let all = kinds(&page);
    // Newest first: the command line's revocation, the block, the failures, the logins.
    assert_eq!(all[0], "sessions_revoked", "{all:?}");
    for kind in ["ip_blocked", "login_failed", "login"] {
        assert!(all.contains(&kind.to_string()), "{kind} in {all:?}");
    }
    let blocked = row(&page, "ip_blocked");
    assert!(blocked.contains("127.0.0.3"), "{blocked}");
    let revoked = row(&page, "sessions_revoked");
    assert!(
        revoked.contains(ANN) && revoked.contains("command line"),
        "{revoked}"
    );
    assert!(page.contains("Failed sign-in"), "labels in English");

    // Ann's events: her login and the failure that named her address, nobody else's.
    let ann_page = events_page(&admin, &gw, &format!("?email={ANN}"), 200).await;
    let mine = kinds(&ann_page);
    assert_eq!(
        mine,
        ["sessions_revoked", "login_failed", "login"],
        "{ann_page}"
    );
    assert!(!ann_page.contains("nobody@example.com"));
    // One kind; one day; the day before has nothing.
    let failed = kinds(&events_page(&admin, &gw, "?kind=login_failed", 200).await);
    assert_eq!(failed, ["login_failed"; 3]);
    let today = vigile::edge::day::Day::of(real_now()).as_string();
    let yesterday = vigile::edge::day::Day::of(real_now() - 86_400_000).as_string();
    let q = format!("?kind=login&from={today}&to={today}");
    assert_eq!(
        kinds(&events_page(&admin, &gw, &q, 200).await).len(),
        2,
        "Boss and Ann"
    );
    let q = format!("?to={yesterday}");
    let none = events_page(&admin, &gw, &q, 200).await;
    assert!(
        kinds(&none).is_empty() && none.contains("No event matches"),
        "{none}"
    );
    // Bad filters: said, nothing listed.
    for (query, says) in [
        ("?email=not-an-address", "not an email address"),
        ("?kind=drop_tables", "Unknown kind of event"),
        ("?from=2026-02-30", "YYYY-MM-DD"),
        (&*format!("?from={today}&to={yesterday}"), "comes after"),
    ] {
        let page = events_page(&admin, &gw, query, 400).await;
        assert!(
            page.contains(says) && kinds(&page).is_empty(),
            "{query}: {page}"
        );
    }
    let unknown = events_page(&admin, &gw, "?email=ghost@example.com", 200).await;
    assert!(unknown.contains("No account has this address"), "{unknown}");

    // The CSV of the failures: a header, a row each, the formula-shaped address defused.
    let resp = get(&admin, &format!("{gw}{CSV}?kind=login_failed"), false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        http::header(&resp, "content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    assert!(http::header(&resp, "content-disposition")
        .unwrap()
        .starts_with("attachment; filename=\"vigile-events-"));
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        header,
        ["at", "event", "by", "admin", "member", "user_id", "ip", "details"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{text}");
    let members: Vec<&str> = rows.iter().map(|r| &r[4]).collect();
    assert_eq!(members, ["nobody@example.com", &format!("'{FORMULA}"), ANN]);
    for r in &rows {
        assert_eq!(&r[1], "login_failed");
        assert_eq!(&r[6], "127.0.0.3");
        assert!(
            r.iter().all(|cell| !cell.starts_with(['=', '+', '-', '@'])),
            "{r:?}"
        );
    }
    assert!(!text.contains(WRONG), "a typed password in the export");
    // The same export for scripts, from the command line.
    let out =
        s.gw.cli_ok(&["audit", "export", "--kind", "login_failed"], None);
    let mut cli_rows = csv::Reader::from_reader(out.as_bytes());
    let cli_rows: Vec<csv::StringRecord> = cli_rows.records().map(Result::unwrap).collect();
    // For scripts the values stay as they are (an id may start with `-`).
    let cli_members: Vec<&str> = cli_rows.iter().map(|r| &r[4]).collect();
    assert_eq!(cli_members, ["nobody@example.com", FORMULA, ANN]);
    assert_eq!(cli_rows[0], rows[0]);
    let out =
        s.gw.cli_ok(&["audit", "export", "--email", ANN, "--from", &today], None);
    assert_eq!(
        out.lines().count(),
        4,
        "a header and Ann's three events:\n{out}"
    );
    for (args, says) in [
        (
            &["--email", "ghost@example.com"][..],
            "no account has the address",
        ),
        (&["--kind", "nope"][..], "unknown kind of event"),
        (&["--from", "2026-13-01"][..], "YYYY-MM-DD"),
    ] {
        let out = s.gw.cli(&[&["audit", "export"][..], args].concat(), None);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // Ann's page in the console: her lock state and her recent events, newest first.
    let page = get_page(&admin, &format!("{gw}/_vigile/admin/member?email={ANN}")).await;
    let lock = page.split("id=\"member-lock\">").nth(1).unwrap();
    assert!(
        lock.starts_with("open (1)"),
        "one failure, not locked: {lock}"
    );
    let table = page.split("id=\"member-events\"").nth(1).unwrap();
    assert_eq!(kinds(table), ["sessions_revoked", "login_failed", "login"]);
    assert!(
        page.contains(&format!("{EVENTS}?email=ann%40example.com")),
        "{page}"
    );

    // The overview's charts count what happened today.
    let overview = get_page(&admin, &format!("{gw}/_vigile/admin")).await;
    for span in ["24h", "7d"] {
        assert_eq!(chart_total(&overview, "chart-logins", span), 2, "{span}");
        assert_eq!(chart_total(&overview, "chart-failures", span), 3, "{span}");
        assert_eq!(chart_total(&overview, "chart-blocks", span), 1, "{span}");
        assert_eq!(chart_total(&overview, "chart-lockouts", span), 0, "{span}");
    }
    assert!(overview.contains("<svg class=\"chart\""), "drawn as SVG");
    assert!(!overview.contains("<script"), "no script");

    // Only admins: a member gets 403, a visitor the login page, on the page and the CSV.
    let member = client();
    login_ok(&member, &gw, ANN, PW).await;
    for url in [EVENTS, CSV] {
        let resp = get(&member, &format!("{gw}{url}"), true).await;
        assert_eq!(resp.status(), 403, "{url}");
        let resp = get(&client(), &format!("{gw}{url}"), true).await;
        assert_eq!(resp.status(), 302, "{url}");
        assert!(http::header(&resp, "location")
            .unwrap()
            .contains("/_vigile/login"));
    }
}

async fn a_long_trail_is_paged_without_gap_or_repeat(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let admin = admin(&s).await;
    let store = open_store(&s);
    let now = real_now();
    let records: Vec<vigile::store::AuditRecord> = (0..120)
        .map(|i| vigile::store::AuditRecord {
            at: now - 60_000 + i,
            event: "ip_unblock".into(),
            by: "cli".into(),
            detail: format!("{{\"address\":\"192.0.2.{i}\"}}"),
            ..Default::default()
        })
        .collect();
    let keep = vigile::store::AuditKeep {
        keep_ms: 86_400_000,
        max_events: 10_000,
    };
    store.audit_append(&records, keep).await.unwrap();

    let mut url = format!("{gw}{EVENTS}?kind=ip_unblock");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = get_page(&admin, &url).await;
        pages += 1;
        let rows = page.split("<tr data-event=\"ip_unblock\"").skip(1);
        for r in rows {
            let address = r
                .split("address: ")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            seen.push(address.to_string());
        }
        let Some(next) = page.split("id=\"next-page\" href=\"").nth(1) else {
            break;
        };
        url = format!("{gw}{}", unescape(next.split('"').next().unwrap()));
        assert!(url.contains("kind=ip_unblock"), "the filter follows: {url}");
        assert!(pages < 10, "paging does not end: {url}");
    }
    let expected: Vec<String> = (0..120).rev().map(|i| format!("192.0.2.{i}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
}

both_backends!(
    events_are_listed_filtered_exported_and_charted,
    a_long_trail_is_paged_without_gap_or_repeat,
);
