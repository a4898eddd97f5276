//! The audit log through the real binary (`[log] audit_file`): every security event a
//! demanding operator expects is there as one JSON line with what, who, when and from
//! where, from the gateway and from the admin CLI alike, and no secret ever is (the
//! passwords typed, the session cookies, the device code, the reset link).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::backend::{Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW, WRONG};
use crate::common::http::{self, client, client_ua, jar_cookie, login, login_ok};

fn audit_lines(s: &Stack) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(s.gw.dir().join("audit.log")).unwrap_or_default();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (text, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_events_are_audited_without_secrets() {
    let s = Backend::Redis
        .stack(
            "[log]\naudit_file = \"audit.log\"\n\
             [sessions]\nmax_per_member = 1\n\
             [lockout]\nip_max_failures = 0\n",
        )
        .await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);

    // Sign-in, then a second device over the cap replaces the first.
    let (laptop, jar) =
        http::client_with_jar("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0");
    login_ok(&laptop, &gw, ANN, PW).await;
    let laptop_token = jar_cookie(&jar, &gw, "vigile_session").unwrap();
    let phone = client_ua(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1",
    );
    login(&phone, &gw, ANN, PW).await;
    let code = crate::devices::code_for(&s, ANN, 1).await;
    let page = http::get_page(&phone, &format!("{gw}/_vigile/verify")).await;
    let form = http::form_with_action(&page, "/_vigile/verify").unwrap();
    http::submit(&phone, &gw, &form, &[("code", &code)]).await;
    let page = http::get_page(&phone, &format!("{gw}/_vigile/devices/choose")).await;
    let form = http::form_with_action(&page, "/_vigile/devices/choose").unwrap();
    let victim = page
        .split("name=\"session\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    http::submit(&phone, &gw, &form, &[("session", victim)]).await;

    // Six wrong passwords lock the account; the mailed link changes the password.
    for _ in 0..6 {
        login(&client(), &gw, ANN, WRONG).await;
    }
    let link = s
        .smtp
        .wait_for_to(ANN, "Your account has been locked")
        .await
        .link_containing("/_vigile/password/reset?token=");
    let c = client();
    let page = http::get_page(&c, &link).await;
    let form = http::form_with_action(&page, "/_vigile/password/reset").unwrap();
    let new_pw = "Fresh-start 42!";
    http::submit(&c, &gw, &form, &[("password", new_pw), ("confirm", new_pw)]).await;

    // An admin changes the device cap on the page; the CLI unlocks and unblocks.
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let page = http::get_page(&admin, &format!("{gw}/_vigile/admin")).await;
    let form = http::form_with_action(&page, "/_vigile/admin/settings").unwrap();
    http::submit(
        &admin,
        &gw,
        &form,
        &[("max_per_member", "2"), ("on_overflow", "deny")],
    )
    .await;
    s.gw.cli_ok(&["user", "unlock", ANN], None);
    s.gw.cli_ok(&["ip", "unblock", "192.0.2.1"], None);

    let (text, lines) = audit_lines(&s);
    let events: BTreeSet<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    for expected in [
        "login",
        "device_overflow",
        "device_replaced",
        "login_failed",
        "account_locked",
        "password_reset",
        "settings_changed",
        "unlock",
        "ip_unblock",
    ] {
        assert!(events.contains(expected), "no {expected} in {events:?}");
    }
    for l in &lines {
        assert!(
            l["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "no time: {l}"
        );
        let who = ["user", "email", "admin"]
            .iter()
            .any(|k| l.get(*k).is_some());
        assert!(who || l["event"] == "ip_unblock", "who? {l}");
        let from_cli = l["by"] == "cli";
        assert!(from_cli || l["ip"] == "127.0.0.1", "from where? {l}");
    }
    let replaced = lines
        .iter()
        .find(|l| l["event"] == "device_replaced")
        .unwrap();
    assert!(
        replaced["sessions"]
            .as_str()
            .is_some_and(|s| s.contains(victim)),
        "{replaced}"
    );
    for secret in [PW, WRONG, new_pw, laptop_token.as_str(), code.as_str()] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    let token = link.split("token=").nth(1).unwrap();
    assert!(!text.contains(token), "reset token in the audit log");
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
