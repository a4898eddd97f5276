//! An admin resets a member's second factors (a lost phone), with `vigile user 2fa-reset`
//! and from the member's admin page: the member is mailed, their next login goes straight
//! in, the sessions they had stay, and each reset is audited as `2fa_reset`.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::http::{client, form_with_action, login_ok};
use crate::contact::{logout, merged, site};

/// Waits for a new reset notice to `email` after the first `before` of them (other
/// notices, such as the one for the factor added earlier, do not count).
async fn mailed_after(s: &Stack, email: &str, before: usize) {
    s.smtp
        .wait_for(&format!("a mail to {email} about the reset"), |_| {
            resets_to(s, email) > before
        })
        .await;
}

fn resets_to(s: &Stack, email: &str) -> usize {
    mails_to(s, email)
        .iter()
        .filter(|m| m.subject.contains("second factors were removed"))
        .count()
}

async fn admins_reset_second_factors_from_the_cli_and_the_member_page(backend: Backend) {
    let site = site(backend, &merged(&[NO_IP_LIMIT, AUDIT])).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);
    let ann = client();
    login_ok(&ann, &gw, ANN, PW).await;
    enrol_totp(&ann, &gw).await;
    assert_eq!(second_factors(&s.gw, ANN).await, "totp");

    // The CLI: an unknown address fails; Ann's factors go, she is mailed.
    let out =
        s.gw.cli_async(&["user", "2fa-reset", "nobody@example.com"], None)
            .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "2fa-reset of an unknown address"
    );
    s.outbox_drained().await;
    let before = resets_to(s, ANN);
    let out = s.gw.cli_async(&["user", "2fa-reset", ANN], None).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains(&format!("second factors removed for {ANN}")),
        "vigile user 2fa-reset {ANN}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(second_factors(&s.gw, ANN).await, "none");
    mailed_after(s, ANN, before).await;
    // Her session stays; her next login goes straight in.
    assert_level(s, &ann, &gw, RD, "password").await;
    login_straight(&client(), &gw, ANN).await;

    // She enrols again; the admin resets from her page.
    enrol_totp(&ann, &gw).await;
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let member = page(&admin, &gw, &format!("/_vigile/admin/member?email={ANN}")).await;
    let form = form_with_action(&member, "/_vigile/admin/member/2fa-reset")
        .unwrap_or_else(|| panic!("no 2fa-reset form on the member page:\n{member}"));
    s.outbox_drained().await;
    let before = resets_to(s, ANN);
    let resp = submit(&admin, &gw, &form, &[("email", ANN)]).await;
    let (status, body) = settle(&admin, &gw, resp).await;
    assert_eq!(status, 200, "the admin's reset:\n{body}");
    assert_eq!(second_factors(&s.gw, ANN).await, "none");
    mailed_after(s, ANN, before).await;
    logout(&ann, &gw).await;
    login_straight(&ann, &gw, ANN).await;

    let resets = audit_events(&s.gw, "2fa_reset", 2).await;
    assert_eq!(resets.len(), 2, "{resets:?}");
    for line in &resets {
        assert!(line["user"].is_string(), "whose factors? {line}");
    }
}
both_backends!(admins_reset_second_factors_from_the_cli_and_the_member_page);
