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
