//! A member manages their factors on the account page: the app is listed under its default
//! name and can be renamed; new recovery codes replace the old ones (which stop working);
//! removing the last factor (no rule requires one) lets the password alone sign in again
//! and drops the recovery codes, which a new enrolment replaces. Without a login under way,
//! `/_vigile/2fa` sends to the login page.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW};
use crate::common::http::{bare_client, client, login_ok};
use crate::contact::{logout, site, visible};

/// Whether `page` shows `name`: as text, or as the value of a field (to rename it).
fn shows(page: &str, name: &str) -> bool {
    visible(page).contains(name)
        || http::decode_entities(page).contains(&format!("value=\"{name}\""))
}

async fn factors_are_renamed_recovery_codes_regenerated_and_the_last_removed(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let c = client();
    login_ok(&c, &gw, ANN, PW).await;
    let (mut app, first_codes) = enrol_totp(&c, &gw).await;

    // Listed under its default name; renamed.
    let account = account_page(&c, &gw).await;
    assert!(
        shows(&account, "Authenticator app"),
        "the app is not listed under its default name:\n{account}"
    );
    let resp = act(
        &c,
        &gw,
        &account,
        ACCOUNT_2FA,
        "rename",
        &[("name", "Pixel 8 de Ann")],
    )
    .await;
    let (status, body) = settle(&c, &gw, resp).await;
    assert_eq!(status, 200, "rename:\n{body}");
    let account = account_page(&c, &gw).await;
    assert!(
        shows(&account, "Pixel 8 de Ann"),
        "the new name is not listed:\n{account}"
    );

    // New recovery codes: shown once, the old ones refused, a new one works.
    let resp = act(&c, &gw, &account, ACCOUNT_2FA, "recovery", &[]).await;
    let (status, shown) = settle(&c, &gw, resp).await;
    assert_eq!(status, 200, "regenerate:\n{shown}");
    let codes = recovery_codes(&shown);
    assert_ten_codes(&codes, &shown);
    assert!(
        codes.iter().all(|code| !first_codes.contains(code)),
        "regenerated codes repeat old ones: {codes:?} / {first_codes:?}"
    );
    logout(&c, &gw).await;
    password_step(&c, &gw, ANN, RD).await;
    let resp = verify(&c, &gw, TWOFA, "recovery", &first_codes[0], false).await;
    assert_refused(resp, "a recovery code replaced by new ones").await;
    let resp = verify(&c, &gw, TWOFA, "recovery", &codes[0], false).await;
    assert_signed_in(resp, RD, "a regenerated recovery code").await;

    // The last factor removed: the password alone again.
    let account = account_page(&c, &gw).await;
    let resp = act(&c, &gw, &account, ACCOUNT_2FA, "remove", &[]).await;
    let (status, body) = settle(&c, &gw, resp).await;
    assert_eq!(status, 200, "remove:\n{body}");
    assert_eq!(second_factors(&s.gw, ANN).await, "none");
    logout(&c, &gw).await;
    login_straight(&c, &gw, ANN).await;

    // A new app: new codes; the codes of before the removal are gone.
    let (mut again, fresh) = enrol_totp(&c, &gw).await;
    assert!(fresh.iter().all(|code| !codes.contains(code)));
    logout(&c, &gw).await;
    password_step(&c, &gw, ANN, RD).await;
    let resp = verify(&c, &gw, TWOFA, "recovery", &codes[1], false).await;
    assert_refused(resp, "a recovery code of a removed set").await;
    // The old app's secret is no longer the one asked for.
    let stale = app.fresh_code().await;
    let current = again.fresh_code().await;
    if stale != current {
        let resp = verify(&c, &gw, TWOFA, "totp", &stale, false).await;
        assert_refused(resp, "a code of the removed app").await;
    }
    let resp = verify(&c, &gw, TWOFA, "totp", &current, false).await;
    assert_signed_in(resp, RD, "the new app's code").await;
}
both_backends!(factors_are_renamed_recovery_codes_regenerated_and_the_last_removed);

async fn without_a_login_under_way_the_second_step_sends_to_the_login_page(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let gw = site.gw();
    let visitor = bare_client();
    let (status, location) = redirect(get(&visitor, &format!("{gw}{TWOFA}"), true).await).await;
    assert!(
        status == 303 && location.starts_with("/_vigile/login"),
        "{TWOFA} without a login under way: {status} {location}"
    );
    // A browser with a page of Vigile's (CSRF token) but no login under way.
    let c = client();
    let login = page(&c, &gw, "/_vigile/login").await;
    let form = Form {
        action: TWOFA.into(),
        method: "post".into(),
        hidden: vec![("csrf".into(), crate::common::http::csrf_from(&login))],
    };
    let resp = verify_with(&c, &gw, &form, "totp", "123456", false).await;
    let sets = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert!(
        !sets && status == 303 && location.starts_with("/_vigile/login"),
        "a code posted without a login under way: {status} {location}"
    );
}
both_backends!(without_a_login_under_way_the_second_step_sends_to_the_login_page);

/// A session that never passed the second factor (opened before the member enrolled,
/// elsewhere) cannot change factors with the password alone: the security page asks for
/// the second factor after the password, then opens. The member is mailed when a factor
/// is added, so a factor they did not add does not go unnoticed.
async fn a_password_session_needs_the_factor_to_open_the_security_page(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let old = client();
    login_ok(&old, &gw, ANN, PW).await;
    let phone = client();
    login_ok(&phone, &gw, ANN, PW).await;
    let (mut app, _) = enrol_totp(&phone, &gw).await;
    s.smtp.wait_for_to(ANN, "A second factor was added").await;

    // The old session types the password: not enough, the factor is asked next.
    let locked = page(&old, &gw, ACCOUNT_2FA).await;
    let resp = act(
        &old,
        &gw,
        &locked,
        ACCOUNT_2FA,
        "unlock",
        &[("password", PW)],
    )
    .await;
    let (status, location) = crate::contact::redirect(resp).await;
    assert_eq!((status, location.as_str()), (303, TWOFA));
    let again = page(&old, &gw, ACCOUNT_2FA).await;
    assert!(
        find_action(&again, ACCOUNT_2FA, "enrol-totp").is_none()
            && find_action(&again, ACCOUNT_2FA, "unlock").is_some(),
        "the security page opened on the password alone:\n{again}"
    );
    let form = verify_form(&old, &gw, TWOFA, "totp").await;
    let code = app.fresh_code().await;
    let resp = verify_with(&old, &gw, &form, "totp", &code, false).await;
    let (status, body) = settle(&old, &gw, resp).await;
    assert_eq!(status, 200);
    assert!(
        find_action(&body, ACCOUNT_2FA, "enrol-totp").is_some(),
        "the security page did not open after the factor:\n{body}"
    );
}
both_backends!(a_password_session_needs_the_factor_to_open_the_security_page);
