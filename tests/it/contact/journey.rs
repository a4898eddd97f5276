//! The campaign journey on both backends: started from the CLI, the member is sent to the
//! contact page after the password, confirms the email with the code read from the real
//! SMTP server and the mobile with the code texted through the provider (which refuses
//! the first call, to prove the retry), is not asked again, and `vigile campaign status`
//! counts them. "Later" goes on to the page wanted, and the page comes back at the next
//! login; meanwhile the member browses the site freely.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::ANN;
use crate::common::http::client;

async fn campaign_confirm_both_then_never_asked_again(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    let show = user_show(&s.gw, ANN).await;
    assert!(
        show_line(&show, "email")
            .is_some_and(|l| l.starts_with(&format!("email: {ANN} (confirmed"))),
        "--confirmed:\n{show}"
    );
    assert!(
        show_line(&show, "mobile")
            .is_some_and(|l| l.starts_with(&format!("mobile: {MOBILE_E164} (confirmed"))),
        "--confirmed --mobile:\n{show}"
    );

    // The campaign, from the CLI: both channels by default, values kept.
    let (id, asked) = campaign_start(&s.gw, &["--all"]).await;
    assert_eq!(asked, 1);
    let show = user_show(&s.gw, ANN).await;
    assert_eq!(
        show_line(&show, "email").as_deref(),
        Some(format!("email: {ANN} (unconfirmed)").as_str()),
        "{show}"
    );
    assert_eq!(
        show_line(&show, "mobile").as_deref(),
        Some(format!("mobile: {MOBILE_E164} (unconfirmed)").as_str()),
        "{show}"
    );
    assert_eq!(
        show_line(&show, "campaign").as_deref(),
        Some(format!("campaign: {id} (not seen)").as_str()),
        "{show}"
    );
    assert_eq!(status_of(&s.gw, &id).await, Progress::new(1, 0, 0, 1));

    // The password, then the contact page instead of the course.
    let c = client();
    login_asked(&c, &gw, ANN).await;
    let page = contact_page(&c, &gw, RD).await;
    assert_eq!(page.state("email"), "unconfirmed");
    assert_eq!(page.state("mobile"), "unconfirmed");
    assert_eq!(page.value("email"), ANN, "the email is prefilled");
    assert_eq!(page.value("mobile"), MOBILE_E164, "the mobile is prefilled");
    assert_eq!(page.later().as_deref(), Some(RD), "Later goes on to rd");
    assert_eq!(status_of(&s.gw, &id).await, Progress::new(1, 0, 0, 0));
    assert_eq!(
        show_line(&user_show(&s.gw, ANN).await, "campaign").as_deref(),
        Some(format!("campaign: {id} (seen)").as_str())
    );

    // The email: a code from the real SMTP server.
    send_ok(&c, &gw, "email", ANN, RD).await;
    let code = email_code(s, ANN, 1).await;
    confirm_ok(&c, &gw, "email", &code, RD).await;
    let page = contact_page(&c, &gw, RD).await;
    assert_eq!(page.state("email"), "confirmed");
    assert_eq!(page.state("mobile"), "unconfirmed");
    assert_eq!(status_of(&s.gw, &id).await, Progress::new(1, 1, 0, 0));

    // The mobile: the provider refuses the first call; the SMS still arrives, once.
    site.sms.fail_next(1);
    send_ok(&c, &gw, "mobile", MOBILE_E164, RD).await;
    site.sms.wait_delivered(1).await;
    let code = site.sms.code_for(MOBILE_E164).await;
    assert_eq!(site.sms.calls().len(), 2, "one refused call, one delivered");
    assert_eq!(site.sms.delivered().len(), 1);
    confirm_ok(&c, &gw, "mobile", &code, RD).await;

    // Everything asked is confirmed: the page says so and offers to go on.
    let page = contact_page(&c, &gw, RD).await;
    assert_eq!(page.state("email"), "confirmed");
    assert_eq!(page.state("mobile"), "confirmed");
    assert!(
        page.visible().contains("confirmed"),
        "no 'confirmed':\n{}",
        page.html
    );
    assert!(
        page.html.contains(&format!("href=\"{RD}\"")),
        "no link on to {RD}:\n{}",
        page.html
    );
    assert_eq!(status_of(&s.gw, &id).await, Progress::new(1, 1, 1, 0));
    let show = user_show(&s.gw, ANN).await;
    assert!(
        show_line(&show, "email").is_some_and(|l| l
            .starts_with(&format!("email: {ANN} (confirmed"))
            && l.contains("by code")),
        "{show}"
    );
    assert!(
        show_line(&show, "mobile").is_some_and(|l| l
            .starts_with(&format!("mobile: {MOBILE_E164} (confirmed"))
            && l.contains("by code")),
        "{show}"
    );

    // Signed out and in again: straight to rd, in this browser and in a new one.
    logout(&c, &gw).await;
    login_straight(&c, &gw, ANN).await;
    login_straight(&client(), &gw, ANN).await;
    assert_eq!(status_of(&s.gw, &id).await, Progress::new(1, 1, 1, 0));
}
both_backends!(campaign_confirm_both_then_never_asked_again);

async fn later_goes_on_and_the_page_comes_back(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    campaign_start(&s.gw, &["--all"]).await;

    let c = client();
    login_asked(&c, &gw, ANN).await;
    let page = contact_page(&c, &gw, RD).await;
    let later = page
        .later()
        .unwrap_or_else(|| panic!("no <a id=\"contact-later\">:\n{}", page.html));
    assert_eq!(later, RD);

    // "Later": the course is served, and no other page sends the member to /contact.
    let before = s.upstream.count();
    assert_eq!(
        visit(&c, &gw, &later).await.0,
        200,
        "the course after Later"
    );
    assert_eq!(s.upstream.count(), before + 1);
    for path in ["/courses/2", "/", "/_vigile/account"] {
        let (status, body) = visit(&c, &gw, path).await;
        assert_eq!(status, 200, "{path} while unconfirmed: {body}");
    }

    // Next login: asked again; and again after that, until confirmed.
    logout(&c, &gw).await;
    login_asked(&c, &gw, ANN).await;
    login_asked(&client(), &gw, ANN).await;
    // The rd the member was going to is the one kept, whatever it is.
    let location = login_to(&client(), &gw, ANN, "/courses/7?tab=notes").await;
    assert!(
        Target::parse(&location).is_contact_for("/courses/7?tab=notes"),
        "{location}"
    );
}
both_backends!(later_goes_on_and_the_page_comes_back);

/// A member outside any campaign, without `require_confirmed`, goes straight in, whether
/// or not their contact details are confirmed; the page still works for them.
async fn no_campaign_no_contact_page(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    add_member(&s.gw, ANN, &[]);
    let show = user_show(&s.gw, ANN).await;
    assert_eq!(
        show_line(&show, "email").as_deref(),
        Some(format!("email: {ANN} (unconfirmed)").as_str()),
        "user add without --confirmed:\n{show}"
    );
    assert_eq!(show_line(&show, "mobile").as_deref(), Some("mobile: none"));
    assert_eq!(show_line(&show, "campaign"), None);
    let c = client();
    login_straight(&c, &gw, ANN).await;
    let page = contact_page(&c, &gw, RD).await;
    assert_eq!(page.state("email"), "unconfirmed");
    assert_eq!(page.value("mobile"), "", "no mobile: the field is empty");
    send_ok(&c, &gw, "email", ANN, RD).await;
    let code = email_code(s, ANN, 1).await;
    confirm_ok(&c, &gw, "email", &code, RD).await;
    assert_eq!(contact_page(&c, &gw, RD).await.state("email"), "confirmed");

    // Without a session: the login page.
    let (status, location) = visit(&client(), &gw, CONTACT).await;
    assert_eq!(status, 302, "{location}");
    assert!(location.contains("/_vigile/login"), "{location}");
}
both_backends!(no_campaign_no_contact_page);
