//! Wrong second-factor codes count with wrong passwords toward the account lock: someone
//! who knows the password cannot try codes without end. With `account_max_failures = 3`,
//! one wrong password and two wrong codes lock the account as passwords do (the lock mail
//! with its reset link); after it the right code signs nobody in, and neither does the
//! right password followed by the right code.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW, WRONG};
use crate::common::http::{self, client, login_ok};
use crate::contact::{merged, site};

const THREE: &str = "[lockout]\naccount_max_failures = 3\n";

async fn wrong_codes_lock_the_account_like_wrong_passwords(backend: Backend) {
    let site = site(backend, &merged(&[NO_IP_LIMIT, THREE])).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let laptop = client();
    login_ok(&laptop, &gw, ANN, PW).await;
    let (mut app, _) = enrol_totp(&laptop, &gw).await;

    // Someone who knows the password, on another device: a typo, then two wrong codes.
    let thief = client();
    let resp = http::login_rd(&thief, &gw, ANN, WRONG, Some(RD)).await;
    assert_eq!(resp.status(), 401, "a wrong password");
    password_step(&thief, &gw, ANN, RD).await;
    let form = verify_form(&thief, &gw, TWOFA, "totp").await;
    let resp = verify_with(&thief, &gw, &form, "totp", &app.wrong_code(), false).await;
    assert_refused(resp, "the first wrong code").await;
    assert!(
        s.gw.cli_ok(&["user", "show", ANN], None)
            .contains("lock:     open"),
        "locked before the third failure"
    );
    let resp = verify_with(&thief, &gw, &form, "totp", &app.wrong_code(), false).await;
    let sets = crate::orgs::sets_session(&resp);
    let status = resp.status().as_u16();
    assert!(
        !sets && status >= 400,
        "the third failure answered {status}"
    );

    // Locked as with passwords: the mail with a reset link.
    assert!(
        s.gw.cli_ok(&["user", "show", ANN], None)
            .contains("lock:     locked"),
        "not locked after a wrong password and two wrong codes"
    );
    s.smtp
        .wait_for_to(ANN, "Your account has been locked")
        .await
        .link_containing("/_vigile/password/reset?token=");

    // The right code now: no session, not where the thief was going.
    let code = app.fresh_code().await;
    let resp = verify_with(&thief, &gw, &form, "totp", &code, false).await;
    let sets = crate::orgs::sets_session(&resp);
    let (status, location) = crate::contact::redirect(resp).await;
    assert!(
        !sets
            && location != RD
            && (status >= 400
                || (matches!(status, 302 | 303)
                    && Target::parse(&location).path == "/_vigile/login")),
        "a right code after the lock answered {status} {location} (session cookie: {sets})"
    );
    assert_no_session(&thief, &gw, "the right code after the lock").await;

    // No oracle left: the right password does not reach the second step any more.
    let resp = http::login_rd(&thief, &gw, ANN, PW, Some(RD)).await;
    let sets = crate::orgs::sets_session(&resp);
    let (status, location) = crate::contact::redirect(resp).await;
    assert!(
        status == 401 && !sets,
        "the right password on a locked account answered {status} {location}"
    );
    let resp = http::get(&thief, &format!("{gw}{TWOFA}"), true).await;
    if resp.status() == 200 {
        let second = resp.text().await.unwrap_or_default();
        if let Some(form) = verify_form_in(&second, "totp") {
            let resp = verify_with(&thief, &gw, &form, "totp", &app.last_code(), false).await;
            assert!(
                !crate::orgs::sets_session(&resp),
                "{TWOFA} accepted a code on a locked account"
            );
        }
    }
    assert_no_session(&thief, &gw, "codes tried on a locked account").await;
}
both_backends!(wrong_codes_lock_the_account_like_wrong_passwords);
