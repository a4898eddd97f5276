//! `vigile user import FILE.csv [--invite] [--confirmed]` through the real binary, on both
//! backends, against a running gateway and a real SMTP server: a good file creates active
//! accounts seen by `user list` / `user show` (contact state unconfirmed, or confirmed by
//! an admin), whose members get in by resetting their password once their address is
//! confirmed; a file with bad rows reports each by its line and field and applies the
//! others; an unknown column refuses the whole file; `--invite` mails sign-up and
//! organisation invitations and creates nothing; an organisation's seats are never
//! exceeded.

use std::process::Output;

use reqwest::Client;

use crate::both_backends;
use crate::common::backend::{Backend, Stack};
use crate::common::consts::{ANN, PW};
use crate::common::http::{self, client, form_with_action, get_page, submit};
use crate::contact::{show_line, user_show, MOBILE_E164};
use crate::orgs::{join, join_link, redirect, register, sets_session, ACME, OWNER};

const NEW_PW: &str = "Brand-new 77 pass";
const RESET_LINK: &str = "/_vigile/password/reset?token=";

/// Writes `csv` into the gateway's directory as `name` and returns its path.
fn csv_file(s: &Stack, name: &str, csv: &str) -> String {
    let path = s.gw.dir().join(name);
    std::fs::write(&path, csv).unwrap();
    path.display().to_string()
}

/// `vigile user import FILE [flags]`: (success, stdout, stderr).
async fn import(s: &Stack, file: &str, flags: &[&str]) -> (bool, String, String) {
    let mut args = vec!["user", "import", file];
    args.extend_from_slice(flags);
    let out: Output = s.gw.cli_async(&args, None).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `vigile user show EMAIL` finds an account.
async fn has_account(s: &Stack, email: &str) -> bool {
    let out = s.gw.cli_async(&["user", "show", email], None).await;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("no account for {email}")),
            "user show {email}: {stderr}"
        );
    }
    out.status.success()
}

/// The `vigile user list` lines.
async fn user_list(s: &Stack) -> String {
    let out = s.gw.cli_async(&["user", "list"], None).await;
    assert!(out.status.success(), "user list: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `vigile org show ID`, asserting success. Ids are base64url and may start with `-`,
/// hence the `--`.
async fn org_show(s: &Stack, org: &str) -> String {
    let out = s.gw.cli_async(&["org", "show", "--", org], None).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "org show {org}: {out:?}");
    stdout
}

/// `vigile org set ID --seats N` (the id after `--`: it may start with `-`).
fn set_seats(s: &Stack, org: &str, seats: u32) {
    let seats = seats.to_string();
    s.gw.cli_ok(&["org", "set", "--seats", &seats, "--", org], None);
}

/// Posts the forgot-password form for `email` (the page answers the same either way).
async fn forgot(c: &Client, gw: &str, email: &str) {
    let page = get_page(c, &format!("{gw}/_vigile/password/forgot")).await;
    let form = form_with_action(&page, "/_vigile/password/forgot")
        .unwrap_or_else(|| panic!("no forgot form:\n{page}"));
    let resp = submit(c, gw, &form, &[("email", email)]).await;
    assert_eq!(resp.status(), 200, "forgot for {email}");
}

/// Follows a reset link and sets [`NEW_PW`]; asserts the redirect to the login page.
async fn reset(c: &Client, gw: &str, link: &str) {
    let page = get_page(c, link).await;
    let form = form_with_action(&page, "/_vigile/password/reset")
        .unwrap_or_else(|| panic!("no reset form behind {link}:\n{page}"));
    let resp = submit(c, gw, &form, &[("password", NEW_PW), ("confirm", NEW_PW)]).await;
    let (status, location) = redirect(resp).await;
    assert_eq!((status, location.as_str()), (303, "/_vigile/login?reset=1"));
}

/// Three good rows, columns in their own order, a BOM, CRLF line ends, quoted fields
/// (with a comma and with doubled quotes), an empty line and a spreadsheet's empty row.
const GOOD: &str = "\u{feff}Mobile,Email,Name,Lang\r\n\
                    06 12 34 56 78,ana@example.com,\"Martin, Ana\",fr\r\n\
                    \r\n\
                    ,\"Bob@Example.com\",\"Bob \"\"the\"\" Builder\",\r\n\
                    +33 6 98 76 54 32,carl@example.com,Carl,EN\r\n\
                    ,,,\r\n";

async fn a_good_file_creates_active_accounts(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let file = csv_file(&s, "good.csv", GOOD);
    let (ok, stdout, stderr) = import(&s, &file, &[]).await;
    assert!(ok, "import failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("imported 3, invited 0, refused 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unconfirmed") && stdout.contains("--confirmed"),
        "no note about unconfirmed addresses:\n{stdout}"
    );

    let list = user_list(&s).await;
    for email in ["ana@example.com", "bob@example.com", "carl@example.com"] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(email) && l.contains("active")),
            "{email} not listed as active:\n{list}"
        );
    }
    let ana = user_show(&s.gw, "ana@example.com").await;
    assert_eq!(
        show_line(&ana, "email").as_deref(),
        Some("email: ana@example.com (unconfirmed)"),
        "{ana}"
    );
    assert_eq!(
        show_line(&ana, "mobile").as_deref(),
        Some(format!("mobile: {MOBILE_E164} (unconfirmed)").as_str()),
        "{ana}"
    );
    assert_eq!(
        show_line(&ana, "name").as_deref(),
        Some("name: Martin, Ana")
    );
    let bob = user_show(&s.gw, "bob@example.com").await;
    assert_eq!(
        show_line(&bob, "name").as_deref(),
        Some("name: Bob \"the\" Builder")
    );
    assert_eq!(show_line(&bob, "mobile").as_deref(), Some("mobile: none"));
    let carl = user_show(&s.gw, "carl@example.com").await;
    assert_eq!(
        show_line(&carl, "mobile").as_deref(),
        Some("mobile: +33698765432 (unconfirmed)")
    );
    assert_eq!(show_line(&carl, "roles").as_deref(), Some("roles: member"));

    // Nobody knows the password; and an unconfirmed address gets no reset link.
    let c = client();
    let typed = http::login(&c, &gw, "ana@example.com", PW).await;
    assert_eq!(typed.status(), 401);
    // (Checked once Dora's link has come: the forgot page answers before its mail is
    // queued, so an empty outbox now would prove nothing.)
    forgot(&c, &gw, "ana@example.com").await;

    // With --confirmed: email and mobile confirmed by an admin; the member gets in by
    // resetting the password.
    let vouched = csv_file(
        &s,
        "vouched.csv",
        "email,mobile\ndora@example.com,06 12 34 56 78\nemil@example.com,\n",
    );
    let (ok, stdout, stderr) = import(&s, &vouched, &["--confirmed"]).await;
    assert!(ok, "import --confirmed failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("imported 2, invited 0, refused 0") && !stdout.contains("note:"),
        "{stdout}"
    );
    let dora = user_show(&s.gw, "dora@example.com").await;
    let email = show_line(&dora, "email").unwrap_or_default();
    assert!(
        email.starts_with("email: dora@example.com (confirmed ") && email.ends_with(" by admin)"),
        "{dora}"
    );
    let mobile = show_line(&dora, "mobile").unwrap_or_default();
    assert!(
        mobile.starts_with(&format!("mobile: {MOBILE_E164} (confirmed "))
            && mobile.ends_with(" by admin)"),
        "{dora}"
    );
    let emil = user_show(&s.gw, "emil@example.com").await;
    assert_eq!(show_line(&emil, "mobile").as_deref(), Some("mobile: none"));

    forgot(&c, &gw, "dora@example.com").await;
    let link = s
        .smtp
        .wait_for("the reset mail to dora", |m| {
            m.to.iter().any(|t| t == "dora@example.com") && m.text.contains(RESET_LINK)
        })
        .await
        .link_containing(RESET_LINK);
    s.outbox_drained().await;
    assert!(
        !s.smtp
            .mails()
            .iter()
            .any(|m| m.to.iter().any(|t| t == "ana@example.com") && m.text.contains(RESET_LINK)),
        "a reset link went to an unconfirmed imported address"
    );
    reset(&c, &gw, &link).await;
    http::login_ok(&client(), &gw, "dora@example.com", NEW_PW).await;
}

async fn bad_rows_are_reported_by_line_and_skipped(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user(ANN, PW, false);
    let file = csv_file(
        &s,
        "mixed.csv",
        "email,name,mobile,org\n\
         good1@example.com,Good One,,\n\
         not-an-address,Bad Email,,\n\
         landline@example.com,Bad Mobile,01 23 45 67 89,\n\
         orgless@example.com,No Org,,NoSuchOrg123\n\
         ann@example.com,Someone Else,,\n\
         \"good2@example.com\",\"Doe, Jane\",\"06 12 34 56 78\",\n\
         good1@example.com,Twice,,\n",
    );
    let (ok, stdout, stderr) = import(&s, &file, &[]).await;
    assert!(
        !ok,
        "a file with refused rows must exit non-zero:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("imported 2, invited 0, refused 5"),
        "{stdout}\n{stderr}"
    );
    let reported: Vec<&str> = stderr.lines().filter(|l| l.starts_with("line ")).collect();
    let expected = [
        "line 3: email: ",
        "line 4: mobile: ",
        "line 5: org: ",
        "line 6: email: ann@example.com already has an account",
        "line 8: email: good1@example.com is already on line 2",
    ];
    assert_eq!(reported.len(), expected.len(), "{stderr}");
    for (got, want) in reported.iter().zip(expected) {
        assert!(
            got.starts_with(want),
            "{got:?} should start {want:?}\n{stderr}"
        );
    }
    assert!(reported[0].contains("not-an-address"), "{stderr}");
    assert!(reported[1].contains("text messages"), "{stderr}");
    assert!(reported[2].contains("NoSuchOrg123"), "{stderr}");

    // Nothing of the refused rows was written; the good ones were.
    for email in ["landline@example.com", "orgless@example.com"] {
        assert!(!has_account(&s, email).await, "{email} was created");
    }
    assert!(!user_list(&s).await.contains("not-an-address"));
    let ann = user_show(&s.gw, ANN).await;
    assert_eq!(show_line(&ann, "name").as_deref(), Some("name: ann"));
    let one = user_show(&s.gw, "good1@example.com").await;
    assert_eq!(show_line(&one, "name").as_deref(), Some("name: Good One"));
    let two = user_show(&s.gw, "good2@example.com").await;
    assert_eq!(show_line(&two, "name").as_deref(), Some("name: Doe, Jane"));
    assert_eq!(
        show_line(&two, "mobile").as_deref(),
        Some(format!("mobile: {MOBILE_E164} (unconfirmed)").as_str())
    );

    // An unknown column refuses the file: named, on line 1, nothing written.
    let file = csv_file(
        &s,
        "column.csv",
        "email,name,phone\nfresh@example.com,Fresh,06 12 34 56 78\n",
    );
    let (ok, stdout, stderr) = import(&s, &file, &[]).await;
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("line 1: header: unknown column \"phone\"")
            && stderr.contains("nothing imported"),
        "{stderr}"
    );
    assert!(!has_account(&s, "fresh@example.com").await);
}

async fn invite_mails_and_creates_nothing(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let org = register(&s, &client(), OWNER, &ACME).await;
    let file = csv_file(
        &s,
        "invite.csv",
        &format!(
            "email,lang,org,name,mobile\n\
             ivy@example.com,,,Ivy,06 12 34 56 78\n\
             jules@example.com,fr,,Jules,\n\
             kim@example.com,,{org},Kim,\n"
        ),
    );
    let (ok, stdout, stderr) = import(&s, &file, &["--invite"]).await;
    assert!(ok, "import --invite failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("imported 0, invited 3, refused 0") && !stdout.contains("note:"),
        "{stdout}"
    );
    for email in ["ivy@example.com", "jules@example.com", "kim@example.com"] {
        assert!(!has_account(&s, email).await, "--invite created {email}");
    }

    let ivy = s
        .smtp
        .wait_for_to("ivy@example.com", "You are invited to join")
        .await;
    assert!(
        ivy.link_containing("/_vigile/signup")
            .starts_with(&format!("{gw}/_vigile/signup")),
        "{}",
        ivy.text
    );
    let jules = s
        .smtp
        .wait_for_to("jules@example.com", "Vous êtes invité à rejoindre")
        .await;
    assert!(jules.text.contains("/_vigile/signup"), "{}", jules.text);
    let kim = s
        .smtp
        .wait_for_to(
            "kim@example.com",
            &format!("You are invited to join {}", ACME.company),
        )
        .await;
    assert!(
        kim.text.contains("/_vigile/org/join?token="),
        "{}",
        kim.text
    );

    // The organisation holds the invitation (a seat), and its link works.
    let show = org_show(&s, &org).await;
    assert!(show.contains("invited:     kim@example.com"), "{show}");
    let link = join_link(&s, "kim@example.com").await;
    let c = client();
    let resp = join(&c, &gw, &link).await;
    let signed_in = sets_session(&resp);
    let (status, location) = redirect(resp).await;
    assert_eq!(
        (status, location.as_str(), signed_in),
        (303, "/_vigile/account?welcome=1", true),
        "kim joins"
    );
    let show = org_show(&s, &org).await;
    assert!(
        show.lines()
            .any(|l| l.starts_with("member:") && l.contains("kim@example.com\tmember")),
        "{show}"
    );
}

async fn org_rows_join_within_the_seats(backend: Backend) {
    let s = backend.stack("").await;
    let org = register(&s, &client(), OWNER, &ACME).await;
    // The super-admin holds one seat: one is left.
    set_seats(&s, &org, 2);
    let file = csv_file(
        &s,
        "seats.csv",
        &format!(
            "email,org\n\
             lea@example.com,{org}\n\
             max@example.com,{org}\n"
        ),
    );
    let (ok, stdout, stderr) = import(&s, &file, &["--confirmed"]).await;
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("imported 1, invited 0, refused 1"),
        "{stdout}\n{stderr}"
    );
    let refusal = stderr
        .lines()
        .find(|l| l.starts_with("line 3: org: "))
        .unwrap_or_else(|| panic!("line 3 not refused for its organisation:\n{stderr}"));
    assert!(
        refusal.contains("full") && refusal.contains("2 seat"),
        "{refusal}"
    );
    assert!(!has_account(&s, "max@example.com").await);
    let lea = user_show(&s.gw, "lea@example.com").await;
    assert_eq!(show_line(&lea, "roles").as_deref(), Some("roles: member"));
    let show = org_show(&s, &org).await;
    assert!(show.contains("seats:       2/2"), "{show}");
    assert!(
        show.lines()
            .any(|l| l.starts_with("member:") && l.contains("lea@example.com\tmember")),
        "{show}"
    );
    assert!(
        !show.contains("invited:"),
        "a seat's invitation was left:\n{show}"
    );

    // The imported member is in the organisation: signed in (after a reset), upstream
    // sees it.
    let gw = s.gw.url();
    let c = client();
    forgot(&c, &gw, "lea@example.com").await;
    let link = s
        .smtp
        .wait_for("the reset mail to lea", |m| {
            m.to.iter().any(|t| t == "lea@example.com") && m.text.contains(RESET_LINK)
        })
        .await
        .link_containing(RESET_LINK);
    reset(&c, &gw, &link).await;
    let lea = client();
    http::login_ok(&lea, &gw, "lea@example.com", NEW_PW).await;
    let (groups, seen_org) = crate::orgs::identity(&s, &lea, &gw, "/courses/1").await;
    assert_eq!(
        (groups.as_deref(), seen_org.as_deref()),
        (Some("member"), Some(org.as_str()))
    );

    // Invitations count against the seats the same way.
    set_seats(&s, &org, 3);
    let file = csv_file(
        &s,
        "seats-invite.csv",
        &format!("email,org\nnina@example.com,{org}\nomar@example.com,{org}\n"),
    );
    let (ok, stdout, stderr) = import(&s, &file, &["--invite"]).await;
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("imported 0, invited 1, refused 1"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("line 3: org: ") && l.contains("full")),
        "{stderr}"
    );
    let show = org_show(&s, &org).await;
    assert!(
        show.contains("invited:     nina@example.com") && !show.contains("omar@example.com"),
        "{show}"
    );
}

both_backends!(
    a_good_file_creates_active_accounts,
    bad_rows_are_reported_by_line_and_skipped,
    invite_mails_and_creates_nothing,
    org_rows_join_within_the_seats,
);
