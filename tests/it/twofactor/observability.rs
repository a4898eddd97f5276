//! What an operator sees of second factors: `vigile_second_factor_total{method,result}`
//! moving with enrolments, failures and successes; audit lines for enrolment, failure,
//! success and removal naming whose and which method; and no secret, code or recovery code
//! in the audit log or the gateway's own logs.

use std::collections::BTreeSet;

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW};
use crate::common::http::{client, login_ok};
use crate::contact::{logout, merged, site};

async fn totp_results_move_the_second_factor_metric(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    let exported = s.gw.metrics_text().await;
    assert!(
        exported.contains("vigile_second_factor_total"),
        "vigile_second_factor_total not exported before any use"
    );
    s.gw.add_user(ANN, PW, false);
    let c = client();
    login_ok(&c, &gw, ANN, PW).await;
    let (mut app, _) = enrol_totp(&c, &gw).await;
    assert_eq!(factor_metric(&s.gw, "totp", "enrolled").await, 1.0);
    logout(&c, &gw).await;

    let (success, failure) = (
        factor_metric(&s.gw, "totp", "success").await,
        factor_metric(&s.gw, "totp", "failure").await,
    );
    password_step(&c, &gw, ANN, RD).await;
    let resp = verify(&c, &gw, TWOFA, "totp", &app.wrong_code(), false).await;
    assert_refused(resp, "a wrong code").await;
    assert_eq!(factor_metric(&s.gw, "totp", "failure").await, failure + 1.0);
    assert_eq!(factor_metric(&s.gw, "totp", "success").await, success);
    let code = app.fresh_code().await;
    let resp = verify(&c, &gw, TWOFA, "totp", &code, false).await;
    assert_signed_in(resp, RD, "the right code").await;
    assert_eq!(factor_metric(&s.gw, "totp", "success").await, success + 1.0);
    assert_eq!(factor_metric(&s.gw, "totp", "failure").await, failure + 1.0);
}
both_backends!(totp_results_move_the_second_factor_metric);

async fn second_factor_events_are_audited_without_secrets(backend: Backend) {
    let site = site(backend, &merged(&[NO_IP_LIMIT, AUDIT])).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let c = client();
    login_ok(&c, &gw, ANN, PW).await;
    let (mut app, codes) = enrol_totp(&c, &gw).await;
    let mut secrets: Vec<String> = codes.clone();
    secrets.push(app.secret.clone());
    secrets.push(app.secret.to_ascii_lowercase());
    logout(&c, &gw).await;

    password_step(&c, &gw, ANN, RD).await;
    let wrong = app.wrong_code();
    let resp = verify(&c, &gw, TWOFA, "totp", &wrong, false).await;
    assert_refused(resp, "a wrong code").await;
    let code = app.fresh_code().await;
    let resp = verify(&c, &gw, TWOFA, "totp", &code, false).await;
    assert_signed_in(resp, RD, "the right code").await;

    // No rule makes Ann keep a factor: she removes it, and signs in with the password.
    let account = account_page(&c, &gw).await;
    let resp = act(&c, &gw, &account, ACCOUNT_2FA, "remove", &[]).await;
    let (status, body) = settle(&c, &gw, resp).await;
    assert_eq!(status, 200, "removing her only factor:\n{body}");
    assert_eq!(second_factors(&s.gw, ANN).await, "none");
    logout(&c, &gw).await;
    login_straight(&c, &gw, ANN).await;

    for event in ["2fa_enrolled", "2fa_failed", "2fa_passed", "2fa_removed"] {
        let lines = audit_events(&s.gw, event, 1).await;
        assert_eq!(lines.len(), 1, "one {event}: {lines:?}");
        let line = &lines[0];
        assert!(line["user"].is_string(), "{event}: whose? {line}");
        assert_eq!(line["method"], "totp", "{event}: which method? {line}");
    }
    let (text, lines) = audit_lines(&s.gw);
    let users: BTreeSet<&str> = lines
        .iter()
        .filter(|l| l["event"].as_str().is_some_and(|e| e.starts_with("2fa_")))
        .filter_map(|l| l["user"].as_str())
        .collect();
    assert_eq!(users.len(), 1, "every line names Ann's account: {users:?}");
    let logs = s.gw.logs();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} in the audit log:\n{text}"
        );
        assert!(
            !logs.contains(secret.as_str()),
            "{secret} in the gateway's logs"
        );
    }
    // The codes typed, as whole numbers (timestamps hold digits too).
    for typed in [&code, &wrong] {
        assert!(
            !six_digits(&text).contains(typed),
            "the code {typed} in the audit log:\n{text}"
        );
        assert!(
            !six_digits(&logs).contains(typed),
            "the code {typed} in the gateway's logs"
        );
    }
}
both_backends!(second_factor_events_are_audited_without_secrets);
