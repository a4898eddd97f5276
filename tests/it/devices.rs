//! The device cap through the real binary, a real SMTP server and both backends: the
//! choose flow (code mailed, wrong code, choice, the replaced device told on its next
//! request), admins notified once a day, abandoning, evict-oldest and deny, the same
//! device taking no extra slot, the account page's device list, lowering the cap from the
//! admin page, per-member caps, and 30 simultaneous logins on two instances.

use reqwest::Client;

use crate::common::backend::{open_store, Backend, Stack};
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::http::{self, client_ua, get, header, login, login_ok};
use crate::common::smtp::ReceivedMail;
use crate::{both_backends, every_store};

const NOTIFY: &str = "owner@example.com";
const WINDOWS_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const LINUX_FIREFOX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CODE_SUBJECT: &str = "Your code to sign in on a new device";

fn cap(max: u32, policy: &str) -> String {
    format!(
        "[sessions]\nmax_per_member = {max}\non_overflow = \"{policy}\"\n\
         [mail]\nadmin_notify = [\"{NOTIFY}\"]\n[lockout]\nip_max_failures = 0\n"
    )
}

/// Where a browser without a session is sent from `/courses/1`.
const LOGIN_FROM_COURSE: &str = "/_vigile/login?rd=%2Fcourses%2F1";

/// A protected page as a browser navigates to it: `Ok(())` if served, `Err(location)` if
/// redirected; any other answer (an error page) fails the test.
async fn browse(c: &Client, gw: &str) -> Result<(), String> {
    let resp = get(c, &format!("{gw}/courses/1"), true).await;
    match resp.status().as_u16() {
        200 => Ok(()),
        302 | 303 => Err(header(&resp, "location").expect("a redirect has a Location")),
        status => panic!(
            "GET /courses/1 answered {status}:\n{}",
            resp.text().await.unwrap_or_default()
        ),
    }
}

/// The 6 digits of the `nth` code mail to `to` (waiting for it to arrive).
pub(crate) async fn code_for(s: &Stack, to: &str, nth: usize) -> String {
    let is_code =
        |m: &ReceivedMail| m.to.iter().any(|t| t == to) && m.subject.contains(CODE_SUBJECT);
    let count = || s.smtp.mails().iter().filter(|m| is_code(m)).count();
    s.smtp
        .wait_for(&format!("code mail #{nth} to {to}"), |_| count() >= nth)
        .await;
    let mails: Vec<ReceivedMail> = s.smtp.mails().into_iter().filter(|m| is_code(m)).collect();
    let text = &mails[nth - 1].text;
    text.split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in:\n{text}"))
        .to_string()
}

/// Posts a form found on `page_url` (CSRF and hidden fields from the page).
pub(crate) async fn post_on(
    c: &Client,
    gw: &str,
    page_url: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = http::get_page(c, &format!("{gw}{page_url}")).await;
    let form = http::form_with_action(&page, action)
        .unwrap_or_else(|| panic!("no form {action} on {page_url}:\n{page}"));
    http::submit(c, gw, &form, fields).await
}

/// The session ids offered on the choose page, with the text of their rows.
pub(crate) async fn offered(c: &Client, gw: &str) -> Vec<(String, String)> {
    let page = http::get_page(c, &format!("{gw}/_vigile/devices/choose")).await;
    http::device_rows(&page)
}

async fn sessions(s: &Stack, email: &str) -> usize {
    let store = open_store(s);
    let user = store.user_by_email(email).await.unwrap().unwrap();
    store
        .sessions_of(&user.id, vigile::clock::now_ms())
        .await
        .unwrap()
        .len()
}

async fn choose_flow_replaces_the_chosen_device(backend: Backend) {
    let s = backend.stack(&cap(2, "choose")).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);
    let (laptop, phone, new) = (
        client_ua(WINDOWS_CHROME),
        client_ua(IPHONE_SAFARI),
        client_ua(LINUX_FIREFOX),
    );
    login_ok(&laptop, &gw, ANN, PW).await;
    login_ok(&phone, &gw, ANN, PW).await;

    // Over the cap: no session, straight to the code page.
    let resp = http::login_rd(&new, &gw, ANN, PW, Some("/courses/7?x=1")).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        header(&resp, "location").as_deref(),
        Some("/_vigile/verify")
    );
    assert!(http::set_cookies(&resp)
        .iter()
        .all(|c| !c.contains("vigile_session=")));
    assert_eq!(sessions(&s, ANN).await, 2);
    let code = code_for(&s, ANN, 1).await;
    let member_mail = s.smtp.wait_for_to(ANN, CODE_SUBJECT).await;
    assert!(
        member_mail.text.contains("Firefox on Linux"),
        "{}",
        member_mail.text
    );
    // The admins hear: the notify address and the admin account, naming member and device.
    for admin in [NOTIFY, BOSS] {
        let m = s
            .smtp
            .wait_for_to(admin, "went over the device limit")
            .await;
        assert!(m.subject.contains(ANN), "{}", m.subject);
        assert!(
            m.text.contains("Firefox on Linux") && m.text.contains("2 devices"),
            "{}",
            m.text
        );
    }

    // A wrong code is refused and counted.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let resp = post_on(
        &new,
        &gw,
        "/_vigile/verify",
        "/_vigile/verify",
        &[("code", wrong)],
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("4 tries left"));
    let resp = post_on(
        &new,
        &gw,
        "/_vigile/verify",
        "/_vigile/verify",
        &[("code", &code)],
    )
    .await;
    assert_eq!(
        header(&resp, "location").as_deref(),
        Some("/_vigile/devices/choose")
    );

    // The choice lists both devices by name; nothing has changed yet.
    let devices = offered(&new, &gw).await;
    assert_eq!(devices.len(), 2, "{devices:?}");
    let laptop_row = devices
        .iter()
        .find(|(_, t)| t.contains("Chrome on Windows"))
        .unwrap();
    assert!(devices
        .iter()
        .any(|(_, t)| t.contains("Safari on iPhone") && t.contains("phone")));
    browse(&laptop, &gw).await.unwrap();

    let resp = post_on(
        &new,
        &gw,
        "/_vigile/devices/choose",
        "/_vigile/devices/choose",
        &[("session", &laptop_row.0)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location").as_deref(), Some("/courses/7?x=1"));
    browse(&new, &gw).await.unwrap();
    browse(&phone, &gw).await.unwrap();
    assert_eq!(sessions(&s, ANN).await, 2);

    // The laptop is told why at its next request.
    let to = browse(&laptop, &gw).await.unwrap_err();
    assert!(to.contains("signed_out=replaced"), "{to}");
    let page = http::get_page(&laptop, &format!("{gw}{to}")).await;
    assert!(
        page.contains("another of your devices took this one"),
        "{page}"
    );

    assert_eq!(
        s.gw.metric("vigile_device_overflows_total{resolution=\"replaced\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        s.gw.metric("vigile_logins_total{result=\"overflow\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(s.gw.metric("vigile_sessions_active").await, Some(2.0));

    // A second overflow the same day: a code again, but no second notice to the admins.
    let again = client_ua(LINUX_FIREFOX);
    let resp = login(&again, &gw, ANN, PW).await;
    assert_eq!(
        header(&resp, "location").as_deref(),
        Some("/_vigile/verify")
    );
    code_for(&s, ANN, 2).await;
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to(NOTIFY), 1);
    assert_eq!(s.smtp.count_to(BOSS), 1);
}
both_backends!(choose_flow_replaces_the_chosen_device);

async fn abandoning_or_exhausting_the_code_changes_nothing(backend: Backend) {
    let s = backend.stack(&cap(1, "choose")).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let laptop = client_ua(WINDOWS_CHROME);
    login_ok(&laptop, &gw, ANN, PW).await;

    let new = client_ua(LINUX_FIREFOX);
    login(&new, &gw, ANN, PW).await;
    code_for(&s, ANN, 1).await;
    let resp = post_on(&new, &gw, "/_vigile/verify", "/_vigile/devices/cancel", &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Nothing was changed"));
    assert_eq!(
        get(&new, &format!("{gw}/_vigile/verify"), true)
            .await
            .status(),
        410
    );
    browse(&laptop, &gw).await.unwrap();
    assert_eq!(
        browse(&new, &gw).await,
        Err(LOGIN_FROM_COURSE.to_string()),
        "the new device is not signed in"
    );

    // Five wrong codes end the attempt; the right one is then useless.
    login(&new, &gw, ANN, PW).await;
    let code = code_for(&s, ANN, 2).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (1..=4).rev() {
        let resp = post_on(
            &new,
            &gw,
            "/_vigile/verify",
            "/_vigile/verify",
            &[("code", wrong)],
        )
        .await;
        let body = resp.text().await.unwrap();
        let expected = if left == 1 {
            "One try left".to_string()
        } else {
            format!("{left} tries left")
        };
        assert!(body.contains(&expected), "{body}");
    }
    let resp = post_on(
        &new,
        &gw,
        "/_vigile/verify",
        "/_vigile/verify",
        &[("code", wrong)],
    )
    .await;
    assert!(resp.text().await.unwrap().contains("Too many wrong codes"));
    let resp = get(&new, &format!("{gw}/_vigile/verify"), true).await;
    assert_eq!(resp.status(), 410);
    assert!(resp.text().await.unwrap().contains("no sign-in waiting"));
    browse(&laptop, &gw).await.unwrap();
    assert_eq!(sessions(&s, ANN).await, 1);
    assert_eq!(
        s.gw.metric("vigile_device_overflows_total{resolution=\"abandoned\"}")
            .await,
        Some(2.0)
    );
}
both_backends!(abandoning_or_exhausting_the_code_changes_nothing);

async fn evict_oldest_and_deny_follow_the_cli_settings(backend: Backend) {
    let s = backend.stack(&cap(3, "choose")).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let out = s.gw.cli_ok(
        &[
            "settings",
            "set",
            "--max-per-member",
            "2",
            "--on-overflow",
            "evict-oldest",
        ],
        None,
    );
    assert!(
        out.contains("max_per_member: 2 (saved)") && out.contains("evict-oldest"),
        "{out}"
    );
    let (a, b, c) = (
        client_ua(WINDOWS_CHROME),
        client_ua(IPHONE_SAFARI),
        client_ua(LINUX_FIREFOX),
    );
    login_ok(&a, &gw, ANN, PW).await;
    login_ok(&b, &gw, ANN, PW).await;
    login_ok(&c, &gw, ANN, PW).await;
    // The least recently used (a, signed in first) made room, and is told so.
    assert!(browse(&a, &gw)
        .await
        .unwrap_err()
        .contains("signed_out=replaced"));
    browse(&b, &gw).await.unwrap();
    browse(&c, &gw).await.unwrap();
    assert_eq!(
        s.gw.metric("vigile_device_overflows_total{resolution=\"evicted\"}")
            .await,
        Some(1.0)
    );

    s.gw.cli_ok(&["settings", "set", "--on-overflow", "deny"], None);
    let d = client_ua(WINDOWS_CHROME);
    let resp = login(&d, &gw, ANN, PW).await;
    assert_eq!(resp.status(), 403);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("can be signed in on 2 devices") && body.contains("/_vigile/account#devices"),
        "{body}"
    );
    assert_eq!(sessions(&s, ANN).await, 2);
    assert_eq!(
        s.gw.metric("vigile_device_overflows_total{resolution=\"denied\"}")
            .await,
        Some(1.0)
    );

    // A member's own cap wins over the site's.
    s.gw.cli_ok(&["user", "cap", ANN, "3"], None);
    login_ok(&d, &gw, ANN, PW).await;
    assert!(s
        .gw
        .cli_ok(&["user", "show", ANN], None)
        .contains("at most 3 (this member's own limit)"));
}
both_backends!(evict_oldest_and_deny_follow_the_cli_settings);

async fn the_same_device_takes_no_extra_slot(backend: Backend) {
    let s = backend.stack(&cap(1, "deny")).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let (c, jar) = http::client_with_jar(WINDOWS_CHROME);
    login_ok(&c, &gw, ANN, PW).await;
    // Signed in already (the login page would redirect): post the form again directly.
    let csrf = http::csrf_from(&http::get_page(&c, &format!("{gw}/_vigile/account")).await);
    let fields = [("csrf", csrf.as_str()), ("email", ANN), ("password", PW)];
    let resp = http::post_form(&c, &format!("{gw}/_vigile/login"), &fields).await;
    assert_eq!(resp.status(), 303);
    assert!(http::set_cookies(&resp)
        .iter()
        .any(|c| c.starts_with("vigile_session=")));
    browse(&c, &gw).await.unwrap();
    // The session cookie lost (browser closed), the device cookie kept: still one slot.
    let device = http::jar_cookie(&jar, &gw, "vigile_device").unwrap();
    let fresh = http::client_with_headers(&[("cookie", &format!("vigile_device={device}"))]);
    login_ok(&fresh, &gw, ANN, PW).await;
    assert_eq!(sessions(&s, ANN).await, 1);
}
both_backends!(the_same_device_takes_no_extra_slot);

async fn account_page_lists_and_revokes_devices(backend: Backend) {
    let s = backend.stack(&cap(3, "choose")).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let (a, b, c) = (
        client_ua(WINDOWS_CHROME),
        client_ua(IPHONE_SAFARI),
        client_ua(LINUX_FIREFOX),
    );
    for x in [&a, &b, &c] {
        login_ok(x, &gw, ANN, PW).await;
    }
    let page = http::get_page(&a, &format!("{gw}/_vigile/account")).await;
    assert!(page.contains("3 of the 3 devices"), "{page}");
    for label in [
        "Chrome on Windows",
        "Safari on iPhone",
        "Firefox on Linux",
        "(this device)",
    ] {
        assert!(page.contains(label), "{label}: {page}");
    }
    // Revoke the phone from the laptop.
    let phone_id = http::session_row(&page, |li| li.contains("Safari on iPhone"));
    let resp = post_on(
        &a,
        &gw,
        "/_vigile/account",
        "/_vigile/account/devices/revoke",
        &[("session", &phone_id)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let to = browse(&b, &gw).await.unwrap_err();
    assert!(to.contains("signed_out=revoked"), "{to}");
    browse(&c, &gw).await.unwrap();
    // Everywhere else.
    let resp = post_on(
        &a,
        &gw,
        "/_vigile/account",
        "/_vigile/account/devices/others",
        &[],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let to = browse(&c, &gw).await.unwrap_err();
    assert!(to.contains("signed_out=revoked"), "{to}");
    browse(&a, &gw).await.unwrap();
    assert_eq!(sessions(&s, ANN).await, 1);
}
both_backends!(account_page_lists_and_revokes_devices);

/// Chosen: lowering the cap signs nobody out (a member mid-lesson keeps their page); the
/// next login past the new cap meets the policy and must bring the member under it.
async fn lowering_the_cap_from_the_admin_page_applies_at_the_next_login(backend: Backend) {
    let s = backend.stack(&cap(3, "choose")).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);
    let devices = [
        client_ua(WINDOWS_CHROME),
        client_ua(IPHONE_SAFARI),
        client_ua(LINUX_FIREFOX),
    ];
    for d in &devices {
        login_ok(d, &gw, ANN, PW).await;
    }
    let admin = http::client();
    login_ok(&admin, &gw, BOSS, PW).await;
    // Bad input changes nothing.
    let resp = post_on(
        &admin,
        &gw,
        "/_vigile/admin/settings",
        "/_vigile/admin/settings",
        &[("max_per_member", "-1"), ("on_overflow", "choose")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Nothing was changed"));
    let resp = post_on(
        &admin,
        &gw,
        "/_vigile/admin/settings",
        "/_vigile/admin/settings",
        &[("max_per_member", "2"), ("on_overflow", "choose")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert!(s
        .gw
        .cli_ok(&["settings", "show"], None)
        .contains("max_per_member: 2 (saved)"));
    for d in &devices {
        browse(d, &gw).await.unwrap();
    }

    // The next login must sign out two devices to fit under 2.
    let new = client_ua(LINUX_FIREFOX);
    login(&new, &gw, ANN, PW).await;
    let code = code_for(&s, ANN, 1).await;
    post_on(
        &new,
        &gw,
        "/_vigile/verify",
        "/_vigile/verify",
        &[("code", &code)],
    )
    .await;
    let page = http::get_page(&new, &format!("{gw}/_vigile/devices/choose")).await;
    assert!(page.contains("choose 2 devices to sign out"), "{page}");
    let ids: Vec<String> = offered(&new, &gw)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 3);
    let resp = post_on(
        &new,
        &gw,
        "/_vigile/devices/choose",
        "/_vigile/devices/choose",
        &[("session", &ids[0])],
    )
    .await;
    assert_eq!(resp.status(), 409, "one is not enough");
    assert_eq!(sessions(&s, ANN).await, 3);
    let resp = post_on(
        &new,
        &gw,
        "/_vigile/devices/choose",
        "/_vigile/devices/choose",
        &[("session", &ids[0]), ("session", &ids[1])],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(sessions(&s, ANN).await, 2);

    // A per-member cap from the member's admin page.
    let resp = post_on(
        &admin,
        &gw,
        &format!("/_vigile/admin/member?email={ANN}"),
        "/_vigile/admin/member/cap",
        &[("cap", "5")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    login_ok(&client_ua(WINDOWS_CHROME), &gw, ANN, PW).await;
    assert_eq!(sessions(&s, ANN).await, 3);
}
both_backends!(lowering_the_cap_from_the_admin_page_applies_at_the_next_login);

/// A device replaced through one instance is refused by the other, which had it cached
/// (within the session cache's lifetime, under a second).
async fn replaced_device_is_refused_on_the_other_instance(backend: Backend) {
    let s = backend.stack(&cap(1, "choose")).await;
    let gw1 = s.gw.url();
    let second = s.second_instance(&cap(1, "choose")).await;
    let gw2 = second.url();
    s.gw.add_user(ANN, PW, false);
    let laptop = client_ua(WINDOWS_CHROME);
    login_ok(&laptop, &gw1, ANN, PW).await;
    browse(&laptop, &gw1).await.unwrap();

    let new = client_ua(LINUX_FIREFOX);
    login(&new, &gw2, ANN, PW).await;
    let code = code_for(&s, ANN, 1).await;
    post_on(
        &new,
        &gw2,
        "/_vigile/verify",
        "/_vigile/verify",
        &[("code", &code)],
    )
    .await;
    let (id, _) = offered(&new, &gw2).await.remove(0);
    post_on(
        &new,
        &gw2,
        "/_vigile/devices/choose",
        "/_vigile/devices/choose",
        &[("session", &id)],
    )
    .await;
    browse(&new, &gw1).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match browse(&laptop, &gw1).await {
            Err(to) => {
                assert!(to.contains("signed_out=replaced"), "{to}");
                break;
            }
            Ok(()) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Ok(()) => panic!("the replaced laptop is still served by the other instance"),
        }
    }
}
every_store!(replaced_device_is_refused_on_the_other_instance);

/// 30 logins of one member from 30 devices at once, half on each instance: the cap holds
/// whatever the policy.
async fn thirty_simultaneous_logins_never_exceed_the_cap(backend: Backend) {
    for policy in ["choose", "evict-oldest", "deny"] {
        // Lockout off: it counts attempts before checking them, so 30 parallel logins of
        // one address would see some refused as "locked" (tests/it/lockout.rs covers it).
        let config = format!("{}account_max_failures = 0\n", cap(3, policy));
        let s = backend_stack(&backend, &config).await;
        let second = s.second_instance(&config).await;
        s.gw.add_user(ANN, PW, false);
        let gws = [s.gw.url(), second.url()];
        // Each browser fetches its login form first, then all post together.
        let mut posts = Vec::new();
        for i in 0..30 {
            let c = client_ua(WINDOWS_CHROME);
            let gw = gws[i % 2].clone();
            let page = http::get_page(&c, &format!("{gw}/_vigile/login")).await;
            let form = http::form_with_action(&page, "/_vigile/login").unwrap();
            posts.push(tokio::spawn(async move {
                let resp = http::submit(&c, &gw, &form, &[("email", ANN), ("password", PW)]).await;
                let ok = http::set_cookies(&resp)
                    .iter()
                    .any(|c| c.starts_with("vigile_session="));
                (ok, resp.status().as_u16(), http::header(&resp, "location"))
            }));
        }
        let mut signed_in = 0;
        let mut refused = Vec::new();
        for p in posts {
            let (ok, status, location) = p.await.unwrap();
            signed_in += usize::from(ok);
            if !ok {
                refused.push((status, location));
            }
        }
        let active = sessions(&s, ANN).await;
        assert!(active <= 3, "{policy}: {active} sessions active");
        match policy {
            "evict-oldest" => assert_eq!((signed_in, active), (30, 3), "{policy}: {refused:?}"),
            _ => assert_eq!((signed_in, active), (3, 3), "{policy}: {refused:?}"),
        }
    }
}

async fn backend_stack(backend: &Backend, extra: &str) -> Stack {
    match backend {
        Backend::Sqlite => Backend::Sqlite.stack(extra).await,
        Backend::Redis => Backend::Redis.stack(extra).await,
        Backend::Cluster => Backend::Cluster.stack(extra).await,
    }
}
every_store!(thirty_simultaneous_logins_never_exceed_the_cap);
