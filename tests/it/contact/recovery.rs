//! "An unconfirmed email never receives a password-reset link", on both backends: the
//! forgot page answers exactly as for a confirmed address (status and page) but mails
//! nothing; once the address is confirmed on the contact page the reset mail comes; an
//! account made with `vigile user add --confirmed` gets it at once; a campaign asking for
//! the email makes it unconfirmed again. The forgot page says links go only to confirmed
//! addresses and shows `site.support_email`.

use reqwest::Client;

use super::*;
use crate::both_backends;
use crate::common::backend::{Backend, Stack};
use crate::common::consts::ANN;
use crate::common::http::client;

const CAROL: &str = "carol@example.com";
const SUPPORT: &str = "help@school.example";
const RESET_LINK: &str = "/_vigile/password/reset?token=";

async fn forgot(c: &Client, gw: &str, email: &str) -> (u16, String) {
    let resp = post_from(
        c,
        gw,
        "/_vigile/password/forgot",
        "/_vigile/password/forgot",
        &[("email", email)],
    )
    .await;
    text(resp).await
}

fn reset_mails(s: &Stack, email: &str) -> usize {
    s.smtp
        .mails()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == email) && m.text.contains(RESET_LINK))
        .count()
}

async fn wait_reset_mails(s: &Stack, email: &str, n: usize) {
    s.smtp
        .wait_for(&format!("reset mail #{n} to {email}"), |_| {
            reset_mails(s, email) >= n
        })
        .await;
}

async fn no_reset_link_to_an_unconfirmed_email(backend: Backend) {
    let site = site(backend, &format!("[site]\nsupport_email = \"{SUPPORT}\"\n")).await;
    let (s, gw) = (&site.s, site.gw());
    add_member(&s.gw, ANN, &[]);
    add_member(&s.gw, CAROL, &["--confirmed"]);

    // The page says how recovery works, and whom to write to.
    let page = visible(&page(&client(), &gw, "/_vigile/password/forgot").await);
    assert!(page.contains(SUPPORT), "no support address:\n{page}");
    assert!(
        page.contains("confirmed"),
        "the forgot page does not say links go only to confirmed addresses:\n{page}"
    );

    // The same answer for both; only the confirmed one is mailed.
    let unconfirmed = forgot(&client(), &gw, ANN).await;
    let confirmed = forgot(&client(), &gw, CAROL).await;
    assert_eq!(unconfirmed, confirmed, "status and page must be identical");
    assert_eq!(confirmed.0, 200);
    wait_reset_mails(s, CAROL, 1).await;
    s.outbox_drained().await;
    assert_eq!(
        s.smtp.count_to(ANN),
        0,
        "a reset link to an unconfirmed address"
    );

    // Ann confirms her address on the contact page: now the link comes.
    let c = client();
    login_straight(&c, &gw, ANN).await;
    send_ok(&c, &gw, "email", ANN, RD).await;
    let code = email_code(s, ANN, 1).await;
    confirm_ok(&c, &gw, "email", &code, RD).await;
    assert_eq!(forgot(&client(), &gw, ANN).await.0, 200);
    wait_reset_mails(s, ANN, 1).await;

    // A campaign asking for the email makes Carol's unconfirmed again: no link until
    // she confirms it.
    campaign_start(
        &s.gw,
        &[
            "--members",
            &members_file(s, &[CAROL]),
            "--channels",
            "email",
        ],
    )
    .await;
    let again = forgot(&client(), &gw, CAROL).await;
    assert_eq!(again, confirmed, "the answer changed");
    forgot(&client(), &gw, ANN).await;
    wait_reset_mails(s, ANN, 2).await;
    s.outbox_drained().await;
    assert_eq!(
        reset_mails(s, CAROL),
        1,
        "a reset link while the campaign asks for the email"
    );
}
both_backends!(no_reset_link_to_an_unconfirmed_email);

/// A file of addresses for `--members`, in the gateway's directory.
pub(crate) fn members_file(s: &Stack, emails: &[&str]) -> String {
    let path = s.gw.dir().join(format!("members-{}.txt", emails.join("_")));
    std::fs::write(&path, emails.join("\n") + "\n").unwrap();
    path.display().to_string()
}
