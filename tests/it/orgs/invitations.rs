//! Invitations: the mail, the join link setting a password and signing in with the
//! organisation, single use; seats (pending invitations count, over them 409 and nothing
//! sent, set by the CLI and by the site admin page); an address that has an account; the
//! site admin's view of organisations.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::http::{client, get, get_page, login_ok};
use crate::devices::post_on;

async fn invited_member_joins_signed_in_with_the_org(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let owner = client();
    let org = register(&s, &owner, OWNER, &ACME).await;

    // Invited with a capital or two: one pending row, a seat taken.
    let (status, location) = redirect(invite(&owner, &gw, "Mia@Acme.example").await).await;
    assert_eq!((status, location.as_str()), (303, "/_vigile/org"));
    let page = org_page(&owner, &gw).await;
    assert_eq!(invite_rows(&page), [MEMBER], "{page}");
    assert!(squeeze(&page).contains("2of25seatsused"), "{page}");

    let mail = s
        .smtp
        .wait_for_to(MEMBER, &format!("{INVITE_SUBJECT} {COMPANY}"))
        .await;
    let link = mail.link_containing(JOIN_LINK);
    assert!(link.starts_with(&format!("{gw}{JOIN_LINK}")), "{link}");

    // The link opens the form: the address shown, not posted.
    let c = client();
    let page = get_page(&c, &link).await;
    assert!(page.contains(MEMBER), "{page}");
    let inside = form_html(&page, "/_vigile/org/join");
    assert!(!inside.contains("name=\"email\""), "{inside}");
    for name in ["first_name", "last_name", "password", "confirm", "lang"] {
        assert!(
            inside.contains(&format!("name=\"{name}\"")),
            "no {name}:\n{inside}"
        );
    }
    let resp = join(&c, &gw, &link).await;
    let signed_in = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert_eq!(
        (status, location.as_str(), signed_in),
        (303, "/_vigile/account?welcome=1", true)
    );
    assert_eq!(
        identity(&s, &c, &gw, "/courses/1").await,
        (Some("member".into()), Some(org.clone()))
    );
    let me = api_me(&c, &gw).await;
    assert_eq!(
        (me["org"].as_str(), me["org_role"].as_str()),
        (Some(org.as_str()), Some("member"))
    );

    // The owner's page: a member now, no pending invitation; the link is spent.
    let page = org_page(&owner, &gw).await;
    assert!(invite_rows(&page).is_empty(), "{page}");
    assert_eq!(member_row(&page, MEMBER).role, "member");
    assert_eq!(get(&client(), &link, true).await.status(), 410);
    login_ok(&client(), &gw, MEMBER, PW).await;
}
both_backends!(invited_member_joins_signed_in_with_the_org);

async fn invitations_beyond_the_seats_are_refused(backend: Backend) {
    let s = backend.stack("[orgs]\ndefault_seats = 5\n").await;
    let gw = s.gw.url();
    s.gw.add_user(BOSS, PW, true);
    let owner = client();
    let org = register(&s, &owner, OWNER, &ACME).await;
    assert!(squeeze(&org_page(&owner, &gw).await).contains("1of5seatsused"));
    s.gw.cli_ok(&["org", "set", &org, "--seats", "2"], None);
    assert!(squeeze(&org_page(&owner, &gw).await).contains("1of2seatsused"));

    // The pending invitation takes the last seat; the next is refused, nothing sent.
    let (a, b) = ("amy@example.com", "bob@example.com");
    assert_eq!(redirect(invite(&owner, &gw, a).await).await.0, 303);
    let (status, body) = text(invite(&owner, &gw, b).await).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_lowercase().contains("seat"),
        "no word about seats:\n{body}"
    );
    let a_link = join_link(&s, a).await;
    s.outbox_drained().await;
    assert_eq!(
        s.smtp.count_to(b),
        0,
        "an invitation over the seats was sent"
    );
    let page = org_page(&owner, &gw).await;
    assert_eq!(invite_rows(&page), [a], "{page}");
    assert!(squeeze(&page).contains("2of2seatsused"), "{page}");
    let mut later = Deferred::default();
    let billing = get_page(&owner, &format!("{gw}/_vigile/org/billing")).await;
    later.check(
        billing_says(&billing, 2, 2),
        format!("billing: no \"2 / 2 seats used\":\n{billing}"),
    );

    // Cancelling frees the seat and kills the link.
    let cancel = org_post(&owner, &gw, "/_vigile/org/invite/cancel", &[("email", a)]).await;
    assert_eq!(redirect(cancel).await.0, 303);
    let page = org_page(&owner, &gw).await;
    assert!(invite_rows(&page).is_empty(), "{page}");
    assert!(squeeze(&page).contains("1of2seatsused"), "{page}");
    assert_eq!(get(&client(), &a_link, true).await.status(), 410);

    // The site admin gives three seats and a plan on the organisation's admin page.
    assert_eq!(redirect(invite(&owner, &gw, a).await).await.0, 303);
    assert_eq!(invite(&owner, &gw, b).await.status(), 409);
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let resp = post_on(
        &admin,
        &gw,
        &format!("/_vigile/admin/org?id={org}"),
        "/_vigile/admin/org",
        &[("seats", "3"), ("plan", "Team"), ("max_devices", "")],
    )
    .await;
    assert_eq!(
        resp.status(),
        303,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(redirect(invite(&owner, &gw, b).await).await.0, 303);
    join_link(&s, b).await;
    let billing = get_page(&owner, &format!("{gw}/_vigile/org/billing")).await;
    assert!(billing.contains("Team"), "no plan name:\n{billing}");
    later.check(
        billing_says(&billing, 3, 3),
        format!("billing: no \"3 / 3 seats used\":\n{billing}"),
    );

    // Back to the default from the CLI.
    s.gw.cli_ok(&["org", "set", &org, "--seats", "default"], None);
    assert!(squeeze(&org_page(&owner, &gw).await).contains("3of5seatsused"));
    later.assert_none();
}
both_backends!(invitations_beyond_the_seats_are_refused);

async fn inviting_an_existing_account_tells_its_owner(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let owner = client();
    register(&s, &owner, OWNER, &ACME).await;

    // The same answer as for a new address.
    assert_eq!(
        redirect(invite(&owner, &gw, ANN).await).await,
        (303, "/_vigile/org".into())
    );
    assert_eq!(invite_rows(&org_page(&owner, &gw).await), [ANN]);
    let told = s
        .smtp
        .wait_for(&format!("a mail to {ANN}"), |m| {
            m.to.iter().any(|t| t == ANN)
        })
        .await;
    assert!(
        !told.text.contains(JOIN_LINK),
        "a join link:\n{}",
        told.text
    );
    s.outbox_drained().await;
    assert!(
        s.smtp
            .mails()
            .iter()
            .all(|m| !(m.to.iter().any(|t| t == ANN) && m.text.contains(JOIN_LINK))),
        "a join link was sent to an existing account"
    );
    // Her account is untouched, in no organisation.
    let ann = client();
    login_ok(&ann, &gw, ANN, PW).await;
    let me = api_me(&ann, &gw).await;
    assert!(me["org"].is_null() && me["org_role"].is_null(), "{me}");
}
both_backends!(inviting_an_existing_account_tells_its_owner);

async fn site_admin_sees_and_sets_organisations(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(BOSS, PW, true);
    let owner = client();
    let org = register(&s, &owner, OWNER, &ACME).await;
    invite_and_join(&s, &owner, MEMBER).await;
    let globex = Company {
        company: "Globex Services",
        ..ACME
    };
    let other = register(&s, &client(), "hank@globex.example", &globex).await;

    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let page = get_page(&admin, &format!("{gw}/_vigile/admin/orgs")).await;
    let rows = org_rows(&page);
    assert_eq!(rows.len(), 2, "{page}");
    let acme = &rows
        .iter()
        .find(|(id, _)| *id == org)
        .expect("ACME's row")
        .1;
    assert!(acme.contains(COMPANY) && acme.contains(OWNER), "{acme}");
    assert!(squeeze(acme).contains("2/25"), "seats used / seats: {acme}");
    assert!(rows
        .iter()
        .any(|(id, t)| *id == other && t.contains("Globex Services")));

    let show = s.gw.cli_ok(&["org", "show", &org], None);
    assert!(show.contains(COMPANY) && show.contains(OWNER), "{show}");

    // Seats, plan and device cap set on the organisation's page.
    let org_admin_page = format!("/_vigile/admin/org?id={org}");
    let page = get_page(&admin, &format!("{gw}{org_admin_page}")).await;
    assert!(page.contains(COMPANY), "{page}");
    let fields = [("seats", "7"), ("plan", "Pro"), ("max_devices", "2")];
    let resp = post_on(&admin, &gw, &org_admin_page, "/_vigile/admin/org", &fields).await;
    assert_eq!(
        resp.status(),
        303,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let show = s.gw.cli_ok(&["org", "show", &org], None);
    assert!(show.contains("Pro"), "{show}");
    let page = get_page(&admin, &format!("{gw}/_vigile/admin/orgs")).await;
    let acme = org_rows(&page)
        .into_iter()
        .find(|(id, _)| *id == org)
        .unwrap()
        .1;
    assert!(squeeze(&acme).contains("2/7"), "{acme}");

    // Not for the organisation's own super-admin.
    let resp = get(&owner, &format!("{gw}{org_admin_page}"), true).await;
    assert_eq!(resp.status(), 403);
}
both_backends!(site_admin_sees_and_sets_organisations);
