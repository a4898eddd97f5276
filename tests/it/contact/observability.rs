//! What an operator sees of contact confirmation: `vigile_contact_confirmations_total`
//! per channel and `vigile_sms_total` per result moving with what happened; an audit line
//! for each campaign started (from the CLI and the admin page), each confirmation (with
//! how) and each change of address, and no code or link token anywhere in the file; the
//! dev SMS outbox `/_vigile/dev/sms`, absent unless `server.dev_mode` (and in the demo).

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::gateway::{metric_value, Gateway};
use crate::common::http::{client, get, login_ok, post_form};
use crate::common::poll_for;
use crate::contact::campaigns::admin_start;

async fn counters(gw: &Gateway) -> [f64; 4] {
    let text = gw.metrics_text().await;
    [
        "vigile_contact_confirmations_total{channel=\"email\"}",
        "vigile_contact_confirmations_total{channel=\"mobile\"}",
        "vigile_sms_total{result=\"sent\"}",
        "vigile_sms_total{result=\"retry\"}",
    ]
    .map(|series| metric_value(&text, series).unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_and_sms_move_the_metrics() {
    let site = site(Backend::Redis, "").await;
    let (s, gw) = (&site.s, site.gw());
    let exported = s.gw.metrics_text().await;
    for name in ["vigile_contact_confirmations_total", "vigile_sms_total"] {
        assert!(
            exported.contains(name),
            "{name} not exported before any use"
        );
    }
    assert_eq!(counters(&s.gw).await, [0.0; 4]);
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    campaign_start(&s.gw, &["--all"]).await;
    let c = client();
    login_asked(&c, &gw, ANN).await;

    // A wrong code moves nothing.
    send_ok(&c, &gw, "email", ANN, RD).await;
    let code = email_code(s, ANN, 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(confirm(&c, &gw, "email", wrong, RD).await.status(), 400);
    assert_eq!(counters(&s.gw).await, [0.0; 4]);
    confirm_ok(&c, &gw, "email", &code, RD).await;
    assert_eq!(counters(&s.gw).await, [1.0, 0.0, 0.0, 0.0]);

    // Two refused calls, then delivered.
    site.sms.fail_next(2);
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    let code = site.sms.code_for(MOBILE_E164).await;
    let sms = poll_for("the sent SMS counted", 400, || async {
        let now = counters(&s.gw).await;
        (now[2] >= 1.0).then_some(now)
    })
    .await;
    assert_eq!(sms[2..], [1.0, 2.0], "sent, retry");
    confirm_ok(&c, &gw, "mobile", &code, RD).await;
    assert_eq!(counters(&s.gw).await, [1.0, 1.0, 1.0, 2.0]);
}

fn audit_lines(dir: &std::path::Path) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(dir.join("audit.log")).unwrap_or_default();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (text, lines)
}

const CONTACT_EVENTS: [&str; 3] = ["campaign_started", "contact_confirmed", "contact_changed"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_actions_are_audited_without_codes() {
    let site = site(Backend::Sqlite, "[log]\naudit_file = \"audit.log\"\n").await;
    let (s, gw) = (&site.s, site.gw());
    add_member(&s.gw, BOSS, &["--admin", "--confirmed"]);
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    let mut secrets: Vec<String> = vec![PW.to_string()];

    // A campaign from the CLI, one from the admin page.
    let (cli_id, _) = campaign_start(&s.gw, &["--all"]).await;
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let page_id = admin_start(
        &admin,
        &gw,
        &[
            ("scope", "all"),
            ("members", ANN),
            ("channels", "email"),
            ("channels", "mobile"),
        ],
    )
    .await;

    // Ann confirms her email by the mailed link, her mobile by code, then changes both.
    let c = client();
    login_asked(&c, &gw, ANN).await;
    send_ok(&c, &gw, "email", ANN, RD).await;
    let mail = nth_code_mail(s, ANN, 1).await;
    secrets.push(mail_code(&mail));
    let link = mail.link_containing(CONTACT_LINK);
    secrets.push(link.split("token=").nth(1).unwrap().to_string());
    assert_eq!(get(&client(), &link, true).await.status(), 200);
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    let code = site.sms.code_for(MOBILE_E164).await;
    secrets.push(code.clone());
    confirm_ok(&c, &gw, "mobile", &code, RD).await;
    let new = "ann.new@example.com";
    change_email(&c, &gw, new, RD).await;
    let mail = nth_code_mail(s, new, 1).await;
    secrets.push(mail_code(&mail));
    secrets.push(
        mail.link_containing(CONTACT_LINK)
            .split("token=")
            .nth(1)
            .unwrap()
            .to_string(),
    );
    confirm_ok(&c, &gw, "email", &mail_code(&mail), RD).await;
    send_ok(&c, &gw, "mobile", MOBILE2_E164, RD).await;
    let code = site.sms.code_for(MOBILE2_E164).await;
    secrets.push(code.clone());
    confirm_ok(&c, &gw, "mobile", &code, RD).await;

    let lines = poll_for("every contact event in the audit log", 400, || async {
        let (_, lines) = audit_lines(s.gw.dir());
        let seen: BTreeSet<String> = lines
            .iter()
            .filter_map(|l| l["event"].as_str().map(str::to_string))
            .collect();
        CONTACT_EVENTS
            .iter()
            .all(|e| seen.contains(*e))
            .then_some(lines)
    })
    .await;
    let of = |kind: &str| -> Vec<&Value> { lines.iter().filter(|l| l["event"] == kind).collect() };

    let started = of("campaign_started");
    assert_eq!(started.len(), 2, "{started:?}");
    for (id, by) in [(&cli_id, "cli"), (&page_id, "admin")] {
        let line = started
            .iter()
            .find(|l| l.to_string().contains(id.as_str()))
            .unwrap_or_else(|| panic!("no campaign_started naming {id}: {started:?}"));
        assert!(line["at"].is_string(), "when? {line}");
        let who = line["by"].as_str().unwrap_or("");
        assert!(
            who == by || (by == "admin" && !who.is_empty() && who != "cli"),
            "campaign {id} started by {by}, the line says {line}"
        );
    }

    let confirmed = of("contact_confirmed");
    let vias: BTreeSet<(String, String)> = confirmed
        .iter()
        .map(|l| {
            (
                l["channel"].as_str().unwrap_or("?").to_string(),
                l["via"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    assert_eq!(
        vias,
        BTreeSet::from([
            ("email".to_string(), "link".to_string()),
            ("email".to_string(), "code".to_string()),
            ("mobile".to_string(), "code".to_string()),
        ]),
        "{confirmed:?}"
    );
    assert_eq!(confirmed.len(), 4, "two of each channel: {confirmed:?}");
    for l in &confirmed {
        assert!(
            l["user"].is_string() && l["at"].is_string(),
            "whose? when? {l}"
        );
    }
    let changed: BTreeSet<&str> = of("contact_changed")
        .iter()
        .filter_map(|l| l["channel"].as_str())
        .collect();
    assert_eq!(changed, BTreeSet::from(["email", "mobile"]));
    for l in of("contact_changed") {
        assert!(l["user"].is_string(), "whose? {l}");
    }

    let (text, _) = audit_lines(s.gw.dir());
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} in the audit log:\n{text}"
        );
    }
}

/// `/_vigile/dev/sms` does not exist unless `server.dev_mode`: for a visitor or an admin,
/// whatever the method; with it, the texts sent are listed newest first, with their codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_sms_is_not_found_unless_dev_mode() {
    let mut site = site(Backend::Sqlite, "").await;
    let gw = site.gw();
    add_member(&site.s.gw, BOSS, &["--admin", "--confirmed"]);
    confirmed_member(&site.s.gw, ANN, None);
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let ann = client();
    login_straight(&ann, &gw, ANN).await;
    send_ok(&ann, &gw, "mobile", MOBILE_E164, RD).await;
    site.sms.code_for(MOBILE_E164).await;
    let url = format!("{gw}/_vigile/dev/sms");
    for (who, c) in [("visitor", client()), ("admin", admin.clone())] {
        for resp in [
            get(&c, &url, true).await,
            c.head(&url).send().await.unwrap(),
            post_form(&c, &url, &[]).await,
        ] {
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert_eq!(status, 404, "{who}: {body}");
            assert!(!body.contains(MOBILE_E164), "{who}: {body}");
        }
    }

    // Development: texts go to the dev outbox (the log transport delivers there).
    site.s
        .gw
        .update_config("[server]\ndev_mode = true\n[sms]\ntransport = \"log\"\n");
    site.s.gw.restart().await;
    let ann = client();
    login_straight(&ann, &gw, ANN).await;
    send_ok(&ann, &gw, "mobile", MOBILE_E164, RD).await;
    send_ok(&ann, &gw, "mobile", MOBILE2_E164, RD).await;
    let page = poll_for("both texts on the dev page", 400, || async {
        let page = visible(&page(&admin, &gw, "/_vigile/dev/sms").await);
        (page.contains(MOBILE_E164) && page.contains(MOBILE2_E164)).then_some(page)
    })
    .await;
    let (first, second) = (
        page.find(MOBILE2_E164).unwrap(),
        page.find(MOBILE_E164).unwrap(),
    );
    assert!(first < second, "newest first:\n{page}");
    let newest = six_digits(&page[first..second]);
    assert_eq!(newest.len(), 1, "one code for the newest text:\n{page}");
    confirm_ok(&ann, &gw, "mobile", &newest[0], RD).await;
    assert_eq!(
        contact_page(&ann, &gw, RD).await.state("mobile"),
        "confirmed"
    );
}

/// The demo has the dev SMS outbox: a member's code can be read there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_lists_texts_on_the_dev_page() {
    let demo = crate::demo::start_demo().await;
    let c = client();
    login_ok(&c, &demo.base, &demo.email, &demo.password).await;
    send_ok(&c, &demo.base, "mobile", MOBILE, RD).await;
    let page = poll_for("the text on the demo's dev page", 400, || async {
        let page = visible(&page(&c, &demo.base, "/_vigile/dev/sms").await);
        page.contains(MOBILE_E164).then_some(page)
    })
    .await;
    let codes = six_digits(&page);
    assert_eq!(codes.len(), 1, "{page}");
    confirm_ok(&c, &demo.base, "mobile", &codes[0], RD).await;
}
