//! A contact-confirmation campaign in a real Chromium, in French, through the real
//! `vigile` binary: the campaign started from the CLI, the member signs in, lands on the
//! French contact page, types the code mailed (read from the real SMTP server) and the
//! code texted (read from the HTTP server standing in for the SMS provider) into the
//! page, sees both confirmed and goes on to the page they wanted, which the site serves
//! with their identity. Failures leave a screenshot in `test-artifacts/<test>/` (see
//! `common::browser`).

use crate::common::backend::Backend;
use crate::common::browser::Browser;
use crate::common::consts::{ANN, PW};
use crate::contact::{
    campaign_start, confirmed_member, mail_code, site, status_of, Deferred, Progress,
    CONFIRM_SUBJECT_FR, CONTACT_LINK, MOBILE, MOBILE_E164,
};

const LOGIN_SUBMIT: &str = "main form[action='/_vigile/login'] button[type='submit']";
const SEND: &str = "/_vigile/contact/send";
const CONFIRM: &str = "/_vigile/contact/confirm";

/// The form posting to `action` for `channel`: inside its section when the page puts it
/// there, else the one holding the channel's field.
async fn form_for(b: &Browser, action: &str, channel: &str) -> String {
    let in_section = format!("#contact-{channel} form[action='{action}']");
    if b.exists(&in_section).await {
        return in_section;
    }
    let by_field = if action == SEND {
        format!("form[action='{action}']:has([name='{channel}'])")
    } else {
        format!("form[action='{action}']:has([name='channel'][value='{channel}'])")
    };
    b.find(&by_field).await;
    by_field
}

async fn submit(b: &Browser, form: &str) {
    b.click(&format!(
        "{form} button[type='submit'], {form} button:not([type])"
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_campaign_in_french() {
    let site = site(Backend::Sqlite, "").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, None);
    let (id, _) = campaign_start(&s.gw, &["--all"]).await;

    let b = Browser::start("browser_campaign_in_french").await;
    // What the member reads outside the page (mail, SMS) is checked at the end, so the
    // rest of the journey still runs.
    let mut french = Deferred::default();
    b.run(async {
        b.step("french-sign-in");
        b.goto(&format!("{gw}/_vigile/lang/fr")).await;
        b.goto(&format!("{gw}/courses/1")).await;
        b.wait_path("/_vigile/login").await;
        b.find("html[lang='fr']").await;
        b.fill("#email", ANN).await;
        b.fill("#password", PW).await;
        b.click(LOGIN_SUBMIT).await;

        b.step("the-contact-page-in-french");
        let url = b.wait_path("/_vigile/contact").await;
        let rd: Vec<_> = url.query_pairs().filter(|(k, _)| k == "rd").collect();
        assert_eq!(rd.len(), 1, "one rd in {url}");
        assert_eq!(rd[0].1, "/courses/1", "{url}");
        b.find("html[lang='fr']").await;
        b.find("#contact-email [data-state='unconfirmed']").await;
        b.find("#contact-mobile [data-state='unconfirmed']").await;
        assert_eq!(b.value("input[name='email']").await, ANN, "prefilled");
        assert_eq!(b.value("input[name='mobile']").await, "", "no mobile yet");
        let later = b.find("a#contact-later").await;
        assert_eq!(
            later.attr("href").await.unwrap().as_deref(),
            Some("/courses/1")
        );

        b.step("the-email-code");
        submit(&b, &form_for(&b, SEND, "email").await).await;
        b.wait_path("/_vigile/contact").await;
        let mail = s
            .smtp
            .wait_for("the code mail", |m| {
                m.to.iter().any(|t| t == ANN) && m.text.contains(CONTACT_LINK)
            })
            .await;
        french.check(
            mail.subject.contains(CONFIRM_SUBJECT_FR),
            format!("the code mail is not French: {:?}", mail.subject),
        );
        let code = mail_code(&mail);
        let form = form_for(&b, CONFIRM, "email").await;
        b.fill(&format!("{form} [name='code']"), &code).await;
        submit(&b, &form).await;
        b.find("#contact-email [data-state='confirmed']").await;
        b.find("#contact-mobile [data-state='unconfirmed']").await;

        b.step("the-mobile-code");
        let form = form_for(&b, SEND, "mobile").await;
        b.fill(&format!("{form} [name='mobile']"), MOBILE).await;
        submit(&b, &form).await;
        b.wait_path("/_vigile/contact").await;
        let code = site.sms.code_for(MOBILE_E164).await;
        let sms = site
            .sms
            .delivered()
            .into_iter()
            .find(|m| m.to == MOBILE_E164)
            .expect("the text");
        let words = sms.text.to_lowercase();
        french.check(
            words.contains("votre") && !words.contains("your"),
            format!("the SMS is not French: {}", sms.text),
        );
        let form = form_for(&b, CONFIRM, "mobile").await;
        b.fill(&format!("{form} [name='code']"), &code).await;
        submit(&b, &form).await;

        b.step("both-confirmed");
        b.find("#contact-email [data-state='confirmed']").await;
        b.find("#contact-mobile [data-state='confirmed']").await;
        b.wait_text("main", "confirmé").await;
        assert_eq!(status_of(&s.gw, &id).await, Progress::new(1, 1, 1, 0));

        b.step("on-to-the-course");
        b.click("main a[href='/courses/1']").await;
        b.wait_path("/courses/1").await;
        b.wait_text("body", "upstream saw /courses/1").await;
        let seen = s
            .upstream
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.path == "/courses/1")
            .expect("the course reached the upstream");
        assert_eq!(seen.header("remote-email"), Some(ANN));
    })
    .await;
    b.close().await;
    french.assert_none();
}
