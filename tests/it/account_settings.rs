//! The member's own settings on the account page, through the real binary and a real SMTP
//! server, on both backends: changing the password (the current one required and counted
//! like a login attempt, the policy applied, the other devices signed out only when asked,
//! a mail saying which), and the display name and preferred language (the next mail
//! follows the language). Bad input changes nothing.

use reqwest::Client;

use crate::both_backends;
use crate::common::backend::{Backend, Stack};
use crate::common::consts::PW;
use crate::common::http::{self, client, form_with_action, get, get_page, post_form, submit};
use crate::common::poll_until;

const ANN: &str = "ann@example.com";
const NEW_PW: &str = "Brand-new 77 pass";
const NEWER_PW: &str = "Even-newer 88 pass";
const PAGE: &str = "/courses/1";

/// Submits the account page's form posting to `action` with `fields`; returns (status,
/// `Location` on a redirect, else the body).
async fn account_form(
    c: &Client,
    gw: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let page = get_page(c, &format!("{gw}/_vigile/account")).await;
    let form =
        form_with_action(&page, action).unwrap_or_else(|| panic!("no {action} form:\n{page}"));
    let resp = submit(c, gw, &form, fields).await;
    let status = resp.status().as_u16();
    let location = http::header(&resp, "location").unwrap_or_default();
    let body = resp.text().await.unwrap();
    (status, if status == 303 { location } else { body })
}

async fn change_password(c: &Client, gw: &str, fields: &[(&str, &str)]) -> (u16, String) {
    account_form(c, gw, "/_vigile/account/password", fields).await
}

/// Whether `password` signs `ANN` in (on a fresh device, so no device lock is involved).
async fn signs_in(gw: &str, password: &str) -> bool {
    http::login(&client(), gw, ANN, password).await.status() == 303
}

async fn served(c: &Client, gw: &str) -> bool {
    get(c, &format!("{gw}{PAGE}"), true).await.status() == 200
}

async fn changed_mail(s: &Stack, saying: &str) {
    s.smtp
        .wait_for(&format!("password changed mail saying {saying:?}"), |m| {
            m.to.iter().any(|t| t == ANN)
                && m.subject == "Your password has been changed"
                && m.text.contains(saying)
        })
        .await;
}

async fn a_password_change_needs_the_current_one_and_signs_out_other_devices_only_when_asked(
    backend: Backend,
) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let ((laptop, jar), phone) = (http::client_with_jar(http::UA_FIREFOX_LINUX), client());
    http::login_ok(&laptop, &gw, ANN, PW).await;
    http::login_ok(&phone, &gw, ANN, PW).await;
    let old_cookie = format!(
        "vigile_session={}",
        http::jar_cookie(&jar, &gw, "vigile_session").expect("signed in")
    );

    // A wrong current password, a new one the policy refuses, two that differ: each is
    // said on the page, and the password stays what it was.
    let (status, body) = change_password(
        &laptop,
        &gw,
        &[
            ("current_password", "not it"),
            ("password", NEW_PW),
            ("confirm", NEW_PW),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert!(body.contains("The current password is wrong."), "{body}");
    let (status, body) = change_password(
        &laptop,
        &gw,
        &[
            ("current_password", PW),
            ("password", "short"),
            ("confirm", "short"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("At least 10 characters"), "{body}");
    let (status, body) = change_password(
        &laptop,
        &gw,
        &[
            ("current_password", PW),
            ("password", NEW_PW),
            ("confirm", NEWER_PW),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("do not match"), "{body}");
    // Without the form's CSRF token: refused.
    let resp = post_form(
        &laptop,
        &format!("{gw}/_vigile/account/password"),
        &[
            ("current_password", PW),
            ("password", NEW_PW),
            ("confirm", NEW_PW),
        ],
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert!(signs_in(&gw, PW).await && !signs_in(&gw, NEW_PW).await);

    // Changed, keeping the other devices (the box unticked: the field is not sent).
    let (status, location) = change_password(
        &laptop,
        &gw,
        &[
            ("current_password", PW),
            ("password", NEW_PW),
            ("confirm", NEW_PW),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(location, "/_vigile/account?password=kept#password");
    let page = get_page(&laptop, &format!("{gw}{location}")).await;
    assert!(
        page.contains("Your other devices stay signed in."),
        "{page}"
    );
    assert!(!signs_in(&gw, PW).await && signs_in(&gw, NEW_PW).await);
    changed_mail(&s, "Your devices stay signed in.").await;
    assert!(served(&phone, &gw).await, "the phone stays signed in");
    // The laptop's session was replaced by a new one: a copy of its old cookie is dead.
    assert!(served(&laptop, &gw).await, "the laptop stays signed in");
    let replayed = http::bare_client()
        .get(format!("{gw}{PAGE}"))
        .header("accept", http::ACCEPT_HTML)
        .header("cookie", &old_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replayed.status(),
        302,
        "the laptop's old cookie still works"
    );

    // Changed again, signing the other devices out: the phone is sent to the login page,
    // the laptop stays.
    let (status, location) = change_password(
        &laptop,
        &gw,
        &[
            ("current_password", NEW_PW),
            ("password", NEWER_PW),
            ("confirm", NEWER_PW),
            ("end_others", "1"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(location, "/_vigile/account?password=others#password");
    poll_until("the phone signed out", 40, || async {
        get(&phone, &format!("{gw}{PAGE}"), true).await.status() == 302
    })
    .await;
    assert!(served(&laptop, &gw).await, "the laptop stays signed in");
    changed_mail(&s, "Your other devices were signed out").await;
    assert!(signs_in(&gw, NEWER_PW).await);

    // Anonymous: sent to the login page, nothing changed.
    let resp = post_form(
        &client(),
        &format!("{gw}/_vigile/account/password"),
        &[
            ("current_password", NEWER_PW),
            ("password", NEW_PW),
            ("confirm", NEW_PW),
        ],
    )
    .await;
    assert!(
        matches!(resp.status().as_u16(), 302 | 303 | 403),
        "anonymous: {}",
        resp.status()
    );
    assert!(signs_in(&gw, NEWER_PW).await);
}
both_backends!(a_password_change_needs_the_current_one_and_signs_out_other_devices_only_when_asked);

async fn wrong_current_passwords_lock_the_device_and_end_the_session(backend: Backend) {
    let s = backend.stack("[lockout]\naccount_max_failures = 3\n").await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    // A session someone copied: its cookie is all they have.
    let (stolen, jar) = http::client_with_jar(http::UA_FIREFOX_LINUX);
    http::login_ok(&stolen, &gw, ANN, PW).await;
    let cookie = format!(
        "vigile_session={}",
        crate::common::http::jar_cookie(&jar, &gw, "vigile_session").expect("signed in")
    );
    let guess = |n: u32| format!("guess {n}");
    let mut last = (0, String::new());
    for n in 0..3 {
        let g = guess(n);
        last = change_password(
            &stolen,
            &gw,
            &[
                ("current_password", &g),
                ("password", NEW_PW),
                ("confirm", NEW_PW),
            ],
        )
        .await;
        if n < 2 {
            assert_eq!(last.0, 401);
            assert!(
                last.1.contains("The current password is wrong."),
                "{}",
                last.1
            );
        }
    }
    // The third locks the device and ends the session it was typed in.
    assert_eq!(last.0, 401);
    assert!(last.1.contains("this session was signed out"), "{}", last.1);
    let replayed = http::bare_client()
        .get(format!("{gw}{PAGE}"))
        .header("accept", http::ACCEPT_HTML)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 302, "the stolen session still works");
    // The owner is told, with a way back in; their other devices still sign in, and the
    // password is unchanged.
    let mail = s
        .smtp
        .wait_for_to(ANN, "Your account has been locked")
        .await;
    assert!(
        mail.text.contains("/_vigile/password/reset?token="),
        "{}",
        mail.text
    );
    assert!(
        signs_in(&gw, PW).await,
        "the owner's other devices still sign in"
    );
    assert!(!signs_in(&gw, NEW_PW).await);
    // The locked device cannot sign in again, even with the right password.
    assert_eq!(http::login(&stolen, &gw, ANN, PW).await.status(), 401);
}
both_backends!(wrong_current_passwords_lock_the_device_and_end_the_session);

async fn name_and_language_are_saved_and_the_next_mail_follows_the_language(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let c = client();
    http::login_ok(&c, &gw, ANN, PW).await;
    let me = |c: &Client| {
        let (c, gw) = (c.clone(), gw.clone());
        async move {
            let body = get_page(&c, &format!("{gw}/_vigile/api/me")).await;
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(me(&c).await, "ann");

    // Refused: an empty name, a name hiding a right-to-left override, a language Vigile
    // does not speak. Each is said; nothing changes.
    for (name, lang, says) in [
        ("   ", "fr", "Enter a name of 1 to 200 characters"),
        (
            "ann\u{202E}gpj.exe",
            "fr",
            "Enter a name of 1 to 200 characters",
        ),
        ("Ann Lee", "de", "Choose French or English."),
    ] {
        let (status, body) = account_form(
            &c,
            &gw,
            "/_vigile/account/profile",
            &[("name", name), ("lang", lang)],
        )
        .await;
        assert_eq!(status, 400, "{name:?} {lang:?}");
        assert!(body.contains(says), "{name:?} {lang:?}: {body}");
    }
    assert_eq!(me(&c).await, "ann");

    // Saved: the page answers in French at once, the application sees the new name, and
    // the next mail (asked for from another browser, in English) is in French.
    let resp = {
        let page = get_page(&c, &format!("{gw}/_vigile/account")).await;
        let form = form_with_action(&page, "/_vigile/account/profile").unwrap();
        submit(
            &c,
            &gw,
            &form,
            &[("name", "  Ann Lee-Martin "), ("lang", "fr")],
        )
        .await
    };
    assert_eq!(resp.status(), 303);
    assert!(
        http::header(&resp, "set-cookie").is_some_and(|v| v.contains("vigile_lang=fr")),
        "{:?}",
        resp.headers()
    );
    let page = get_page(&c, &format!("{gw}/_vigile/account?saved=1")).await;
    assert!(page.contains("Enregistré."), "{page}");
    assert_eq!(me(&c).await, "Ann Lee-Martin");
    poll_until("the new name upstream", 40, || async {
        served(&c, &gw).await
            && s.upstream.last_header("remote-name").as_deref() == Some("Ann Lee-Martin")
    })
    .await;
    forgot(&gw).await;
    s.smtp
        .wait_for_to(ANN, "Réinitialisez votre mot de passe")
        .await;

    // Back to English: the next mail is in English.
    let (status, _) = account_form(
        &c,
        &gw,
        "/_vigile/account/profile",
        &[("name", "Ann Lee-Martin"), ("lang", "en")],
    )
    .await;
    assert_eq!(status, 303);
    forgot(&gw).await;
    s.smtp.wait_for_to(ANN, "Reset your password").await;
}
both_backends!(name_and_language_are_saved_and_the_next_mail_follows_the_language);

/// Asks for a reset link for `ANN` from a fresh English browser.
async fn forgot(gw: &str) {
    let c = client();
    let page = get_page(&c, &format!("{gw}/_vigile/password/forgot")).await;
    let form = form_with_action(&page, "/_vigile/password/forgot").unwrap();
    let resp = submit(&c, gw, &form, &[("email", ANN)]).await;
    assert_eq!(resp.status(), 200);
}
