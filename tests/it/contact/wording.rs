//! "Pages and SMS in French and English": every contact page, mail and text message a
//! member meets, in each language, is in that language and never shows a message key of
//! the catalogs; each SMS is one segment (at most 160 GSM-7 characters) holding one
//! 6-digit code; the contract's subjects and words are the ones used.

use std::collections::BTreeSet;

use reqwest::Client;

use super::*;
use crate::common::backend::{activation_mail, Backend};
use crate::common::consts::{BOSS, PW};
use crate::common::http::{client, get, login_ok, signup};

/// Every message id of the catalogs.
fn catalog_keys() -> BTreeSet<String> {
    crate::common::catalog::keys_except(&[
        "member",
        "admin",
        "org-admin",
        "org-super-admin",
        "email",
        "mobile",
    ])
}

/// GSM 03.38: the basic set (one septet each) and the extension table (two).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
    ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// The septets `text` takes in GSM-7, or the characters it cannot be written with.
fn gsm7_septets(text: &str) -> Result<usize, Vec<char>> {
    let mut septets = 0;
    let mut outside = Vec::new();
    for ch in text.chars() {
        if GSM7_BASIC.contains(ch) {
            septets += 1;
        } else if GSM7_EXTENSION.contains(ch) {
            septets += 2;
        } else {
            outside.push(ch);
        }
    }
    if outside.is_empty() {
        Ok(septets)
    } else {
        Err(outside)
    }
}

struct Seen {
    keys: BTreeSet<String>,
    problems: Vec<String>,
}

impl Seen {
    fn text(&mut self, what: &str, text: &str) {
        let raw: BTreeSet<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| self.keys.contains(*w))
            .collect();
        if !raw.is_empty() {
            self.problems
                .push(format!("{what} shows message keys {raw:?}:\n{text}"));
        }
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.problems.push(what.into());
        }
    }

    /// A page answered to a browser of language `lang`.
    fn page(&mut self, what: &str, lang: &str, html: &str) {
        self.check(
            html.contains(&format!("<html lang=\"{lang}\"")),
            format!("{what} is not in {lang}"),
        );
        self.text(what, &visible(html));
    }

    fn mail(&mut self, what: &str, m: &crate::common::smtp::ReceivedMail) {
        self.text(&format!("{what} (subject)"), &m.subject);
        self.text(&format!("{what} (text)"), &m.text);
        self.text(&format!("{what} (HTML)"), &visible(&m.html));
    }

    fn sms(&mut self, what: &str, lang: &str, text: &str) {
        self.text(what, text);
        self.check(
            six_digits(text).len() == 1,
            format!("{what}: not exactly one 6-digit code: {text:?}"),
        );
        match gsm7_septets(text) {
            Ok(n) => self.check(n <= 160, format!("{what}: {n} septets, over one segment: {text:?}")),
            Err(chars) => self.problems.push(format!(
                "{what}: characters outside GSM-7 {chars:?} (the SMS takes UCS-2, 70 a segment): {text:?}"
            )),
        }
        let words = text.to_lowercase();
        let in_lang = match lang {
            "en" => words.contains("your") && !words.contains("votre"),
            _ => words.contains("votre") && !words.contains("your"),
        };
        self.check(in_lang, format!("{what} is not in {lang}: {text:?}"));
        if lang == "en" {
            let code = six_digits(text).pop().unwrap_or_default();
            let rest = text.strip_prefix("Your ").and_then(|t| {
                t.strip_suffix(&format!(" confirmation code: {code} (valid 10 minutes)."))
            });
            self.check(
                rest.is_some_and(|site| !site.is_empty()),
                format!(
                    "{what}: the contract's text is \"Your {{site}} confirmation code: 123456 \
                     (valid 10 minutes).\": {text:?}"
                ),
            );
        }
    }
}

/// A browser whose visitor reads `lang`.
async fn browser(gw: &str, lang: &str) -> Client {
    let c = client();
    get(&c, &format!("{gw}/_vigile/lang/{lang}"), true).await;
    c
}

/// Body of any answer, with its status.
async fn answer(resp: reqwest::Response) -> (u16, String) {
    text(resp).await
}

struct Words {
    lang: &'static str,
    email: &'static str,
    new_email: &'static str,
    mobile: &'static str,
    new_mobile: &'static str,
    confirm_subject: &'static str,
    email_changed: &'static str,
    mobile_changed: &'static str,
    confirmed: &'static str,
}

const EN: Words = Words {
    lang: "en",
    email: "zoe@example.com",
    new_email: "zoe.new@example.com",
    mobile: "+33611111111",
    new_mobile: "+33622222222",
    confirm_subject: CONFIRM_SUBJECT,
    email_changed: EMAIL_CHANGED_SUBJECT,
    mobile_changed: MOBILE_CHANGED_SUBJECT,
    confirmed: "confirmed",
};

const FR: Words = Words {
    lang: "fr",
    email: "zoe@exemple.fr",
    new_email: "zoe.nouvelle@exemple.fr",
    mobile: "+33633333333",
    new_mobile: "+33644444444",
    confirm_subject: CONFIRM_SUBJECT_FR,
    email_changed: "Votre adresse e-mail a été modifiée",
    mobile_changed: "Votre numéro de mobile a été modifié",
    confirmed: "confirmé",
};

async fn journey(site: &Site, seen: &mut Seen, w: &Words) {
    let (s, gw) = (&site.s, site.gw());
    let lang = w.lang;
    let c = browser(&gw, lang).await;
    assert_eq!(signup(&c, &gw, w.email, PW, PW, lang).await.status(), 200);
    let subject = if lang == "fr" {
        "Veuillez activer votre compte"
    } else {
        "Activate your account"
    };
    let (_, link) = activation_mail(s, w.email, subject).await;
    let (status, location) = redirect(get(&c, &link, true).await).await;
    assert!(status == 302 || status == 303, "{location}");
    let rd = Target::parse(&location)
        .param("rd")
        .unwrap_or_else(|| panic!("activation did not lead to the contact page: {location}"))
        .to_string();
    let page = contact_page(&c, &gw, &rd).await;
    seen.page("the contact page", lang, &page.html);

    // Refusals.
    let (_, body) = answer(send(&c, &gw, "email", "not-an-address", &rd).await).await;
    seen.page("a refused address", lang, &body);
    let (_, body) = answer(send(&c, &gw, "mobile", "06 12", &rd).await).await;
    seen.page("a refused number", lang, &body);
    let (status, body) = answer(confirm(&c, &gw, "mobile", "123456", &rd).await).await;
    assert_eq!(status, 410);
    seen.page("no code pending", lang, &body);

    // The mobile, with a wrong code first.
    send_ok(&c, &gw, "mobile", w.mobile, &rd).await;
    let code = site.sms.code_for(w.mobile).await;
    let sms_text = six_digits_context(site, w.mobile).await;
    seen.sms("the code SMS", lang, &sms_text);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = answer(confirm(&c, &gw, "mobile", wrong, &rd).await).await;
    assert_eq!(status, 400);
    seen.page("a wrong code", lang, &body);
    confirm_ok(&c, &gw, "mobile", &code, &rd).await;
    let page = contact_page(&c, &gw, &rd).await;
    seen.page("everything confirmed", lang, &page.html);
    seen.check(
        page.visible().contains(w.confirmed),
        format!(
            "no {:?} on the confirmed page:\n{}",
            w.confirmed,
            page.visible()
        ),
    );
    let (status, body) = answer(confirm(&c, &gw, "mobile", &code, &rd).await).await;
    assert_eq!(status, 410);
    seen.page("a code used", lang, &body);

    // A new email: its code mail, the link's reuse page, the old address told.
    change_email(&c, &gw, w.new_email, &rd).await;
    let mail = nth_mail(s, w.new_email, w.confirm_subject, 1).await;
    seen.mail("the code mail", &mail);
    let link = mail.link_containing(CONTACT_LINK);
    // Another account signed in follows it: refused.
    let other = browser(&gw, lang).await;
    let someone = format!("someone.{lang}@example.com");
    confirmed_member(&s.gw, &someone, None);
    crate::common::http::login_ok(&other, &gw, &someone, PW).await;
    let (status, body) = answer(get(&other, &link, true).await).await;
    assert_eq!(status, 403);
    seen.page("the link of another account", lang, &body);
    // A new login address: the link works for that account, signed in.
    let (status, body) = answer(get(&c, &link, true).await).await;
    assert_eq!(status, 200);
    seen.page("the mailed link", lang, &body);
    let (status, body) = answer(get(&c, &link, true).await).await;
    assert_eq!(status, 410);
    seen.page("the mailed link used", lang, &body);
    let notice = s.smtp.wait_for_to(w.email, w.email_changed).await;
    seen.mail("the email-changed notice", &notice);

    // A new mobile: the account's (new) address told.
    send_ok(&c, &gw, "mobile", w.new_mobile, &rd).await;
    let code = site.sms.code_for(w.new_mobile).await;
    confirm_ok(&c, &gw, "mobile", &code, &rd).await;
    let notice = s.smtp.wait_for_to(w.new_email, w.mobile_changed).await;
    seen.mail("the mobile-changed notice", &notice);

    // Over the hourly limit.
    send_ok(&c, &gw, "mobile", w.new_mobile, &rd).await;
    let (status, body) = answer(send(&c, &gw, "mobile", w.new_mobile, &rd).await).await;
    assert_eq!(status, 429);
    seen.page("too many codes", lang, &body);

    // The forgot page.
    let forgot = page_of(&browser(&gw, lang).await, &gw, "/_vigile/password/forgot").await;
    seen.page("the forgot page", lang, &forgot);
}

/// The text of the newest SMS delivered to `to`, read from the sink.
async fn six_digits_context(site: &Site, to: &str) -> String {
    site.sms.code_for(to).await;
    site.sms
        .delivered()
        .into_iter()
        .rev()
        .find(|m| m.to == to)
        .map(|m| m.text.clone())
        .unwrap_or_else(|| panic!("no SMS delivered to {to}"))
}

async fn page_of(c: &Client, gw: &str, path: &str) -> String {
    page(c, gw, path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_pages_mails_and_sms_in_french_and_english() {
    let site = site(
        Backend::Sqlite,
        "[contact]\nrequire_confirmed = true\nask_mobile = true\n\
         [site]\nsupport_email = \"help@school.example\"\n",
    )
    .await;
    let mut seen = Seen {
        keys: catalog_keys(),
        problems: Vec::new(),
    };
    journey(&site, &mut seen, &EN).await;
    journey(&site, &mut seen, &FR).await;

    // The admin's campaigns section.
    let gw = site.gw();
    add_member(&site.s.gw, BOSS, &["--admin", "--confirmed"]);
    for lang in ["en", "fr"] {
        let admin = browser(&gw, lang).await;
        login_ok(&admin, &gw, BOSS, PW).await;
        crate::contact::campaigns::admin_start(
            &admin,
            &gw,
            &[("scope", "all"), ("members", ""), ("channels", "email")],
        )
        .await;
        let page = page(&admin, &gw, "/_vigile/admin/campaigns").await;
        seen.page("the admin page with campaigns", lang, &page);
    }
    assert!(
        seen.problems.is_empty(),
        "{} problem(s):\n{}",
        seen.problems.len(),
        seen.problems.join("\n---\n")
    );
}
