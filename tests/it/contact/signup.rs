//! `contact.require_confirmed` without any campaign, on both backends: sign-up's
//! activation link confirms the email, so with `ask_mobile` the new member lands on the
//! contact page for the mobile, and without it goes straight in; the same for company
//! registration and joining by invitation, whose links confirm the email too; a member
//! made by the CLI without `--confirmed` is asked at login. The device-choice step,
//! another sign-in that opens a session, also leads to the contact page.

use super::*;
use crate::both_backends;
use crate::common::backend::{activation_mail, Backend};
use crate::common::consts::{ANN, PW};
use crate::common::http::{client, client_ua, get, signup, UA_FIREFOX_LINUX};
use crate::devices::{code_for, post_on};

const ZOE: &str = "zoe@example.com";
const WELCOME: &str = "/_vigile/account?welcome=1";

async fn activation_lands_on_contact_for_the_mobile(backend: Backend) {
    let site = site(
        backend,
        "[contact]\nrequire_confirmed = true\nask_mobile = true\n",
    )
    .await;
    let (s, gw) = (&site.s, site.gw());
    let c = client();
    assert_eq!(signup(&c, &gw, ZOE, PW, PW, "en").await.status(), 200);
    let (_, link) = activation_mail(s, ZOE, "Activate your account").await;
    let (status, location) = redirect(get(&c, &link, true).await).await;
    // The status is checked at the end, so the rest of the journey still runs.
    let mut deferred = Deferred::default();
    // The activation link is a GET and keeps its 302 (the login form's POST answers 303).
    deferred.check(
        status == 302,
        format!("activation with the mobile to confirm answered {status}, not 302"),
    );
    assert!(
        Target::parse(&location).is_contact_for(WELCOME),
        "activation should lead to {CONTACT}?rd={WELCOME}: {location}"
    );
    let page = contact_page(&c, &gw, WELCOME).await;
    assert_eq!(
        page.state("email"),
        "confirmed",
        "activation confirms the email"
    );
    assert_eq!(page.state("mobile"), "unconfirmed");
    assert_eq!(page.value("mobile"), "");
    let show = user_show(&s.gw, ZOE).await;
    assert!(
        show_line(&show, "email")
            .is_some_and(|l| l.contains("(confirmed") && l.contains("by activation")),
        "{show}"
    );
    assert_eq!(show_line(&show, "mobile").as_deref(), Some("mobile: none"));

    // Asked at each login until the mobile is confirmed, typed in national form.
    login_asked(&client(), &gw, ZOE).await;
    send_ok(&c, &gw, "mobile", MOBILE, WELCOME).await;
    let code = site.sms.code_for(MOBILE_E164).await;
    confirm_ok(&c, &gw, "mobile", &code, WELCOME).await;
    let page = contact_page(&c, &gw, WELCOME).await;
    assert_eq!(page.state("mobile"), "confirmed");
    assert!(
        page.html.contains(&format!("href=\"{WELCOME}\"")),
        "no link on to {WELCOME}:\n{}",
        page.html
    );
    login_straight(&client(), &gw, ZOE).await;

    // A member made by the CLI without --confirmed: asked at login.
    add_member(&s.gw, ANN, &[]);
    login_asked(&client(), &gw, ANN).await;
    deferred.assert_none();
}
both_backends!(activation_lands_on_contact_for_the_mobile);

async fn activation_goes_straight_in_without_the_mobile(backend: Backend) {
    let site = site(
        backend,
        "[contact]\nrequire_confirmed = true\nask_mobile = false\n",
    )
    .await;
    let (s, gw) = (&site.s, site.gw());
    let c = client();
    assert_eq!(signup(&c, &gw, ZOE, PW, PW, "en").await.status(), 200);
    let (_, link) = activation_mail(s, ZOE, "Activate your account").await;
    let (status, location) = redirect(get(&c, &link, true).await).await;
    assert!(
        (status == 302 || status == 303) && location == WELCOME,
        "activation with nothing left to confirm: {status} {location}"
    );
    login_straight(&client(), &gw, ZOE).await;

    // The CLI's unconfirmed member is asked for the email alone.
    add_member(&s.gw, ANN, &[]);
    let a = client();
    login_asked(&a, &gw, ANN).await;
    send_ok(&a, &gw, "email", ANN, RD).await;
    confirm_ok(&a, &gw, "email", &email_code(s, ANN, 1).await, RD).await;
    let page = contact_page(&a, &gw, RD).await;
    assert_eq!(page.state("email"), "confirmed");
    assert!(page.visible().contains("confirmed"), "{}", page.html);
    login_straight(&client(), &gw, ANN).await;
    assert_eq!(
        site.sms.calls().len(),
        0,
        "no SMS when the mobile is not asked"
    );
}
both_backends!(activation_goes_straight_in_without_the_mobile);

/// Over the device cap, the member who picks a device to replace is then sent to the
/// contact page (the campaign asks for the mobile), going on to where they were going.
async fn device_choice_step_leads_to_contact(backend: Backend) {
    let site = site(
        backend,
        "[sessions]\nmax_per_member = 1\non_overflow = \"choose\"\n",
    )
    .await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    campaign_start(&s.gw, &["--all", "--channels", "mobile"]).await;
    let laptop = client();
    login_asked(&laptop, &gw, ANN).await;

    let new = client_ua(UA_FIREFOX_LINUX);
    let location = login_to(&new, &gw, ANN, RD).await;
    assert_eq!(location, "/_vigile/verify");
    let code = code_for(s, ANN, 1).await;
    let resp = post_on(
        &new,
        &gw,
        "/_vigile/verify",
        "/_vigile/verify",
        &[("code", &code)],
    )
    .await;
    assert_eq!(
        redirect(resp).await,
        (303, "/_vigile/devices/choose".to_string())
    );
    let choose = page(&new, &gw, "/_vigile/devices/choose").await;
    let laptop_session = crate::common::http::session_row(&choose, |_| true);
    let resp = post_on(
        &new,
        &gw,
        "/_vigile/devices/choose",
        "/_vigile/devices/choose",
        &[("session", &laptop_session)],
    )
    .await;
    let (status, location) = redirect(resp).await;
    assert_eq!(status, 303, "{location}");
    assert!(
        Target::parse(&location).is_contact_for(RD),
        "the device step should lead to {CONTACT}?rd={RD}: {location}"
    );
    // Signed in, and never blocked: the course is served.
    assert_eq!(visit(&new, &gw, RD).await.0, 200);
}
both_backends!(device_choice_step_leads_to_contact);

/// Company registration and joining by invitation also open a session in a browser: with
/// the mobile asked, both land on the contact page (the email confirmed by their link),
/// going on to where they would have gone; without it, straight there.
async fn registration_and_joining_go_through_contact(backend: Backend) {
    use crate::orgs::{
        invite, join, join_link, sets_session, step1_ok, step3, step3_form, step_link, ACME,
        MEMBER, OWNER,
    };
    let site = site(
        backend,
        "[contact]\nrequire_confirmed = true\nask_mobile = true\n",
    )
    .await;
    let (s, gw) = (&site.s, site.gw());
    let owner = client();
    step1_ok(&owner, &gw, OWNER).await;
    let link = step_link(s, OWNER).await;
    let (form, _) = step3_form(&owner, &gw, &link, &ACME).await;
    let resp = step3(&owner, &gw, &form, PW).await;
    let signed_in = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert!(
        status == 303 && signed_in && Target::parse(&location).is_contact_for("/_vigile/org"),
        "registration with the mobile asked: {status} {location} (session: {signed_in})"
    );
    let page = contact_page(&owner, &gw, "/_vigile/org").await;
    assert_eq!(
        page.state("email"),
        "confirmed",
        "the step link proved the address"
    );
    assert_eq!(page.state("mobile"), "unconfirmed");

    let (status, _) = redirect(invite(&owner, &gw, MEMBER).await).await;
    assert_eq!(status, 303);
    let member = client();
    let resp = join(&member, &gw, &join_link(s, MEMBER).await).await;
    let signed_in = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert!(
        status == 303 && signed_in && Target::parse(&location).is_contact_for(WELCOME),
        "joining with the mobile asked: {status} {location} (session: {signed_in})"
    );
    let page = contact_page(&member, &gw, WELCOME).await;
    assert_eq!(
        page.state("email"),
        "confirmed",
        "the invitation proved the address"
    );
    assert_eq!(page.state("mobile"), "unconfirmed");
    for (who, via) in [(OWNER, "registration"), (MEMBER, "invitation")] {
        let show = user_show(&s.gw, who).await;
        assert!(
            show_line(&show, "email")
                .is_some_and(|l| l.contains("(confirmed") && l.contains(&format!("by {via}"))),
            "{show}"
        );
    }
}
both_backends!(registration_and_joining_go_through_contact);

async fn registration_and_joining_go_straight_in_without_the_mobile(backend: Backend) {
    use crate::orgs::{invite_and_join, register, ACME, MEMBER, OWNER};
    let site = site(
        backend,
        "[contact]\nrequire_confirmed = true\nask_mobile = false\n",
    )
    .await;
    let s = &site.s;
    // Both helpers assert the usual landing: /_vigile/org, /_vigile/account?welcome=1.
    let owner = client();
    register(s, &owner, OWNER, &ACME).await;
    invite_and_join(s, &owner, MEMBER).await;
}
both_backends!(registration_and_joining_go_straight_in_without_the_mobile);
