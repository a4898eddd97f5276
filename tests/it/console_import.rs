//! The console's member import through the real binary, on both backends, with a real
//! SMTP server: a CSV file uploaded as a browser does (multipart) is previewed row by row
//! (to create, to invite, already there, refused with its line and reason) with nothing
//! written; confirming checks the file again and does it (invitations reach the SMTP
//! server, an organisation's invitation is audited with the admin as actor); importing
//! the same file again does nothing twice. A file that is not CSV, empty, too large or
//! too long is refused with a clear error. Admins only: a member gets 403 and a visitor
//! the login page on every import URL, and a POST without the CSRF token changes nothing.

use reqwest::multipart::{Form, Part};
use reqwest::{Client, Response};

use crate::both_backends;
use crate::common::backend::{open_store, Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::http::{self, client, form_with_action, get, get_page, login_ok};
use crate::orgs::{register, ACME, OWNER};

const MEMBERS: &str = "/_vigile/admin/members";
const IMPORT: &str = "/_vigile/admin/import";
const CONFIRM: &str = "/_vigile/admin/import/confirm";

async fn admin(s: &Stack) -> Client {
    s.gw.add_user(BOSS, PW, true);
    let c = client();
    login_ok(&c, &s.gw.url(), BOSS, PW).await;
    c
}

/// The import form, reached as an admin does: from the Members section's link.
async fn import_form(c: &Client, gw: &str) -> String {
    let members = get_page(c, &format!("{gw}{MEMBERS}")).await;
    let href = members
        .split("id=\"import-link\"")
        .next()
        .and_then(|before| before.rsplit("href=\"").next())
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no import link on Members:\n{members}"));
    assert_eq!(href, IMPORT);
    get_page(c, &format!("{gw}{href}")).await
}

/// A file chosen in the form: its name and content.
type File<'a> = (&'a str, Vec<u8>);

/// What the upload form sends: the CSRF token, the mode, the file.
async fn upload(c: &Client, gw: &str, csrf: &str, mode: &str, file: Option<File<'_>>) -> Response {
    let mut form = Form::new()
        .text("csrf", csrf.to_string())
        .text("mode", mode.to_string());
    let part = match file {
        Some((name, bytes)) => Part::bytes(bytes).file_name(name.to_string()),
        // No file chosen: browsers send an empty part with an empty file name.
        None => Part::bytes(Vec::new()).file_name(""),
    };
    form = form.part("file", part.mime_str("text/csv").unwrap());
    c.post(format!("{gw}{IMPORT}"))
        .header("accept", http::ACCEPT_HTML)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads `csv` as the admin in `c` (token from the form) and returns the preview.
async fn preview(c: &Client, gw: &str, mode: &str, csv: &str) -> String {
    let form = import_form(c, gw).await;
    let csrf = http::csrf_from(&form);
    let resp = upload(
        c,
        gw,
        &csrf,
        mode,
        Some(("cohort.csv", csv.as_bytes().to_vec())),
    )
    .await;
    let status = resp.status();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"import-preview\""), "{page}");
    page
}

/// Submits the preview's confirm form; returns the result page.
async fn confirm(c: &Client, gw: &str, preview: &str) -> String {
    let form = form_with_action(preview, CONFIRM)
        .unwrap_or_else(|| panic!("no confirm form in the preview:\n{preview}"));
    let resp = http::submit(c, gw, &form, &[]).await;
    let status = resp.status();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"import-done\""), "{page}");
    page
}

/// The row of the report for file line `line`: (its class, its text without tags).
fn row(page: &str, line: u64) -> (String, String) {
    let marker = format!("data-line=\"{line}\"");
    let before = page
        .split(&marker)
        .next()
        .filter(|b| b.len() < page.len())
        .unwrap_or_else(|| panic!("no row for line {line}:\n{page}"));
    let class = before
        .rsplit("<tr class=\"")
        .next()
        .and_then(|c| c.split('"').next())
        .unwrap_or_default()
        .to_string();
    let after = page.split(&marker).nth(1).unwrap_or_default();
    let cells = after.split("</tr>").next().unwrap_or_default();
    let mut text = String::new();
    let mut in_tag = false;
    for ch in cells.chars() {
        match ch {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => text.push(ch),
            _ => {}
        }
    }
    let text = http::decode_entities(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    (class, text)
}

/// The lines the report lists, in order.
fn lines(page: &str) -> Vec<u64> {
    page.split("data-line=\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// The summary's figure `id` (`import-create`...).
fn figure(page: &str, id: &str) -> u64 {
    let after = page
        .split(&format!("id=\"{id}\"><strong>"))
        .nth(1)
        .unwrap_or_else(|| panic!("no figure {id}:\n{page}"));
    after.split('<').next().unwrap().parse().unwrap()
}

/// The error box of the import page.
fn error(page: &str) -> String {
    let after = page
        .split("id=\"import-error\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no error on the page:\n{page}"));
    http::decode_entities(after.split("</p>").next().unwrap())
}

async fn has_account(s: &Stack, email: &str) -> bool {
    open_store(s).user_by_email(email).await.unwrap().is_some()
}

async fn account_count(s: &Stack) -> usize {
    open_store(s).user_list().await.unwrap().len()
}

/// Two new addresses, one that has an account, a bad address, an address given twice.
const COHORT: &str = "email,name,lang\n\
                      new1@example.com,New One,fr\n\
                      ann@example.com,Ann Again,\n\
                      not-an-address,Bad Row,\n\
                      New2@Example.com,\"Doe, Jane\",en\n\
                      new1@example.com,Twice,\n";

async fn preview_then_create_and_reimport_does_nothing_twice(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let boss = admin(&s).await;
    let before = account_count(&s).await;

    let page = preview(&boss, &gw, "create", COHORT).await;
    assert_eq!(lines(&page), [2, 3, 4, 5, 6]);
    let (class, text) = row(&page, 2);
    assert_eq!(class, "create", "{text}");
    assert!(text.contains("new1@example.com") && text.contains("Will be created"));
    let (class, text) = row(&page, 3);
    assert_eq!(class, "exists", "{text}");
    assert!(text.contains("Already has an account"), "{text}");
    let (class, text) = row(&page, 4);
    assert_eq!(class, "refused", "{text}");
    assert!(
        text.contains("email: “not-an-address”: An address looks like name@example.com."),
        "line 4's reason: {text}"
    );
    let (class, text) = row(&page, 5);
    assert_eq!(class, "create", "{text}");
    assert!(text.contains("new2@example.com") && text.contains("Doe, Jane"));
    let (class, text) = row(&page, 6);
    assert_eq!(class, "refused", "{text}");
    assert!(
        text.contains("email: new1@example.com is already on line 2"),
        "{text}"
    );
    for (id, n) in [
        ("import-create", 2),
        ("import-invite", 0),
        ("import-unchanged", 1),
        ("import-refused", 2),
    ] {
        assert_eq!(figure(&page, id), n, "{id}");
    }
    assert!(page.contains("id=\"import-note\""), "unconfirmed: {page}");
    // A preview writes nothing.
    assert_eq!(account_count(&s).await, before);
    assert!(!has_account(&s, "new1@example.com").await);

    let done = confirm(&boss, &gw, &page).await;
    assert_eq!(figure(&done, "import-create"), 2);
    assert_eq!(figure(&done, "import-refused"), 2);
    let (class, text) = row(&done, 2);
    assert!(class == "create" && text.contains("Created"), "{done}");
    assert!(row(&done, 4).1.contains("Refused"), "{done}");
    let store = open_store(&s);
    let jane = store
        .user_by_email("new2@example.com")
        .await
        .unwrap()
        .expect("line 5 created");
    assert_eq!(
        (jane.name.as_str(), jane.lang.as_deref()),
        ("Doe, Jane", Some("en"))
    );
    assert!(jane.contact.email_confirmed.is_none(), "not vouched for");
    let new1 = store.user_by_email("new1@example.com").await.unwrap();
    assert_eq!(new1.map(|u| u.name).as_deref(), Some("New One"));
    let ann = store.user_by_email(ANN).await.unwrap().unwrap();
    assert_eq!(ann.name, "ann", "an existing account is left as it is");
    assert_eq!(account_count(&s).await, before + 2, "nothing of a bad row");

    // The same file again: nothing to do, and replaying the first confirmation does
    // nothing either (the server checks again).
    let again = preview(&boss, &gw, "create", COHORT).await;
    assert_eq!(figure(&again, "import-create"), 0);
    assert_eq!(figure(&again, "import-unchanged"), 3);
    assert!(form_with_action(&again, CONFIRM).is_none(), "{again}");
    assert!(again.contains("id=\"import-nothing\""), "{again}");
    let replay = confirm(&boss, &gw, &page).await;
    assert_eq!(figure(&replay, "import-create"), 0);
    assert_eq!(figure(&replay, "import-unchanged"), 3);
    assert_eq!(account_count(&s).await, before + 2);

    // In French, every word of the page too.
    let fr = client();
    let resp = fr
        .get(format!("{gw}/_vigile/lang/fr?rd=/"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection());
    login_ok(&fr, &gw, BOSS, PW).await;
    let page = http::decode_entities(&preview(&fr, &gw, "create", COHORT).await);
    for text in [
        "Aperçu : rien n'a encore été enregistré",
        "A déjà un compte : rien à faire",
        "figure déjà ligne 2",
        "déjà présents",
    ] {
        assert!(page.contains(text), "{text}:\n{page}");
    }
}

async fn invitations_are_mailed_audited_and_never_twice(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let org = register(&s, &client(), OWNER, &ACME).await;
    let boss = admin(&s).await;
    let before = account_count(&s).await;
    let csv = format!(
        "email,name,org,lang\n\
         ivy@example.com,Ivy,,\n\
         kim@example.com,Kim,{org},fr\n\
         {OWNER},Olga,,\n"
    );
    let page = preview(&boss, &gw, "invite", &csv).await;
    assert!(row(&page, 2).1.contains("Will be invited"), "{page}");
    assert!(row(&page, 3).1.contains("Will be invited"), "{page}");
    assert!(row(&page, 4).1.contains("Already has an account"), "{page}");
    assert_eq!(figure(&page, "import-invite"), 2);
    assert!(!page.contains("id=\"import-note\""), "{page}");

    let done = confirm(&boss, &gw, &page).await;
    assert_eq!(figure(&done, "import-invite"), 2);
    assert!(row(&done, 2).1.contains("Invited"), "{done}");
    let ivy = s
        .smtp
        .wait_for_to("ivy@example.com", "You are invited to join")
        .await;
    assert!(ivy.text.contains("/_vigile/signup"), "{}", ivy.text);
    let kim = s
        .smtp
        .wait_for_to("kim@example.com", "Vous êtes invité à rejoindre")
        .await;
    assert!(
        kim.text.contains("/_vigile/org/join?token="),
        "{}",
        kim.text
    );
    assert_eq!(account_count(&s).await, before, "inviting creates nobody");
    let logs = s.gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("org_invited") && l.contains("kim@example.com"))
        .unwrap_or_else(|| panic!("no audit line:\n{logs}"));
    for part in ["by=\"admin\"", "ip=\"127.0.0.1\"", org.as_str()] {
        assert!(line.contains(part), "{part} in {line}");
    }

    // Again: both invitations are pending, so nothing is sent twice.
    let again = preview(&boss, &gw, "invite", &csv).await;
    for line in [2, 3] {
        let (class, text) = row(&again, line);
        assert_eq!(class, "invited", "{text}");
        assert!(text.contains("Already invited"), "{text}");
    }
    assert!(form_with_action(&again, CONFIRM).is_none(), "{again}");
    let replay = confirm(&boss, &gw, &page).await;
    assert_eq!(figure(&replay, "import-invite"), 0);
    assert_eq!(figure(&replay, "import-unchanged"), 3);
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to("ivy@example.com"), 1);
    assert_eq!(s.smtp.count_to("kim@example.com"), 1);
}

async fn bad_files_are_refused_with_a_clear_error(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let boss = admin(&s).await;
    let before = account_count(&s).await;
    let csrf = http::csrf_from(&import_form(&boss, &gw).await);
    let xlsx = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00".to_vec();
    let mut long = String::from("email\n");
    for i in 0..2001 {
        long.push_str(&format!("m{i}@example.com\n"));
    }
    let cases: [(Option<File>, u16, &str); 6] = [
        (
            Some(("cohort.xlsx", xlsx)),
            400,
            "This is not a CSV file (a spreadsheet workbook?).",
        ),
        (
            Some(("empty.csv", Vec::new())),
            400,
            "The file is empty. Its first line names the columns (email, name, lang, mobile, org).",
        ),
        (None, 400, "Choose a CSV file to import."),
        (
            Some(("phone.csv", b"email,phone\nx@example.com,1\n".to_vec())),
            400,
            "Line 1: unknown column “phone”.",
        ),
        (
            Some(("big.csv", vec![b'a'; 1024 * 1024 + 1])),
            413,
            "The file is larger than 1 MiB.",
        ),
        (
            Some(("long.csv", long.into_bytes())),
            400,
            "The file has more than 2000 rows.",
        ),
    ];
    for (file, status, message) in cases {
        let name = file
            .as_ref()
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        let resp = upload(&boss, &gw, &csrf, "create", file).await;
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let page = resp.text().await.unwrap();
        let shown = error(&page);
        assert!(shown.contains(message), "{name}: {shown}");
        assert!(shown.ends_with("Nothing was imported."), "{name}: {shown}");
        // The form is offered again.
        assert!(form_with_action(&page, IMPORT).is_some(), "{name}");
    }
    // Larger than a whole upload may be: read to its end and thrown away, so the
    // browser gets the page.
    let resp = upload(
        &boss,
        &gw,
        &csrf,
        "create",
        Some(("huge.csv", vec![b'a'; 3 * 1024 * 1024])),
    )
    .await;
    assert_eq!(resp.status(), 413);
    let page = resp.text().await.unwrap();
    assert!(error(&page).contains("larger than 1 MiB"), "{page}");
    assert_eq!(account_count(&s).await, before);
}

async fn only_admins_import_and_csrf_is_checked(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let boss = admin(&s).await;
    let before = account_count(&s).await;
    let csv = "email\nfresh@example.com\n";
    let page = preview(&boss, &gw, "create", csv).await;
    let form = form_with_action(&page, CONFIRM).unwrap();

    // A member: 403 on every import URL, even with her own valid token.
    let ann = client();
    login_ok(&ann, &gw, ANN, PW).await;
    let ann_csrf = http::csrf_from(&get_page(&ann, &format!("{gw}/_vigile/account")).await);
    for path in [IMPORT, CONFIRM] {
        let resp = get(&ann, &format!("{gw}{path}"), true).await;
        assert_eq!(resp.status(), 403, "GET {path} by a member");
        assert!(!resp.text().await.unwrap().contains("console-nav"));
    }
    let resp = upload(
        &ann,
        &gw,
        &ann_csrf,
        "create",
        Some(("a.csv", csv.as_bytes().to_vec())),
    )
    .await;
    assert_eq!(resp.status(), 403, "upload by a member");
    let resp = http::submit(&ann, &gw, &form, &[("csrf", &ann_csrf)]).await;
    assert_eq!(resp.status(), 403, "confirm by a member");

    // A visitor: the login page, and back here after it.
    let anon = client();
    for path in [IMPORT, CONFIRM] {
        let resp = get(&anon, &format!("{gw}{path}"), true).await;
        assert_eq!(resp.status(), 302, "GET {path} anonymously");
        let to = http::header(&resp, "location").unwrap();
        assert!(to.starts_with("/_vigile/login?rd="), "{to}");
        assert!(to.contains(&path.replace('/', "%2F")), "{to}");
    }
    let resp = upload(&anon, &gw, "", "create", Some(("a.csv", csv.into()))).await;
    let to = http::header(&resp, "location").unwrap_or_default();
    assert!(resp.status().is_redirection() && to.starts_with("/_vigile/login"));
    let resp = http::submit(&anon, &gw, &form, &[]).await;
    let to = http::header(&resp, "location").unwrap_or_default();
    assert!(resp.status().is_redirection() && to.starts_with("/_vigile/login"));

    // The admin without the token, or with another browser's: refused, nothing done.
    let resp = upload(&boss, &gw, "", "create", Some(("a.csv", csv.into()))).await;
    assert_eq!(resp.status(), 403, "upload without csrf");
    for token in ["", ann_csrf.as_str()] {
        let resp = http::submit(&boss, &gw, &form, &[("csrf", token)]).await;
        assert_eq!(resp.status(), 403, "confirm with csrf {token:?}");
    }
    assert_eq!(account_count(&s).await, before);
    assert!(!has_account(&s, "fresh@example.com").await);
    // With its own token, the same form works.
    confirm(&boss, &gw, &page).await;
    assert!(has_account(&s, "fresh@example.com").await);
}

both_backends!(
    preview_then_create_and_reimport_does_nothing_twice,
    invitations_are_mailed_audited_and_never_twice,
    bad_files_are_refused_with_a_clear_error,
    only_admins_import_and_csrf_is_checked,
);
