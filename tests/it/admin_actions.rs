//! Admin actions are for admins only, through the real binary on both backends: every
//! form the admin pages offer, posted by a signed-in member with a valid CSRF token of
//! their own, is refused with `403` and changes nothing; the same forms posted by the
//! admin do change what they say (the control). The forms are found by walking the admin
//! pages from `/_vigile/admin`, so an action added later is covered without a new test.

use std::collections::BTreeSet;

use reqwest::Client;

use crate::both_backends;
use crate::common::backend::{Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW, WRONG};
use crate::common::http::{self, client, client_ua, get_page, login, login_ok, Form};

const CARL: &str = "carl@example.com";

/// Admin pages visited at most (a member's page per account, and the main page).
const MAX_PAGES: usize = 40;

/// The actions this test knows how to check the effect of; the walk must find them all.
const KNOWN: [&str; 4] = [
    "/_vigile/admin/settings",
    "/_vigile/admin/unlock",
    "/_vigile/admin/member/cap",
    "/_vigile/admin/member/revoke",
];

/// What a person would type into the forms' visible fields (the rest are hidden fields).
const TYPED: [(&str, &str); 3] = [
    ("max_per_member", "1"),
    ("on_overflow", "deny"),
    ("cap", "9"),
];

/// Every POST form under `/_vigile/admin` on the admin pages reachable from the main one.
async fn admin_forms(admin: &Client, gw: &str) -> Vec<Form> {
    let mut queue = vec!["/_vigile/admin".to_string()];
    let mut seen = BTreeSet::new();
    let mut forms = vec![];
    while let Some(path) = queue.pop() {
        if seen.len() >= MAX_PAGES || !seen.insert(path.clone()) {
            continue;
        }
        let page = get_page(admin, &format!("{gw}{path}")).await;
        forms.extend(
            http::forms(&page)
                .into_iter()
                .filter(|f| f.method == "post" && f.action.starts_with("/_vigile/admin")),
        );
        for href in page.split("href=\"").skip(1) {
            let href = http::decode_entities(href.split('"').next().unwrap_or(""));
            let href = href.split('#').next().unwrap_or("");
            if href.starts_with("/_vigile/admin") {
                queue.push(href.to_string());
            }
        }
    }
    forms
}

/// What the admin actions change, as an operator reads it: the device-cap settings and
/// Ann's account (lock, own cap, sessions).
async fn state(s: &Stack) -> (String, String) {
    let cli = |args: &'static [&'static str]| async move {
        let out = s.gw.cli_async(args, None).await;
        assert!(out.status.success(), "vigile {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    (
        cli(&["settings", "show"]).await,
        cli(&["user", "show", ANN]).await,
    )
}

async fn members_cannot_post_admin_forms(backend: Backend) {
    let s = backend
        .stack("[lockout]\nip_max_failures = 0\n[sessions]\nmax_per_member = 3\n")
        .await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);
    s.gw.add_user(CARL, PW, false);
    // Ann signed in on two devices, then someone else's guesses locked her account.
    for ua in [http::UA_CHROME_WINDOWS, http::UA_SAFARI_IPHONE] {
        login_ok(&client_ua(ua), &gw, ANN, PW).await;
    }
    for _ in 0..6 {
        login(&client(), &gw, ANN, WRONG).await;
    }
    let admin = client();
    login_ok(&admin, &gw, BOSS, PW).await;
    let forms = admin_forms(&admin, &gw).await;
    let actions: BTreeSet<&str> = forms.iter().map(|f| f.action.as_str()).collect();
    for known in KNOWN {
        assert!(
            actions.contains(known),
            "no {known} form found: {actions:?}"
        );
    }

    let before = state(&s).await;
    assert!(before.1.contains("lock:     locked"), "{}", before.1);
    let carl = client();
    login_ok(&carl, &gw, CARL, PW).await;
    let account = get_page(&carl, &format!("{gw}/_vigile/account")).await;
    let csrf = http::csrf_from(&account);
    for form in &forms {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend(TYPED);
        let resp = http::submit(&carl, &gw, form, &fields).await;
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(
            status, 403,
            "{} {:?} by a member:\n{body}",
            form.action, form.hidden
        );
        assert!(body.contains("Access denied"), "{body}");
    }
    assert_eq!(
        state(&s).await,
        before,
        "a member's posts changed something"
    );

    // The control: the admin posting the same forms (about Ann) changes each thing.
    for action in KNOWN {
        let form = forms
            .iter()
            .find(|f| {
                f.action == action && f.hidden_value("email").is_none_or(|email| email == ANN)
            })
            .unwrap_or_else(|| panic!("no {action} form about {ANN}"));
        let resp = http::submit(&admin, &gw, form, &TYPED).await;
        assert_eq!(resp.status(), 303, "{action} by the admin");
    }
    let (settings, ann) = state(&s).await;
    assert!(settings.contains("max_per_member: 1 (saved)"), "{settings}");
    for change in [
        "lock:     open",
        "at most 9 (this member's own limit)",
        "sessions: 1",
    ] {
        assert!(ann.contains(change), "{change:?} missing:\n{ann}");
    }
}
both_backends!(members_cannot_post_admin_forms);
