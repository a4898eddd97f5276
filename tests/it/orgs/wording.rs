//! "French and English throughout, pages and mails": every organisation page and mail a
//! journey meets, in each language, says things in that language and never shows a
//! message key of the catalogs (what a lookup that failed prints instead of the text).
//! The keys are read from `locales/*/*.ftl`, so a key added later is covered.

use std::collections::BTreeSet;

use reqwest::Client;

use super::*;
use crate::common::backend::{Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::http::{self, client, get, get_page, login_ok, submit};

/// Every message id of the catalogs.
fn catalog_keys() -> BTreeSet<String> {
    crate::common::catalog::keys_except(&["member", "admin", "org-admin", "org-super-admin"])
}

/// The text a person reads in an HTML document: tags removed, entities decoded.
fn visible(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    http::decode_entities(&out)
}

/// Pages and mails met along the way, checked at the end.
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

    /// An HTML page answered to a browser of language `lang`.
    fn page(&mut self, what: &str, lang: &str, html: &str) {
        if !html.contains(&format!("<html lang=\"{lang}\"")) {
            self.problems.push(format!("{what} is not in {lang}"));
        }
        self.text(what, &visible(html));
    }

    fn mails(&mut self, s: &Stack) {
        for m in s.smtp.mails() {
            let what = format!("the mail {:?} to {:?}", m.subject, m.to);
            self.text(&format!("{what} (subject)"), &m.subject);
            self.text(&format!("{what} (text)"), &m.text);
            self.text(&format!("{what} (HTML)"), &visible(&m.html));
        }
    }
}

/// A browser whose visitor reads `lang`.
async fn browser(gw: &str, lang: &str) -> Client {
    let c = client();
    get(&c, &format!("{gw}/_vigile/lang/{lang}"), true).await;
    c
}

/// Body of any answer (a 403, 409 or 410 page included).
async fn body(c: &Client, url: &str) -> String {
    get(c, url, true).await.text().await.unwrap()
}

/// The journey of a founder of `company` reading `lang`, each page checked.
async fn journey(s: &Stack, seen: &mut Seen, lang: &str, owner_email: &str, company: &str) {
    let gw = s.gw.url();
    let c = browser(&gw, lang).await;
    let register = format!("{gw}/_vigile/register");
    seen.page("step 1", lang, &get_page(&c, &register).await);
    let (_, page) = text(step1(&c, &gw, owner_email, "typo@example.com").await).await;
    seen.page("step 1 refused", lang, &page);
    let (_, page) = text(step1(&c, &gw, owner_email, owner_email).await).await;
    seen.page("step 1 done", lang, &page);
    let link = step_link(s, owner_email).await;
    seen.page("step 2", lang, &get_page(&c, &link).await);
    let bad = Company {
        company,
        id_number: BAD_SIRET,
        phone: "06 12",
        ..ACME
    };
    let (_, page) = text(step2(&c, &gw, &link, &bad).await).await;
    seen.page("step 2 refused", lang, &page);
    let good = Company { company, ..ACME };
    let (form, page) = step3_form(&c, &gw, &link, &good).await;
    seen.page("step 3", lang, &page);
    let mut fields = vec![
        ("step", "3"),
        ("first_name", "Olga"),
        ("last_name", "Martin"),
        ("password", "weak"),
        ("confirm", "weaker"),
        ("lang", lang),
    ];
    let (_, page) = text(submit(&c, &gw, &form, &fields).await).await;
    seen.page("step 3 refused", lang, &page);
    fields[3].1 = PW;
    fields[4].1 = PW;
    assert_eq!(submit(&c, &gw, &form, &fields).await.status(), 303);
    seen.page("a used link", lang, &body(&c, &link).await);

    seen.page("the org page", lang, &org_page(&c, &gw).await);
    let billing = format!("{gw}/_vigile/org/billing");
    seen.page("billing", lang, &get_page(&c, &billing).await);
    let org = api_me(&c, &gw).await["org"].as_str().unwrap().to_string();
    let member = format!("member.{lang}@example.com");
    assert_eq!(invite(&c, &gw, &member).await.status(), 303);
    let join_page = get_page(&browser(&gw, lang).await, &join_link(s, &member).await).await;
    seen.page("the join page", lang, &join_page);
    let joined = browser(&gw, lang).await;
    assert_eq!(
        join(&joined, &gw, &join_link(s, &member).await)
            .await
            .status(),
        303
    );
    seen.page("a member's org page", lang, &org_page(&joined, &gw).await);
    seen.page("billing refused", lang, &body(&joined, &billing).await);
    assert_eq!(invite(&c, &gw, ANN).await.status(), 303);
    s.gw.cli_ok(&["org", "set", &org, "--seats", "3"], None);
    let (status, page) = text(invite(&c, &gw, "one.too.many@example.com").await).await;
    assert_eq!(status, 409);
    seen.page("no seat left", lang, &page);
    let (_, page) = text(step1(&browser(&gw, lang).await, &gw, ANN, ANN).await).await;
    seen.page("step 1 for a taken address", lang, &page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_pages_and_mails_show_no_message_keys() {
    let s = Backend::Sqlite.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);
    let mut seen = Seen {
        keys: catalog_keys(),
        problems: Vec::new(),
    };
    journey(&s, &mut seen, "en", OWNER, COMPANY).await;
    journey(&s, &mut seen, "fr", "odile@exemple.fr", "Entreprise Dupont").await;

    let admin = browser(&gw, "en").await;
    login_ok(&admin, &gw, BOSS, PW).await;
    let page = get_page(&admin, &format!("{gw}/_vigile/admin/orgs")).await;
    seen.page("the admin page", "en", &page);
    for (id, _) in org_rows(&page) {
        let url = format!("{gw}/_vigile/admin/org?id={id}");
        seen.page(
            "an organisation's admin page",
            "en",
            &get_page(&admin, &url).await,
        );
    }
    // Every mail sent by now (step links, warnings, invitations, their owners told).
    s.smtp.wait_for_to(ANN, TAKEN_SUBJECT).await;
    s.outbox_drained().await;
    seen.mails(&s);
    assert!(
        seen.problems.is_empty(),
        "{}",
        seen.problems.join("\n---\n")
    );
}
