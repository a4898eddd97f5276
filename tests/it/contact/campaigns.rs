//! Campaigns on the admin page and the CLI, on both backends: members listed in the
//! textarea, everyone, or one organisation; the progress cells (asked, email and mobile
//! confirmed, not yet seen) moving as members see the page and confirm; members outside
//! the campaign never sent to `/contact`; pending accounts never asked; a newer campaign
//! replacing an older one for a member; `--members FILE` refusing an unknown address by
//! its line number with nothing started.

use reqwest::Client;

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::http::{client, login_ok, signup};
use crate::contact::recovery::members_file;
use crate::orgs::{invite_and_join, register, ACME, MEMBER, OWNER};

const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
/// Signed up, never activated.
const DAN: &str = "dan@example.com";

/// The value of `data-NAME` in a cell of `row`: the attribute's value when it is a
/// number, else the cell's text.
fn cell(row: &str, name: &str) -> u64 {
    let needle = format!("data-{name}");
    let at = row
        .find(&needle)
        .unwrap_or_else(|| panic!("no {needle} cell in the campaign row:\n{row}"));
    let after = &row[at + needle.len()..];
    if let Some(quoted) = after.strip_prefix("=\"") {
        if let Ok(n) = quoted.split('"').next().unwrap_or("").trim().parse() {
            return n;
        }
    }
    let text = after.split_once('>').map_or("", |(_, t)| t);
    let text = visible(text.split("</").next().unwrap_or(""));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{needle}: no number in the cell:\n{row}"))
}

/// `<tr data-campaign="ID">` rows of the admin page's campaigns section: (ID, counts),
/// in page order.
pub(crate) fn campaign_rows(page: &str) -> Vec<(String, Progress)> {
    let section = page
        .find("id=\"campaigns\"")
        .map(|at| &page[at..])
        .unwrap_or_else(|| panic!("no id=\"campaigns\" on the admin page:\n{page}"));
    section
        .split("<tr")
        .skip(1)
        .filter_map(|row| {
            let id = row
                .split_once("data-campaign=\"")?
                .1
                .split('"')
                .next()?
                .to_string();
            let row = row.split("</tr>").next().unwrap_or(row);
            Some((
                id,
                Progress::new(
                    cell(row, "asked"),
                    cell(row, "email"),
                    cell(row, "mobile"),
                    cell(row, "unseen"),
                ),
            ))
        })
        .collect()
}

/// The admin page's campaign rows as `admin` sees them.
pub(crate) async fn admin_campaigns(admin: &Client, gw: &str) -> Vec<(String, Progress)> {
    campaign_rows(&page(admin, gw, "/_vigile/admin/campaigns").await)
}

/// The progress of campaign `id` on the admin page.
pub(crate) async fn admin_progress(admin: &Client, gw: &str, id: &str) -> Progress {
    admin_campaigns(admin, gw)
        .await
        .into_iter()
        .find(|(i, _)| i == id)
        .unwrap_or_else(|| panic!("no row for campaign {id} on the admin page"))
        .1
}

/// Posts the admin page's campaign form with `fields` (channels as repeated pairs);
/// asserts the 303 back to the campaigns section and returns the new campaign's id
/// (the row that was not there before).
pub(crate) async fn admin_start(admin: &Client, gw: &str, fields: &[(&str, &str)]) -> String {
    let before: Vec<String> = admin_campaigns(admin, gw)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let resp = post_from(
        admin,
        gw,
        "/_vigile/admin/campaigns",
        "/_vigile/admin/campaign",
        fields,
    )
    .await;
    let (status, location) = redirect(resp).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/_vigile/admin/campaigns?started=1"),
        "POST /_vigile/admin/campaign {fields:?}"
    );
    let rows = admin_campaigns(admin, gw).await;
    let new: Vec<String> = rows
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(new.len(), 1, "one new campaign row: {rows:?}");
    new[0].clone()
}

async fn signed_in_admin(s: &Stack) -> Client {
    add_member(&s.gw, BOSS, &["--admin", "--confirmed"]);
    let admin = client();
    login_ok(&admin, &s.gw.url(), BOSS, PW).await;
    admin
}

async fn admin_page_campaign_for_listed_members(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    let admin = signed_in_admin(s).await;
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    confirmed_member(&s.gw, BOB, Some(MOBILE2_E164));
    confirmed_member(&s.gw, CAROL, None);
    assert_eq!(
        signup(&client(), &gw, DAN, PW, PW, "en").await.status(),
        200
    );

    // The form: its fields as the contract names them.
    let body = page(&admin, &gw, "/_vigile/admin/campaigns").await;
    let section = &body[body
        .find("class=\"campaign\"")
        .unwrap_or_else(|| panic!("no campaigns section:\n{body}"))..];
    for control in [
        "name=\"scope\"",
        "name=\"members\"",
        "name=\"channels\"",
        "value=\"email\"",
        "value=\"mobile\"",
        "<textarea",
    ] {
        assert!(
            section.contains(control),
            "no {control} in the campaigns section:\n{section}"
        );
    }

    // Listed members (the textarea wins over the scope; blank lines are skipped).
    let id = admin_start(
        &admin,
        &gw,
        &[
            ("scope", "all"),
            ("members", &format!("{ANN}\n\n{BOB}\n")),
            ("channels", "email"),
            ("channels", "mobile"),
        ],
    )
    .await;
    assert_eq!(
        admin_progress(&admin, &gw, &id).await,
        Progress::new(2, 0, 0, 2)
    );
    assert_eq!(status_of(&s.gw, &id).await, Progress::new(2, 0, 0, 2));

    // Carol is not in it: never sent to /contact.
    login_straight(&client(), &gw, CAROL).await;
    assert_eq!(show_line(&user_show(&s.gw, CAROL).await, "campaign"), None);

    // Ann sees the page: one fewer not yet seen; confirms her email, then her mobile.
    let ann = client();
    login_asked(&ann, &gw, ANN).await;
    contact_page(&ann, &gw, RD).await;
    assert_eq!(
        admin_progress(&admin, &gw, &id).await,
        Progress::new(2, 0, 0, 1)
    );
    send_ok(&ann, &gw, "email", ANN, RD).await;
    confirm_ok(&ann, &gw, "email", &email_code(s, ANN, 1).await, RD).await;
    assert_eq!(
        admin_progress(&admin, &gw, &id).await,
        Progress::new(2, 1, 0, 1)
    );
    send_ok(&ann, &gw, "mobile", MOBILE_E164, RD).await;
    let code = site.sms.code_for(MOBILE_E164).await;
    confirm_ok(&ann, &gw, "mobile", &code, RD).await;
    assert_eq!(
        admin_progress(&admin, &gw, &id).await,
        Progress::new(2, 1, 1, 1)
    );

    // Bob logs in and is asked; "Later" is still "seen".
    let bob = client();
    login_asked(&bob, &gw, BOB).await;
    contact_page(&bob, &gw, RD).await;
    assert_eq!(
        admin_progress(&admin, &gw, &id).await,
        Progress::new(2, 1, 1, 0)
    );
    assert_eq!(status_of(&s.gw, &id).await, Progress::new(2, 1, 1, 0));

    // Everyone, email only: every active account, not the pending one.
    let all = admin_start(
        &admin,
        &gw,
        &[("scope", "all"), ("members", ""), ("channels", "email")],
    )
    .await;
    let store = open_store(s);
    let active = store
        .user_list()
        .await
        .unwrap()
        .iter()
        .filter(|u| u.status == vigile::store::AccountStatus::Active)
        .count() as u64;
    assert_eq!(active, 4, "Boss, Ann, Bob, Carol (Dan is pending)");
    assert_eq!(
        store.user_list().await.unwrap().len(),
        5,
        "Dan's pending account"
    );
    assert_eq!(admin_progress(&admin, &gw, &all).await.asked, active);
    let show = user_show(&s.gw, ANN).await;
    assert_eq!(
        show_line(&show, "campaign").as_deref(),
        Some(format!("campaign: {all} (not seen)").as_str()),
        "the newer campaign replaces the older:\n{show}"
    );
    assert!(
        show_line(&show, "email").is_some_and(|l| l.contains("(unconfirmed)")),
        "{show}"
    );
    assert!(
        show_line(&show, "mobile").is_some_and(|l| l.contains("(confirmed")),
        "an email-only campaign unconfirmed the mobile:\n{show}"
    );
    login_asked(&client(), &gw, CAROL).await;
}
both_backends!(admin_page_campaign_for_listed_members);

async fn campaign_for_one_organisation(backend: Backend) {
    let site = site(backend, "").await;
    let (s, gw) = (&site.s, site.gw());
    let admin = signed_in_admin(s).await;
    confirmed_member(&s.gw, ANN, None);
    let owner = client();
    let org = register(s, &owner, OWNER, &ACME).await;
    invite_and_join(s, &owner, MEMBER).await;
    // Registration and the invitation link confirmed their addresses.
    for who in [(OWNER, "registration"), (MEMBER, "invitation")] {
        let show = user_show(&s.gw, who.0).await;
        assert!(
            show_line(&show, "email")
                .is_some_and(|l| l.contains("(confirmed") && l.contains(&format!("by {}", who.1))),
            "{show}"
        );
    }

    let id = admin_start(
        &admin,
        &gw,
        &[
            ("scope", "org"),
            ("org", &org),
            ("members", ""),
            ("channels", "email"),
        ],
    )
    .await;
    assert_eq!(
        admin_progress(&admin, &gw, &id).await,
        Progress::new(2, 0, 0, 2)
    );
    login_asked(&client(), &gw, MEMBER).await;
    login_straight(&client(), &gw, ANN).await;
    login_straight(&client(), &gw, BOSS).await;

    // The same from the CLI.
    let (cli, asked) = campaign_start(&s.gw, &["--org", &org, "--channels", "email"]).await;
    assert_eq!(asked, 2);
    let status = campaign_status(&s.gw).await;
    assert_eq!(status[0].0, cli, "newest first: {status:?}");
    assert_eq!(status[1].0, id, "newest first: {status:?}");
}
both_backends!(campaign_for_one_organisation);

/// `--members FILE`: comments and blank lines skipped; an unknown address names its line
/// and starts nothing.
async fn members_file_with_an_unknown_address_starts_nothing(backend: Backend) {
    let site = site(backend, "").await;
    let s = &site.s;
    confirmed_member(&s.gw, ANN, None);
    confirmed_member(&s.gw, BOB, None);
    let path = s.gw.dir().join("members.txt");
    std::fs::write(
        &path,
        format!("# asked in March\n{ANN}\n\n{BOB}\nnobody@example.com\n"),
    )
    .unwrap();
    let path = path.display().to_string();
    let out =
        s.gw.cli_async(&["campaign", "start", "--members", &path], None)
            .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with an unknown address");
    assert!(
        stderr.contains("line")
            && stderr
                .split(|c: char| !c.is_ascii_digit())
                .any(|n| n == "5"),
        "the refusal should name line 5:\n{stderr}"
    );
    let show = user_show(&s.gw, ANN).await;
    assert_eq!(show_line(&show, "campaign"), None, "{show}");
    assert!(
        show_line(&show, "email").is_some_and(|l| l.contains("(confirmed")),
        "{show}"
    );
    let out = s.gw.cli_async(&["campaign", "status"], None).await;
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("started"),
        "a campaign was recorded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Without the unknown line: both asked, default channels (email and mobile).
    std::fs::write(&path, format!("# asked in March\n{ANN}\n\n{BOB}\n")).unwrap();
    let (id, asked) = campaign_start(&s.gw, &["--members", &path]).await;
    assert_eq!(asked, 2);
    let show = user_show(&s.gw, BOB).await;
    assert_eq!(
        show_line(&show, "campaign").as_deref(),
        Some(format!("campaign: {id} (not seen)").as_str())
    );
    assert_eq!(show_line(&show, "mobile").as_deref(), Some("mobile: none"));
    // One member file helper shared with the recovery tests.
    let (_, one) = campaign_start(&s.gw, &["--members", &members_file(s, &[ANN])]).await;
    assert_eq!(one, 1);
}
both_backends!(members_file_with_an_unknown_address_starts_nothing);

/// Without `ask_mobile`, a campaign's default channels are the email alone: a confirmed
/// mobile stays confirmed, and the member is asked for the email only.
async fn default_channels_follow_ask_mobile(backend: Backend) {
    let site = site(backend, "[contact]\nask_mobile = false\n").await;
    let (s, gw) = (&site.s, site.gw());
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    campaign_start(&s.gw, &["--all"]).await;
    let show = user_show(&s.gw, ANN).await;
    assert_eq!(
        show_line(&show, "email").as_deref(),
        Some(format!("email: {ANN} (unconfirmed)").as_str()),
        "{show}"
    );
    assert!(
        show_line(&show, "mobile").is_some_and(|l| l.contains("(confirmed")),
        "the mobile was asked although ask_mobile = false:\n{show}"
    );
    let c = client();
    login_asked(&c, &gw, ANN).await;
    send_ok(&c, &gw, "email", ANN, RD).await;
    confirm_ok(&c, &gw, "email", &email_code(s, ANN, 1).await, RD).await;
    let page = contact_page(&c, &gw, RD).await;
    assert_eq!(page.state("email"), "confirmed");
    assert!(
        page.html.contains(&format!("href=\"{RD}\"")),
        "no link on to {RD}:\n{}",
        page.html
    );
    login_straight(&client(), &gw, ANN).await;
}
both_backends!(default_channels_follow_ask_mobile);
