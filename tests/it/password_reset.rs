//! Forgotten password through the real binary and a real SMTP server, on both backends:
//! the journey, the same answer for known and unknown addresses, single use, expiry
//! (planted with a past instant), and every session ended by a reset.

use reqwest::Client;
use vigile::store::{TokenHash, TokenKind, TokenRecord};

use crate::both_backends;
use crate::common::backend::{open_store, Backend, Stack};
use crate::common::consts::PW;
use crate::common::http::{self, client, form_with_action, get, get_page, submit};

const NEW_PW: &str = "Brand-new 77 pass";

/// Posts the forgot-password form for `email`; returns (status, body).
async fn forgot(c: &Client, gw: &str, email: &str) -> (u16, String) {
    let page = get_page(c, &format!("{gw}/_vigile/password/forgot")).await;
    let form = form_with_action(&page, "/_vigile/password/forgot")
        .unwrap_or_else(|| panic!("no forgot form:\n{page}"));
    let resp = submit(c, gw, &form, &[("email", email)]).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn reset_link(s: &Stack, email: &str) -> String {
    s.smtp
        .wait_for("password reset mail", |m| {
            m.to.iter().any(|t| t == email) && m.text.contains("/_vigile/password/reset?token=")
        })
        .await
        .link_containing("/_vigile/password/reset?token=")
}

/// Submits the reset form reached by `link`.
async fn reset(c: &Client, gw: &str, link: &str, password: &str, confirm: &str) -> (u16, String) {
    let page = get_page(c, link).await;
    let form = form_with_action(&page, "/_vigile/password/reset")
        .unwrap_or_else(|| panic!("no reset form:\n{page}"));
    let resp = submit(
        c,
        gw,
        &form,
        &[("password", password), ("confirm", confirm)],
    )
    .await;
    let status = resp.status().as_u16();
    let location = http::header(&resp, "location").unwrap_or_default();
    let body = resp.text().await.unwrap();
    (status, if status == 303 { location } else { body })
}

async fn forgot_and_reset_journey(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    let (laptop, phone) = (client(), client());
    http::login_ok(&laptop, &gw, "ann@example.com", PW).await;
    http::login_ok(&phone, &gw, "ann@example.com", PW).await;

    let c = client();
    let (status, body) = forgot(&c, &gw, "Ann@Example.com").await;
    assert_eq!(status, 200);
    assert!(body.contains("Check your mailbox"), "{body}");
    let link = reset_link(&s, "ann@example.com").await;
    assert!(link.starts_with(&format!("{gw}/_vigile/password/reset?token=")));

    // A refused password names each rule and leaves the link usable.
    let (status, body) = reset(&c, &gw, &link, "short", "short").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("At least 10 characters") && body.contains("At least one digit"),
        "{body}"
    );
    let (status, body) = reset(&c, &gw, &link, NEW_PW, "Brand-new 77 pasS").await;
    assert_eq!(status, 400);
    assert!(body.contains("do not match"), "{body}");

    let (status, location) = reset(&c, &gw, &link, NEW_PW, NEW_PW).await;
    assert_eq!(status, 303);
    assert_eq!(location, "/_vigile/login?reset=1");
    let notice = get_page(&c, &format!("{gw}{location}")).await;
    assert!(
        notice.contains("Your password has been changed"),
        "{notice}"
    );

    // Every device was signed out (on any instance: sessions live in the store).
    for device in [&laptop, &phone] {
        crate::common::poll_until("sessions ended", 40, || async {
            get(device, &format!("{gw}/courses/1"), true).await.status() == 302
        })
        .await;
    }
    assert_eq!(
        http::login(&client(), &gw, "ann@example.com", PW)
            .await
            .status(),
        401
    );
    http::login_ok(&client(), &gw, "ann@example.com", NEW_PW).await;

    // The member is told, and the link cannot be used twice.
    let told = s
        .smtp
        .wait_for("password changed mail", |m| {
            m.to.iter().any(|t| t == "ann@example.com") && !m.text.contains("reset?token=")
        })
        .await;
    assert!(told
        .link_containing("/_vigile/password/forgot")
        .starts_with(&gw));
    let resp = get(&client(), &link, true).await;
    assert_eq!(resp.status(), 410);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("/_vigile/password/forgot"));
}
both_backends!(forgot_and_reset_journey);

async fn forgot_answers_the_same_for_unknown_addresses(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    let known = forgot(&client(), &gw, "ann@example.com").await;
    let unknown = forgot(&client(), &gw, "nobody@example.com").await;
    assert_eq!(known, unknown, "status and page must be identical");
    // Same for the activation resend.
    let resend = |email: &'static str| {
        let gw = gw.clone();
        async move {
            let c = client();
            let page = get_page(&c, &format!("{gw}/_vigile/activate/resend")).await;
            let form = form_with_action(&page, "/_vigile/activate/resend").unwrap();
            let resp = submit(&c, &gw, &form, &[("email", email)]).await;
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    assert_eq!(
        resend("ann@example.com").await,
        resend("nobody@example.com").await
    );

    reset_link(&s, "ann@example.com").await;
    assert_eq!(s.smtp.count_to("nobody@example.com"), 0);
    assert_eq!(
        s.smtp.count_to("ann@example.com"),
        1,
        "an active account gets no activation mail"
    );
}
both_backends!(forgot_answers_the_same_for_unknown_addresses);

async fn reset_links_expire_and_die_with_the_password(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    let store = open_store(&s);
    let user = store
        .user_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();

    // Issued an hour and a minute ago with the 1 h validity: expired.
    let token = vigile::crypto::random_token(32);
    let bind = TokenHash::of(&user.password_hash).as_str()[..16].to_string();
    store
        .token_insert(&TokenRecord {
            kind: TokenKind::PasswordReset,
            hash: TokenHash::of(&token),
            subject: user.id.as_str().into(),
            bind,
            expires_at: vigile::clock::now_ms() - 60_000,
        })
        .await
        .unwrap();
    let resp = get(
        &client(),
        &format!("{gw}/_vigile/password/reset?token={token}"),
        true,
    )
    .await;
    assert_eq!(resp.status(), 410);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("expired or has already been used"));

    // Two links: using one kills the other (it was issued for the old password).
    forgot(&client(), &gw, "ann@example.com").await;
    let first = reset_link(&s, "ann@example.com").await;
    forgot(&client(), &gw, "ann@example.com").await;
    let second = s
        .smtp
        .wait_for("second reset mail", |m| {
            m.text.contains("/_vigile/password/reset?token=") && !m.text.contains(&first)
        })
        .await
        .link_containing("/_vigile/password/reset?token=");
    assert_eq!(reset(&client(), &gw, &second, NEW_PW, NEW_PW).await.0, 303);
    assert_eq!(get(&client(), &first, true).await.status(), 410);
}
both_backends!(reset_links_expire_and_die_with_the_password);
