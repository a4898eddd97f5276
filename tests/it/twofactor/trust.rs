//! "Trust this device": a device that passed the second factor with it signs in with the
//! password alone (its session at level `2fa`) until its trust ends: the device revoked from
//! another session's account page, a password reset, or "forget trusted devices". A device
//! that did not ask to be trusted is asked every time.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW};
use crate::common::http::{self, client, client_ua, login_ok, session_row, UA_FIREFOX_LINUX};
use crate::contact::{logout, site};

const NEW_PW: &str = "Brand-new 77 pass";

async fn a_trusted_device_skips_the_second_step_until_revoked(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let laptop = client();
    login_ok(&laptop, &gw, ANN, PW).await;
    // Two TOTP codes at most: a third may have to wait for the clock's next 30 s step, so
    // the other second steps below use recovery codes (a second factor all the same).
    let (mut app, recovery) = enrol_totp(&laptop, &gw).await;
    logout(&laptop, &gw).await;

    // The laptop passes with "trust this device": next time, the password alone.
    login_with_totp(&laptop, &gw, ANN, &mut app, true).await;
    logout(&laptop, &gw).await;
    login_straight(&laptop, &gw, ANN).await;
    assert_level(s, &laptop, &gw, RD, "2fa").await;

    // Another device, not trusted: asked, and asked again at its next login.
    let phone = client_ua(UA_FIREFOX_LINUX);
    for (i, code) in recovery[..2].iter().enumerate() {
        if i > 0 {
            logout(&phone, &gw).await;
        }
        password_step(&phone, &gw, ANN, RD).await;
        let resp = verify(&phone, &gw, TWOFA, "recovery", code, false).await;
        assert_signed_in(resp, RD, "the phone's recovery code").await;
    }

    // From the phone, Ann signs the laptop out: its trust ends with it.
    let account = page(&phone, &gw, "/_vigile/account").await;
    let laptop_row = session_row(&account, |li| !li.contains("(this device)"));
    let resp = crate::devices::post_on(
        &phone,
        &gw,
        "/_vigile/account",
        "/_vigile/account/devices/revoke",
        &[("session", &laptop_row)],
    )
    .await;
    assert_eq!(resp.status(), 303, "revoking the laptop");
    assert_no_session(&laptop, &gw, "the revoked laptop").await;
    password_step(&laptop, &gw, ANN, RD).await;
    let resp = verify(&laptop, &gw, TWOFA, "recovery", &recovery[2], false).await;
    assert_signed_in(resp, RD, "the revoked laptop's code").await;
}
both_backends!(a_trusted_device_skips_the_second_step_until_revoked);

/// Completes the password reset mailed to `email` (the newest link) with `password`.
async fn reset_password(s: &Stack, c: &Client, gw: &str, email: &str, password: &str) {
    let forgot = page(c, gw, "/_vigile/password/forgot").await;
    let form = http::form_with_action(&forgot, "/_vigile/password/forgot")
        .unwrap_or_else(|| panic!("no forgot form:\n{forgot}"));
    let before = mails_to(s, email).len();
    let resp = submit(c, gw, &form, &[("email", email)]).await;
    assert_eq!(resp.status(), 200, "forgot-password form");
    let link = poll_for("the reset mail", 400, || async {
        mails_to(s, email)
            .into_iter()
            .skip(before)
            .find(|m| m.text.contains("/_vigile/password/reset?token="))
    })
    .await
    .link_containing("/_vigile/password/reset?token=");
    let reset = http::get_page(c, &link).await;
    let form = http::form_with_action(&reset, "/_vigile/password/reset")
        .unwrap_or_else(|| panic!("no reset form:\n{reset}"));
    let resp = submit(
        c,
        gw,
        &form,
        &[("password", password), ("confirm", password)],
    )
    .await;
    assert_eq!(resp.status(), 303, "password reset");
}

async fn a_password_reset_or_forgetting_devices_ends_trust(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let laptop = client();
    login_ok(&laptop, &gw, ANN, PW).await;
    let (mut app, _) = enrol_totp(&laptop, &gw).await;
    logout(&laptop, &gw).await;
    login_with_totp(&laptop, &gw, ANN, &mut app, true).await;
    logout(&laptop, &gw).await;
    login_straight(&laptop, &gw, ANN).await;
    logout(&laptop, &gw).await;

    // A password reset: the laptop is asked again.
    reset_password(s, &laptop, &gw, ANN, NEW_PW).await;
    let resp = http::login_rd(&laptop, &gw, ANN, NEW_PW, Some(RD)).await;
    assert_second_step(resp, "the laptop after a password reset").await;
    let code = app.fresh_code().await;
    let resp = verify(&laptop, &gw, TWOFA, "totp", &code, true).await;
    assert_signed_in(resp, RD, "trusted again").await;
    logout(&laptop, &gw).await;
    let resp = http::login_rd(&laptop, &gw, ANN, NEW_PW, Some(RD)).await;
    assert_signed_in(resp, RD, "trusted again, the password alone").await;

    // "Forget trusted devices" on the account page: asked again.
    let account = account_page_with(&laptop, &gw, NEW_PW).await;
    let resp = act(&laptop, &gw, &account, ACCOUNT_2FA, "untrust", &[]).await;
    let (status, body) = settle(&laptop, &gw, resp).await;
    assert_eq!(status, 200, "untrust:\n{body}");
    logout(&laptop, &gw).await;
    let resp = http::login_rd(&laptop, &gw, ANN, NEW_PW, Some(RD)).await;
    assert_second_step(resp, "the laptop after 'forget trusted devices'").await;
}
both_backends!(a_password_reset_or_forgetting_devices_ends_trust);
