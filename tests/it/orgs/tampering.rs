//! What a person editing the forms by hand, or acting on another organisation, gets:
//! step 3 checks again what step 2 carried in hidden fields and never takes an address
//! from the form; joining takes the address from the invitation only; an organisation's
//! admins cannot touch another organisation's members; racing invitations never exceed
//! the seats; an invitation link lives `signup.invite_ttl` (planted with past instants).

use vigile::store::{OrgId, TokenHash};

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::{DAY, MINUTE, PW};
use crate::common::http::{client, get, submit};

async fn step3_rechecks_what_step2_carried(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let c = client();
    step1_ok(&c, &gw, OWNER).await;
    let link = step_link(&s, OWNER).await;
    let (form, _) = step3_form(&c, &gw, &link, &ACME).await;
    let person = [
        ("step", "3"),
        ("first_name", "Olga"),
        ("last_name", "Martin"),
        ("password", PW),
        ("confirm", PW),
        ("lang", "en"),
    ];
    // Hidden step-2 values changed by hand: refused, nothing created.
    for (name, value) in [
        ("id_number", BAD_SIRET),
        ("phone", "not a phone"),
        ("company", ""),
        ("id_type", "passport"),
    ] {
        let mut fields = person.to_vec();
        fields.push((name, value));
        let (status, page) = text(submit(&c, &gw, &form, &fields).await).await;
        assert_eq!(status, 400, "step 3 with {name}={value:?}:\n{page}");
    }
    let store = open_store(&s);
    assert!(store.org_list().await.unwrap().is_empty());

    // An address slipped into the form is not taken: the account is the link's address.
    let mut fields = person.to_vec();
    fields.push(("email", "victim@example.com"));
    assert_eq!(redirect(submit(&c, &gw, &form, &fields).await).await.0, 303);
    assert_eq!(api_me(&c, &gw).await["email"], OWNER);
    assert!(store
        .user_by_email("victim@example.com")
        .await
        .unwrap()
        .is_none());
    let org = &store.org_list().await.unwrap()[0];
    assert_eq!(org.profile.phone, PHONE_E164);
    assert_eq!(org.profile.company, COMPANY);
}
both_backends!(step3_rechecks_what_step2_carried);

async fn joining_takes_the_address_from_the_invitation(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let owner = client();
    register(&s, &owner, OWNER, &ACME).await;
    assert_eq!(invite(&owner, &gw, MEMBER).await.status(), 303);
    let link = join_link(&s, MEMBER).await;
    let c = client();
    let page = crate::common::http::get_page(&c, &link).await;
    let form = crate::common::http::form_with_action(&page, "/_vigile/org/join").unwrap();
    let fields = [
        ("email", "victim@example.com"),
        ("first_name", "Mia"),
        ("last_name", "Lopez"),
        ("password", PW),
        ("confirm", PW),
        ("lang", "en"),
    ];
    assert_eq!(redirect(submit(&c, &gw, &form, &fields).await).await.0, 303);
    assert_eq!(api_me(&c, &gw).await["email"], MEMBER);
    let store = open_store(&s);
    assert!(store
        .user_by_email("victim@example.com")
        .await
        .unwrap()
        .is_none());
}
both_backends!(joining_takes_the_address_from_the_invitation);

/// Two organisations: everything Acme's super-admin posts about Globex's people is
/// refused and changes nothing there.
async fn another_organisations_members_are_out_of_reach(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let acme = client();
    register(&s, &acme, OWNER, &ACME).await;
    let globex_owner = "hank@globex.example";
    let globex = client();
    let globex_company = Company {
        company: "Globex Services",
        ..ACME
    };
    register(&s, &globex, globex_owner, &globex_company).await;
    let worker = "gus@globex.example";
    let gus = invite_and_join(&s, &globex, worker).await;
    assert_eq!(
        invite(&globex, &gw, "pending@globex.example")
            .await
            .status(),
        303
    );
    let page = org_page(&globex, &gw).await;
    let (boss_id, gus_id) = (
        member_row(&page, globex_owner).id,
        member_row(&page, worker).id,
    );

    for (action, fields) in [
        (
            "/_vigile/org/role",
            vec![("user", gus_id.as_str()), ("role", "admin")],
        ),
        ("/_vigile/org/transfer", vec![("user", gus_id.as_str())]),
        ("/_vigile/org/remove", vec![("user", gus_id.as_str())]),
        ("/_vigile/org/remove", vec![("user", boss_id.as_str())]),
    ] {
        let resp = forged_post(&acme, &gw, action, &fields).await;
        assert_eq!(
            resp.status(),
            403,
            "{action} {fields:?} from another organisation"
        );
    }
    // Cancelling "their" invitation: whatever the answer, Globex's stays.
    forged_post(
        &acme,
        &gw,
        "/_vigile/org/invite/cancel",
        &[("email", "pending@globex.example")],
    )
    .await;

    let page = org_page(&globex, &gw).await;
    assert_eq!(member_row(&page, worker).role, "member");
    assert_eq!(member_row(&page, globex_owner).role, "org-super-admin");
    assert_eq!(invite_rows(&page), ["pending@globex.example"]);
    seen_upstream(&s, &gus, &gw, "/courses/1").await;
    assert_eq!(member_rows(&org_page(&acme, &gw).await).len(), 1);
}
both_backends!(another_organisations_members_are_out_of_reach);

/// Ten invitations posted at once with two seats left: two are sent, eight refused.
async fn racing_invitations_never_exceed_the_seats(backend: Backend) {
    let s = backend.stack("[orgs]\ndefault_seats = 3\n").await;
    let gw = s.gw.url();
    let owner = client();
    register(&s, &owner, OWNER, &ACME).await;
    let page = org_page(&owner, &gw).await;
    let form = crate::common::http::form_with_action(&page, "/_vigile/org/invite").unwrap();
    let posts: Vec<_> = (0..10)
        .map(|i| {
            let (owner, gw, form) = (owner.clone(), gw.clone(), form.clone());
            tokio::spawn(async move {
                let email = format!("racer{i}@example.com");
                let resp = submit(&owner, &gw, &form, &[("email", &email)]).await;
                (resp.status().as_u16(), email)
            })
        })
        .collect();
    let mut invited = Vec::new();
    let mut statuses = Vec::new();
    for p in posts {
        let (status, email) = p.await.unwrap();
        statuses.push(status);
        if status == 303 {
            invited.push(email);
        }
    }
    statuses.sort_unstable();
    let mut expected = vec![303; 2];
    expected.extend([409; 8]);
    assert_eq!(statuses, expected);
    let mut rows = invite_rows(&org_page(&owner, &gw).await);
    rows.sort();
    invited.sort();
    assert_eq!(rows, invited);
    for email in &invited {
        join_link(&s, email).await;
    }
    s.outbox_drained().await;
    let sent: usize = (0..10)
        .map(|i| s.smtp.count_to(&format!("racer{i}@example.com")))
        .sum();
    assert_eq!(sent, 2, "invitations mailed");
}
both_backends!(racing_invitations_never_exceed_the_seats);

async fn join_link_expires_after_invite_ttl(backend: Backend) {
    let s = backend.stack("[signup]\ninvite_ttl = \"3d\"\n").await;
    let gw = s.gw.url();
    let owner = client();
    let org = register(&s, &owner, OWNER, &ACME).await;
    let before = vigile::clock::now_ms();
    assert_eq!(invite(&owner, &gw, MEMBER).await.status(), 303);
    let after = vigile::clock::now_ms();
    join_link(&s, MEMBER).await;
    let store = open_store(&s);
    let org_id = OrgId::from_string(org);
    let issued = store
        .org_invites(&org_id, after)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.email == MEMBER)
        .expect("the invitation is stored");
    assert!(
        (before + 3 * DAY..=after + 3 * DAY).contains(&issued.expires_at),
        "the invitation lasts {} ms, not 3 days",
        issued.expires_at - before
    );

    // Copies for other addresses, a minute past their end and a minute before.
    let copy = |email: &'static str, expires_at: i64| {
        let (store, issued) = (store.clone(), issued.clone());
        async move {
            let token = vigile::crypto::random_token(32);
            let invite = vigile::store::OrgInvite {
                email: email.into(),
                token_hash: TokenHash::of(&token),
                expires_at,
                ..issued
            };
            store
                .org_invite(&invite, 25, vigile::clock::now_ms())
                .await
                .unwrap();
            token
        }
    };
    let stale = copy("late@example.com", vigile::clock::now_ms() - MINUTE).await;
    let stale_link = format!("{gw}{JOIN_LINK}{stale}");
    let (status, body) = text(get(&client(), &stale_link, true).await).await;
    assert_eq!(
        status, 410,
        "an expired invitation opened the form:\n{body}"
    );
    // Posted through a live link's form with the expired token: gone too.
    let live = copy("intime@example.com", vigile::clock::now_ms() + MINUTE).await;
    let live_link = format!("{gw}{JOIN_LINK}{live}");
    let c = client();
    let page = crate::common::http::get_page(&c, &live_link).await;
    let form = crate::common::http::form_with_action(&page, "/_vigile/org/join").unwrap();
    let fields = [
        ("token", stale.as_str()),
        ("first_name", "Late"),
        ("last_name", "Comer"),
        ("password", PW),
        ("confirm", PW),
        ("lang", "en"),
    ];
    assert_eq!(submit(&c, &gw, &form, &fields).await.status(), 410);
    assert!(store
        .user_by_email("late@example.com")
        .await
        .unwrap()
        .is_none());
    // The control: the live copy joins.
    assert_eq!(
        redirect(join(&client(), &gw, &live_link).await).await.0,
        303
    );
}
both_backends!(join_link_expires_after_invite_ttl);
