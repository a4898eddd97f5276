//! The audit log through the real binary (`[log] audit_file`): every kind of event the
//! code emits (the list is read from `src/audit.rs`, so a new kind fails this test until
//! it is triggered here) is written as one JSON line with what, who, whom, when and from
//! where, from the gateway and from the admin CLI alike, and no secret ever is (the
//! passwords typed, session cookies, device codes, link tokens, password hashes).

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Client;
use serde_json::Value;

use crate::common::backend::{Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW, WRONG};
use crate::common::http::{self, client, jar_cookie, login, login_ok, session_row};
use crate::devices::{code_for, post_on};

fn audit_lines(s: &Stack) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(s.gw.dir().join("audit.log")).unwrap_or_default();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (text, lines)
}

/// The `event` names of every kind `src/audit.rs` can write (the arms of `Event::name`).
/// Organisation events (`org_*`) are written by `orgs::observability`, and contact ones
/// (`campaign_started`, `contact_*`) by `contact::observability`, and second-factor ones
/// (`2fa_*` by `twofactor::observability` and `twofactor::admin_reset`,
/// `recovery_code_used` by `twofactor::recovery`), which run those flows and check each.
pub(crate) fn kinds_in_source() -> BTreeSet<String> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/audit.rs"))
        .expect("read src/audit.rs");
    let body = src
        .split("pub fn name(&self)")
        .nth(1)
        .expect("Event::name in src/audit.rs")
        .split("\n    }\n")
        .next()
        .unwrap();
    let kinds: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.split("=> \"").nth(1)?.split('"').next())
        .map(str::to_string)
        .collect();
    assert!(kinds.len() > 10, "parsed only {kinds:?} from src/audit.rs");
    kinds
}

/// The addresses clients claim here through the trusted proxy (`X-Forwarded-For`).
const LAPTOP_IP: &str = "198.51.100.10";
const ATTACKER_IP: &str = "203.0.113.66";

fn from(ip: &str) -> (Client, std::sync::Arc<reqwest::cookie::Jar>) {
    http::client_with_headers_and_jar(&[("x-forwarded-for", ip)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audit_event_kind_is_written_with_who_what_when_where() {
    let s = Backend::Sqlite
        .stack(
            "[log]\naudit_file = \"audit.log\"\n\
             [server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
             [sessions]\nmax_per_member = 2\non_overflow = \"choose\"\n\
             [lockout]\nip_max_failures = 10\n",
        )
        .await;
    let gw = s.gw.url();
    let start = vigile::clock::rfc3339(vigile::clock::now_ms());
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);
    s.gw.add_user("carl@example.com", PW, false);
    let store = crate::common::backend::open_store(&s);
    let id_of = |email: &'static str| {
        let store = store.clone();
        async move {
            store
                .user_by_email(email)
                .await
                .unwrap()
                .unwrap()
                .id
                .as_str()
                .to_string()
        }
    };
    let (ann_id, boss_id) = (id_of(ANN).await, id_of(BOSS).await);
    // Everything that must never be written: typed passwords, cookies, codes, tokens.
    let new_pw = "Fresh-start 42!";
    let mut secrets: Vec<String> = vec![PW.into(), WRONG.into(), new_pw.into()];
    let cookie =
        |jar: &reqwest::cookie::Jar| jar_cookie(jar, &gw, "vigile_session").expect("signed in");

    // Sign-up, activation, a sign-up for a taken address (visitor).
    let (visitor, jar) = http::client_with_jar(http::UA_FIREFOX_LINUX);
    http::signup(&visitor, &gw, "zed@example.com", PW, PW, "en").await;
    let link = s
        .smtp
        .wait_for_to("zed@example.com", "Activate your account")
        .await
        .link_containing("/_vigile/activate?token=");
    assert_eq!(http::get(&visitor, &link, true).await.status(), 302);
    secrets.push(cookie(&jar));
    http::signup(&client(), &gw, ANN, PW, PW, "en").await;

    // Ann signs in on two devices; a third is over the cap: a code, then she replaces
    // the phone (login, device_overflow, device_replaced).
    let (laptop, jar) = from(LAPTOP_IP);
    login_ok(&laptop, &gw, ANN, PW).await;
    secrets.push(cookie(&jar));
    let (phone, jar) = http::client_with_jar(http::UA_SAFARI_IPHONE);
    login_ok(&phone, &gw, ANN, PW).await;
    secrets.push(cookie(&jar));
    let (tablet, tablet_jar) = http::client_with_jar(http::UA_FIREFOX_LINUX);
    login(&tablet, &gw, ANN, PW).await;
    let code = code_for(&s, ANN, 1).await;
    secrets.push(code.clone());
    post_on(
        &tablet,
        &gw,
        "/_vigile/verify",
        "/_vigile/verify",
        &[("code", &code)],
    )
    .await;
    let choose = http::get_page(&tablet, &format!("{gw}/_vigile/devices/choose")).await;
    let replaced = session_row(&choose, |li| li.contains("iPhone"));
    let resp = post_on(
        &tablet,
        &gw,
        "/_vigile/devices/choose",
        "/_vigile/devices/choose",
        &[("session", &replaced)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    secrets.push(cookie(&tablet_jar));

    // The admin switches to evict-oldest on the page, then to deny from the CLI
    // (settings_changed twice, device_evicted, device_denied).
    let (admin, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&admin, &gw, BOSS, PW).await;
    secrets.push(cookie(&jar));
    let resp = post_on(
        &admin,
        &gw,
        "/_vigile/admin/settings",
        "/_vigile/admin/settings",
        &[("max_per_member", "2"), ("on_overflow", "evict-oldest")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let (e1, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&e1, &gw, ANN, PW).await;
    secrets.push(cookie(&jar));
    s.gw.cli_ok(&["settings", "set", "--on-overflow", "deny"], None);
    let (d1, d1_jar) = http::client_with_jar(http::UA_SAFARI_IPHONE);
    assert_eq!(login(&d1, &gw, ANN, PW).await.status(), 403);

    // Ann's own cap from her admin page; two more devices; from one of them she signs one
    // other out, then every other (member_cap_changed, device_revoked, devices_revoked).
    let member_page = format!("/_vigile/admin/member?email={ANN}");
    let resp = post_on(
        &admin,
        &gw,
        &member_page,
        "/_vigile/admin/member/cap",
        &[("cap", "5")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    login_ok(&d1, &gw, ANN, PW).await;
    secrets.push(cookie(&d1_jar));
    let (d2, jar) = http::client_with_jar(http::UA_FIREFOX_LINUX);
    login_ok(&d2, &gw, ANN, PW).await;
    secrets.push(cookie(&jar));
    let account = http::get_page(&d1, &format!("{gw}/_vigile/account")).await;
    let other = session_row(&account, |li| !li.contains("(this device)"));
    let resp = post_on(
        &d1,
        &gw,
        "/_vigile/account",
        "/_vigile/account/devices/revoke",
        &[("session", &other)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let resp = post_on(
        &d1,
        &gw,
        "/_vigile/account",
        "/_vigile/account/devices/others",
        &[],
    )
    .await;
    assert_eq!(resp.status(), 303);

    // The admin signs Ann's last device out from her page; the CLI sets her cap back and
    // ends all her sessions (session_revoked, member_cap_changed, sessions_revoked).
    let resp = post_on(
        &admin,
        &gw,
        &member_page,
        "/_vigile/admin/member/revoke",
        &[],
    )
    .await;
    assert_eq!(resp.status(), 303);
    s.gw.cli_ok(&["user", "cap", ANN, "default"], None);
    login_ok(&client(), &gw, ANN, PW).await;
    s.gw.cli_ok(&["user", "revoke", ANN, "--all"], None);

    // Sign in and out (logout).
    let (c, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&c, &gw, ANN, PW).await;
    secrets.push(cookie(&jar));
    let resp = post_on(&c, &gw, "/_vigile/account", "/_vigile/logout", &[]).await;
    assert_eq!(resp.status(), 303);

    // A reset link asked for (password_reset_requested, written off the request).
    let resp = post_on(
        &client(),
        &gw,
        "/_vigile/password/forgot",
        "/_vigile/password/forgot",
        &[("email", ANN)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let asked = s
        .smtp
        .wait_for("the reset mail", |m| {
            m.to.iter().any(|t| t == ANN) && m.text.contains("/_vigile/password/reset?token=")
        })
        .await;
    let token = asked.link_containing("/_vigile/password/reset?token=");
    secrets.push(token.split("token=").nth(1).unwrap().to_string());

    // Six wrong passwords from six addresses lock Ann; the mailed link resets her
    // password (login_failed, account_locked, password_reset).
    for i in 0..6 {
        let (c, _) = from(&format!("198.51.100.{}", 20 + i));
        assert_eq!(login(&c, &gw, ANN, WRONG).await.status(), 401);
    }
    let link = s
        .smtp
        .wait_for_to(ANN, "Your account has been locked")
        .await
        .link_containing("/_vigile/password/reset?token=");
    secrets.push(link.split("token=").nth(1).unwrap().to_string());
    let fields = [("password", new_pw), ("confirm", new_pw)];
    let c = client();
    let page = http::get_page(&c, &link).await;
    let form = http::form_with_action(&page, "/_vigile/password/reset").unwrap();
    assert_eq!(http::submit(&c, &gw, &form, &fields).await.status(), 303);

    // Carl is locked too; the admin page unlocks him, and so does the CLI (unlock twice).
    for i in 0..6 {
        let (c, _) = from(&format!("198.51.100.{}", 40 + i));
        login(&c, &gw, "carl@example.com", WRONG).await;
    }
    let resp = post_on(
        &admin,
        &gw,
        "/_vigile/admin/members",
        "/_vigile/admin/unlock",
        &[("email", "carl@example.com")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    s.gw.cli_ok(&["user", "unlock", "carl@example.com"], None);

    // Carl, signed in again, renames himself and changes his password on his account
    // page (profile_changed, password_changed).
    let carl_pw = "Carl-anew 55 pass";
    secrets.push(carl_pw.into());
    let (carl, jar) = from("198.51.100.60");
    login_ok(&carl, &gw, "carl@example.com", PW).await;
    secrets.push(cookie(&jar));
    let fields = [("name", "Carl Jung"), ("lang", "en")];
    let resp = post_on(
        &carl,
        &gw,
        "/_vigile/account",
        "/_vigile/account/profile",
        &fields,
    )
    .await;
    assert_eq!(resp.status(), 303);
    let fields = [
        ("current_password", PW),
        ("password", carl_pw),
        ("confirm", carl_pw),
        ("end_others", "1"),
    ];
    let resp = post_on(
        &carl,
        &gw,
        "/_vigile/account",
        "/_vigile/account/password",
        &fields,
    )
    .await;
    assert_eq!(resp.status(), 303);

    // Ann's laptop has signed in before: six wrong passwords from it lock only that
    // device (device_locked).
    for _ in 0..6 {
        login(&laptop, &gw, ANN, WRONG).await;
    }

    // Ten failures from one address block it; the CLI lifts the block (ip_blocked,
    // ip_unblock).
    for i in 0..10 {
        let (c, _) = from(ATTACKER_IP);
        login(&c, &gw, &format!("nobody{i}@example.com"), WRONG).await;
    }
    s.gw.cli_ok(&["ip", "unblock", ATTACKER_IP], None);

    // A cohort imported on the command line: an account created, an address invited to
    // sign up (member_created, signup_invited).
    for (name, args) in [("create.csv", &[][..]), ("invite.csv", &["--invite"][..])] {
        let path = s.gw.dir().join(name);
        let who = name.replace(".csv", "@example.com");
        std::fs::write(&path, format!("email,name\n{who},Cohort\n")).unwrap();
        let file = path.to_str().unwrap();
        s.gw.cli_ok(&[&["user", "import", file][..], args].concat(), None);
    }

    // A mailbox the mail server refuses for good (mail_failed).
    s.smtp
        .refuse("bounce@example.com", "550 5.1.1 No such user");
    http::signup(&client(), &gw, "bounce@example.com", PW, PW, "en").await;

    // Every kind the code can write is there (the last ones are written off the request),
    // the organisation ones aside (see `kinds_in_source`).
    let kinds: BTreeSet<String> = kinds_in_source()
        .into_iter()
        .filter(|k| !k.starts_with("org_") && !k.starts_with("contact_") && k != "campaign_started")
        .filter(|k| !k.starts_with("2fa_") && k != "recovery_code_used")
        // "Retry now" needs a mail waiting for a retry: `console_ops` reads its line.
        .filter(|k| k != "mail_retried")
        .collect();
    let missing = || {
        let (_, lines) = audit_lines(&s);
        let seen: BTreeSet<String> = lines
            .iter()
            .filter_map(|l| l["event"].as_str().map(str::to_string))
            .collect();
        kinds.difference(&seen).cloned().collect::<Vec<_>>()
    };
    for _ in 0..400 {
        if missing().is_empty() {
            break;
        }
        tokio::time::sleep(crate::common::POLL_INTERVAL).await;
    }
    assert_eq!(missing(), Vec::<String>::new(), "kinds never written");
    let end = vigile::clock::rfc3339(vigile::clock::now_ms());

    let (text, lines) = audit_lines(&s);
    let mut by_kind: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    let addresses = |ip: &str| {
        ip == "127.0.0.1" || ip == LAPTOP_IP || ip == ATTACKER_IP || ip.starts_with("198.51.100.")
    };
    for l in &lines {
        let event = l["event"].as_str().unwrap_or_else(|| panic!("what? {l}"));
        assert!(
            kinds.contains(event),
            "an event the code does not list: {l}"
        );
        by_kind.entry(event).or_default().push(l);
        // When: the flow's instant, within the test.
        let at = l["at"].as_str().unwrap_or_else(|| panic!("when? {l}"));
        assert!(
            start.as_str() <= at && at <= end.as_str(),
            "when? {at} not in [{start}, {end}]: {l}"
        );
        assert!(l["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
        // Who acted, whom it concerns.
        let by = l["by"].as_str().unwrap_or_else(|| panic!("who? {l}"));
        assert!(
            ["visitor", "admin", "cli", "system"].contains(&by),
            "who? {l}"
        );
        if by == "admin" {
            assert_eq!(
                l["admin"].as_str(),
                Some(boss_id.as_str()),
                "which admin? {l}"
            );
        }
        // Whom it concerns (the device-cap settings concern the whole site).
        assert!(
            event == "settings_changed"
                || ["user", "email", "address"]
                    .iter()
                    .any(|k| l[*k].is_string()),
            "whom? {l}"
        );
        // Where from: the client's address (as the trusted proxy gave it), none from the
        // command line.
        match (by, l["ip"].as_str()) {
            ("cli", None) => {}
            ("cli", Some(_)) => panic!("an address for the command line? {l}"),
            ("system", None) => {}
            (_, Some(ip)) => assert!(addresses(ip), "from where? {l}"),
            (_, None) => panic!("from where? {l}"),
        }
    }
    // Who acted, by kind: the member at their browser, Vigile itself, or an admin (on
    // the page or the command line).
    for (by, kinds) in [
        (
            &["visitor"][..],
            &[
                "signup",
                "signup_existing",
                "activation",
                "login",
                "login_failed",
                "logout",
                "password_reset_requested",
                "password_reset",
                "device_overflow",
                "device_denied",
                "device_replaced",
                "device_revoked",
                "devices_revoked",
                "password_changed",
                "profile_changed",
            ][..],
        ),
        (
            &["system"][..],
            &[
                "account_locked",
                "device_locked",
                "ip_blocked",
                "mail_failed",
            ][..],
        ),
        (
            &["admin", "cli"][..],
            &[
                "unlock",
                "member_cap_changed",
                "session_revoked",
                "sessions_revoked",
                "settings_changed",
                "ip_unblock",
                "member_created",
                "signup_invited",
            ][..],
        ),
    ] {
        for kind in kinds {
            for l in by_kind.get(kind).into_iter().flatten() {
                assert!(by.contains(&l["by"].as_str().unwrap_or("")), "who? {l}");
            }
        }
    }
    // A few events read in full.
    let one = |kind: &str, pick: &dyn Fn(&Value) -> bool| -> Value {
        by_kind[kind]
            .iter()
            .find(|l| pick(l))
            .map(|l| (*l).clone())
            .unwrap_or_else(|| panic!("no such {kind}: {:?}", by_kind[kind]))
    };
    one("login", &|l| {
        l["user"] == ann_id.as_str() && l["ip"] == LAPTOP_IP
    });
    let replaced_line = one("device_replaced", &|_| true);
    assert_eq!(replaced_line["user"].as_str(), Some(ann_id.as_str()));
    assert!(
        replaced_line["sessions"]
            .as_str()
            .is_some_and(|v| v.contains(&replaced)),
        "{replaced_line}"
    );
    let locked = one("account_locked", &|_| true);
    assert_eq!(locked["user"].as_str(), Some(ann_id.as_str()));
    assert_eq!(
        locked["ip"].as_str(),
        Some("198.51.100.25"),
        "the sixth failure's address"
    );
    let device = one("device_locked", &|_| true);
    assert_eq!(
        (device["user"].as_str(), device["ip"].as_str()),
        (Some(ann_id.as_str()), Some(LAPTOP_IP))
    );
    let blocked = one("ip_blocked", &|_| true);
    assert_eq!(
        (blocked["address"].as_str(), blocked["ip"].as_str()),
        (Some(ATTACKER_IP), Some(ATTACKER_IP))
    );
    assert!(
        blocked["until"].as_str().is_some_and(|u| u > end.as_str()),
        "{blocked}"
    );
    one("unlock", &|l| {
        l["by"] == "admin" && l["email"] == "carl@example.com"
    });
    one("unlock", &|l| {
        l["by"] == "cli" && l["email"] == "carl@example.com"
    });
    one("settings_changed", &|l| {
        l["by"] == "admin" && l["on_overflow"] == "evict-oldest"
    });
    one("settings_changed", &|l| {
        l["by"] == "cli" && l["on_overflow"] == "deny"
    });
    one("member_cap_changed", &|l| {
        l["by"] == "admin" && l["cap"] == "5"
    });
    one("member_cap_changed", &|l| {
        l["by"] == "cli" && l["cap"] == "default"
    });
    one("ip_unblock", &|l| l["address"] == ATTACKER_IP);
    one("signup_existing", &|l| {
        l["email"] == ANN && l["by"] == "visitor"
    });
    one("mail_failed", &|l| l["to"] == "bounce@example.com");
    one("login_failed", &|l| {
        l["email"] == ANN && l["ip"] == "198.51.100.20"
    });

    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "{secret} in the audit log");
    }
    assert!(
        !text.contains("$argon2"),
        "a password hash in the audit log"
    );
}

/// `[log] format = "json"`: every line on standard error is a JSON object, audit events
/// included (with their target), so a log shipper needs no parsing rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let s = Backend::Sqlite.stack("[log]\nformat = \"json\"\n").await;
    s.gw.add_user(ANN, PW, false);
    login_ok(&client(), &s.gw.url(), ANN, PW).await;
    let stderr = std::fs::read_to_string(s.gw.dir().join("stderr.log")).unwrap();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "audit" && l["fields"]["event"] == "login"),
        "{stderr}"
    );
    assert!(!stderr.contains(PW));
}
