//! `[twofactor] required_for`: an admin without a factor is stopped at `/_vigile/2fa` by
//! their login, enrols an app there, is shown the recovery codes, continues, and arrives
//! where they were going at level `2fa`; from then on they cannot remove their last factor.
//! A member the rule does not name signs in with the password alone.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::http::client;
use crate::contact::{logout, merged, site};

const ADMINS: &str = "[twofactor]\nrequired_for = [\"admin\"]\n";

async fn required_for_admins_enrols_them_at_login(backend: Backend) {
    let site = site(backend, &merged(&[NO_IP_LIMIT, ADMINS])).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);

    // Not an admin: the password alone.
    let ann = client();
    login_straight(&ann, &gw, ANN).await;
    assert_level(s, &ann, &gw, RD, "password").await;

    // The admin: the second step, with enrolment choices, no session yet.
    let c = client();
    password_step(&c, &gw, BOSS, RD).await;
    let choices = page(&c, &gw, TWOFA).await;
    assert!(
        find_action(&choices, TWOFA, "enrol-totp").is_some(),
        "{TWOFA} offers no enrolment to an admin without a factor:\n{choices}"
    );
    let (mut app, shown) = enrol_totp_from(&c, &gw, &choices, TWOFA).await;
    assert_ten_codes(&recovery_codes(&shown), &shown);
    assert_no_session(&c, &gw, "while the recovery codes are shown").await;
    assert_eq!(second_factors(&s.gw, BOSS).await, "totp");

    // Continue: the session opens where the admin was going, at level 2fa.
    let resp = act(&c, &gw, &shown, TWOFA, "continue", &[]).await;
    assert_signed_in(resp, RD, "continue after the recovery codes").await;
    assert_level(s, &c, &gw, RD, "2fa").await;

    // The last factor cannot be removed while the rule applies.
    let account = account_page(&c, &gw).await;
    let resp = act(&c, &gw, &account, ACCOUNT_2FA, "remove", &[]).await;
    let (status, body) = crate::contact::text(resp).await;
    assert_eq!(status, 409, "removing an admin's last factor:\n{body}");
    assert_eq!(second_factors(&s.gw, BOSS).await, "totp");

    // The next login asks for a code.
    logout(&c, &gw).await;
    login_with_totp(&c, &gw, BOSS, &mut app, false).await;
    assert_level(s, &c, &gw, RD, "2fa").await;
}
both_backends!(required_for_admins_enrols_them_at_login);

/// A session opened before `required_for` named its role (or by a link that signs in
/// without the password: activation, registration, invitation) is held at every protected
/// path until it passes a second factor: browsers go to `/2fa`, which sends a member
/// without a factor to the security page (the password is asked there); API clients get a
/// 401 naming the need. Public paths still pass. After enrolling, `/2fa` takes a code and
/// the member arrives where they were going at level `2fa`.
async fn a_session_from_before_the_rule_is_held_until_it_passes(backend: Backend) {
    let mut site = site(backend, NO_IP_LIMIT).await;
    let gw = site.gw();
    site.s.gw.add_user(BOSS, PW, true);
    let c = client();
    login_straight(&c, &gw, BOSS).await;
    assert_level(&site.s, &c, &gw, RD, "password").await;

    site.s.gw.update_config(ADMINS);
    site.s.gw.restart().await;
    let s = &site.s;

    let api = get(&c, &format!("{gw}{RD}"), false).await;
    assert_eq!(api.status(), 401);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"], "second_factor_required", "{body}");
    let resp = get(&c, &format!("{gw}{RD}"), true).await;
    let (status, location) = redirect(resp).await;
    assert_eq!(status, 302);
    let target = Target::parse(&location);
    assert_eq!(
        (target.path.as_str(), target.param("rd")),
        (TWOFA, Some(RD))
    );
    let public = get(&c, &format!("{gw}/"), true).await;
    assert_eq!(public.status(), 200, "a public path still passes");
    // Vigile's own console too: every section, and its actions, wait for the factor.
    for console in [
        "/_vigile/admin",
        "/_vigile/admin/events",
        "/_vigile/admin/members",
    ] {
        let (status, to) = redirect(get(&c, &format!("{gw}{console}"), true).await).await;
        assert_eq!(status, 302, "{console}");
        let to = Target::parse(&to);
        assert_eq!((to.path.as_str(), to.param("rd")), (TWOFA, Some(console)));
    }
    let unblock = c
        .post(format!("{gw}/_vigile/admin/blocked"))
        .form(&[("address", "192.0.2.1"), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(unblock.status(), 302, "an action waits too");

    // No factor: /2fa enrols nobody on a session alone; the security page does.
    let held = get(&c, &format!("{gw}{location}"), true).await;
    assert_eq!(held.status(), 403);
    let text = held.text().await.unwrap();
    assert!(find_action(&text, TWOFA, "enrol-totp").is_none(), "{text}");
    assert!(
        text.contains(ACCOUNT_2FA),
        "no way to the security page:\n{text}"
    );
    let (mut app, _) = enrol_totp(&c, &gw).await;

    // Then the code at /2fa, and the member is where they were going.
    let form = verify_form(&c, &gw, &location, "totp").await;
    let code = app.fresh_code().await;
    let resp = verify_with(&c, &gw, &form, "totp", &code, false).await;
    assert_signed_in(resp, RD, "the code after enrolling").await;
    assert_level(s, &c, &gw, RD, "2fa").await;
    let console = get(&c, &format!("{gw}/_vigile/admin"), true).await;
    assert_eq!(console.status(), 200, "the console once the factor passed");
}
both_backends!(a_session_from_before_the_rule_is_held_until_it_passes);
