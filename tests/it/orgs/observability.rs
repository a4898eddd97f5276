//! What an operator sees of organisations: `vigile_org_registrations_total{step}` moving
//! with each step passed (and not with a refused one), and an audit line for every
//! organisation action, naming the organisation, with no secret in the file.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use crate::common::backend::Backend;
use crate::common::consts::{BOSS, PW};
use crate::common::gateway::Gateway;
use crate::common::http::{client, login_ok};
use crate::common::poll_for;
use crate::devices::post_on;

async fn registrations(gw: &Gateway) -> [f64; 3] {
    let text = gw.metrics_text().await;
    ["email", "company", "created"].map(|step| {
        crate::common::gateway::metric_value(
            &text,
            &format!("vigile_org_registrations_total{{step=\"{step}\"}}"),
        )
        .unwrap_or(0.0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_steps_move_the_metric() {
    let s = Backend::Redis.stack("").await;
    let gw = s.gw.url();
    let c = client();
    let exported = s.gw.metrics_text().await;
    assert!(
        exported.contains("vigile_org_registrations_total"),
        "not exported before any registration"
    );
    assert_eq!(registrations(&s.gw).await, [0.0, 0.0, 0.0]);

    assert_eq!(
        step1(&c, &gw, OWNER, "typo@acme.example").await.status(),
        400
    );
    assert_eq!(
        registrations(&s.gw).await,
        [0.0, 0.0, 0.0],
        "a refused step 1"
    );
    step1_ok(&c, &gw, OWNER).await;
    assert_eq!(registrations(&s.gw).await, [1.0, 0.0, 0.0]);

    let link = step_link(&s, OWNER).await;
    let bad = Company {
        id_number: BAD_SIRET,
        ..ACME
    };
    assert_eq!(step2(&c, &gw, &link, &bad).await.status(), 400);
    assert_eq!(
        registrations(&s.gw).await,
        [1.0, 0.0, 0.0],
        "a refused step 2"
    );
    let (form, _) = step3_form(&c, &gw, &link, &ACME).await;
    assert_eq!(registrations(&s.gw).await, [1.0, 1.0, 0.0]);
    assert_eq!(redirect(step3(&c, &gw, &form, PW).await).await.0, 303);
    assert_eq!(registrations(&s.gw).await, [1.0, 1.0, 1.0]);
}

const ORG_EVENTS: [&str; 9] = [
    "org_registered",
    "org_invited",
    "org_invite_cancelled",
    "org_joined",
    "org_role_changed",
    "org_transferred",
    "org_member_removed",
    "org_profile_updated",
    "org_settings_changed",
];

fn audit_lines(s: &crate::common::backend::Stack) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(s.gw.dir().join("audit.log")).unwrap_or_default();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (text, lines)
}

fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_actions_are_audited() {
    let s = Backend::Sqlite
        .stack("[log]\naudit_file = \"audit.log\"\n")
        .await;
    let gw = s.gw.url();
    s.gw.add_user(BOSS, PW, true);
    let owner = client();
    let org = register(&s, &owner, OWNER, &ACME).await;
    let mut secrets = vec![PW.to_string()];
    let step_token = step_link(&s, OWNER).await;
    secrets.push(step_token.split("token=").nth(1).unwrap().to_string());

    // Invited and cancelled; two invited who join; one promoted, then made super-admin,
    // who removes the other; the profile edited; seats set from the CLI and the page.
    let cancelled = "cal@example.com";
    assert_eq!(redirect(invite(&owner, &gw, cancelled).await).await.0, 303);
    let fields = [("email", cancelled)];
    let resp = org_post(&owner, &gw, "/_vigile/org/invite/cancel", &fields).await;
    assert_eq!(resp.status(), 303);
    let y = invite_and_join(&s, &owner, ADMIN).await;
    invite_and_join(&s, &owner, MEMBER).await;
    for email in [cancelled, ADMIN, MEMBER] {
        let link = join_link(&s, email).await;
        secrets.push(link.split("token=").nth(1).unwrap().to_string());
    }
    let page = org_page(&owner, &gw).await;
    let (y_id, z_id) = (member_row(&page, ADMIN).id, member_row(&page, MEMBER).id);
    let fields = [("user", y_id.as_str()), ("role", "admin")];
    assert_eq!(
        org_post(&owner, &gw, "/_vigile/org/role", &fields)
            .await
            .status(),
        303
    );
    let mut profile = ACME.fields().to_vec();
    profile[0].1 = "Acme Formation SAS";
    let resp = org_post(&owner, &gw, "/_vigile/org/profile", &profile).await;
    assert_eq!(resp.status(), 303);
    let fields = [("user", y_id.as_str())];
    assert_eq!(
        org_post(&owner, &gw, "/_vigile/org/transfer", &fields)
            .await
            .status(),
        303
    );
    let fields = [("user", z_id.as_str())];
    assert_eq!(
        org_post(&y, &gw, "/_vigile/org/remove", &fields)
            .await
            .status(),
        303
    );
    s.gw.cli_ok(&["org", "set", &org, "--seats", "9"], None);
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let resp = post_on(
        &admin,
        &gw,
        &format!("/_vigile/admin/org?id={org}"),
        "/_vigile/admin/org",
        &[("seats", "10"), ("plan", "Pro"), ("max_devices", "")],
    )
    .await;
    assert_eq!(resp.status(), 303);

    // Every organisation event is there (some are written off the request).
    let lines = poll_for("every organisation event in the audit log", 400, || async {
        let (_, lines) = audit_lines(&s);
        let seen: BTreeSet<String> = lines
            .iter()
            .filter_map(|l| l["event"].as_str().map(str::to_string))
            .collect();
        let all = ORG_EVENTS.iter().all(|e| seen.contains(*e));
        all.then_some(lines)
    })
    .await;
    let of = |kind: &str| of_kind(&lines, kind);
    for kind in ORG_EVENTS {
        for l in of(kind) {
            assert!(
                l.to_string().contains(&org),
                "{kind} does not name the organisation: {l}"
            );
            assert!(l["at"].is_string() && l["by"].is_string(), "when? who? {l}");
        }
    }
    assert!(of("org_registered")
        .iter()
        .any(|l| l.to_string().contains(OWNER)));
    assert!(of("org_member_removed")
        .iter()
        .any(|l| l.to_string().contains(&z_id) || l.to_string().contains(MEMBER)));
    let by: BTreeSet<&str> = of("org_settings_changed")
        .iter()
        .filter_map(|l| l["by"].as_str())
        .collect();
    assert_eq!(
        by,
        BTreeSet::from(["admin", "cli"]),
        "who changed the settings"
    );

    let (text, _) = audit_lines(&s);
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "{secret} in the audit log");
    }
}
