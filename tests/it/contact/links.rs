//! The link of the confirmation mail, on both backends: for the account's own address,
//! opened in another browser without any session (the mail read on a phone), it confirms
//! it and says so; a second use, or a token nobody was sent, is 410; the member's own page
//! then shows the address confirmed, "by link". For a new login address it works only for
//! that account signed in (login first; another account: 403); a newer send kills it.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::ANN;
use crate::common::http::{bare_client, client};

const BOB: &str = "bob@example.com";

async fn mailed_link_confirms_without_a_session(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let (id, _) = campaign_start(&s.gw, &["--all", "--channels", "email"]).await;
    let c = client();
    login_asked(&c, &gw, ANN).await;
    send_ok(&c, &gw, "email", ANN, RD).await;
    let mail = nth_code_mail(s, ANN, 1).await;
    let link = mail.link_containing(CONTACT_LINK);
    assert!(
        link.starts_with(&format!("{gw}{CONTACT_LINK}")),
        "the link is not on the gateway's public URL: {link}"
    );
    // The mail also carries the code, for typing it.
    mail_code(&mail);

    // Another client, no cookies at all.
    let (status, body) = text(http::get(&bare_client(), &link, true).await).await;
    assert_eq!(status, 200, "the mailed link:\n{body}");
    assert!(
        visible(&body).contains("confirmed"),
        "the page does not say the address is confirmed:\n{body}"
    );
    assert_eq!(contact_page(&c, &gw, RD).await.state("email"), "confirmed");
    let show = user_show(&s.gw, ANN).await;
    assert!(
        show_line(&show, "email")
            .is_some_and(|l| l.contains("(confirmed") && l.contains("by link")),
        "{show}"
    );
    assert_eq!(status_of(&s.gw, &id).await.email, 1);

    // Used: gone, from any client.
    for other in [bare_client(), client(), c.clone()] {
        let (status, body) = text(http::get(&other, &link, true).await).await;
        assert_eq!(status, 410, "the link's second use:\n{body}");
    }
    // A token nobody was sent.
    let forged = format!("{gw}{CONTACT_LINK}{}", "A".repeat(43));
    assert_eq!(http::get(&bare_client(), &forged, true).await.status(), 410);
    // Only the email was asked and it is confirmed: the next login goes straight on.
    login_straight(&client(), &gw, ANN).await;
}
both_backends!(mailed_link_confirms_without_a_session);

/// The typed code and the link are one proof: once the code is used, the link of the
/// same mail is spent too.
async fn code_used_spends_the_link(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    add_member(&s.gw, ANN, &[]);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    send_ok(&c, &gw, "email", ANN, RD).await;
    let mail = nth_code_mail(s, ANN, 1).await;
    confirm_ok(&c, &gw, "email", &mail_code(&mail), RD).await;
    let link = mail.link_containing(CONTACT_LINK);
    assert_eq!(http::get(&bare_client(), &link, true).await.status(), 410);
}
both_backends!(code_used_spends_the_link);

/// The mailed link of a NEW login address works only for that account, signed in: with no
/// session it leads to the login page and works right after it; signed in as another
/// account it is refused (403) and changes nothing. Then the login address changes and the
/// old address is told.
async fn mailed_link_of_a_new_address_needs_that_account(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    confirmed_member(&s.gw, BOB, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    let new = "ann.new@example.com";
    change_email(&c, &gw, new, RD).await;
    let link = nth_code_mail(s, new, 1).await.link_containing(CONTACT_LINK);
    let path = link.strip_prefix(&gw).unwrap().to_string();

    // Bob, signed in, follows it: refused, nothing changed.
    let bob = client();
    login_straight(&bob, &gw, BOB).await;
    let (status, body) = text(http::get(&bob, &link, true).await).await;
    assert_eq!(status, 403, "another account followed the link:\n{body}");
    for who in [ANN, BOB] {
        let show = user_show(&s.gw, who).await;
        assert!(
            show_line(&show, "email")
                .is_some_and(|l| l.starts_with(&format!("email: {who} (confirmed"))),
            "{show}"
        );
    }

    // No session (the mail read on a phone): to the login page, coming back to the link.
    let phone = client();
    let (status, location) = redirect(http::get(&phone, &link, true).await).await;
    let target = Target::parse(&location);
    assert!(
        status == 302 && target.path == "/_vigile/login" && target.param("rd") == Some(path.as_str()),
        "the link without a session: {status} {location} (expected 302 to /_vigile/login?rd={path})"
    );
    let show = user_show(&s.gw, ANN).await;
    assert!(
        show_line(&show, "email")
            .is_some_and(|l| l.starts_with(&format!("email: {ANN} (confirmed"))),
        "the address changed before its owner signed in:\n{show}"
    );
    let back = login_to(&phone, &gw, ANN, &path).await;
    assert_eq!(back, path, "after the login, back to the link");
    let (status, body) = text(http::get(&phone, &format!("{gw}{back}"), true).await).await;
    assert_eq!(status, 200, "{body}");
    let show = user_show(&s.gw, new).await;
    assert!(
        show_line(&show, "email").is_some_and(|l| l
            .starts_with(&format!("email: {new} (confirmed"))
            && l.contains("by link")),
        "{show}"
    );
    s.smtp.wait_for_to(ANN, EMAIL_CHANGED_SUBJECT).await;
    login_straight(&client(), &gw, new).await;
    assert_eq!(http::get(&phone, &link, true).await.status(), 410, "used");
}
both_backends!(mailed_link_of_a_new_address_needs_that_account);

/// A link mailed for one address never confirms a code sent since to another one (410);
/// the newer code still works.
async fn a_newer_send_kills_the_older_link(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    let (first, second) = ("first@example.com", "second@example.com");
    change_email(&c, &gw, first, RD).await;
    let old_link = nth_code_mail(s, first, 1)
        .await
        .link_containing(CONTACT_LINK);
    change_email(&c, &gw, second, RD).await;
    let code = email_code(s, second, 1).await;
    let (status, body) = text(http::get(&c, &old_link, true).await).await;
    assert_eq!(
        status, 410,
        "the first address's link after a send to the second:\n{body}"
    );
    let show = user_show(&s.gw, ANN).await;
    assert!(
        show_line(&show, "email")
            .is_some_and(|l| l.starts_with(&format!("email: {ANN} (confirmed"))),
        "{show}"
    );
    confirm_ok(&c, &gw, "email", &code, RD).await;
    assert!(user_show(&s.gw, second).await.contains(second));
}
both_backends!(a_newer_send_kills_the_older_link);
