//! The admin console's frame through the real binary, on both backends: every section is
//! reached from the navigation (which marks the one shown), the overview counts what the
//! store holds, and no console URL opens for a member or an anonymous visitor.

use crate::both_backends;
use crate::common::backend::Backend;
use crate::common::consts::PW;
use crate::common::http::{self, client, get, get_page, login_ok};

const BOSS: &str = "boss@example.com";
const ANN: &str = "ann@example.com";

/// The navigation's links (href, whether it is the current section), in order.
fn nav(page: &str) -> Vec<(String, bool)> {
    let nav = page
        .split("<nav class=\"console-nav\"")
        .nth(1)
        .and_then(|n| n.split("</nav>").next())
        .unwrap_or_else(|| panic!("no console navigation:\n{page}"));
    nav.split("<a href=\"")
        .skip(1)
        .map(|a| {
            let href = a.split('"').next().unwrap_or_default().to_string();
            let tag = a.split('>').next().unwrap_or_default();
            (href, tag.contains("aria-current=\"page\""))
        })
        .collect()
}

/// The figure the overview shows for `key` (`data-stat`).
fn stat(page: &str, key: &str) -> u64 {
    let after = page
        .split(&format!("data-stat=\"{key}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} on the overview:\n{page}"));
    let strong = after.split("<strong>").nth(1).unwrap_or_default();
    strong
        .split("</strong>")
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{key}: no number:\n{after}"))
}

async fn every_section_is_reached_from_the_navigation_and_closed_to_others(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(BOSS, PW, true);
    s.gw.add_user(ANN, PW, false);
    http::signup(&client(), &gw, "zed@example.com", PW, PW, "en").await;
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let ann = client();
    login_ok(&ann, &gw, ANN, PW).await;

    let overview = get_page(&admin, &format!("{gw}/_vigile/admin")).await;
    assert_eq!(stat(&overview, "console-stat-members"), 2, "Boss and Ann");
    assert_eq!(stat(&overview, "console-stat-pending"), 1, "Zed");
    assert_eq!(stat(&overview, "console-stat-sessions"), 2);
    let links = nav(&overview);
    assert!(links.len() >= 5, "{links:?}");
    assert_eq!(links[0], ("/_vigile/admin".to_string(), true));
    // Each section: reached by its link, marked as the one shown, in French too.
    for (href, _) in &links {
        let page = get_page(&admin, &format!("{gw}{href}")).await;
        let here: Vec<_> = nav(&page).into_iter().filter(|(_, on)| *on).collect();
        assert_eq!(here, vec![(href.clone(), true)], "{href}");
        for (who, c, status) in [("a member", &ann, 403), ("a visitor", &client(), 302)] {
            let resp = get(c, &format!("{gw}{href}"), true).await;
            assert_eq!(resp.status().as_u16(), status, "{who} on {href}");
            let body = resp.text().await.unwrap_or_default();
            assert!(
                !body.contains("console-nav"),
                "{who} saw the console: {body}"
            );
        }
    }
    let members = get_page(&admin, &format!("{gw}/_vigile/admin/members")).await;
    assert!(members.contains(ANN) && members.contains("zed@example.com"));
    let fr = client();
    get(&fr, &format!("{gw}/_vigile/lang/fr"), true).await;
    login_ok(&fr, &gw, BOSS, PW).await;
    let page = get_page(&fr, &format!("{gw}/_vigile/admin")).await;
    assert!(
        page.contains("Membres") && page.contains("Réglages"),
        "{page}"
    );
}
both_backends!(every_section_is_reached_from_the_navigation_and_closed_to_others);

/// Every member row of a members page: (address, whether it shows as locked).
fn member_rows(page: &str) -> Vec<(String, bool)> {
    let Some(table) = page.split("<table class=\"members\">").nth(1) else {
        return vec![];
    };
    table
        .split("</table>")
        .next()
        .unwrap_or_default()
        .split("<tr>")
        .skip(2)
        .map(|row| {
            let email = row
                .split("?email=")
                .nth(1)
                .and_then(|r| r.split('>').nth(1))
                .and_then(|r| r.split('<').next())
                .unwrap_or_default()
                .to_string();
            (email, row.contains("/_vigile/admin/unlock"))
        })
        .collect()
}

/// Follows the members section's "next page" links from `first`; returns every row.
async fn all_pages(admin: &reqwest::Client, gw: &str, first: &str) -> Vec<(String, bool)> {
    let (mut rows, mut url) = (vec![], format!("{gw}{first}"));
    for _ in 0..200 {
        let page = get_page(admin, &url).await;
        let here = member_rows(&page);
        assert!(here.len() <= 50, "a page of {}", here.len());
        rows.extend(here);
        match page
            .split("id=\"next-page\"")
            .next()
            .and_then(|p| p.rsplit("href=\"").next())
        {
            Some(href) if page.contains("id=\"next-page\"") => {
                let href = http::decode_entities(href.split('"').next().unwrap_or_default());
                url = format!("{gw}{href}");
            }
            _ => return rows,
        }
    }
    panic!("more than 200 pages from {first}");
}

async fn members_are_searched_filtered_and_paged_among_thousands(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(BOSS, PW, true);
    let store = crate::common::backend::open_store(&s);
    let now = vigile::clock::now_ms();
    let mut emails = vec![BOSS.to_string()];
    for i in 0..2000 {
        let mut u = crate::common::records::user(&format!("m{i:04}@example.org"), now);
        u.name = if i % 400 == 7 {
            format!("Zoé Durand {i}")
        } else {
            format!("Member {i}")
        };
        if i % 500 == 3 {
            store
                .user_insert_pending(&u, now + 3_600_000)
                .await
                .unwrap();
        } else {
            store.user_insert(&u).await.unwrap();
        }
        emails.push(u.email);
    }
    // Two accounts locked by failed logins.
    let max = 6; // [lockout] account_max_failures' default
    for locked in ["m0042@example.org", "m1999@example.org"] {
        for _ in 0..max {
            store
                .attempt_begin(vigile::store::AttemptKey::Account(locked), now)
                .await
                .unwrap();
        }
    }
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;

    // Every member, once, in address order, fifty a page.
    emails.sort();
    let walked: Vec<String> = all_pages(&admin, &gw, "/_vigile/admin/members")
        .await
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(walked, emails);
    // By name, whatever its case; by address.
    let zoes = all_pages(&admin, &gw, "/_vigile/admin/members?q=ZO%C3%89+durand").await;
    let expect: Vec<String> = (0..2000)
        .filter(|i| i % 400 == 7)
        .map(|i| format!("m{i:04}@example.org"))
        .collect();
    assert_eq!(zoes.into_iter().map(|(e, _)| e).collect::<Vec<_>>(), expect);
    let one = all_pages(&admin, &gw, "/_vigile/admin/members?q=m1234@").await;
    assert_eq!(one, vec![("m1234@example.org".to_string(), false)]);
    // By state.
    let pending = all_pages(&admin, &gw, "/_vigile/admin/members?state=pending").await;
    let expect: Vec<String> = (0..2000)
        .filter(|i| i % 500 == 3)
        .map(|i| format!("m{i:04}@example.org"))
        .collect();
    assert_eq!(
        pending.into_iter().map(|(e, _)| e).collect::<Vec<_>>(),
        expect
    );
    let locked = all_pages(&admin, &gw, "/_vigile/admin/members?state=locked").await;
    assert_eq!(
        locked,
        vec![
            ("m0042@example.org".to_string(), true),
            ("m1999@example.org".to_string(), true)
        ]
    );
    let none = get_page(
        &admin,
        &format!("{gw}/_vigile/admin/members?q=nobody-at-all"),
    )
    .await;
    assert!(none.contains("No member matches."), "{none}");
}
both_backends!(members_are_searched_filtered_and_paged_among_thousands);

/// The text of the element with `id` on a page, entities decoded.
fn text_of(page: &str, id: &str) -> Option<String> {
    let after = page.split(&format!("id=\"{id}\"")).nth(1)?;
    let inner = after.split_once('>')?.1;
    Some(http::decode_entities(inner.split('<').next()?))
}

async fn a_members_page_shows_their_contact_state(backend: Backend) {
    use vigile::store::{Confirmed, Contact, Via};
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(BOSS, PW, true);
    let store = crate::common::backend::open_store(&s);
    let now = vigile::clock::now_ms();
    // 2026-01-02 03:04 UTC and 2026-02-03 04:05 UTC.
    let (jan, feb) = (1_767_323_040_000, 1_770_091_500_000);
    let plant = |email: &str, contact: Contact| {
        let mut u = crate::common::records::user(email, now);
        u.contact = contact;
        u
    };
    let ana = plant(
        "ana@example.org",
        Contact {
            mobile: Some("+33612345678".into()),
            email_confirmed: Some(Confirmed {
                at: jan,
                via: Via::Code,
            }),
            mobile_confirmed: Some(Confirmed {
                at: feb,
                via: Via::Code,
            }),
            campaign: None,
        },
    );
    let bob = plant(
        "bob@example.org",
        Contact {
            mobile: Some("+33698765432".into()),
            ..Contact::default()
        },
    );
    let carl = plant("carl@example.org", Contact::before());
    for u in [&ana, &bob, &carl] {
        store.user_insert(u).await.unwrap();
    }
    // Zed signs up and follows the activation link: the address is proved by it.
    let zed = "zed@example.org";
    http::signup(&client(), &gw, zed, PW, PW, "en").await;
    let (_, link) = crate::common::backend::activation_mail(&s, zed, "Activate").await;
    let activated = get(&client(), &link, true).await;
    assert!(activated.status().is_redirection(), "{activated:?}");

    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let page = |email: &str| {
        let url = format!("{gw}/_vigile/admin/member?email={email}");
        let admin = admin.clone();
        async move { get_page(&admin, &url).await }
    };
    let p = page("ana@example.org").await;
    assert_eq!(
        text_of(&p, "member-email-state").as_deref(),
        Some("Confirmed on 2026-01-02 03:04 UTC (code typed on the contact page)"),
        "{p}"
    );
    assert_eq!(
        text_of(&p, "member-mobile").as_deref(),
        Some("+33612345678")
    );
    assert_eq!(
        text_of(&p, "member-mobile-state").as_deref(),
        Some("Confirmed on 2026-02-03 04:05 UTC (code typed on the contact page)")
    );
    let p = page("bob@example.org").await;
    assert_eq!(
        text_of(&p, "member-email-state").as_deref(),
        Some("Not confirmed")
    );
    assert_eq!(
        text_of(&p, "member-mobile").as_deref(),
        Some("+33698765432")
    );
    assert_eq!(
        text_of(&p, "member-mobile-state").as_deref(),
        Some("Not confirmed")
    );
    let p = page("carl@example.org").await;
    assert_eq!(
        text_of(&p, "member-email-state").as_deref(),
        Some("Confirmed (before confirmations were recorded)")
    );
    assert_eq!(text_of(&p, "member-mobile-none").as_deref(), Some("None"));
    assert!(text_of(&p, "member-mobile").is_none(), "{p}");
    let p = page(zed).await;
    let state = text_of(&p, "member-email-state").unwrap();
    assert!(
        state.starts_with("Confirmed on ") && state.ends_with(" UTC (activation link)"),
        "{state}"
    );

    // In French.
    let fr = client();
    get(&fr, &format!("{gw}/_vigile/lang/fr"), true).await;
    login_ok(&fr, &gw, BOSS, PW).await;
    let p = get_page(
        &fr,
        &format!("{gw}/_vigile/admin/member?email=ana@example.org"),
    )
    .await;
    assert_eq!(
        text_of(&p, "member-email-state").as_deref(),
        Some("Confirmé le 2026-01-02 03:04 UTC (code saisi sur la page de coordonnées)"),
        "{p}"
    );
    let p = get_page(
        &fr,
        &format!("{gw}/_vigile/admin/member?email=bob@example.org"),
    )
    .await;
    assert_eq!(
        text_of(&p, "member-mobile-state").as_deref(),
        Some("Non confirmé")
    );
    assert!(p.contains("Coordonnées"), "{p}");
}
both_backends!(a_members_page_shows_their_contact_state);
