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
