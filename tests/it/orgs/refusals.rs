//! What each registration step refuses: the error shown next to the field it is about
//! (`.field-error` in that field's `.field` block, none in the others), every typed value
//! kept, nothing sent or created; the corrected form going through, the national phone
//! number stored as E.164. And a taken address: the same page as a new one, its owner
//! mailed instead, no link.

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::{ANN, PW};
use crate::common::http::{self, client, form_with_action, login_ok, submit};

const STEP2_FIELDS: [&str; 5] = ["company", "id_type", "id_number", "phone", "address"];

async fn step1_mismatch_is_named_next_to_the_confirmation(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let c = client();
    let typo = "olga@acme.exemple";
    let (status, page) = text(step1(&c, &gw, OWNER, typo).await).await;
    assert_eq!(status, 400, "{page}");
    assert_error_only_at(&page, "email_confirm", &["email"]);
    assert_kept(&page, "email", OWNER);
    assert_kept(&page, "email_confirm", typo);

    let (status, page) = text(step1(&c, &gw, "not-an-address", "not-an-address").await).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        error_next_to(&page, "email"),
        "{}",
        field_block(&page, "email")
    );
    assert_kept(&page, "email", "not-an-address");

    // Nothing was sent, nothing is stored.
    s.outbox_drained().await;
    assert_eq!(s.smtp.mails().len(), 0);
    assert!(open_store(&s).user_list().await.unwrap().is_empty());

    // The control: corrected on the refused page itself, it goes through.
    let form = form_with_action(&page, "/_vigile/register").unwrap();
    let resp = submit(
        &c,
        &gw,
        &form,
        &[("step", "1"), ("email", OWNER), ("email_confirm", OWNER)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    step_link(&s, OWNER).await;
}
both_backends!(step1_mismatch_is_named_next_to_the_confirmation);

async fn step2_refusals_name_their_field_and_keep_input(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let c = client();
    step1_ok(&c, &gw, OWNER).await;
    let link = step_link(&s, OWNER).await;

    let bad_siret = Company {
        id_number: BAD_SIRET,
        ..ACME
    };
    let bad_vat = Company {
        id_type: "vat",
        id_number: "FR1234",
        ..ACME
    };
    let bad_phone = Company {
        phone: "06 12",
        ..ACME
    };
    let mut last = String::new();
    for (what, typed, field) in [
        ("a SIRET whose Luhn key fails", bad_siret, "id_number"),
        ("a VAT number of no country's shape", bad_vat, "id_number"),
        ("a phone number that is none", bad_phone, "phone"),
    ] {
        let (status, page) = text(step2(&c, &gw, &link, &typed).await).await;
        assert_eq!(status, 400, "{what}:\n{page}");
        let others: Vec<&str> = STEP2_FIELDS
            .iter()
            .copied()
            .filter(|f| *f != field && *f != "id_type")
            .collect();
        assert_error_only_at(&page, field, &others);
        for (name, value) in typed.fields() {
            assert_kept(&page, name, value);
        }
        last = page;
    }
    assert!(open_store(&s).org_list().await.unwrap().is_empty());

    // Corrected on the last refused page: a valid VAT number and a national phone number.
    let form = form_with_action(&last, "/_vigile/register").unwrap();
    let good = Company {
        id_type: "vat",
        id_number: VAT,
        ..ACME
    };
    let mut fields = vec![("step", "2")];
    fields.extend(good.fields());
    let (status, page) = text(submit(&c, &gw, &form, &fields).await).await;
    assert_eq!(status, 200, "{page}");
    let form3 = form_with_action(&page, "/_vigile/register").unwrap();

    // Step 3 refuses a weak password and keeps the names, not the password.
    let resp = submit(
        &c,
        &gw,
        &form3,
        &[
            ("step", "3"),
            ("first_name", "Olga"),
            ("last_name", "Martin"),
            ("password", "weak"),
            ("confirm", "weak"),
            ("lang", "en"),
        ],
    )
    .await;
    let (status, page) = text(resp).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("At least 10 characters"), "{page}");
    assert!(
        page.contains("value=\"Olga\"") && page.contains("value=\"Martin\""),
        "names lost:\n{page}"
    );
    assert!(
        !page.contains("value=\"weak\""),
        "the password kept:\n{page}"
    );
    let form = form_with_action(&page, "/_vigile/register").unwrap();
    let (status, location) = redirect(step3(&c, &gw, &form, PW).await).await;
    assert_eq!((status, location.as_str()), (303, "/_vigile/org"));

    // Stored as typed once at the edge: E.164, the VAT number.
    let page = http::decode_entities(&org_page(&c, &gw).await);
    assert!(page.contains(PHONE_E164), "no {PHONE_E164}:\n{page}");
    assert!(squeeze(&page).contains(VAT), "no {VAT}:\n{page}");
    let orgs = open_store(&s).org_list().await.unwrap();
    assert_eq!(orgs[0].profile.phone, PHONE_E164);
}
both_backends!(step2_refusals_name_their_field_and_keep_input);

/// The page with the address (and any CSRF token) blanked, to compare two visitors' pages.
fn blank(page: &str, email: &str) -> String {
    let mut out = page
        .replace(email, "ADDRESS")
        .replace(&email.replace('@', "%40"), "ADDRESS");
    for (name, value) in http::hidden_inputs(page) {
        if name == "csrf" && !value.is_empty() {
            out = out.replace(&value, "CSRF");
        }
    }
    out
}

async fn taken_address_reveals_nothing_and_mails_the_owner(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    register(&s, &client(), OWNER, &ACME).await;
    let fresh = "newcomer@example.com";
    let (fresh_status, fresh_page) = text(step1(&client(), &gw, fresh, fresh).await).await;
    assert_eq!(fresh_status, 200);

    // An active member, an organisation's super-admin: the same answer as a new address.
    for taken in [ANN, OWNER] {
        let (status, page) = text(step1(&client(), &gw, taken, taken).await).await;
        assert_eq!(status, fresh_status, "{taken}:\n{page}");
        assert_eq!(
            blank(&page, taken),
            blank(&fresh_page, fresh),
            "{taken}: the page differs from a new address's"
        );
    }

    // Their owners are told, and are sent no link; the new address gets its link.
    for taken in [ANN, OWNER] {
        let told = s.smtp.wait_for_to(taken, TAKEN_SUBJECT).await;
        assert!(
            !told.text.contains(STEP_LINK),
            "a step link in:\n{}",
            told.text
        );
    }
    step_link(&s, fresh).await;
    s.outbox_drained().await;
    let links_to = |to: &str| {
        s.smtp
            .mails()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == to) && m.text.contains(STEP_LINK))
            .count()
    };
    assert_eq!(links_to(ANN), 0, "a step link to the member");
    assert_eq!(
        links_to(OWNER),
        1,
        "only the link of the owner's own registration"
    );
    let warnings = |to: &str| {
        s.smtp
            .mails()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == to) && m.subject.contains(TAKEN_SUBJECT))
            .count()
    };
    assert_eq!((warnings(ANN), warnings(OWNER), warnings(fresh)), (1, 1, 0));

    // Nothing changed for them.
    login_ok(&client(), &gw, ANN, PW).await;
    assert_eq!(open_store(&s).org_list().await.unwrap().len(), 1);
}
both_backends!(taken_address_reveals_nothing_and_mails_the_owner);
