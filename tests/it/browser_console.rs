//! The admin console and the account page in a real headless Chromium, at a desktop and
//! a phone width: an admin goes through every section from the navigation, and on a
//! phone no page is wider than the screen (the navigation scrolls above the section
//! instead); a member changes their language on the account page and the page answers in
//! it. Screenshots of every section at both widths are kept in
//! `test-artifacts/browser_console_tour/` (a failure also leaves one, see
//! `common::browser`).

use std::path::Path;

use crate::common::backend::Backend;
use crate::common::browser::Browser;
use crate::common::consts::{ANN, PW};

const BOSS: &str = "boss@example.com";
const LOGIN_SUBMIT: &str = "main form[action='/_vigile/login'] button[type='submit']";
const TEST: &str = "browser_console_tour";

/// (name, width, height) of the two screens.
const WIDTHS: [(&str, u32, u32); 2] = [("desktop", 1280, 900), ("phone", 390, 844)];

async fn sign_in(b: &Browser, gw: &str, email: &str) {
    b.goto(&format!("{gw}/_vigile/login")).await;
    b.fill("#email", email).await;
    b.fill("#password", PW).await;
    b.click(LOGIN_SUBMIT).await;
    // Signed in, the browser lands on the site (no page asked for first).
    b.wait_path("/").await;
    b.goto(&format!("{gw}/_vigile/account")).await;
}

/// Saves a screenshot of the current page as `<dir>/<name>.png`.
async fn keep(b: &Browser, dir: &Path, name: &str) {
    let png = b.client().screenshot().await.expect("screenshot");
    std::fs::create_dir_all(dir).expect("artefacts folder");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// A number the page's script context computes.
async fn js_number(b: &Browser, script: &str) -> f64 {
    b.client()
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
        .as_f64()
        .unwrap_or_else(|| panic!("{script}: not a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_console_tour() {
    let s = Backend::Sqlite.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(BOSS, PW, true);
    s.gw.add_user(ANN, PW, false);
    // A locked member, for the members table.
    for _ in 0..6 {
        crate::common::http::login(&crate::common::http::client(), &gw, ANN, "wrong").await;
    }

    let b = Browser::start(TEST).await;
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-artifacts")
        .join(TEST)
        .join("tour");
    b.run(async {
        b.step("sign-in");
        sign_in(&b, &gw, BOSS).await;
        b.click("a[href='/_vigile/admin']").await;
        b.wait_path("/_vigile/admin").await;
        let links: Vec<String> = {
            let mut out = vec![];
            for a in b
                .client()
                .find_all(fantoccini::Locator::Css(".console-nav a"))
                .await
                .expect("navigation links")
            {
                out.push(a.attr("href").await.unwrap().unwrap());
            }
            out
        };
        assert!(links.len() >= 5, "{links:?}");
        for (screen, w, h) in WIDTHS {
            b.client().set_window_size(w, h).await.expect("window size");
            for href in &links {
                let section = href.trim_start_matches("/_vigile/").replace('/', "-");
                b.step(&format!("{screen}-{section}"));
                b.click(&format!(".console-nav a[href='{href}']")).await;
                b.wait_path(href).await;
                let current = b.find(".console-nav a[aria-current='page']").await;
                assert_eq!(current.attr("href").await.unwrap().as_deref(), Some(href.as_str()));
                b.find(".console-section h1").await;
                // Nothing wider than the screen: wide tables scroll inside their box.
                let page = js_number(&b, "return document.documentElement.scrollWidth").await;
                let screen_w = js_number(&b, "return window.innerWidth").await;
                assert!(page <= screen_w + 1.0, "{href} on a {screen}: {page} > {screen_w}");
                if screen == "phone" {
                    // The navigation sits above the section, not beside it.
                    let nav = js_number(
                        &b,
                        "return document.querySelector('.console-nav').getBoundingClientRect().bottom",
                    )
                    .await;
                    let body = js_number(
                        &b,
                        "return document.querySelector('.console-section').getBoundingClientRect().top",
                    )
                    .await;
                    assert!(nav <= body, "{href}: navigation beside the section on a phone");
                }
                keep(&b, &shots, &format!("{screen}-{section}")).await;
            }
        }
        // The members section shows the locked member with the unlock button.
        b.step("members");
        b.goto(&format!("{gw}/_vigile/admin/members")).await;
        b.wait_text(".console-section", ANN).await;
        b.find("form[action='/_vigile/admin/unlock'] button").await;
    })
    .await;
    b.close().await;

    // A member on a phone switches their language to French on the account page.
    let m = Browser::start_device(TEST, "member").await;
    m.run(async {
        m.client()
            .set_window_size(390, 844)
            .await
            .expect("window size");
        m.step("member-sign-in");
        s.gw.cli_ok(&["user", "unlock", ANN], None);
        sign_in(&m, &gw, ANN).await;
        m.step("language");
        let lang = m.find("#lang").await;
        lang.select_by_value("fr").await.expect("choose French");
        m.click("form[action='/_vigile/account/profile'] button[type='submit']")
            .await;
        m.wait_path("/_vigile/account").await;
        m.find("html[lang='fr']").await;
        m.wait_text("main", "Enregistré.").await;
        keep(&m, &shots, "phone-account-fr").await;
    })
    .await;
    m.close().await;
}
