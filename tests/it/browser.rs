//! Journeys in a real Chromium through the real `vigile` binary. The reqwest tests check
//! each answer; these check that a person with a browser gets through: the HTML forms
//! post what the handlers expect (CSRF token, `rd`), the browser keeps and returns the
//! cookies under the attributes Vigile sets, and redirects and links land on the right
//! page. Failures leave a screenshot in `test-artifacts/<test>/` (see
//! `common::browser`).

use crate::common::backend::Backend;
use crate::common::browser::Browser;

const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "Correct-Horse-9!";
const LOGIN_SUBMIT: &str = "main form[action='/_vigile/login'] button[type='submit']";
const LOGOUT_SUBMIT: &str = "main form[action='/_vigile/logout'] button[type='submit']";

/// Requests for `path` that reached the upstream.
fn upstream_hits(s: &crate::common::backend::Stack, path: &str) -> Vec<String> {
    s.upstream
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.header("remote-email").unwrap_or("<none>").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_journey() {
    let s = Backend::Sqlite.stack("").await;
    s.gw.add_user(EMAIL, PASSWORD, false);
    let gw = s.gw.url();
    let b = Browser::start("browser_login_journey").await;
    b.run(async {
        b.step("protected-page-asks-to-sign-in");
        b.goto(&format!("{gw}/courses/1")).await;
        let url = b.wait_path("/_vigile/login").await;
        let rd: Vec<_> = url.query_pairs().filter(|(k, _)| k == "rd").collect();
        assert_eq!(rd.len(), 1, "one rd in {url}");
        assert_eq!(
            rd[0].1, "/courses/1",
            "rd carries the page asked for: {url}"
        );
        assert!(upstream_hits(&s, "/courses/1").is_empty(), "not forwarded");

        b.step("sign-in");
        b.fill("#email", EMAIL).await;
        b.fill("#password", PASSWORD).await;
        b.click(LOGIN_SUBMIT).await;
        b.wait_path("/courses/1").await;
        let body = b.wait_text("body", "upstream saw /courses/1").await;
        assert_eq!(body.trim(), "upstream saw /courses/1");
        assert_eq!(
            upstream_hits(&s, "/courses/1"),
            [EMAIL],
            "identity forwarded"
        );

        b.step("account-page");
        b.goto(&format!("{gw}/_vigile/account")).await;
        b.wait_text("main", EMAIL).await;

        b.step("sign-out");
        b.click(LOGOUT_SUBMIT).await;
        b.wait_path("/_vigile/login").await;
        b.wait_text("p.notice", "You are signed out").await;
        assert!(!b.exists("header form[action='/_vigile/logout']").await);

        b.step("protected-page-after-sign-out");
        b.goto(&format!("{gw}/courses/1")).await;
        b.wait_path("/_vigile/login").await;
        b.find("#password").await;
        assert_eq!(upstream_hits(&s, "/courses/1"), [EMAIL], "no more forwards");
    })
    .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_language_switch() {
    let s = Backend::Sqlite.stack("").await;
    s.gw.add_user(EMAIL, PASSWORD, false);
    let gw = s.gw.url();
    let b = Browser::start("browser_language_switch").await;
    b.run(async {
        b.step("login-page-in-english");
        b.goto(&format!("{gw}/_vigile/login")).await;
        b.find("html[lang='en']").await;
        b.wait_text("main h1", "Sign in").await;

        b.step("switch-to-french");
        b.click("header a[hreflang='fr']").await;
        b.find("html[lang='fr']").await;
        b.wait_text("main h1", "Connexion").await;
        b.wait_path("/_vigile/login").await;
        assert!(b.exists("header a[hreflang='en']").await, "EN offered");
        assert!(!b.exists("header a[hreflang='fr']").await, "FR is current");

        b.step("reload-keeps-french");
        b.refresh().await;
        b.find("html[lang='fr']").await;
        b.wait_text("main h1", "Connexion").await;

        b.step("sign-in-in-french");
        b.fill("#email", EMAIL).await;
        b.fill("#password", PASSWORD).await;
        b.click(LOGIN_SUBMIT).await;
        b.wait_path("/").await;

        b.step("account-page-in-french");
        b.goto(&format!("{gw}/_vigile/account")).await;
        b.find("html[lang='fr']").await;
        b.wait_text("main h1", "Mon compte").await;
        b.wait_text(LOGOUT_SUBMIT, "Se déconnecter").await;

        b.step("switch-back-to-english");
        b.click("header a[hreflang='en']").await;
        b.find("html[lang='en']").await;
        b.wait_text("main h1", "My account").await;
        b.wait_path("/_vigile/account").await;

        b.step("english-sticks");
        b.refresh().await;
        b.find("html[lang='en']").await;
        b.wait_text("main h1", "My account").await;
    })
    .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_wrong_password_then_right() {
    let s = Backend::Sqlite.stack("").await;
    s.gw.add_user(EMAIL, PASSWORD, false);
    let gw = s.gw.url();
    let b = Browser::start("browser_wrong_password_then_right").await;
    b.run(async {
        b.step("login-page");
        b.goto(&format!("{gw}/courses/1")).await;
        b.wait_path("/_vigile/login").await;

        b.step("wrong-password");
        b.fill("#email", EMAIL).await;
        b.fill("#password", "Wrong-Horse-9!").await;
        b.click(LOGIN_SUBMIT).await;
        let error = b
            .wait_text(
                "p.error[role='alert']",
                "Incorrect email address or password.",
            )
            .await;
        assert!(error.contains("Forgot your password?"), "{error}");
        let forgot = b.find("p.error a[href='/_vigile/password/forgot']").await;
        assert_eq!(forgot.text().await.unwrap(), "Forgot your password?");
        b.wait_path("/_vigile/login").await;
        assert_eq!(b.value("#email").await, EMAIL, "the address is kept");
        assert_eq!(b.value("#password").await, "", "the password is not");
        assert!(upstream_hits(&s, "/courses/1").is_empty(), "not forwarded");

        b.step("right-password");
        b.fill("#password", PASSWORD).await;
        b.click(LOGIN_SUBMIT).await;
        b.wait_path("/courses/1").await;
        b.wait_text("body", "upstream saw /courses/1").await;
        assert_eq!(upstream_hits(&s, "/courses/1"), [EMAIL]);
    })
    .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signup_mail_activation_journey() {
    let s = Backend::Sqlite.stack("").await;
    let gw = s.gw.url();
    let b = Browser::start("browser_signup_mail_activation_journey").await;
    b.run(async {
        b.step("login-page-offers-sign-up");
        b.goto(&format!("{gw}/_vigile/login")).await;
        b.click("main a[href='/_vigile/signup']").await;
        b.wait_path("/_vigile/signup").await;

        b.step("policy-named-on-the-page");
        b.fill("#email", EMAIL).await;
        b.fill("#password", "weak").await;
        b.fill("#confirm", "weak").await;
        b.click("main form[action='/_vigile/signup'] button[type='submit']")
            .await;
        let error = b
            .wait_text("div.error[role='alert']", "At least 10 characters")
            .await;
        assert!(error.contains("At least one digit"), "{error}");

        b.step("sign-up");
        b.fill("#password", PASSWORD).await;
        b.fill("#confirm", PASSWORD).await;
        b.click("main form[action='/_vigile/signup'] button[type='submit']")
            .await;
        b.wait_text("main h1", "Check your mailbox").await;

        b.step("follow-the-mailed-link");
        let mail = s.smtp.wait_for_to(EMAIL, "Activate your account").await;
        let link = mail.link_containing("/_vigile/activate?token=");
        b.goto(&link).await;
        b.wait_path("/_vigile/account").await;
        b.wait_text("p.notice", "Welcome").await;
        b.wait_text("main", EMAIL).await;

        b.step("member-reaches-the-site");
        b.goto(&format!("{gw}/courses/1")).await;
        b.wait_text("body", "upstream saw /courses/1").await;
        assert_eq!(upstream_hits(&s, "/courses/1"), [EMAIL]);
    })
    .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_forgot_password_journey() {
    let s = Backend::Sqlite.stack("").await;
    s.gw.add_user(EMAIL, PASSWORD, false);
    let gw = s.gw.url();
    let new_password = "Another-Horse-7?";
    let b = Browser::start("browser_forgot_password_journey").await;
    b.run(async {
        b.step("forgot-link");
        b.goto(&format!("{gw}/_vigile/login")).await;
        b.click("main p.aside a[href='/_vigile/password/forgot']")
            .await;
        b.wait_path("/_vigile/password/forgot").await;

        b.step("ask-for-a-link");
        b.fill("#email", EMAIL).await;
        b.click("main form button[type='submit']").await;
        b.wait_text("main h1", "Check your mailbox").await;

        b.step("choose-a-new-password");
        let mail = s
            .smtp
            .wait_for("reset mail", |m| {
                m.text.contains("/_vigile/password/reset?token=")
            })
            .await;
        b.goto(&mail.link_containing("/_vigile/password/reset?token="))
            .await;
        b.fill("#password", new_password).await;
        b.fill("#confirm", new_password).await;
        b.click("main form[action='/_vigile/password/reset'] button[type='submit']")
            .await;
        b.wait_path("/_vigile/login").await;
        b.wait_text("p.notice", "Your password has been changed")
            .await;

        b.step("sign-in-with-it");
        b.fill("#email", EMAIL).await;
        b.fill("#password", new_password).await;
        b.click(LOGIN_SUBMIT).await;
        b.wait_path("/").await;
    })
    .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_six_wrong_passwords_lock_the_account() {
    let s = Backend::Sqlite.stack("").await;
    s.gw.add_user(EMAIL, PASSWORD, false);
    let gw = s.gw.url();
    let b = Browser::start("browser_six_wrong_passwords_lock_the_account").await;
    b.run(async {
        b.step("five-wrong-passwords");
        b.goto(&format!("{gw}/_vigile/login")).await;
        for _ in 0..5 {
            b.fill("#email", EMAIL).await;
            b.fill("#password", "Wrong-Horse-9!").await;
            b.click(LOGIN_SUBMIT).await;
            b.wait_text(
                "p.error[role='alert']",
                "Incorrect email address or password.",
            )
            .await;
        }

        b.step("sixth-locks");
        b.fill("#password", "Wrong-Horse-9!").await;
        b.click(LOGIN_SUBMIT).await;
        b.wait_text("p.error[role='alert']", "This account is locked")
            .await;

        b.step("right-password-refused-while-locked");
        b.fill("#password", PASSWORD).await;
        b.click(LOGIN_SUBMIT).await;
        b.wait_text("p.error[role='alert']", "Check your email")
            .await;
        assert!(upstream_hits(&s, "/").is_empty());

        b.step("mail-reactivates");
        let mail = s
            .smtp
            .wait_for_to(EMAIL, "Your account has been locked")
            .await;
        b.goto(&mail.link_containing("/_vigile/password/reset?token="))
            .await;
        b.fill("#password", "Unlocked-Horse-3?").await;
        b.fill("#confirm", "Unlocked-Horse-3?").await;
        b.click("main form[action='/_vigile/password/reset'] button[type='submit']")
            .await;
        b.wait_text("p.notice", "Your password has been changed")
            .await;
        b.fill("#email", EMAIL).await;
        b.fill("#password", "Unlocked-Horse-3?").await;
        b.click(LOGIN_SUBMIT).await;
        b.wait_path("/").await;
    })
    .await;
    b.close().await;
}

/// The device cap in two real browsers: the second device over the cap gets the code by
/// mail, enters it, replaces the first, lands where it wanted to go; the first is told
/// why at its next page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_device_cap_code_and_choice() {
    let s = Backend::Redis
        .stack("[sessions]\nmax_per_member = 1\non_overflow = \"choose\"\n")
        .await;
    s.gw.add_user(EMAIL, PASSWORD, false);
    let gw = s.gw.url();
    let test = "browser_device_cap_code_and_choice";
    let laptop = Browser::start_device(test, "laptop").await;
    laptop
        .run(async {
            laptop.step("laptop-signs-in");
            laptop.goto(&format!("{gw}/courses/1")).await;
            laptop.wait_path("/_vigile/login").await;
            laptop.fill("#email", EMAIL).await;
            laptop.fill("#password", PASSWORD).await;
            laptop.click(LOGIN_SUBMIT).await;
            laptop.wait_path("/courses/1").await;
        })
        .await;

    let other = Browser::start_device(test, "second").await;
    other
        .run(async {
            other.step("second-device-over-the-cap");
            other.goto(&format!("{gw}/courses/2")).await;
            other.wait_path("/_vigile/login").await;
            other.fill("#email", EMAIL).await;
            other.fill("#password", PASSWORD).await;
            other.click(LOGIN_SUBMIT).await;
            other.wait_path("/_vigile/verify").await;
            other
                .wait_text("main", "We emailed you a 6-digit code")
                .await;

            other.step("code-from-the-mail");
            let code = crate::devices::code_for(&s, EMAIL, 1).await;
            other.fill("#code", &code).await;
            other
                .click("main form[action='/_vigile/verify'] button[type='submit']")
                .await;
            other.wait_path("/_vigile/devices/choose").await;
            other.wait_text("main", "Chrome on Linux").await;

            other.step("replace-the-laptop");
            other
                .click("main form[action='/_vigile/devices/choose'] button[name='session']")
                .await;
            other.wait_path("/courses/2").await;
            other.wait_text("body", "upstream saw /courses/2").await;
        })
        .await;

    laptop
        .run(async {
            laptop.step("laptop-told-why");
            laptop.goto(&format!("{gw}/courses/1")).await;
            laptop.wait_path("/_vigile/login").await;
            laptop
                .wait_text("p.notice", "another of your devices took this one's place")
                .await;
        })
        .await;
    other.close().await;
    laptop.close().await;
}

/// The tour a newcomer takes with `vigile demo` alone (an English browser): the members-only
/// course sends them to sign in, they sign up, open the activation mail in the dev outbox,
/// follow its link, and the demo course site shows the identity Vigile sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_demo_signup_through_the_dev_outbox() {
    let demo = crate::demo::start_demo().await;
    let base = demo.base.clone();
    let visitor = "visitor@example.com";
    let b = Browser::start("browser_demo_signup_through_the_dev_outbox").await;
    b.run(async {
        b.step("course-asks-to-sign-in");
        b.goto(&format!("{base}/")).await;
        b.click("nav a[href='/courses/rust']").await;
        b.wait_path("/_vigile/login").await;

        b.step("sign-up");
        b.click("main a[href='/_vigile/signup']").await;
        b.wait_path("/_vigile/signup").await;
        b.fill("#email", visitor).await;
        b.fill("#password", PASSWORD).await;
        b.fill("#confirm", PASSWORD).await;
        b.click("main form[action='/_vigile/signup'] button[type='submit']")
            .await;
        b.wait_text("main h1", "Check your mailbox").await;

        b.step("activation-link-in-the-dev-outbox");
        let link = "main a[href*='/_vigile/activate?token=']";
        b.goto(&format!("{base}/_vigile/dev/mail")).await;
        for _ in 0..100 {
            if b.exists(link).await {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            b.refresh().await;
        }
        b.click(link).await;
        b.wait_path("/_vigile/account").await;
        b.wait_text("main", visitor).await;

        b.step("course-shows-the-identity");
        b.goto(&format!("{base}/courses/rust")).await;
        let table = b.wait_text("table", visitor).await;
        assert!(table.to_lowercase().contains("remote-email"), "{table}");
    })
    .await;
    b.close().await;
}
