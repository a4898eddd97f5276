//! An authenticator app, end to end: the account page asks the password before showing
//! anything, shows a QR code and the secret, counts the app only once a code from it is
//! accepted, and shows the ten recovery codes once; from then on every login stops at
//! `/_vigile/2fa` without a session until a code passes, the member lands where they were
//! going, the upstream hears `Remote-Auth-Level: 2fa`, and a code is good once.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, PW};
use crate::common::http::{client, form_with_action, get, login_ok};
use crate::contact::{logout, site};

async fn totp_enrols_once_a_code_passes_then_every_login_asks_for_one(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    s.gw.add_user(ANN, PW, false);
    let c = client();
    login_ok(&c, &gw, ANN, PW).await;

    // The page asks the password before showing anything it could change.
    let locked = page(&c, &gw, ACCOUNT_2FA).await;
    assert!(
        find_action(&locked, ACCOUNT_2FA, "unlock").is_some(),
        "{ACCOUNT_2FA} without a recent password: no password form:\n{locked}"
    );
    assert!(
        find_action(&locked, ACCOUNT_2FA, "enrol-totp").is_none(),
        "{ACCOUNT_2FA} offers enrolment before the password:\n{locked}"
    );
    let unlocked = account_page(&c, &gw).await;
    assert_eq!(second_factors(&s.gw, ANN).await, "none");

    // The app: a QR code and the secret as text.
    let resp = act(&c, &gw, &unlocked, ACCOUNT_2FA, "enrol-totp", &[]).await;
    let (status, enrolling) = settle(&c, &gw, resp).await;
    assert_eq!(status, 200, "{enrolling}");
    assert!(
        enrolling.contains("<svg"),
        "no inline QR code:\n{enrolling}"
    );
    let mut app = Authenticator::from_page(&enrolling);

    // A wrong code: refused, and nothing counted.
    let resp = act(
        &c,
        &gw,
        &enrolling,
        ACCOUNT_2FA,
        "confirm-totp",
        &[("code", &app.wrong_code())],
    )
    .await;
    let (status, refused) = crate::contact::text(resp).await;
    assert!(
        (400..500).contains(&status),
        "a wrong code at enrolment answered {status}:\n{refused}"
    );
    assert_eq!(
        second_factors(&s.gw, ANN).await,
        "none",
        "an app counted after a wrong code"
    );

    // The right code: enrolled, ten recovery codes shown.
    let retry_page = if find_action(&refused, ACCOUNT_2FA, "confirm-totp").is_some() {
        refused
    } else {
        enrolling
    };
    let code = app.fresh_code().await;
    let resp = act(
        &c,
        &gw,
        &retry_page,
        ACCOUNT_2FA,
        "confirm-totp",
        &[("code", &code)],
    )
    .await;
    let (status, shown) = settle(&c, &gw, resp).await;
    assert_eq!(status, 200, "{shown}");
    let codes = recovery_codes(&shown);
    assert_ten_codes(&codes, &shown);
    assert_eq!(second_factors(&s.gw, ANN).await, "totp");

    // Shown once: not on the next visit.
    let later = account_page(&c, &gw).await;
    assert!(
        recovery_codes(&later).is_empty()
            && codes.iter().all(|code| !later.contains(code.as_str())),
        "the recovery codes are shown again:\n{later}"
    );

    // Signed out, a protected page sends Ann to the login page, which keeps where she was.
    logout(&c, &gw).await;
    let (status, location) =
        crate::contact::redirect(get(&c, &format!("{gw}{RD}"), true).await).await;
    assert_eq!(status, 302, "{location}");
    let login_page = page(&c, &gw, &location).await;
    let form = form_with_action(&login_page, "/_vigile/login")
        .unwrap_or_else(|| panic!("no login form:\n{login_page}"));
    assert_eq!(form.hidden_value("rd"), Some(RD), "{login_page}");
    let resp = submit(&c, &gw, &form, &[("email", ANN), ("password", PW)]).await;
    assert_second_step(resp, ANN).await;
    assert_no_session(&c, &gw, "between the password and the code").await;

    // A code from the app: the session opens where she was going, at level 2fa.
    let code = app.fresh_code().await;
    let resp = verify(&c, &gw, TWOFA, "totp", &code, false).await;
    assert_signed_in(resp, RD, "the TOTP code").await;
    assert_level(s, &c, &gw, RD, "2fa").await;

    // The same code at the next login: replayed, refused.
    logout(&c, &gw).await;
    password_step(&c, &gw, ANN, RD).await;
    let replay = app.last_code();
    assert_eq!(replay, code);
    let resp = verify(&c, &gw, TWOFA, "totp", &replay, false).await;
    assert_refused(resp, "a TOTP code used before").await;
    assert_eq!(factor_metric(&s.gw, "totp", "replayed").await, 1.0);
    assert_no_session(&c, &gw, "after a replayed code").await;

    // The next step's code passes.
    let next = app.fresh_code().await;
    assert_ne!(next, code);
    let resp = verify(&c, &gw, TWOFA, "totp", &next, false).await;
    assert_signed_in(resp, RD, "the next step's TOTP code").await;
    assert_level(s, &c, &gw, RD, "2fa").await;
}
both_backends!(totp_enrols_once_a_code_passes_then_every_login_asks_for_one);
