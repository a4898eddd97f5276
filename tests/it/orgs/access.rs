//! What an organisation role opens upstream: `[access]` rules requiring one
//! (`org_member`, `org_admin`, `org_super_admin`), and the organisation's device cap,
//! between the member's own and the site's.

use super::*;
use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::http::{self, client, client_ua, get, header, login, login_ok};
use crate::devices::{code_for, post_on};

async fn access_rules_require_organisation_roles(backend: Backend) {
    let s = backend
        .stack(
            "[access]\norg_member = [\"/team/**\"]\norg_admin = [\"/org-admin/**\"]\n\
             org_super_admin = [\"/billing/**\"]\n",
        )
        .await;
    let gw = s.gw.url();
    let t = team(&s).await;
    s.gw.add_user(ANN, PW, false);
    let ann = client();
    login_ok(&ann, &gw, ANN, PW).await;

    let people = [
        ("super-admin", &t.owner),
        ("org admin", &t.admin),
        ("member", &t.member),
        ("no organisation", &ann),
    ];
    for (path, admitted) in [
        ("/team/1", &["super-admin", "org admin", "member"][..]),
        ("/org-admin/1", &["super-admin", "org admin"][..]),
        ("/billing/1", &["super-admin"][..]),
        (
            "/courses/1",
            &["super-admin", "org admin", "member", "no organisation"][..],
        ),
    ] {
        for (who, c) in people {
            let status = get(c, &format!("{gw}{path}"), true).await.status();
            let expected = if admitted.contains(&who) { 200 } else { 403 };
            assert_eq!(status, expected, "{path} for the {who}");
        }
    }
    let resp = get(&client(), &format!("{gw}/team/1"), true).await;
    assert_eq!(resp.status(), 302, "a visitor");
    assert_eq!(
        header(&resp, "location").as_deref(),
        Some("/_vigile/login?rd=%2Fteam%2F1")
    );
}
both_backends!(access_rules_require_organisation_roles);

/// Whether a login of `email` on a new device is sent to the overflow code page.
async fn meets_the_overflow(gw: &str, email: &str, ua: &str) -> bool {
    let c = client_ua(ua);
    let resp = login(&c, gw, email, PW).await;
    let signed_in = sets_session(&resp);
    let location = header(&resp, "location").unwrap_or_default();
    match (resp.status().as_u16(), location.as_str(), signed_in) {
        (303, "/_vigile/verify", false) => true,
        (303, _, true) => false,
        other => panic!("login of {email}: {other:?}"),
    }
}

async fn org_device_cap_sits_between_member_and_site(backend: Backend) {
    let s = backend
        .stack("[sessions]\nmax_per_member = 3\non_overflow = \"choose\"\n[lockout]\nip_max_failures = 0\n")
        .await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);
    // The owner's registration signed in one device.
    let org = register(&s, &client(), OWNER, &ACME).await;
    s.gw.cli_ok(&["org", "set", &org, "--cap", "1"], None);

    // The organisation's 1: a second device of its member meets the overflow flow.
    assert!(meets_the_overflow(&gw, OWNER, http::UA_FIREFOX_LINUX).await);
    code_for(&s, OWNER, 1).await;
    // A member of no organisation still has the site's 3.
    for ua in [
        http::UA_CHROME_WINDOWS,
        http::UA_SAFARI_IPHONE,
        http::UA_FIREFOX_LINUX,
    ] {
        assert!(!meets_the_overflow(&gw, ANN, ua).await, "{ANN} on {ua}");
    }
    assert!(meets_the_overflow(&gw, ANN, http::UA_CHROME_WINDOWS).await);

    // The member's own cap wins over the organisation's.
    s.gw.cli_ok(&["user", "cap", OWNER, "2"], None);
    assert!(!meets_the_overflow(&gw, OWNER, http::UA_SAFARI_IPHONE).await);
    s.gw.cli_ok(&["user", "cap", OWNER, "default"], None);
    assert!(
        meets_the_overflow(&gw, OWNER, http::UA_FIREFOX_LINUX).await,
        "back to 1"
    );

    // Emptied on the site admin page: the site's 3 again.
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let page_url = format!("/_vigile/admin/org?id={org}");
    let page = http::get_page(&admin, &format!("{gw}{page_url}")).await;
    let plan = input_value(&page, "plan").unwrap_or_default();
    let seats = input_value(&page, "seats").unwrap_or_default();
    let fields = [
        ("seats", seats.as_str()),
        ("plan", plan.as_str()),
        ("max_devices", ""),
    ];
    let resp = post_on(&admin, &gw, &page_url, "/_vigile/admin/org", &fields).await;
    assert_eq!(
        resp.status(),
        303,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    assert!(
        !meets_the_overflow(&gw, OWNER, http::UA_FIREFOX_LINUX).await,
        "the site's 3"
    );
}
both_backends!(org_device_cap_sits_between_member_and_site);

/// `Remote-Org` sent by a client (any case, `-` or `_`) never reaches the upstream: not
/// from a visitor on a public page, not from a member of no organisation, and a member's
/// is replaced by their own.
async fn forged_remote_org_never_reaches_upstream(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let owner = client();
    let org = register(&s, &owner, OWNER, &ACME).await;
    s.gw.add_user(ANN, PW, false);
    let ann = client();
    login_ok(&ann, &gw, ANN, PW).await;
    let forged = [
        ("Remote-Org", "evil"),
        ("remote_org", "evil"),
        ("REMOTE-ORG", "evil"),
        ("Remote-Groups", "member,org-super-admin"),
    ];
    for (who, c, path, expected) in [
        ("a visitor", client(), "/", None),
        ("a member of no organisation", ann, "/courses/1", None),
        ("the super-admin", owner, "/courses/2", Some(org.as_str())),
    ] {
        let mut req = c.get(format!("{gw}{path}"));
        for (name, value) in forged {
            req = req.header(name, value);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "{who}");
        let seen = s
            .upstream
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.path == path)
            .unwrap();
        let orgs: Vec<&String> = seen
            .headers
            .iter()
            .filter(|(name, _)| name.replace('_', "-") == "remote-org")
            .flat_map(|(_, values)| values)
            .collect();
        let expected: Vec<String> = expected.into_iter().map(str::to_string).collect();
        assert_eq!(
            orgs,
            expected.iter().collect::<Vec<_>>(),
            "{who}: {:?}",
            seen.headers
        );
        assert!(
            !seen
                .header_all("remote-groups")
                .iter()
                .any(|g| g.contains("org-super-admin") && expected.is_empty()),
            "{who}: {:?}",
            seen.headers
        );
    }
}
both_backends!(forged_remote_org_never_reaches_upstream);
