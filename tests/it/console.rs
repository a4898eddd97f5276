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
