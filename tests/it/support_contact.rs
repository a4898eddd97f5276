//! `site.support_email` and what admins and locked members are told, through the real
//! binary, a real SMTP server and both backends: the "Contact us" mailto line on the
//! login page's lock answer, the blocked-address 429 page, an error page, the recovery
//! pages and in mails (and nowhere when unset), with `site.name` in the page header and
//! the mails' first line; the device-overflow notice naming the
//! member with a link to their admin page and a mailto link; and a known device's own lock
//! saying no mail was sent, while an account's lock says one was (and it comes).

use reqwest::Client;

use crate::both_backends;
use crate::common::backend::{Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW, WRONG};
use crate::common::http::{self, client, client_from, get, get_page, header, login, login_ok};
use crate::common::smtp::ReceivedMail;

const NAME_OF_SITE: &str = "École Example";
/// A `+` in the address: the link must carry it percent-encoded.
const SUPPORT: &str = "help+desk@school.example";
const MAILTO: &str = "mailto:help%2Bdesk@school.example";
const LOCKED: &str = "This account is locked";
const LOCK_SUBJECT: &str = "Your account has been locked";

/// The "Contact us" line of a page, if it has one.
fn support_line(page: &str) -> Option<&str> {
    let start = page.find("<p class=\"aside\" id=\"support\">")?;
    let rest = &page[start..];
    Some(&rest[..rest.find("</p>").map_or(rest.len(), |e| e + 4)])
}

/// The page shows the support address as a mailto link (`want`), or nothing of it.
#[track_caller]
fn assert_support(page: &str, want: bool, what: &str) {
    match (support_line(page), want) {
        (Some(line), true) => assert!(
            line.contains(&format!("<a href=\"{MAILTO}\">{SUPPORT}</a>"))
                && line.contains("Contact us by email"),
            "{what}: {line}"
        ),
        (None, false) => assert!(
            !page.contains("mailto:") && !page.contains("help+desk"),
            "{what}: a support address without the setting:\n{page}"
        ),
        (line, _) => panic!("{what}: support line {line:?}, expected: {want}\n{page}"),
    }
}

/// A mail ends with the support line (HTML: a mailto link; text: the address), or has
/// nothing of it.
#[track_caller]
fn assert_mail_support(mail: &ReceivedMail, want: bool) {
    let link = format!("<a href=\"{MAILTO}\"");
    let text_tail = mail.text.rsplit("\n--\n").next().unwrap_or_default();
    if want {
        assert!(mail.html.contains(&link), "{}", mail.html);
        assert!(
            text_tail.contains(&format!("Contact us by email: {SUPPORT}")),
            "{}",
            mail.text
        );
    } else {
        assert!(!mail.html.contains("mailto:"), "{}", mail.html);
        assert!(
            !mail.text.contains("Contact us") && !mail.text.contains("help+desk"),
            "{}",
            mail.text
        );
    }
}

async fn attempt(c: &Client, gw: &str, email: &str, password: &str) -> (u16, String) {
    let resp = login(c, gw, email, password).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The same journey with and without `site.support_email`: an attacker's address locks
/// Ann's account (3 failures) and then gets itself blocked (4 failures from it).
async fn journey(backend: Backend, with_support: bool) {
    // `site.name` rides along: the page header and the mails' first line.
    let (site, name) = if with_support {
        let toml = format!("[site]\nname = \"{NAME_OF_SITE}\"\nsupport_email = \"{SUPPORT}\"\n");
        (toml, NAME_OF_SITE)
    } else {
        (String::new(), "Members area")
    };
    let s = backend
        .stack(&format!(
            "{site}[lockout]\naccount_max_failures = 3\nip_max_failures = 4\n"
        ))
        .await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let (attacker, _) = client_from("127.0.0.2".parse().unwrap());

    // A plain wrong password: no lock, no support line.
    for _ in 0..2 {
        let (status, body) = attempt(&attacker, &gw, ANN, WRONG).await;
        assert_eq!(status, 401);
        assert!(!body.contains(LOCKED), "{body}");
        assert_support(&body, false, "a wrong password");
    }
    // The lock answer.
    let (status, body) = attempt(&attacker, &gw, ANN, WRONG).await;
    assert_eq!(status, 401);
    assert!(body.contains(LOCKED), "{body}");
    assert_support(&body, with_support, "the lock answer");
    // This client's fourth failure blocks its address: the next page is the 429.
    let (_, body) = attempt(&attacker, &gw, ANN, PW).await;
    assert!(body.contains(LOCKED), "{body}");
    let resp = get(&attacker, &format!("{gw}/_vigile/login"), true).await;
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").is_some());
    let body = resp.text().await.unwrap();
    assert!(body.contains("temporarily blocked"), "{body}");
    assert_support(&body, with_support, "the block page");

    // An error page.
    let resp = get(&client(), &format!("{gw}/_vigile/no-such-page"), true).await;
    assert_eq!(resp.status(), 404);
    assert_support(&resp.text().await.unwrap(), with_support, "the 404 page");

    // The lock mail, and the recovery pages: forgot, and reset from the mail's link.
    let mail = s.smtp.wait_for_to(ANN, LOCK_SUBJECT).await;
    assert_mail_support(&mail, with_support);
    let visitor = client();
    let forgot = get_page(&visitor, &format!("{gw}/_vigile/password/forgot")).await;
    assert_support(&forgot, with_support, "the forgot page");
    assert!(
        forgot.contains(&format!("<a class=\"brand\" href=\"/\">{name}</a>")),
        "{forgot}"
    );
    let first_line = if with_support {
        NAME_OF_SITE
    } else {
        "127.0.0.1"
    };
    assert!(mail.text.starts_with(first_line), "{}", mail.text);
    let reset = get_page(
        &visitor,
        &mail.link_containing("/_vigile/password/reset?token="),
    )
    .await;
    assert!(reset.contains("name=\"confirm\""), "{reset}");
    assert_support(&reset, with_support, "the reset page");

    // In French too.
    let french = client();
    get(&french, &format!("{gw}/_vigile/lang/fr?rd=%2F"), true).await;
    let page = get_page(&french, &format!("{gw}/_vigile/password/forgot")).await;
    assert!(page.contains("lang=\"fr\""), "{page}");
    match support_line(&page) {
        Some(line) => assert!(
            with_support && line.contains("Contactez-nous") && line.contains(MAILTO),
            "{line}"
        ),
        None => assert!(!with_support, "no support line in French:\n{page}"),
    }
}

async fn support_address_on_lock_block_error_and_recovery_pages_and_in_mails(backend: Backend) {
    journey(backend, true).await;
}

async fn no_support_line_anywhere_when_unset(backend: Backend) {
    journey(backend, false).await;
}

both_backends!(
    support_address_on_lock_block_error_and_recovery_pages_and_in_mails,
    no_support_line_anywhere_when_unset
);

const NOTIFY: &str = "owner@example.com";
const NAME: &str = "Zoë O'Hara";

async fn overflow_notice_names_the_member_and_links_their_page_and_a_mailto(backend: Backend) {
    let s = backend
        .stack(&format!(
            "[sessions]\nmax_per_member = 1\non_overflow = \"choose\"\n\
             [mail]\nadmin_notify = [\"{NOTIFY}\"]\n[lockout]\nip_max_failures = 0\n"
        ))
        .await;
    let gw = s.gw.url();
    s.gw.cli_ok(
        &["user", "add", ANN, "--name", NAME, "--confirmed"],
        Some(&format!("{PW}\n")),
    );
    s.gw.add_user(BOSS, PW, true);
    login_ok(&client(), &gw, ANN, PW).await;
    let resp = login(&client(), &gw, ANN, PW).await;
    assert_eq!(
        header(&resp, "location").as_deref(),
        Some("/_vigile/verify")
    );

    // Both admins (the notify address and the admin account) get it.
    for admin in [NOTIFY, BOSS] {
        let notice = s
            .smtp
            .wait_for_to(admin, "went over the device limit")
            .await;
        assert!(
            notice
                .text
                .contains(&format!("The member {ANN} (“{NAME}”) signed in")),
            "{}",
            notice.text
        );
        assert!(
            notice.html.contains(&format!("href=\"mailto:{ANN}\"")),
            "{}",
            notice.html
        );
        assert!(
            notice
                .text
                .contains(&format!("Write to the member ({ANN}):\nmailto:{ANN}")),
            "{}",
            notice.text
        );
        // An absolute link (public_url) to Ann's admin page, which shows her.
        let link = notice.link_containing("/_vigile/admin/member?email=");
        assert_eq!(
            link,
            format!("{gw}/_vigile/admin/member?email=ann%40example.com")
        );
        assert!(
            notice.html.contains(&format!("href=\"{link}\"")),
            "{}",
            notice.html
        );
    }
    let boss = client();
    login_ok(&boss, &gw, BOSS, PW).await;
    let link = format!("{gw}/_vigile/admin/member?email=ann%40example.com");
    let resp = get(&boss, &link, true).await;
    assert_eq!(resp.status(), 200);
    let page = http::decode_entities(&resp.text().await.unwrap());
    assert!(page.contains(ANN), "{page}");
}
both_backends!(overflow_notice_names_the_member_and_links_their_page_and_a_mailto);

/// Locks mailed to Ann so far.
fn lock_mails(s: &Stack) -> usize {
    s.smtp
        .mails()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == ANN) && m.subject.contains(LOCK_SUBJECT))
        .count()
}

async fn a_known_devices_lock_claims_no_mail_an_accounts_lock_does(backend: Backend) {
    let s = backend
        .stack(&format!(
            "[site]\nsupport_email = \"{SUPPORT}\"\n\
             [lockout]\naccount_max_failures = 3\nip_max_failures = 0\n"
        ))
        .await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    // Ann's laptop has signed in before (its device is known), then out.
    let laptop = client();
    login_ok(&laptop, &gw, ANN, PW).await;
    let page = get_page(&laptop, &format!("{gw}/_vigile/account")).await;
    let csrf = http::csrf_from(&page);
    http::post_form(&laptop, &format!("{gw}/_vigile/logout"), &[("csrf", &csrf)]).await;

    // Her own typos lock the laptop: no mail goes, and the page says so.
    for _ in 0..2 {
        attempt(&laptop, &gw, ANN, WRONG).await;
    }
    for password in [WRONG, PW] {
        let (status, body) = attempt(&laptop, &gw, ANN, password).await;
        assert_eq!(status, 401);
        assert!(
            body.contains("this device: it can no longer sign in")
                && body.contains("No email was sent."),
            "{body}"
        );
        assert!(!body.contains("Check your email"), "{body}");
        assert_support(&body, true, "the device's lock answer");
    }
    get(&laptop, &format!("{gw}/_vigile/lang/fr?rd=%2F"), true).await;
    let (_, body) = attempt(&laptop, &gw, ANN, PW).await;
    assert!(body.contains("Aucun e-mail"), "{body}");
    assert!(!body.contains("Consultez vos e-mails"), "{body}");
    s.outbox_drained().await;
    assert_eq!(lock_mails(&s), 0, "a device lock mails nobody");

    // Failures from a device that never signed in lock the account: that page tells of
    // the mail, and the mail comes.
    let stranger = client();
    for _ in 0..2 {
        attempt(&stranger, &gw, ANN, WRONG).await;
    }
    let (status, body) = attempt(&stranger, &gw, ANN, WRONG).await;
    assert_eq!(status, 401);
    assert!(
        body.contains(LOCKED) && body.contains("Check your email"),
        "{body}"
    );
    assert!(!body.contains("No email was sent"), "{body}");
    assert_support(&body, true, "the account's lock answer");
    s.smtp.wait_for_to(ANN, LOCK_SUBJECT).await;
    s.outbox_drained().await;
    assert_eq!(lock_mails(&s), 1);
}
both_backends!(a_known_devices_lock_claims_no_mail_an_accounts_lock_does);
