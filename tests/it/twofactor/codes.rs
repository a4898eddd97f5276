//! Codes sent to a confirmed contact as the second factor: the email method with codes
//! from the real SMTP server, the SMS method with codes from the real HTTP provider, each
//! enrolled with a code sent at enrolment and sent again (without being asked) when the
//! login reaches `/_vigile/2fa`; a wrong one refused. A channel not confirmed cannot be
//! enrolled, even by a forged form, and nothing is sent to it.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::ANN;
use crate::common::http::{client, csrf_from};
use crate::contact::{add_member, confirmed_member, logout, merged, site, MOBILE_E164};

const WITH_SMS: &str = "[twofactor]\nmethods = [\"totp\", \"email\", \"sms\"]\n";

/// Posts `action` from `page` like its form would, or, when the page offers no such form,
/// as a forged one (the page's CSRF token, nothing else).
async fn act_or_forge(
    c: &Client,
    gw: &str,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    if find_action(page, ACCOUNT_2FA, action).is_some() {
        return act(c, gw, page, ACCOUNT_2FA, action, fields).await;
    }
    let form = Form {
        action: ACCOUNT_2FA.to_string(),
        method: "post".into(),
        hidden: vec![("csrf".into(), csrf_from(page))],
    };
    let mut all = vec![("action", action)];
    all.extend_from_slice(fields);
    submit(c, gw, &form, &all).await
}

/// Enrols the code method `action` (`enrol-email`, `enrol-sms`) on the account page; the
/// code comes from `code_of` once the page asked for it. Asserts the ten recovery codes.
async fn enrol_code_method<F, Fut>(c: &Client, gw: &str, action: &str, code_of: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let account = account_page(c, gw).await;
    let resp = act(c, gw, &account, ACCOUNT_2FA, action, &[]).await;
    let (status, asking) = settle(c, gw, resp).await;
    assert_eq!(status, 200, "{action}:\n{asking}");
    let code = code_of().await;
    let resp = act(
        c,
        gw,
        &asking,
        ACCOUNT_2FA,
        "confirm-code",
        &[("code", &code)],
    )
    .await;
    let (status, shown) = settle(c, gw, resp).await;
    assert_eq!(status, 200, "confirm-code after {action}:\n{shown}");
    assert_ten_codes(&recovery_codes(&shown), &shown);
}

/// The `/_vigile/2fa` page reached after the password, and its verify form for `method`
/// (the page the code was sent from: it is not asked again).
async fn code_page(c: &Client, gw: &str, method: &str) -> Form {
    let html = page(c, gw, TWOFA).await;
    verify_form_in(&html, method)
        .unwrap_or_else(|| panic!("{TWOFA} shows no code form for {method}:\n{html}"))
}

async fn email_codes_enrol_and_pass_the_second_step(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    let before = mails_to(s, ANN).len();
    enrol_code_method(&c, &gw, "enrol-email", || mailed_code(s, ANN, before)).await;
    assert_eq!(second_factors(&s.gw, ANN).await, "email");
    logout(&c, &gw).await;

    // The login reaches /2fa: the code is mailed without asking (counted from before the
    // password, as it may be sent as soon as the login is under way).
    s.outbox_drained().await;
    let before = mails_to(s, ANN).len();
    password_step(&c, &gw, ANN, RD).await;
    let form = code_page(&c, &gw, "email").await;
    let code = mailed_code(s, ANN, before).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let resp = verify_with(&c, &gw, &form, "email", wrong, false).await;
    assert_refused(resp, "a wrong emailed code").await;
    let resp = verify_with(&c, &gw, &form, "email", &code, false).await;
    assert_signed_in(resp, RD, "the emailed code").await;
    assert_level(s, &c, &gw, RD, "2fa").await;
}
both_backends!(email_codes_enrol_and_pass_the_second_step);

async fn sms_codes_enrol_and_pass_the_second_step(backend: Backend) {
    let site = site(backend, &merged(&[NO_IP_LIMIT, WITH_SMS])).await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    let c = client();
    login_straight(&c, &gw, ANN).await;
    let before = texts_to(&site, MOBILE_E164);
    enrol_code_method(&c, &gw, "enrol-sms", || {
        texted_code(&site, MOBILE_E164, before)
    })
    .await;
    assert_eq!(second_factors(&s.gw, ANN).await, "sms");
    logout(&c, &gw).await;

    s.outbox_drained().await;
    let before = texts_to(&site, MOBILE_E164);
    password_step(&c, &gw, ANN, RD).await;
    let form = code_page(&c, &gw, "sms").await;
    let code = texted_code(&site, MOBILE_E164, before).await;
    let resp = verify_with(&c, &gw, &form, "sms", &code, false).await;
    assert_signed_in(resp, RD, "the texted code").await;
    assert_level(s, &c, &gw, RD, "2fa").await;
}
both_backends!(sms_codes_enrol_and_pass_the_second_step);

async fn unconfirmed_channels_cannot_be_enrolled_and_get_nothing(backend: Backend) {
    let site = site(backend, &merged(&[NO_IP_LIMIT, WITH_SMS])).await;
    let (s, gw) = (&site.s, site.gw());
    // Neither the address nor the mobile is confirmed.
    add_member(&s.gw, ANN, &["--mobile", MOBILE_E164]);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    s.outbox_drained().await;
    let (mails, texts) = (mails_to(s, ANN).len(), site.sms.calls().len());
    for action in ["enrol-email", "enrol-sms"] {
        let account = account_page(&c, &gw).await;
        let resp = act_or_forge(&c, &gw, &account, action, &[]).await;
        let (status, body) = crate::contact::text(resp).await;
        assert_eq!(status, 409, "{action} for an unconfirmed channel:\n{body}");
    }
    s.outbox_drained().await;
    assert_eq!(
        mails_to(s, ANN).len(),
        mails,
        "a mail was sent to an unconfirmed address"
    );
    assert_eq!(
        site.sms.calls().len(),
        texts,
        "a text was sent to an unconfirmed mobile"
    );
    assert_eq!(second_factors(&s.gw, ANN).await, "none");
    // Nothing was enrolled: the password alone still signs in.
    logout(&c, &gw).await;
    login_straight(&c, &gw, ANN).await;
}
both_backends!(unconfirmed_channels_cannot_be_enrolled_and_get_nothing);

/// A mailed code takes `contact.max_tries` wrong tries, then it is spent: even the right
/// one is refused and a new code must be sent, which then works. (The lockout is set high
/// here so the per-code limit is what is seen.)
async fn a_mailed_code_is_spent_after_its_tries(backend: Backend) {
    let lenient = "[lockout]\naccount_max_failures = 50\n[contact]\nmax_tries = 3\n";
    let site = site(backend, &merged(&[NO_IP_LIMIT, lenient])).await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    let before = mails_to(s, ANN).len();
    enrol_code_method(&c, &gw, "enrol-email", || mailed_code(s, ANN, before)).await;
    logout(&c, &gw).await;

    s.outbox_drained().await;
    let before = mails_to(s, ANN).len();
    password_step(&c, &gw, ANN, RD).await;
    let form = code_page(&c, &gw, "email").await;
    let code = mailed_code(s, ANN, before).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        let resp = verify_with(&c, &gw, &form, "email", wrong, false).await;
        assert_refused(resp, "a wrong emailed code").await;
    }
    let resp = verify_with(&c, &gw, &form, "email", &code, false).await;
    assert_refused(resp, "the right code after its last try").await;

    // A new code: it works.
    s.outbox_drained().await;
    let before = mails_to(s, ANN).len();
    let sent = page(&c, &gw, &format!("{TWOFA}?method=email")).await;
    let resp = act(&c, &gw, &sent, TWOFA, "send", &[("method", "email")]).await;
    assert_eq!(resp.status(), 200);
    let code = mailed_code(s, ANN, before).await;
    let form = code_page(&c, &gw, "email").await;
    let resp = verify_with(&c, &gw, &form, "email", &code, false).await;
    assert_signed_in(resp, RD, "the new code").await;
}
both_backends!(a_mailed_code_is_spent_after_its_tries);

/// The method used last is the one `/2fa` proposes; the others stay one click away.
async fn the_method_used_last_is_proposed_first(backend: Backend) {
    let site = site(backend, NO_IP_LIMIT).await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    let before = mails_to(s, ANN).len();
    enrol_code_method(&c, &gw, "enrol-email", || mailed_code(s, ANN, before)).await;
    let account = account_page(&c, &gw).await;
    let (mut app, _) = enrol_totp_from(&c, &gw, &account, ACCOUNT_2FA).await;
    logout(&c, &gw).await;

    // Email was enrolled first: proposed, the code already on its way; TOTP a link away.
    s.outbox_drained().await;
    let before = mails_to(s, ANN).len();
    password_step(&c, &gw, ANN, RD).await;
    let first = page(&c, &gw, TWOFA).await;
    assert!(verify_form_in(&first, "email").is_some(), "{first}");
    assert!(method_link(&first, "totp").is_some(), "{first}");
    mailed_code(s, ANN, before).await;
    let form = verify_form(&c, &gw, TWOFA, "totp").await;
    let code = app.fresh_code().await;
    let resp = verify_with(&c, &gw, &form, "totp", &code, false).await;
    assert_signed_in(resp, RD, "the app's code").await;
    logout(&c, &gw).await;

    // The app was used last: it is proposed now, and email is the link.
    password_step(&c, &gw, ANN, RD).await;
    let next = page(&c, &gw, TWOFA).await;
    let proposed = verify_form_in(&next, "totp").expect("a code form");
    assert_eq!(proposed.hidden_value("method"), Some("totp"), "{next}");
    assert!(method_link(&next, "email").is_some(), "{next}");
}
both_backends!(the_method_used_last_is_proposed_first);
