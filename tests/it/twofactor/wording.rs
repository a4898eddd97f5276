//! "Pages in French and English": every two-factor page a member meets — the account
//! page locked and unlocked, the enrolment with its QR code, a refused code, the recovery
//! codes, the second step of a login (app and recovery code) and its refusal — is in the
//! browser's language (chosen with the language switch, or by `Accept-Language` alone),
//! differs between the two, and never shows a message key of the catalogs.

use std::collections::BTreeSet;

use super::*;
use crate::common::backend::Backend;
use crate::common::consts::PW;
use crate::common::http::{client, client_with_headers, get, login_ok};
use crate::contact::{logout, site, visible};

/// Every message id of the catalogs, less the words pages show on purpose.
fn catalog_keys() -> BTreeSet<String> {
    crate::common::catalog::keys_except(&[
        "member",
        "admin",
        "org-admin",
        "org-super-admin",
        "email",
        "mobile",
        "totp",
        "sms",
        "webauthn",
        "recovery",
    ])
}

/// The pages of one journey, by what they are.
type Pages = Vec<(&'static str, String)>;

/// Ann's journey in one language through `c`: every two-factor page, in order.
async fn journey(site: &crate::contact::Site, c: &Client, email: &str) -> Pages {
    let (s, gw) = (&site.s, site.gw());
    let mut pages: Pages = Vec::new();
    s.gw.add_user(email, PW, false);
    login_ok(c, &gw, email, PW).await;

    pages.push(("the account page, locked", page(c, &gw, ACCOUNT_2FA).await));
    let locked = pages[0].1.clone();
    let resp = act(
        c,
        &gw,
        &locked,
        ACCOUNT_2FA,
        "unlock",
        &[("password", "Not-the-password-9")],
    )
    .await;
    let (_, body) = settle(c, &gw, resp).await;
    pages.push(("a wrong password", body));
    let unlocked = account_page(c, &gw).await;
    pages.push(("the account page, unlocked", unlocked.clone()));
    let resp = act(c, &gw, &unlocked, ACCOUNT_2FA, "enrol-totp", &[]).await;
    let (_, enrolling) = settle(c, &gw, resp).await;
    pages.push(("the QR code page", enrolling.clone()));
    let mut app = Authenticator::from_page(&enrolling);
    let resp = act(
        c,
        &gw,
        &enrolling,
        ACCOUNT_2FA,
        "confirm-totp",
        &[("code", &app.wrong_code())],
    )
    .await;
    let (_, body) = settle(c, &gw, resp).await;
    pages.push(("a wrong code at enrolment", body));
    let code = app.fresh_code().await;
    let resp = act(
        c,
        &gw,
        &enrolling,
        ACCOUNT_2FA,
        "confirm-totp",
        &[("code", &code)],
    )
    .await;
    let (_, shown) = settle(c, &gw, resp).await;
    assert_eq!(recovery_codes(&shown).len(), 10, "{shown}");
    pages.push(("the recovery codes", shown));
    pages.push(("the account page with an app", account_page(c, &gw).await));
    logout(c, &gw).await;

    password_step(c, &gw, email, RD).await;
    let second = page(c, &gw, TWOFA).await;
    pages.push(("the second step", second.clone()));
    let link = method_link(&second, "recovery")
        .map(|href| resolve(TWOFA, &href))
        .unwrap_or_else(|| format!("{TWOFA}?method=recovery"));
    pages.push(("the recovery code step", page(c, &gw, &link).await));
    let resp = verify(c, &gw, TWOFA, "totp", &app.wrong_code(), false).await;
    let (_, body) = crate::contact::text(resp).await;
    pages.push(("a wrong code at login", body));
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_pages_in_french_and_english() {
    let site = site(Backend::Sqlite, NO_IP_LIMIT).await;
    let gw = site.gw();
    let keys = catalog_keys();

    // English by the language switch; French by the browser's Accept-Language alone.
    let en = client();
    get(&en, &format!("{gw}/_vigile/lang/en"), true).await;
    let english = journey(&site, &en, "zoe@example.com").await;
    let fr = client_with_headers(&[("accept-language", "fr-FR,fr;q=0.9,en;q=0.5")]);
    let french = journey(&site, &fr, "zoe@exemple.fr").await;

    let mut problems = Vec::new();
    for (lang, pages) in [("en", &english), ("fr", &french)] {
        for (what, html) in pages {
            if !html.contains(&format!("<html lang=\"{lang}\"")) {
                problems.push(format!("{what} is not in {lang}:\n{html}"));
            }
            let text = visible(html);
            let raw: BTreeSet<&str> = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .filter(|w| keys.contains(*w))
                .collect();
            if !raw.is_empty() {
                problems.push(format!(
                    "{what} ({lang}) shows message keys {raw:?}:\n{text}"
                ));
            }
        }
    }
    // The words, less what differs between the two accounts (address, secret, codes).
    let words = |html: &str| -> Vec<String> {
        visible(html)
            .split_whitespace()
            .filter(|w| !w.contains('@') && !w.chars().any(|c| c.is_ascii_digit()))
            .filter(|w| !(w.len() >= 16 && w.chars().all(|c| c.is_ascii_uppercase())))
            .map(str::to_string)
            .collect()
    };
    for ((what, en_html), (_, fr_html)) in english.iter().zip(french.iter()) {
        if words(en_html) == words(fr_html) {
            problems.push(format!("{what} reads the same in French and English"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n---\n")
    );
}
