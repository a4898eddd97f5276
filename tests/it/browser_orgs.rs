//! A company registered in a real Chromium through the real `vigile` binary: the three
//! steps (the link read from the real SMTP server), the organisation page, an invitation;
//! then the invited member opens the mailed link in a browser of their own, sets a
//! password and arrives signed in, and the site behind sees their organisation. Failures
//! leave a screenshot in `test-artifacts/<test>/` (see `common::browser`).

use crate::common::backend::{open_store, Backend};
use crate::common::browser::Browser;
use crate::orgs::{
    join_link, step_link, ADDRESS, COMPANY, MEMBER, OWNER, PHONE, PHONE_E164, SIRET,
};

const PASSWORD: &str = "Correct-Horse-9!";
const REGISTER: &str = "main form[action='/_vigile/register']";
const INVITE: &str = "main form[action='/_vigile/org/invite']";
const JOIN: &str = "main form[action='/_vigile/org/join']";

/// Picks `value` for the choice `name` inside `form`, a `<select>` or radio buttons.
async fn choose(b: &Browser, form: &str, name: &str, value: &str) {
    let select = format!("{form} select[name='{name}']");
    if b.exists(&select).await {
        b.click(&format!("{select} option[value='{value}']")).await;
    } else {
        b.click(&format!("{form} input[name='{name}'][value='{value}']"))
            .await;
    }
}

/// Fills the control `name` of `form`.
async fn fill(b: &Browser, form: &str, name: &str, text: &str) {
    b.fill(&format!("{form} [name='{name}']"), text).await;
}

/// Waits for `email` to be shown on the page: as text, or in a read-only input.
async fn shows_address(b: &Browser, email: &str) {
    let readonly = "main input[readonly]";
    if b.exists(readonly).await {
        assert_eq!(b.value(readonly).await, email, "the read-only address");
    } else {
        b.wait_text("main", email).await;
    }
}

async fn submit(b: &Browser, form: &str) {
    b.click(&format!("{form} button[type='submit']")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_company_registration_and_invited_member_first_sign_in() {
    let s = Backend::Sqlite.stack("").await;
    let gw = s.gw.url();
    let test = "browser_company_registration_and_invited_member_first_sign_in";
    let owner = Browser::start_device(test, "owner").await;
    owner
        .run(async {
            owner.step("step-1-email-twice");
            owner.goto(&format!("{gw}/_vigile/register")).await;
            fill(&owner, REGISTER, "email", OWNER).await;
            fill(&owner, REGISTER, "email_confirm", OWNER).await;
            submit(&owner, REGISTER).await;
            owner.wait_text("main", "spam").await;

            owner.step("step-2-from-the-mailed-link");
            owner.goto(&step_link(&s, OWNER).await).await;
            fill(&owner, REGISTER, "company", COMPANY).await;
            choose(&owner, REGISTER, "id_type", "siret").await;
            fill(&owner, REGISTER, "id_number", SIRET).await;
            fill(&owner, REGISTER, "phone", PHONE).await;
            fill(&owner, REGISTER, "address", ADDRESS).await;
            submit(&owner, REGISTER).await;

            owner.step("step-3-the-administrator");
            owner.find(&format!("{REGISTER} [name='first_name']")).await;
            shows_address(&owner, OWNER).await;
            fill(&owner, REGISTER, "first_name", "Olga").await;
            fill(&owner, REGISTER, "last_name", "Martin").await;
            fill(&owner, REGISTER, "password", PASSWORD).await;
            fill(&owner, REGISTER, "confirm", PASSWORD).await;
            submit(&owner, REGISTER).await;

            owner.step("the-organisation-page");
            owner.wait_path("/_vigile/org").await;
            owner.wait_text("main", COMPANY).await;
            let phone = "main form[action='/_vigile/org/profile'] [name='phone']";
            assert_eq!(owner.value(phone).await, PHONE_E164, "stored as E.164");
            owner
                .find("tr[data-role='org-super-admin'][data-member]")
                .await;

            owner.step("invite-a-member");
            fill(&owner, INVITE, "email", MEMBER).await;
            submit(&owner, INVITE).await;
            owner.wait_path("/_vigile/org").await;
            owner.find(&format!("tr[data-invite='{MEMBER}']")).await;
        })
        .await;

    let member = Browser::start_device(test, "member").await;
    member
        .run(async {
            member.step("the-invitation-link");
            member.goto(&join_link(&s, MEMBER).await).await;
            member.find(&format!("{JOIN} [name='first_name']")).await;
            shows_address(&member, MEMBER).await;
            fill(&member, JOIN, "first_name", "Mia").await;
            fill(&member, JOIN, "last_name", "Lopez").await;
            fill(&member, JOIN, "password", PASSWORD).await;
            fill(&member, JOIN, "confirm", PASSWORD).await;
            submit(&member, JOIN).await;

            member.step("signed-in");
            member.wait_path("/_vigile/account").await;
            member.wait_text("main", MEMBER).await;

            member.step("the-site-sees-the-organisation");
            member.goto(&format!("{gw}/courses/1")).await;
            member.wait_text("body", "upstream saw /courses/1").await;
            let org = open_store(&s).org_list().await.unwrap().remove(0).id;
            let seen = s
                .upstream
                .requests()
                .into_iter()
                .rev()
                .find(|r| r.path == "/courses/1")
                .expect("the course reached the upstream");
            assert_eq!(seen.header("remote-email"), Some(MEMBER));
            assert_eq!(seen.header("remote-org"), Some(org.as_str()));
            assert_eq!(seen.header("remote-groups"), Some("member"));
        })
        .await;

    owner
        .run(async {
            owner.step("the-member-listed");
            owner.refresh().await;
            owner.find("tr[data-role='member'][data-member]").await;
            owner.wait_text("tr[data-role='member']", MEMBER).await;
            assert!(
                !owner.exists(&format!("tr[data-invite='{MEMBER}']")).await,
                "still pending"
            );
        })
        .await;
    member.close().await;
    owner.close().await;
}
