#![allow(clippy::unwrap_used)]

use super::*;
use crate::store::{AccountStatus, SqliteStore, UserId};

/// When the mails are queued (the outbox only stores it).
const NOW: crate::store::Millis = 1_700_000_000_000;

fn mailer(public_url: &str) -> (Mailer, DynStore, tempfile::TempDir) {
    mailer_with(public_url, "")
}

/// A mailer whose configuration also holds `extra` (whole sections).
fn mailer_with(public_url: &str, extra: &str) -> (Mailer, DynStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[upstream]\nurl = \"http://127.0.0.1:1\"\n[server]\npublic_url = \"{public_url}\"\n{extra}"
    );
    let config = crate::config::from_str(&toml, "test", std::iter::empty()).unwrap();
    let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("v.db")).unwrap());
    let metrics = Arc::new(Metrics::new().unwrap());
    (
        Mailer::new(Arc::new(config), store.clone(), metrics),
        store,
        dir,
    )
}

fn user(lang: &str) -> User {
    User {
        id: UserId::random(),
        email: "zoe@example.com".into(),
        name: String::new(),
        password_hash: String::new(),
        admin: false,
        status: AccountStatus::Active,
        lang: Some(lang.into()),
        created_at: 0,
        org: None,
        contact: Default::default(),
    }
}

/// Queues every mail for a member in `lang`; returns them with their expected link.
async fn every_mail(lang: &str) -> Vec<(OutboxMail, &'static str)> {
    let (m, store, _dir) = mailer("https://courses.example.com/");
    let u = user(lang);
    m.activation(&u, "TOKEN1", NOW).await.unwrap();
    m.account_created(&u, NOW).await.unwrap();
    m.signup_attempt(&u, NOW).await.unwrap();
    m.password_reset(&u, "TOKEN2", NOW).await.unwrap();
    m.password_changed(&u, super::SignedOutBy::Every, NOW)
        .await
        .unwrap();
    let invited = crate::edge::email::Email::parse("zoe@example.com").unwrap();
    m.invitation(&invited, Lang::parse(lang).unwrap(), NOW)
        .await
        .unwrap();
    m.account_locked(&u, Some("TOKEN3"), NOW).await.unwrap();
    let mut mails = store.outbox_list().await.unwrap();
    mails.sort_by_key(|m| {
        [
            "activation",
            "account_created",
            "signup_attempt",
            "password_reset",
            "password_changed",
            "invitation",
            "account_locked",
        ]
        .iter()
        .position(|k| *k == m.kind)
    });
    let links = [
        "https://courses.example.com/_vigile/activate?token=TOKEN1",
        "https://courses.example.com/_vigile/account",
        "https://courses.example.com/_vigile/password/forgot",
        "https://courses.example.com/_vigile/password/reset?token=TOKEN2",
        "https://courses.example.com/_vigile/password/forgot",
        "https://courses.example.com/_vigile/signup?email=zoe%40example.com",
        "https://courses.example.com/_vigile/password/reset?token=TOKEN3",
    ];
    mails.into_iter().zip(links).collect()
}

#[tokio::test]
async fn every_mail_renders_in_both_languages() {
    let (fr, en) = (every_mail("fr").await, every_mail("en").await);
    assert_eq!(fr.len(), 7);
    assert_eq!(en.len(), 7);
    for ((f, link), (e, _)) in fr.iter().zip(&en) {
        for m in [f, e] {
            assert_eq!(m.to, "zoe@example.com");
            assert!(!m.subject.is_empty() && !m.text.is_empty() && !m.html.is_empty());
            assert!(
                m.text.contains(link),
                "{}: {link} not in {}",
                m.kind,
                m.text
            );
            assert!(
                m.html
                    .contains(&format!("href=\"{link}\"").replace('&', "&amp;")),
                "{}: {}",
                m.kind,
                m.html
            );
            for part in [&m.subject, &m.text, &m.html] {
                assert!(
                    !part.contains("mail-"),
                    "raw catalog key in {}: {part}",
                    m.kind
                );
                assert!(!part.contains('\u{2068}'), "bidi mark in {}", m.kind);
            }
            assert!(m.text.contains("courses.example.com"));
        }
        assert_ne!(f.subject, e.subject, "{}", f.kind);
        assert_ne!(f.text, e.text, "{}", f.kind);
        assert!(f.html.contains("lang=\"fr\"") && e.html.contains("lang=\"en\""));
    }
    assert_eq!(fr[0].0.subject, "Veuillez activer votre compte");
    assert_eq!(en[0].0.subject, "Activate your account");
    assert!(en[0].0.text.contains("48 hours"), "{}", en[0].0.text);
    assert!(en[3].0.text.contains("60 minutes"), "{}", en[3].0.text);
}

#[tokio::test]
async fn links_join_the_public_url_once_and_html_is_escaped() {
    // `public_url` has no path (refused by the configuration): links are its origin +
    // Vigile's path, without a doubled `/` from a trailing one.
    let (m, store, _dir) = mailer("https://example.com:8443/");
    let mut u = user("en");
    u.email = "a<b>@example.com".into();
    m.account_created(&u, NOW).await.unwrap();
    let mail = store.outbox_list().await.unwrap().remove(0);
    assert!(mail
        .text
        .contains("https://example.com:8443/_vigile/account"));
    assert!(
        mail.html.contains("a&#60;b&#62;@example.com")
            || mail.html.contains("a&lt;b&gt;@example.com"),
        "{}",
        mail.html
    );
}

#[tokio::test]
async fn the_site_name_and_support_address_close_every_mail() {
    let extra = "[site]\nname = \"Cours <Example>\"\nsupport_email = \"a&b+c@school.example\"\n";
    let (m, store, _dir) = mailer_with("https://courses.example.com/", extra);
    m.account_created(&user("en"), NOW).await.unwrap();
    m.password_changed(&user("fr"), super::SignedOutBy::Every, NOW)
        .await
        .unwrap();
    for mail in store.outbox_list().await.unwrap() {
        // HTML: escaped text, and a mailto link whose address is percent-encoded.
        let shown = |text: &str| {
            let numeric = text
                .replace('&', "&#38;")
                .replace('<', "&#60;")
                .replace('>', "&#62;");
            let named = text
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            mail.html.contains(&numeric) || mail.html.contains(&named)
        };
        assert!(
            mail.html
                .contains("<a href=\"mailto:a%26b%2Bc@school.example\"")
                && shown("a&b+c@school.example"),
            "{}",
            mail.html
        );
        assert!(shown("Cours <Example>"), "{}", mail.html);
        assert!(!mail.html.contains("<Example>"), "{}", mail.html);
        // Text: the address as typed, after the footer.
        let tail = mail.text.rsplit("--").next().unwrap();
        assert!(tail.contains("a&b+c@school.example"), "{}", mail.text);
        assert!(mail.text.starts_with("Cours <Example>"), "{}", mail.text);
    }
    // Without the setting, no line at all.
    let (m, store, _dir) = mailer("https://courses.example.com/");
    m.account_created(&user("en"), NOW).await.unwrap();
    let mail = store.outbox_list().await.unwrap().remove(0);
    assert!(!mail.html.contains("mailto:") && !mail.text.contains("Contact us"));
    assert!(
        mail.text.starts_with("courses.example.com"),
        "{}",
        mail.text
    );
}
