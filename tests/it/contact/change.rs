//! Changing a confirmed address on the contact page, on both backends: the account keeps
//! signing in with the old address until the new one's code is typed, then only the new
//! one works and the old one is told; a new address that belongs to another account is
//! refused (409) after its code and changes nothing; a new mobile replacing a confirmed one
//! is confirmed by its own SMS and the account's email is told; what cannot be an address
//! or a number is refused beside its field, the value kept.

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::{ANN, PW};
use crate::common::http::{client, login};

const NEW: &str = "ann.new@example.com";
const BOB: &str = "bob@example.com";

/// Whether `email` signs in with [`PW`] (a 303 setting a session).
async fn signs_in(gw: &str, email: &str) -> bool {
    let resp = login(&client(), gw, email, PW).await;
    resp.status() == 303 && crate::orgs::sets_session(&resp)
}

async fn new_email_applies_only_once_confirmed(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    assert_eq!(contact_page(&c, &gw, RD).await.state("email"), "confirmed");

    change_email(&c, &gw, NEW, RD).await;
    let mail = nth_code_mail(s, NEW, 1).await;
    let code = mail_code(&mail);
    assert!(
        mail.text.contains(ANN),
        "the mail for a new address should say which login it would replace:\n{}",
        mail.text
    );
    // Not applied yet: the old address is the login, and what recovery would use.
    assert!(
        signs_in(&gw, ANN).await,
        "the old address stopped working before the code"
    );
    assert!(
        !signs_in(&gw, NEW).await,
        "the new address works before its code"
    );
    let show = user_show(&s.gw, ANN).await;
    assert!(
        show_line(&show, "email")
            .is_some_and(|l| l.starts_with(&format!("email: {ANN} (confirmed"))),
        "{show}"
    );
    assert_eq!(
        s.smtp.count_to(ANN),
        0,
        "the old address was told too early"
    );

    confirm_ok(&c, &gw, "email", &code, RD).await;
    let page = contact_page(&c, &gw, RD).await;
    assert_eq!(page.state("email"), "confirmed");
    assert_eq!(page.value("email"), NEW);
    assert!(signs_in(&gw, NEW).await, "the new address after its code");
    assert!(!signs_in(&gw, ANN).await, "the old address still signs in");
    let show = user_show(&s.gw, NEW).await;
    assert!(
        show_line(&show, "email").is_some_and(|l| l
            .starts_with(&format!("email: {NEW} (confirmed"))
            && l.contains("by code")),
        "{show}"
    );
    let store = open_store(s);
    assert!(store.user_by_email(ANN).await.unwrap().is_none());

    // The old address is told, without the code.
    let notice = s.smtp.wait_for_to(ANN, EMAIL_CHANGED_SUBJECT).await;
    assert!(!notice.text.contains(&code) && !notice.html.contains(&code));
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to(ANN), 1, "one notice to the old address");
    assert_eq!(code_mails(s, NEW, CONFIRM_SUBJECT).len(), 1);
}
both_backends!(new_email_applies_only_once_confirmed);

async fn new_email_of_another_account_is_refused(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    confirmed_member(&s.gw, BOB, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    change_email(&c, &gw, BOB, RD).await;
    let code = email_code(s, BOB, 1).await;
    let (status, body) = text(confirm(&c, &gw, "email", &code, RD).await).await;
    assert_eq!(status, 409, "confirming another account's address:\n{body}");

    // Nothing changed.
    assert!(signs_in(&gw, ANN).await);
    assert!(signs_in(&gw, BOB).await);
    let page = contact_page(&c, &gw, RD).await;
    assert_eq!(page.value("email"), ANN);
    assert_eq!(page.state("email"), "confirmed");
    for who in [ANN, BOB] {
        let show = user_show(&s.gw, who).await;
        assert!(
            show_line(&show, "email")
                .is_some_and(|l| l.starts_with(&format!("email: {who} (confirmed"))
                    && l.contains("by admin")),
            "{show}"
        );
    }
    s.outbox_drained().await;
    assert_eq!(
        s.smtp.count_to(ANN),
        0,
        "Ann was told of a change that did not happen"
    );
    assert!(
        code_mails(s, BOB, EMAIL_CHANGED_SUBJECT).is_empty(),
        "Bob was told of a change"
    );
}
both_backends!(new_email_of_another_account_is_refused);

async fn new_mobile_replaces_a_confirmed_one(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    let c = client();
    login_straight(&c, &gw, ANN).await;
    // Typed in national form: read in site.phone_region (FR).
    send_ok(&c, &gw, "mobile", "06 98 76 54 32", RD).await;
    let code = site.sms.code_for(MOBILE2_E164).await;
    let show = user_show(&s.gw, ANN).await;
    assert!(
        show_line(&show, "mobile")
            .is_some_and(|l| l.starts_with(&format!("mobile: {MOBILE_E164} (confirmed"))),
        "the old number changed before the code:\n{show}"
    );
    confirm_ok(&c, &gw, "mobile", &code, RD).await;
    let page = contact_page(&c, &gw, RD).await;
    assert_eq!(page.value("mobile"), MOBILE2_E164);
    assert_eq!(page.state("mobile"), "confirmed");
    let show = user_show(&s.gw, ANN).await;
    assert!(
        show_line(&show, "mobile")
            .is_some_and(|l| l.starts_with(&format!("mobile: {MOBILE2_E164} (confirmed"))),
        "{show}"
    );
    let notice = s.smtp.wait_for_to(ANN, MOBILE_CHANGED_SUBJECT).await;
    assert!(!notice.text.contains(&code));
    // One SMS, to the new number only.
    assert_eq!(site.sms.delivered().len(), 1);
}
both_backends!(new_mobile_replaces_a_confirmed_one);

/// Refusals beside their field, the value kept, nothing sent.
async fn bad_address_or_number_refused_beside_the_field(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    let c = client();
    login_straight(&c, &gw, ANN).await;
    for bad in ["not-an-address", "ann@localhost", "a b@example.com"] {
        let (status, body) = text(send(&c, &gw, "email", bad, RD).await).await;
        assert_eq!(status, 400, "email {bad:?}:\n{body}");
        assert!(
            error_next_to(&body, "email"),
            "no error beside email for {bad:?}:\n{body}"
        );
        assert!(
            !error_next_to(&body, "mobile"),
            "an error beside mobile for {bad:?}"
        );
        assert_kept(&body, "email", bad);
    }
    for bad in ["12", "06 12", "+33 6 12 34 56 78 99 99", "call me"] {
        let (status, body) = text(send(&c, &gw, "mobile", bad, RD).await).await;
        assert_eq!(status, 400, "mobile {bad:?}:\n{body}");
        assert!(
            error_next_to(&body, "mobile"),
            "no error beside mobile for {bad:?}:\n{body}"
        );
        assert!(
            !error_next_to(&body, "email"),
            "an error beside email for {bad:?}"
        );
        assert_kept(&body, "mobile", bad);
    }
    s.outbox_drained().await;
    assert_eq!(
        s.smtp.mails().len(),
        0,
        "a code was mailed for a refused address"
    );
    assert_eq!(
        site.sms.calls().len(),
        0,
        "a code was texted for a refused number"
    );
    let show = user_show(&s.gw, ANN).await;
    assert!(
        show_line(&show, "email").is_some_and(|l| l.contains("(confirmed")),
        "{show}"
    );
    assert!(
        show_line(&show, "mobile").is_some_and(|l| l.contains("(confirmed")),
        "{show}"
    );
}
both_backends!(bad_address_or_number_refused_beside_the_field);

/// A new login address needs the account's password: missing or wrong, the page comes
/// back (400) with the error beside `password`, the address kept, nothing sent. The same
/// address again, or a mobile, needs none.
async fn new_login_address_needs_the_password(backend: Backend) {
    // Refused guesses count against the hourly code budget (the product bounds password
    // guesses by it): room for the six sends below.
    let site = site(backend, "[contact]\nmax_codes_per_hour = 10\n").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    for (what, password) in [
        ("missing", None),
        ("empty", Some("")),
        ("wrong", Some("Wrong-password-1")),
    ] {
        let more: Vec<(&str, &str)> = password.map(|p| ("password", p)).into_iter().collect();
        let (status, body) = text(send_with(&c, &gw, "email", NEW, RD, &more).await).await;
        assert_eq!(status, 400, "{what} password:\n{body}");
        assert!(
            error_next_to(&body, "password"),
            "{what} password: no error beside it:\n{body}"
        );
        assert!(
            !error_next_to(&body, "email"),
            "{what} password: an error beside email"
        );
        assert_kept(&body, "email", NEW);
    }
    // The same address (re-confirming) and a mobile: no password asked.
    send_ok(&c, &gw, "email", ANN, RD).await;
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    site.sms.code_for(MOBILE_E164).await;
    nth_code_mail(s, ANN, 1).await;
    s.outbox_drained().await;
    assert_eq!(
        s.smtp.count_to(NEW),
        0,
        "a code went to the new address without the password"
    );
    assert!(signs_in(&gw, ANN).await);
    // The control: with the password.
    change_email(&c, &gw, NEW, RD).await;
    nth_code_mail(s, NEW, 1).await;
}
both_backends!(new_login_address_needs_the_password);
