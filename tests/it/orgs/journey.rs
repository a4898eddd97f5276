//! The registration journey: the three steps with the link from the mail, landing signed
//! in on the organisation page with the identity sent upstream; the step link's single
//! use and lifetime (planted with past instants, no sleeping); French; closed
//! registration.

use vigile::store::{TokenHash, TokenKind, TokenRecord};

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::{HOUR, MINUTE, PW};
use crate::common::http::{self, client, get, get_page, login_ok, submit};

async fn three_steps_create_the_org_and_sign_in(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let store = open_store(&s);
    let c = client();

    // Step 1: the page says to look in the inbox and in the spam folder; nothing exists yet.
    let (status, body) = text(step1(&c, &gw, OWNER, OWNER).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("spam"),
        "no word about the spam folder:\n{body}"
    );
    assert!(
        store.user_list().await.unwrap().is_empty(),
        "an account at step 1"
    );
    assert!(
        store.org_list().await.unwrap().is_empty(),
        "an org at step 1"
    );
    let mail = s.smtp.wait_for_to(OWNER, STEP_SUBJECT).await;
    let link = mail.link_containing(STEP_LINK);
    assert!(link.starts_with(&format!("{gw}{STEP_LINK}")), "{link}");

    // Step 2 in another browser (the mail read on a phone).
    let phone = client();
    let page = get_page(&phone, &link).await;
    let inside = form_html(&page, "/_vigile/register");
    for name in [
        "company",
        "id_type",
        "id_number",
        "phone",
        "address",
        "token",
    ] {
        assert!(
            inside.contains(&format!("name=\"{name}\"")),
            "no {name}:\n{page}"
        );
    }
    let (form, page) = step3_form(&phone, &gw, &link, &ACME).await;

    // Step 3: the address shown (it is the login), never a field that is posted.
    assert!(page.contains(OWNER), "the address is not shown:\n{page}");
    let inside = form_html(&page, "/_vigile/register");
    assert!(
        !inside.contains("name=\"email\""),
        "an email field:\n{inside}"
    );
    for name in [
        "first_name",
        "last_name",
        "password",
        "confirm",
        "lang",
        "token",
    ] {
        assert!(
            inside.contains(&format!("name=\"{name}\"")),
            "no {name}:\n{page}"
        );
    }
    assert!(
        store.org_list().await.unwrap().is_empty(),
        "an org before step 3"
    );

    // "Sign in": the organisation page, signed in.
    let resp = step3(&phone, &gw, &form, PW).await;
    let signed_in = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert_eq!(
        (status, location.as_str(), signed_in),
        (303, "/_vigile/org", true)
    );
    let page = http::decode_entities(&org_page(&phone, &gw).await);
    for shown in [COMPANY, PHONE_E164, ADDRESS, OWNER] {
        assert!(
            page.contains(shown),
            "{shown:?} not on the org page:\n{page}"
        );
    }
    assert!(
        squeeze(&page).contains("73282932000074"),
        "no SIRET:\n{page}"
    );
    assert!(
        squeeze(&page).contains("1of25seatsused"),
        "no seats line:\n{page}"
    );
    assert_eq!(member_row(&page, OWNER).role, "org-super-admin");

    // The identity: api/me, and the headers the upstream gets.
    let me = api_me(&phone, &gw).await;
    let org = me["org"]
        .as_str()
        .unwrap_or_else(|| panic!("{me}"))
        .to_string();
    assert_eq!(me["org_role"], "org-super-admin", "{me}");
    assert_eq!(me["email"], OWNER, "{me}");
    let seen = seen_upstream(&s, &phone, &gw, "/courses/1").await;
    assert_eq!(seen.header("remote-org"), Some(org.as_str()));
    assert_eq!(seen.header_all("remote-org").len(), 1);
    assert_eq!(seen.header_all("remote-groups"), ["member,org-super-admin"]);
    assert_eq!(seen.header("remote-email"), Some(OWNER));

    // The operator's view, and a normal sign-in with the password chosen.
    let lines = org_list_lines(&s, &org).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(COMPANY) && lines[0].contains(OWNER),
        "{lines:?}"
    );
    login_ok(&client(), &gw, OWNER, PW).await;
}
both_backends!(three_steps_create_the_org_and_sign_in);

async fn step_link_is_single_use(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let c = client();
    step1_ok(&c, &gw, OWNER).await;
    let link = step_link(&s, OWNER).await;
    let (form, _) = step3_form(&c, &gw, &link, &ACME).await;
    assert_eq!(redirect(step3(&c, &gw, &form, PW).await).await.0, 303);

    // The same step 3 again, from this browser and from another one: gone.
    let (status, body) = text(step3(&c, &gw, &form, PW).await).await;
    assert_eq!(status, 410, "second use of the link:\n{body}");
    let other = client();
    let csrf = http::csrf_from(&get_page(&other, &format!("{gw}/_vigile/register")).await);
    let resp = submit(
        &other,
        &gw,
        &form,
        &[
            ("csrf", &csrf),
            ("step", "3"),
            ("first_name", "Eve"),
            ("last_name", "Other"),
            ("password", PW),
            ("confirm", PW),
            ("lang", "en"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 410, "replayed from another browser");
    // The link itself: a clear page leading back to step 1.
    let (status, body) = text(get(&client(), &link, true).await).await;
    assert_eq!(status, 410, "{body}");
    assert!(
        body.contains("\"/_vigile/register\""),
        "no way back:\n{body}"
    );
    // Step 2 with it: gone too.
    let page = get_page(&other, &format!("{gw}/_vigile/register")).await;
    let step1_form = http::form_with_action(&page, "/_vigile/register").unwrap();
    let token = link.split("token=").nth(1).unwrap();
    let mut fields = vec![("step", "2"), ("token", token)];
    fields.extend(ACME.fields());
    assert_eq!(
        submit(&other, &gw, &step1_form, &fields).await.status(),
        410
    );

    // One organisation, one account, with the first use's name.
    let store = open_store(&s);
    assert_eq!(store.org_list().await.unwrap().len(), 1);
    assert_eq!(org_list_lines(&s, COMPANY).await.len(), 1);
    assert_eq!(store.user_list().await.unwrap().len(), 1);
    let page = org_page(&c, &gw).await;
    assert!(
        !page.contains("Eve"),
        "the replay changed the account:\n{page}"
    );
}
both_backends!(step_link_is_single_use);

/// The mailed link lives `orgs.step_link_ttl` (set to 2 h here); a copy of it planted with
/// an end a minute ago is refused at step 2 and at step 3, a copy still valid for a
/// minute is not (the control, so the refusal is the expiry's doing).
async fn step_link_expires_after_step_link_ttl(backend: Backend) {
    let s = backend.stack("[orgs]\nstep_link_ttl = \"2h\"\n").await;
    let gw = s.gw.url();
    let store = open_store(&s);
    let c = client();
    let before = vigile::clock::now_ms();
    step1_ok(&c, &gw, OWNER).await;
    let link = step_link(&s, OWNER).await;
    let after = vigile::clock::now_ms();
    let token = link.split("token=").nth(1).unwrap();
    let issued = store
        .token_peek(TokenKind::OrgRegistration, &TokenHash::of(token), after)
        .await
        .unwrap()
        .expect("the mailed step link is stored");
    assert!(
        (before + 2 * HOUR..=after + 2 * HOUR).contains(&issued.expires_at),
        "the link expires {} ms after step 1, not 2 h",
        issued.expires_at - before
    );
    let copy = |expires_at: i64| {
        let (store, issued) = (store.clone(), issued.clone());
        async move {
            let token = vigile::crypto::random_token(32);
            store
                .token_insert(&TokenRecord {
                    hash: TokenHash::of(&token),
                    expires_at,
                    ..issued
                })
                .await
                .unwrap();
            token
        }
    };
    let stale = copy(vigile::clock::now_ms() - MINUTE).await;
    let (status, body) = text(
        get(
            &client(),
            &format!("{gw}/_vigile/register?token={stale}"),
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 410, "an expired link opened step 2:\n{body}");
    assert!(
        body.contains("\"/_vigile/register\""),
        "no way back:\n{body}"
    );

    // Step 3 reached with the live link, posted with the expired one: nothing created.
    let (form, _) = step3_form(&c, &gw, &link, &ACME).await;
    let stale_form = Form {
        hidden: form
            .hidden
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    if n == "token" {
                        stale.clone()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect(),
        ..form.clone()
    };
    assert_eq!(step3(&c, &gw, &stale_form, PW).await.status(), 410);
    assert!(store.org_list().await.unwrap().is_empty());

    // The control: a copy with a minute left opens step 2 and completes.
    let live = copy(vigile::clock::now_ms() + MINUTE).await;
    let live_link = format!("{gw}/_vigile/register?token={live}");
    let (form, _) = step3_form(&c, &gw, &live_link, &ACME).await;
    assert_eq!(redirect(step3(&c, &gw, &form, PW).await).await.0, 303);
    assert_eq!(store.org_list().await.unwrap().len(), 1);
}
both_backends!(step_link_expires_after_step_link_ttl);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn french_visitor_gets_french_page_and_mail() {
    let s = Backend::Sqlite.stack("").await;
    let gw = s.gw.url();
    let c = client();
    get(&c, &format!("{gw}/_vigile/lang/fr"), true).await;
    let (status, body) = text(step1(&c, &gw, OWNER, OWNER).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<html lang=\"fr\""), "not French:\n{body}");
    assert!(
        body.contains("courrier indésirable") || body.contains("spam"),
        "no word about the spam folder:\n{body}"
    );
    let mail = s
        .smtp
        .wait_for_to(OWNER, "Poursuivez l'inscription de votre entreprise")
        .await;
    mail.link_containing(STEP_LINK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_is_refused() {
    let s = Backend::Sqlite
        .stack("[orgs]\nregistration = \"closed\"\n")
        .await;
    let gw = s.gw.url();
    let c = client();
    let resp = get(&c, &format!("{gw}/_vigile/register"), true).await;
    assert_eq!(resp.status(), 403, "GET /_vigile/register while closed");
    let csrf = http::csrf_from(&get_page(&c, &format!("{gw}/_vigile/login")).await);
    let resp = http::post_form(
        &c,
        &format!("{gw}/_vigile/register"),
        &[
            ("csrf", &csrf),
            ("step", "1"),
            ("email", OWNER),
            ("email_confirm", OWNER),
        ],
    )
    .await;
    assert_eq!(resp.status(), 403);
    s.outbox_drained().await;
    assert_eq!(s.smtp.mails().len(), 0);
}
