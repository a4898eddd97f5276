//! Who may do what in an organisation: the super-admin's pages refused (403) to an org
//! admin and to a plain member, with their own valid CSRF token, changing nothing;
//! promotion seen by a second instance; the super-admin role handed over (always exactly
//! one); a member removed, signed out at once on every instance, the account gone.

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::{ANN, PW};
use crate::common::http::{self, client, get, get_page, header, login, login_ok};
use crate::common::poll_until;

/// Tries ([`crate::common::POLL_INTERVAL`] apart) for another instance to see a change:
/// the session cache's lifetime, under a second.
const OTHER_INSTANCE_TRIES: u32 = 20;

async fn super_admin_only_pages_refuse_org_admins_and_members(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let t = team(&s).await;
    let billing = format!("{gw}/_vigile/org/billing");

    // What each one's organisation page offers.
    let page = org_page(&t.owner, &gw).await;
    assert!(page.contains("action=\"/_vigile/org/profile\""), "{page}");
    assert_eq!(member_rows(&page).len(), 3, "{page}");
    assert!(squeeze(&page).contains("3of25seatsused"), "{page}");
    let page = org_page(&t.admin, &gw).await;
    assert!(page.contains(COMPANY), "{page}");
    assert_eq!(
        member_rows(&page).len(),
        3,
        "the org admin sees the members"
    );
    assert!(!page.contains("action=\"/_vigile/org/profile\""), "{page}");
    let page = org_page(&t.member, &gw).await;
    assert!(
        page.contains(COMPANY),
        "the member sees the profile:\n{page}"
    );
    assert!(
        member_rows(&page).is_empty(),
        "a member sees the list:\n{page}"
    );
    for action in ["/_vigile/org/profile", "/_vigile/org/invite"] {
        assert!(!page.contains(&format!("action=\"{action}\"")), "{page}");
    }

    // Billing and the super-admin's forms, refused to the org admin and to the member.
    let hijack = [
        ("company", "Hijacked Ltd"),
        ("id_type", "siret"),
        ("id_number", SIRET),
        ("phone", PHONE),
        ("address", ADDRESS),
    ];
    for (who, c, own_id) in [
        ("org admin", &t.admin, &t.admin_id),
        ("member", &t.member, &t.member_id),
    ] {
        let (status, body) = text(get(c, &billing, true).await).await;
        assert_eq!(status, 403, "billing for the {who}:\n{body}");
        assert!(!squeeze(&body).contains("seatsused"), "{who}: {body}");
        let role = [("user", t.member_id.as_str()), ("role", "admin")];
        let transfer = [("user", own_id.as_str())];
        for (action, fields) in [
            ("/_vigile/org/profile", &hijack[..]),
            ("/_vigile/org/role", &role[..]),
            ("/_vigile/org/transfer", &transfer[..]),
        ] {
            let (status, body) = text(forged_post(c, &gw, action, fields).await).await;
            assert_eq!(status, 403, "POST {action} by the {who}:\n{body}");
        }
    }
    // A member cannot invite; an org admin can (so the forged posts were well formed).
    let fields = [("email", "eve@example.com")];
    let resp = forged_post(&t.member, &gw, "/_vigile/org/invite", &fields).await;
    assert_eq!(resp.status(), 403, "invite by a member");
    let (status, _) = redirect(invite(&t.admin, &gw, "ivy@example.com").await).await;
    assert_eq!(status, 303, "invite by the org admin");
    join_link(&s, "ivy@example.com").await;
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to("eve@example.com"), 0);

    // Nothing changed: the profile, the roles.
    let page = org_page(&t.owner, &gw).await;
    assert!(
        page.contains(COMPANY) && !page.contains("Hijacked"),
        "{page}"
    );
    let roles: Vec<(String, String)> = member_rows(&page)
        .into_iter()
        .map(|r| (r.id, r.role))
        .collect();
    for (id, role) in [
        (&t.owner_id, "org-super-admin"),
        (&t.admin_id, "org-admin"),
        (&t.member_id, "member"),
    ] {
        assert!(
            roles.contains(&(id.clone(), role.into())),
            "{id} {role}: {roles:?}"
        );
    }

    // The super-admin: billing (3 members and the pending invitation), the profile form
    // with step 2's checks.
    let mut later = Deferred::default();
    let body = get_page(&t.owner, &billing).await;
    later.check(
        billing_says(&body, 4, 25),
        format!("billing: no \"4 / 25 seats used\":\n{body}"),
    );
    let bad = [("id_number", BAD_SIRET)];
    let mut fields = hijack.to_vec();
    fields.retain(|(n, _)| *n != "id_number");
    fields.extend(bad);
    fields[0].1 = "Acme Formation SAS";
    let (status, page) = text(org_post(&t.owner, &gw, "/_vigile/org/profile", &fields).await).await;
    assert_eq!(status, 400, "{page}");
    assert_error_only_at(&page, "id_number", &["company", "phone", "address"]);
    assert_kept(&page, "company", "Acme Formation SAS");
    assert_kept(&page, "id_number", BAD_SIRET);
    let fields = [
        ("company", "Acme Formation SAS"),
        ("id_type", "siret"),
        ("id_number", SIRET),
        ("phone", "01 23 45 67 89"),
        ("address", ADDRESS),
    ];
    let (status, location) =
        redirect(org_post(&t.owner, &gw, "/_vigile/org/profile", &fields).await).await;
    assert_eq!((status, location.as_str()), (303, "/_vigile/org"));
    let page = http::decode_entities(&org_page(&t.member, &gw).await);
    assert!(
        page.contains("Acme Formation SAS") && page.contains("+33123456789"),
        "{page}"
    );

    // No organisation: 403; no session: sent to sign in.
    s.gw.add_user(ANN, PW, false);
    let ann = client();
    login_ok(&ann, &gw, ANN, PW).await;
    let org_url = format!("{gw}/_vigile/org");
    assert_eq!(get(&ann, &org_url, true).await.status(), 403);
    let resp = get(&client(), &org_url, true).await;
    assert_eq!(resp.status(), 302);
    assert!(header(&resp, "location")
        .unwrap_or_default()
        .starts_with("/_vigile/login"));
    later.assert_none();
}
both_backends!(super_admin_only_pages_refuse_org_admins_and_members);

async fn promotion_is_seen_by_a_second_instance(backend: Backend) {
    let s = backend.stack("").await;
    let second = s.second_instance("").await;
    let (gw1, gw2) = (s.gw.url(), second.url());
    let owner = client();
    let org = register(&s, &owner, OWNER, &ACME).await;
    invite_and_join(&s, &owner, MEMBER).await;
    let on_two = client();
    login_ok(&on_two, &gw2, MEMBER, PW).await;
    assert_eq!(
        identity(&s, &on_two, &gw2, "/courses/1").await,
        (Some("member".into()), Some(org.clone()))
    );
    assert!(member_rows(&org_page(&on_two, &gw2).await).is_empty());

    let id = member_row(&org_page(&owner, &gw1).await, MEMBER).id;
    let role = |to: &'static str| {
        let (owner, gw1, id) = (&owner, &gw1, &id);
        async move {
            let fields = [("user", id.as_str()), ("role", to)];
            redirect(org_post(owner, gw1, "/_vigile/org/role", &fields).await).await
        }
    };
    assert_eq!(role("admin").await, (303, "/_vigile/org".into()));
    poll_until(
        "the promotion seen by the second instance",
        OTHER_INSTANCE_TRIES,
        || async {
            identity(&s, &on_two, &gw2, "/courses/2").await.0.as_deref() == Some("member,org-admin")
        },
    )
    .await;
    let page = org_page(&on_two, &gw2).await;
    assert_eq!(
        member_rows(&page).len(),
        2,
        "the promoted member sees the list:\n{page}"
    );
    assert_eq!(member_row(&page, MEMBER).role, "org-admin");
    assert_eq!(api_me(&on_two, &gw2).await["org_role"], "org-admin");

    // Demoted again: back to a plain member, there too.
    assert_eq!(role("member").await.0, 303);
    poll_until(
        "the demotion seen by the second instance",
        OTHER_INSTANCE_TRIES,
        || async { identity(&s, &on_two, &gw2, "/courses/3").await.0.as_deref() == Some("member") },
    )
    .await;
    assert!(member_rows(&org_page(&on_two, &gw2).await).is_empty());
}
both_backends!(promotion_is_seen_by_a_second_instance);

async fn transfer_leaves_exactly_one_super_admin(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let t = team(&s).await;
    let fields = [("user", t.member_id.as_str())];
    let (status, location) =
        redirect(org_post(&t.owner, &gw, "/_vigile/org/transfer", &fields).await).await;
    assert_eq!((status, location.as_str()), (303, "/_vigile/org"));

    let page = org_page(&t.member, &gw).await;
    let rows = member_rows(&page);
    let supers: Vec<&str> = rows
        .iter()
        .filter(|r| r.role == "org-super-admin")
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(supers, [t.member_id.as_str()], "{page}");
    assert_eq!(member_row(&page, OWNER).role, "org-admin", "the former one");
    assert_eq!(member_row(&page, ADMIN).role, "org-admin");

    // Upstream at once on this instance (it forgets the cached sessions of both).
    let (former, new) = (
        identity(&s, &t.owner, &gw, "/courses/1").await.0,
        identity(&s, &t.member, &gw, "/courses/1").await.0,
    );
    assert_eq!(former.as_deref(), Some("member,org-admin"));
    assert_eq!(new.as_deref(), Some("member,org-super-admin"));
    let billing = format!("{gw}/_vigile/org/billing");
    assert_eq!(get(&t.member, &billing, true).await.status(), 200);
    assert_eq!(get(&t.owner, &billing, true).await.status(), 403);
    // The former super-admin cannot take it back.
    let fields = [("user", t.owner_id.as_str())];
    let resp = forged_post(&t.owner, &gw, "/_vigile/org/transfer", &fields).await;
    assert_eq!(resp.status(), 403);
    let line = org_list_lines(&s, &t.org).await.remove(0);
    assert!(line.contains(MEMBER) && !line.contains(OWNER), "{line}");
}
both_backends!(transfer_leaves_exactly_one_super_admin);

async fn removed_member_is_signed_out_on_every_instance(backend: Backend) {
    let s = backend.stack("").await;
    let second = s.second_instance("").await;
    let (gw1, gw2) = (s.gw.url(), second.url());
    let t = team(&s).await;
    let on_two = client();
    login_ok(&on_two, &gw2, MEMBER, PW).await;
    seen_upstream(&s, &on_two, &gw2, "/courses/1").await;
    seen_upstream(&s, &t.member, &gw1, "/courses/1").await;

    // Refused: a member removing anyone, an org admin removing the super-admin, the
    // super-admin removing themselves.
    let remove = "/_vigile/org/remove";
    for (who, c, user) in [
        ("the member", &t.member, &t.admin_id),
        ("the org admin", &t.admin, &t.owner_id),
        ("the super-admin", &t.owner, &t.owner_id),
    ] {
        let resp = forged_post(c, &gw1, remove, &[("user", user.as_str())]).await;
        assert_eq!(resp.status(), 403, "{who} removing {user}");
    }
    assert_eq!(member_rows(&org_page(&t.owner, &gw1).await).len(), 3);

    // The org admin removes the member.
    let (status, location) =
        redirect(org_post(&t.admin, &gw1, remove, &[("user", t.member_id.as_str())]).await).await;
    assert_eq!((status, location.as_str()), (303, "/_vigile/org"));
    for (c, gw) in [(&on_two, &gw2), (&t.member, &gw1)] {
        poll_until(
            "the removed member sent to sign in",
            OTHER_INSTANCE_TRIES,
            || async {
                let resp = get(c, &format!("{gw}/courses/2"), true).await;
                resp.status() == 302
                    && header(&resp, "location").is_some_and(|l| l.starts_with("/_vigile/login"))
            },
        )
        .await;
    }

    // The account is gone: no sign-in, no row, the seat free.
    assert!(open_store(&s)
        .user_by_email(MEMBER)
        .await
        .unwrap()
        .is_none());
    assert_eq!(login(&client(), &gw2, MEMBER, PW).await.status(), 401);
    let page = org_page(&t.owner, &gw1).await;
    assert_eq!(member_rows(&page).len(), 2, "{page}");
    assert!(squeeze(&page).contains("2of25seatsused"), "{page}");
}
both_backends!(removed_member_is_signed_out_on_every_instance);
