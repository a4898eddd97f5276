//! The console's member import in a real headless Chromium: an admin goes from Members to
//! the import page, chooses a CSV file in the file field (the browser writes the
//! multipart body), ticks "known to be right", previews, and confirms (the browser posts
//! the preview's hidden fields back). At a phone width the preview's table scrolls inside
//! its box rather than widening the page. Screenshots are kept in
//! `test-artifacts/browser_import/`.

use std::path::Path;

use crate::common::backend::{open_store, Backend};
use crate::common::browser::Browser;
use crate::common::consts::{ANN, BOSS, PW};

const TEST: &str = "browser_import";

/// Saves a screenshot of the current page as `<dir>/<name>.png`.
async fn keep(b: &Browser, dir: &Path, name: &str) {
    let png = b.client().screenshot().await.expect("screenshot");
    std::fs::create_dir_all(dir).expect("artefacts folder");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn js_number(b: &Browser, script: &str) -> f64 {
    b.client()
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
        .as_f64()
        .unwrap_or_else(|| panic!("{script}: not a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_imports_a_file_in_a_browser() {
    let s = Backend::Sqlite.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(BOSS, PW, true);
    s.gw.add_user(ANN, PW, false);
    // A spreadsheet's export: BOM, CRLF, a quoted comma, a bad row.
    let file = s.gw.dir().join("cohort.csv");
    std::fs::write(
        &file,
        "\u{feff}email,name,mobile\r\n\
         lea@example.com,\"Martin, Léa\",06 12 34 56 78\r\n\
         ann@example.com,Ann,\r\n\
         not-an-address,Nobody,\r\n",
    )
    .unwrap();

    let b = Browser::start(TEST).await;
    let shots = b.artifacts_dir();
    b.run(async {
        b.step("sign-in");
        b.goto(&format!("{gw}/_vigile/login")).await;
        b.fill("#email", BOSS).await;
        b.fill("#password", PW).await;
        b.click("main form[action='/_vigile/login'] button[type='submit']")
            .await;
        b.wait_path("/").await;

        b.step("form");
        b.goto(&format!("{gw}/_vigile/admin/members")).await;
        b.click("#import-link").await;
        b.wait_path("/_vigile/admin/import").await;
        b.find("#import-file")
            .await
            .send_keys(&file.display().to_string())
            .await
            .expect("choose the file");
        b.click("input[name='confirmed']").await;
        keep(&b, &shots, "desktop-form").await;
        b.click("form.import button[type='submit']").await;

        b.step("preview");
        b.wait_text("#import-preview", "nothing has been written")
            .await;
        let row = b.wait_text("tr[data-line='2']", "Will be created").await;
        assert!(row.contains("Martin, Léa"), "{row}");
        b.wait_text("tr[data-line='3']", "Already has an account")
            .await;
        b.wait_text("tr[data-line='4']", "not-an-address").await;
        keep(&b, &shots, "desktop-preview").await;
        b.client()
            .set_window_size(390, 844)
            .await
            .expect("window size");
        let page = js_number(&b, "return document.documentElement.scrollWidth").await;
        let screen = js_number(&b, "return window.innerWidth").await;
        assert!(
            page <= screen + 1.0,
            "the preview is wider than a phone: {page} > {screen}"
        );
        keep(&b, &shots, "phone-preview").await;
        b.client()
            .set_window_size(1280, 900)
            .await
            .expect("window size");

        b.step("confirm");
        b.click("form.import-confirm button[type='submit']").await;
        b.wait_text("#import-done", "Import done").await;
        b.wait_text("tr[data-line='2']", "Created").await;
        keep(&b, &shots, "desktop-done").await;

        b.step("member page");
        b.goto(&format!(
            "{gw}/_vigile/admin/member?email=lea%40example.com"
        ))
        .await;
        let state = b.wait_text("#member-mobile-state", "Confirmed on").await;
        assert!(state.ends_with("(vouched for by an admin)"), "{state}");
    })
    .await;
    b.close().await;

    let lea = open_store(&s)
        .user_by_email("lea@example.com")
        .await
        .unwrap()
        .expect("lea created");
    assert_eq!(lea.name, "Martin, Léa");
    assert_eq!(lea.contact.mobile.as_deref(), Some("+33612345678"));
    assert!(lea.contact.email_confirmed.is_some());
    let accounts = open_store(&s).user_list().await.unwrap();
    assert_eq!(accounts.len(), 3, "boss, ann and lea only: {accounts:?}");
}
