//! Email addresses through the real binary, a real SMTP server and both store backends:
//! what a mail server would refuse never gets in (and the form says why), lookalike
//! spellings of an address reach its one account, and a recipient the mail server refuses
//! for good ends as "failed" (metric, audit line, admin page, CLI) after one attempt while
//! a busy one is retried until it accepts.

use reqwest::{Client, Response};
use serde_json::Value;

use crate::both_backends;
use crate::common::backend::{activation_mail, open_store, Backend, Stack};
use crate::common::consts::PW;
use crate::common::http::{
    client, form_with_action, get, get_page, login, login_ok, signup, submit,
};
use crate::common::poll_until;

const EVIL: &str = "<script>alert(1)</script>@example.com";
const OTHER_PW: &str = "Other-pass 22";

async fn text(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Every mail queued so far has been sent or failed: nothing waits in the outbox.
async fn drained(s: &Stack) {
    let store = open_store(s);
    poll_until("outbox drained", 400, || async {
        store.outbox_list().await.unwrap().is_empty()
    })
    .await;
}

/// Posts the one-field "mail me a link" form at `path` like a browser.
async fn link_form(c: &Client, gw: &str, path: &str, email: &str) -> (u16, String) {
    let page = get_page(c, &format!("{gw}{path}")).await;
    let form = form_with_action(&page, path).unwrap_or_else(|| panic!("no form:\n{page}"));
    text(submit(c, gw, &form, &[("email", email)]).await).await
}

async fn html_address_is_refused_and_nothing_is_sent(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let c = client();

    let (status, body) = text(signup(&c, &gw, EVIL, PW, PW, "en").await).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Enter a valid email address."), "{body}");
    assert!(
        body.contains("Before the @, only unaccented letters"),
        "says what is wrong: {body}"
    );
    assert!(!body.contains("<script>"), "shown escaped: {body}");

    for path in ["/_vigile/password/forgot", "/_vigile/activate/resend"] {
        let (status, body) = link_form(&c, &gw, path, EVIL).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("Enter a valid email address."), "{body}");
        assert!(!body.contains("<script>"), "{body}");
    }
    let (status, body) = link_form(
        &c,
        &gw,
        "/_vigile/password/forgot",
        "ana\u{200B}@example.com",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("invisible"), "{body}");

    // No account, nothing queued, nothing sent (a mail is in the outbox until it is sent,
    // so looking at the outbox first then the server misses none).
    let store = open_store(&s);
    assert!(store.user_list().await.unwrap().is_empty());
    assert!(store.outbox_list().await.unwrap().is_empty());
    assert!(s.smtp.mails().is_empty() && s.smtp.rcpts().is_empty());

    // The CLI refuses it as well.
    let out =
        s.gw.cli(&["user", "add", EVIL], Some("Sufficient-1 pass\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an email address"));
    assert!(store.user_list().await.unwrap().is_empty());
}
both_backends!(html_address_is_refused_and_nothing_is_sent);

async fn lookalikes_reach_the_one_account(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let ana = "ana@example.com";
    assert_eq!(
        signup(&client(), &gw, ana, PW, PW, "en").await.status(),
        200
    );
    let (_, link) = activation_mail(&s, ana, "Activate your account").await;
    assert_eq!(get(&client(), &link, true).await.status(), 302);

    // A lookalike of the taken address gets exactly the page a new address gets...
    let fresh = text(
        signup(
            &client(),
            &gw,
            "fresh@example.com",
            OTHER_PW,
            OTHER_PW,
            "en",
        )
        .await,
    )
    .await;
    for lookalike in [
        "ana@ＥＸＡＭＰＬＥ.com",
        "ＡＮＡ＠example．com",
        " Ana@Example.COM ",
    ] {
        let taken = text(signup(&client(), &gw, lookalike, OTHER_PW, OTHER_PW, "en").await).await;
        assert_eq!(taken, fresh, "{lookalike:?}");
    }
    // ... and an invisible character is refused whether the address has an account or not.
    let c = client();
    let (status, hidden) = text(signup(&c, &gw, "ana\u{AD}@example.com", PW, PW, "en").await).await;
    assert_eq!(status, 400);
    assert!(hidden.contains("invisible"), "{hidden}");
    let (_, unknown) = text(signup(&c, &gw, "zed\u{AD}@example.com", PW, PW, "en").await).await;
    assert_eq!(
        hidden.replace("ana\u{AD}@", "X@"),
        unknown.replace("zed\u{AD}@", "X@"),
        "the page reveals nothing"
    );

    // One account; the owner was told of the lookalike attempts, at the ASCII address.
    let users = open_store(&s).user_list().await.unwrap();
    let emails: Vec<&str> = users.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(emails, ["ana@example.com", "fresh@example.com"]);
    s.smtp
        .wait_for("the owner told of a sign-up attempt", |m| {
            m.to == [ana] && m.text.contains("tried to create an account")
        })
        .await;
    drained(&s).await;
    for (address, _) in s.smtp.rcpts() {
        assert!(
            address.is_ascii() && address == address.to_lowercase(),
            "RCPT TO {address:?}"
        );
    }

    // The fullwidth spelling signs in to the same account.
    login_ok(&client(), &gw, "ＡＮＡ@ＥＸＡＭＰＬＥ.com", PW).await;
    login_ok(&client(), &gw, "  ana@EXAMPLE.com", PW).await;
}
both_backends!(lookalikes_reach_the_one_account);

/// A string that is not an address gets the answer an unknown address gets, after the
/// same work: one password hash.
async fn unparsable_login_is_an_ordinary_failure(backend: Backend) {
    let s = backend.stack("[lockout]\nip_max_failures = 0\n").await;
    let gw = s.gw.url();
    s.gw.add_user("ana@example.com", PW, false);
    let hashes = || async {
        s.gw.metric("vigile_password_hash_seconds_count")
            .await
            .unwrap_or(0.0)
    };
    let failures = || async {
        s.gw.metric(r#"vigile_logins_total{result="bad_credentials"}"#)
            .await
            .unwrap_or(0.0)
    };
    let mut answers = Vec::new();
    for email in [
        "nobody@example.com",
        EVIL,
        "ana\u{AD}@example.com",
        "not an address",
    ] {
        let (before, failed_before) = (hashes().await, failures().await);
        let (status, body) = text(login(&client(), &gw, email, PW).await).await;
        assert_eq!(hashes().await - before, 1.0, "one hash for {email:?}");
        assert_eq!(failures().await - failed_before, 1.0, "{email:?}");
        assert!(
            body.contains("Incorrect email address or password."),
            "{body}"
        );
        answers.push(status);
    }
    assert_eq!(answers, [401; 4]);
}
both_backends!(unparsable_login_is_an_ordinary_failure);

fn audit_lines(s: &Stack) -> Vec<Value> {
    std::fs::read_to_string(s.gw.dir().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

async fn refused_recipient_fails_after_one_attempt(backend: Backend) {
    let s = backend.stack("[log]\naudit_file = \"audit.log\"\n").await;
    let gw = s.gw.url();
    let gone = "gone@example.com";
    s.smtp.refuse(
        gone,
        "550 5.1.1 <gone@example.com>: Recipient address rejected",
    );
    s.gw.add_user("boss@example.com", PW, true);
    assert_eq!(
        signup(&client(), &gw, gone, PW, PW, "en").await.status(),
        200
    );

    let failed = r#"vigile_mail_total{kind="activation",result="failed"}"#;
    poll_until("the refused mail counted as failed", 400, || async {
        s.gw.metric(failed).await == Some(1.0)
    })
    .await;
    // Another mail goes out after it, and the refused one is not tried again.
    assert_eq!(
        signup(&client(), &gw, "ok@example.com", PW, PW, "en")
            .await
            .status(),
        200
    );
    activation_mail(&s, "ok@example.com", "Activate your account").await;
    drained(&s).await;
    assert_eq!(s.smtp.rcpt_attempts(gone), 1);
    assert_eq!(s.gw.metric(failed).await, Some(1.0));
    let retried = r#"vigile_mail_total{kind="activation",result="retry"}"#;
    assert_eq!(s.gw.metric(retried).await.unwrap_or(0.0), 0.0);

    // Audited.
    let lines = audit_lines(&s);
    let line = lines
        .iter()
        .find(|l| l["event"] == "mail_failed")
        .unwrap_or_else(|| panic!("no mail_failed event in {lines:#?}"));
    assert_eq!(line["to"], gone);
    assert_eq!(line["kind"], "activation");
    assert!(line["error"].as_str().unwrap().contains("550"), "{line}");

    // Listed for admins, with recipient, kind, when and the server's answer.
    let admin = client();
    login_ok(&admin, &gw, "boss@example.com", PW).await;
    let overview = get_page(&admin, &format!("{gw}/_vigile/admin")).await;
    assert!(
        overview.contains("Mail that could not be delivered: 1"),
        "{overview}"
    );
    let page = get_page(&admin, &format!("{gw}/_vigile/admin/outbox")).await;
    let section = page
        .split("id=\"outbox-failed\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no refused mail list:\n{page}"));
    let row = section
        .split("<tr>")
        .find(|r| r.contains(gone))
        .unwrap_or_else(|| panic!("{gone} not listed:\n{section}"));
    assert!(
        row.contains("activation") && row.contains("(550): 5.1.1"),
        "{row}"
    );
    assert!(row.contains(" UTC"), "when: {row}");
    assert!(!section.contains("ok@example.com"), "{section}");

    // And on the member's CLI view.
    let out = s.gw.cli_ok(&["user", "show", gone], None);
    assert!(out.contains("undelivered mail: 1"), "{out}");
    assert!(
        out.contains("activation") && out.contains("(550): 5.1.1"),
        "{out}"
    );
}
both_backends!(refused_recipient_fails_after_one_attempt);

/// `4xx` answers are retried; so is a `5xx` authentication answer (530), which says the
/// gateway's SMTP settings are wrong rather than the recipient.
async fn busy_recipient_is_retried_until_it_accepts(backend: Backend) {
    let s = backend.stack("").await;
    let (busy, auth) = ("busy@example.com", "auth@example.com");
    s.smtp
        .refuse(busy, "450 4.2.1 Mailbox busy, try again later");
    s.smtp.refuse(auth, "530 5.7.0 Authentication required");
    for email in [busy, auth] {
        let resp = signup(&client(), &s.gw.url(), email, PW, PW, "en").await;
        assert_eq!(resp.status(), 200);
    }
    poll_until("three attempts each", 400, || async {
        s.smtp.rcpt_attempts(busy) >= 3 && s.smtp.rcpt_attempts(auth) >= 3
    })
    .await;
    let store = open_store(&s);
    let waiting = store.outbox_list().await.unwrap();
    assert_eq!(waiting.len(), 2, "still waiting: {waiting:?}");
    for mail in &waiting {
        assert!(mail.attempts >= 2, "{mail:?}");
        let error = mail.last_error.as_deref().unwrap_or("");
        assert!(error.contains("450") || error.contains("530"), "{mail:?}");
    }
    assert!(store.outbox_failed(10).await.unwrap().is_empty());

    s.smtp.accept(busy);
    s.smtp.accept(auth);
    for email in [busy, auth] {
        activation_mail(&s, email, "Activate your account").await;
    }
    drained(&s).await;
    assert!(store.outbox_failed(10).await.unwrap().is_empty());
    let failed = r#"vigile_mail_total{kind="activation",result="failed"}"#;
    assert_eq!(s.gw.metric(failed).await.unwrap_or(0.0), 0.0);
}
both_backends!(busy_recipient_is_retried_until_it_accepts);
