//! Brute-force defence through the real binary, a real SMTP server and both backends:
//! account lockout and its mail, unlocking by reset or CLI, the known-device path during
//! an attack, IP blocks (start, page, doubling, expiry planted with past instants), the
//! `X-Forwarded-For` rule, parallel bursts on two instances, and no enumeration (the same
//! page, and the same hashing work, for unknown, wrong and locked).

use reqwest::Client;
use vigile::store::{AttemptKey, IpRule};

use crate::common::backend::{open_store, Backend, Stack};
use crate::common::consts::{ANN, PW, WRONG};
use crate::common::http::{self, client, get, header, login, login_ok};
use crate::{both_backends, every_store};

const LOCKED: &str = "This account is locked";
const INCORRECT: &str = "Incorrect email address or password.";
/// Generous IP limits so account tests are not cut short by the IP rule.
const NO_IP_LIMIT: &str = "[lockout]\nip_max_failures = 0\n";

async fn attempt(c: &Client, gw: &str, email: &str, password: &str) -> (u16, String) {
    let resp = login(c, gw, email, password).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn lock_mail(s: &Stack, email: &str) -> String {
    s.smtp
        .wait_for_to(email, "Your account has been locked")
        .await
        .link_containing("/_vigile/password/reset?token=")
}

async fn sixth_failure_locks_mails_and_a_reset_unlocks(backend: Backend) {
    let s = backend.stack(NO_IP_LIMIT).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let attacker = client();
    for n in 1..=5 {
        let (status, body) = attempt(&attacker, &gw, ANN, WRONG).await;
        assert_eq!(status, 401, "attempt {n}");
        assert!(body.contains(INCORRECT), "attempt {n}: {body}");
    }
    let (status, body) = attempt(&attacker, &gw, ANN, WRONG).await;
    assert_eq!(status, 401);
    assert!(
        body.contains(LOCKED) && body.contains("Check your email"),
        "{body}"
    );
    // Locked: even the right password, from a device that never signed in, is refused.
    let (status, body) = attempt(&client(), &gw, ANN, PW).await;
    assert_eq!(status, 401);
    assert!(body.contains(LOCKED), "{body}");
    assert!(s.gw.cli_ok(&["user", "show", ANN], None).contains("locked"));
    assert_eq!(
        s.gw.metric("vigile_account_lockouts_total").await,
        Some(1.0)
    );
    assert_eq!(
        s.gw.metric("vigile_logins_total{result=\"locked\"}").await,
        Some(2.0)
    );

    // One mail, with a reset link; completing the reset unlocks.
    let link = lock_mail(&s, ANN).await;
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to(ANN), 1);
    let c = client();
    let page = http::get_page(&c, &link).await;
    let form = http::form_with_action(&page, "/_vigile/password/reset").unwrap();
    let new_pw = "Fresh-start 42!";
    let resp = http::submit(&c, &gw, &form, &[("password", new_pw), ("confirm", new_pw)]).await;
    assert_eq!(resp.status(), 303);
    login_ok(&client(), &gw, ANN, new_pw).await;
}
every_store!(sixth_failure_locks_mails_and_a_reset_unlocks);

async fn success_resets_the_count_and_cli_unlocks(backend: Backend) {
    let s = backend.stack(NO_IP_LIMIT).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    for _ in 0..5 {
        attempt(&client(), &gw, ANN, WRONG).await;
    }
    login_ok(&client(), &gw, ANN, PW).await;
    for _ in 0..5 {
        let (_, body) = attempt(&client(), &gw, ANN, WRONG).await;
        assert!(body.contains(INCORRECT), "count restarted after a success");
    }
    let (_, body) = attempt(&client(), &gw, ANN, WRONG).await;
    assert!(body.contains(LOCKED));
    let out = s.gw.cli_ok(&["user", "unlock", ANN], None);
    assert!(out.contains("unlocked"), "{out}");
    assert!(s
        .gw
        .cli_ok(&["user", "show", ANN], None)
        .contains("lock:     open"));
    login_ok(&client(), &gw, ANN, PW).await;
}
both_backends!(success_resets_the_count_and_cli_unlocks);

async fn known_device_still_signs_in_during_an_attack(backend: Backend) {
    let s = backend.stack(NO_IP_LIMIT).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    // Ann's laptop has signed in before (its vigile_device cookie is known), then out.
    let laptop = client();
    login_ok(&laptop, &gw, ANN, PW).await;
    let page = http::get_page(&laptop, &format!("{gw}/_vigile/account")).await;
    let csrf = http::csrf_from(&page);
    http::post_form(&laptop, &format!("{gw}/_vigile/logout"), &[("csrf", &csrf)]).await;

    // An attacker elsewhere locks the account...
    let attacker = client();
    for _ in 0..8 {
        attempt(&attacker, &gw, ANN, WRONG).await;
    }
    assert!(attempt(&attacker, &gw, ANN, PW).await.1.contains(LOCKED));
    // ...but Ann's known laptop still gets in with her password.
    login_ok(&laptop, &gw, ANN, PW).await;
}
both_backends!(known_device_still_signs_in_during_an_attack);

/// A page with its per-browser CSRF token and the typed address blanked out.
fn shape(body: &str, email: &str) -> String {
    let body = body.replace(email, "EMAIL");
    match body.split_once("name=\"csrf\" value=\"") {
        Some((head, rest)) => {
            let tail = rest.split_once('"').map_or("", |(_, t)| t);
            format!("{head}CSRF{tail}")
        }
        None => body,
    }
}

async fn unknown_addresses_answer_like_known_ones(backend: Backend) {
    let s = backend.stack(NO_IP_LIMIT).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    let mut known = vec![];
    let mut unknown = vec![];
    for _ in 0..8 {
        let (status, body) = attempt(&client(), &gw, ANN, WRONG).await;
        known.push((status, shape(&body, ANN)));
        let (status, body) = attempt(&client(), &gw, "nobody@example.com", WRONG).await;
        unknown.push((status, shape(&body, "nobody@example.com")));
    }
    assert_eq!(known, unknown, "same statuses and pages, locked included");
    assert!(known[7].1.contains(LOCKED));
    // The known account's lock mail has come; nothing else is waiting: none for nobody.
    lock_mail(&s, ANN).await;
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to("nobody@example.com"), 0);
}
both_backends!(unknown_addresses_answer_like_known_ones);

/// Wrong password, unknown address, locked account (even with the right password), text
/// that is not an address: each login runs the password hasher exactly once, so none
/// answers sooner than another (Argon2 is where a login's time goes). Counted on
/// `vigile_password_hash_seconds_count` rather than timed: with the tests' cheap Argon2
/// parameters a path that skipped hashing would hide inside timing noise.
async fn unknown_wrong_and_locked_do_the_same_work(backend: Backend) {
    let s = backend.stack(NO_IP_LIMIT).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user("locked@example.com", PW, false);
    for _ in 0..6 {
        attempt(&client(), &gw, "locked@example.com", WRONG).await;
    }
    let hashes = || async {
        s.gw.metric("vigile_password_hash_seconds_count")
            .await
            .expect("vigile_password_hash_seconds is exported")
    };
    for round in 0..2 {
        for (case, email, password, answer) in [
            ("wrong password", ANN, WRONG, INCORRECT),
            ("unknown address", "nobody@example.com", WRONG, INCORRECT),
            ("locked account", "locked@example.com", WRONG, LOCKED),
            (
                "locked account, right password",
                "locked@example.com",
                PW,
                LOCKED,
            ),
            ("not an address", "not-an-address", WRONG, INCORRECT),
        ] {
            let c = client();
            let page = http::get_page(&c, &format!("{gw}/_vigile/login")).await;
            let form = http::form_with_action(&page, "/_vigile/login").unwrap();
            let before = hashes().await;
            let fields = [("email", email), ("password", password)];
            let resp = http::submit(&c, &gw, &form, &fields).await;
            assert_eq!(resp.status(), 401, "{case}");
            let body = resp.text().await.unwrap();
            assert!(body.contains(answer), "{case}: {body}");
            assert_eq!(
                hashes().await - before,
                1.0,
                "{case} (round {round}): one password hash per login"
            );
        }
    }
}
both_backends!(unknown_wrong_and_locked_do_the_same_work);

fn rule() -> IpRule {
    IpRule {
        max: 3,
        window_ms: 600_000,
        block_ms: 900_000,
        max_block_ms: 86_400_000,
    }
}
const IP_RULE: &str = "[lockout]\nip_max_failures = 3\nip_window = \"10m\"\nip_block = \"15m\"\n";

async fn retry_after(c: &Client, url: &str) -> Option<u64> {
    let resp = get(c, url, true).await;
    if resp.status() != 429 {
        return None;
    }
    let secs = header(&resp, "retry-after")?.parse().ok()?;
    let body = resp.text().await.unwrap();
    assert!(body.contains("temporarily blocked"), "{body}");
    Some(secs)
}

async fn ip_block_starts_shows_doubles_and_ends(backend: Backend) {
    let s = backend.stack(IP_RULE).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    // A member signed in before the attack keeps browsing.
    let member = client();
    login_ok(&member, &gw, ANN, PW).await;

    let before = client();
    let before_csrf =
        http::csrf_from(&http::get_page(&before, &format!("{gw}/_vigile/login")).await);
    // Failures against unknown accounts count too.
    for i in 0..3 {
        let (status, _) = attempt(&client(), &gw, &format!("x{i}@example.com"), WRONG).await;
        assert_eq!(status, 401);
    }
    let c = client();
    let secs = retry_after(&c, &format!("{gw}/_vigile/login"))
        .await
        .expect("blocked");
    assert!((800..=900).contains(&secs), "first block ~15 min: {secs}");
    for page in ["/_vigile/signup", "/_vigile/password/forgot"] {
        assert!(
            retry_after(&c, &format!("{gw}{page}")).await.is_some(),
            "{page}"
        );
    }
    let resp = http::post_form(
        &before,
        &format!("{gw}/_vigile/login"),
        &[("csrf", &before_csrf), ("email", ANN), ("password", PW)],
    )
    .await;
    assert_eq!(
        resp.status(),
        429,
        "the right password does not get through either"
    );
    assert_eq!(
        get(&member, &format!("{gw}/courses/1"), true)
            .await
            .status(),
        200
    );
    assert_eq!(s.gw.metric("vigile_ip_blocks_total").await, Some(1.0));
    assert!(
        s.gw.metric("vigile_requests_total{decision=\"blocked\"}")
            .await
            .unwrap()
            >= 4.0
    );

    // The block ends: plant one that started 16 minutes ago (time as a parameter).
    let store = open_store(&s);
    let now = vigile::clock::now_ms();
    store.ip_unblock("127.0.0.1", now).await.unwrap();
    store
        .ip_block("127.0.0.1", &rule(), now - 16 * 60_000)
        .await
        .unwrap();
    assert_eq!(
        get(&c, &format!("{gw}/_vigile/login"), true).await.status(),
        200
    );
    // A repeat within a day doubles: 30 minutes.
    for i in 0..3 {
        attempt(&client(), &gw, &format!("y{i}@example.com"), WRONG).await;
    }
    let secs = retry_after(&c, &format!("{gw}/_vigile/login"))
        .await
        .expect("blocked again");
    assert!(
        (1700..=1800).contains(&secs),
        "second block ~30 min: {secs}"
    );

    // The admin lifts it.
    s.gw.cli_ok(&["ip", "unblock", "127.0.0.1"], None);
    assert_eq!(
        get(&c, &format!("{gw}/_vigile/login"), true).await.status(),
        200
    );
}
both_backends!(ip_block_starts_shows_doubles_and_ends);

async fn forwarded_for_counts_only_from_trusted_proxies(backend: Backend) {
    let s = backend.stack(IP_RULE).await;
    let gw = s.gw.url();
    // From an untrusted peer, a spoofed X-Forwarded-For changes nothing: the block
    // follows the socket address.
    for i in 0..3 {
        let c = http::client_with_headers(&[("x-forwarded-for", &format!("10.9.9.{i}"))]);
        attempt(&c, &gw, "z@example.com", WRONG).await;
    }
    let spoofer = http::client_with_headers(&[("x-forwarded-for", "10.0.0.99")]);
    assert!(retry_after(&spoofer, &format!("{gw}/_vigile/login"))
        .await
        .is_some());
    assert!(open_store(&s)
        .ip_blocked_until("127.0.0.1", vigile::clock::now_ms())
        .await
        .unwrap()
        .is_some());
    assert!(open_store(&s)
        .ip_blocked_until("10.0.0.99", vigile::clock::now_ms())
        .await
        .unwrap()
        .is_none());
}
both_backends!(forwarded_for_counts_only_from_trusted_proxies);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_address_is_blocked() {
    let s = Backend::Sqlite
        .stack(&format!(
            "{IP_RULE}[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
        ))
        .await;
    let gw = s.gw.url();
    let bad = http::client_with_headers(&[("x-forwarded-for", "203.0.113.7")]);
    for i in 0..3 {
        attempt(&bad, &gw, &format!("w{i}@example.com"), WRONG).await;
    }
    assert!(retry_after(&bad, &format!("{gw}/_vigile/login"))
        .await
        .is_some());
    let other = http::client_with_headers(&[("x-forwarded-for", "203.0.113.8")]);
    assert_eq!(
        get(&other, &format!("{gw}/_vigile/login"), true)
            .await
            .status(),
        200
    );
}

/// 30 wrong passwords at once, half on each of two instances sharing Redis. The IP rule
/// lets exactly 10 through (`ip_max_failures`) and refuses 20 with the block page; of the
/// 10, exactly `account_max_failures` (5) are checked, the rest meet the lock; one mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_bursts_on_two_instances_never_exceed_the_thresholds() {
    let rule = "[lockout]\nip_max_failures = 10\naccount_max_failures = 6\n";
    let s = Backend::Redis.stack(rule).await;
    s.gw.add_user(ANN, PW, false);
    let second = s.second_instance(rule).await;
    let urls = [s.gw.url(), second.url()];
    // Each browser fetches its form first (once the address is blocked even the page is
    // refused), then all post together.
    let mut posts = vec![];
    for i in 0..30 {
        let (c, gw) = (client(), urls[i % 2].clone());
        let page = http::get_page(&c, &format!("{gw}/_vigile/login")).await;
        posts.push((
            c,
            gw,
            http::form_with_action(&page, "/_vigile/login").unwrap(),
        ));
    }
    let tasks: Vec<_> = posts
        .into_iter()
        .map(|(c, gw, form)| {
            tokio::spawn(async move {
                let fields = [("email", ANN), ("password", WRONG)];
                let resp = http::submit(&c, &gw, &form, &fields).await;
                (resp.status().as_u16(), resp.text().await.unwrap())
            })
        })
        .collect();
    let (mut checked, mut locked, mut blocked) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (401, body) if body.contains(INCORRECT) => checked += 1,
            (401, body) if body.contains(LOCKED) => locked += 1,
            (429, body) if body.contains("temporarily blocked") => blocked += 1,
            (status, body) => panic!("unexpected answer {status}:\n{body}"),
        }
    }
    assert_eq!(
        (checked, locked, blocked),
        (5, 5, 20),
        "(wrong passwords checked, refused as locked, refused by the IP block)"
    );
    let store = open_store(&s);
    assert!(store
        .ip_blocked_until("127.0.0.1", vigile::clock::now_ms())
        .await
        .unwrap()
        .is_some());
    lock_mail(&s, ANN).await;
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to(ANN), 1, "one lock mail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_shows_locks_and_unlocks() {
    let s = Backend::Sqlite.stack(NO_IP_LIMIT).await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user("boss@example.com", PW, true);
    for _ in 0..6 {
        attempt(&client(), &gw, ANN, WRONG).await;
    }
    // Not for visitors or members.
    let anonymous = get(&client(), &format!("{gw}/_vigile/admin"), true).await;
    assert_eq!(anonymous.status(), 302);
    let member = client();
    login_ok(&member, &gw, "boss@example.com", PW).await;
    let other = client();
    s.gw.add_user("carl@example.com", PW, false);
    login_ok(&other, &gw, "carl@example.com", PW).await;
    assert_eq!(
        get(&other, &format!("{gw}/_vigile/admin"), true)
            .await
            .status(),
        403
    );

    let account = http::get_page(&member, &format!("{gw}/_vigile/account")).await;
    assert!(
        account.contains("href=\"/_vigile/admin\""),
        "admins find the page: {account}"
    );
    let page = http::get_page(&member, &format!("{gw}/_vigile/admin/members")).await;
    assert!(page.contains(ANN) && page.contains("locked"), "{page}");
    let form = http::forms(&page)
        .into_iter()
        .find(|f| f.action == "/_vigile/admin/unlock" && f.hidden_value("email") == Some(ANN))
        .unwrap_or_else(|| panic!("no unlock form for {ANN}:\n{page}"));
    assert!(member_row(&page, ANN).contains("locked"), "{page}");
    let resp = http::submit(&member, &gw, &form, &[]).await;
    assert_eq!(resp.status(), 303);
    // Where the unlock sends the admin: the page says so, and the row is open again.
    let to = header(&resp, "location").expect("a redirect after the unlock");
    let page = http::get_page(&member, &format!("{gw}{to}")).await;
    assert!(page.contains(&format!("Unlocked: {ANN}")), "{page}");
    let row = member_row(&page, ANN);
    assert!(
        !row.contains("locked") && !row.contains("/_vigile/admin/unlock"),
        "{row}"
    );
    let failures = open_store(&s)
        .attempts_of(AttemptKey::Account(ANN))
        .await
        .unwrap();
    assert_eq!(failures, 0, "the store forgot the failures");
    login_ok(&client(), &gw, ANN, PW).await;
}

/// The row of the admin page's member table that links to `email`'s page.
fn member_row(page: &str, email: &str) -> String {
    page.split("<tr")
        .find(|row| row.contains(&format!(">{email}</a>")))
        .unwrap_or_else(|| panic!("no row for {email}:\n{page}"))
        .split("</tr>")
        .next()
        .unwrap()
        .to_string()
}

/// Failures on made-up addresses cost bounded store memory per client (issue 21): each
/// typed address gets its own exact counter (shared ones would lock unknown addresses
/// sooner than known ones), but a client is blocked after `ip_max_failures` and its further
/// attempts are refused before any address is counted; an IPv6 client rotating through
/// its /64 is one client.
async fn made_up_addresses_count_only_until_the_client_is_blocked(backend: Backend) {
    let s = backend
        .stack(&format!(
            "{IP_RULE}[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
        ))
        .await;
    let gw = s.gw.url();
    let store = open_store(&s);
    let counted = |prefix: &'static str| {
        let store = store.clone();
        async move {
            let mut n = 0;
            for i in 0..30 {
                let key = format!("{prefix}{i}@made-up.example");
                n += u64::from(store.attempts_of(AttemptKey::Account(&key)).await.unwrap() > 0);
            }
            n
        }
    };
    // Once blocked the login page itself is refused, so later tries post blind (the
    // block is checked before anything else, CSRF included).
    let try_login = |c: Client, email: String| {
        let gw = gw.clone();
        async move {
            let page = c.get(format!("{gw}/_vigile/login")).send().await.unwrap();
            if page.status() == 429 {
                let blind = c
                    .post(format!("{gw}/_vigile/login"))
                    .form(&[("email", email.as_str()), ("password", WRONG)])
                    .send()
                    .await
                    .unwrap();
                return blind.status().as_u16();
            }
            attempt(&c, &gw, &email, WRONG).await.0
        }
    };
    // One IPv4 client typing 30 made-up addresses.
    let v4 = http::client_with_headers(&[("x-forwarded-for", "203.0.113.9")]);
    for i in 0..30 {
        let status = try_login(v4.clone(), format!("a{i}@made-up.example")).await;
        assert!([401, 429].contains(&status), "{status}");
    }
    assert_eq!(
        counted("a").await,
        3,
        "only the failures before the block are counted"
    );
    // One IPv6 subscriber, a new address of its /64 for each try.
    for i in 0..30 {
        let ip = format!("2001:db8:7:9::{:x}", i + 1);
        let c = http::client_with_headers(&[("x-forwarded-for", ip.as_str())]);
        let status = try_login(c, format!("b{i}@made-up.example")).await;
        assert!([401, 429].contains(&status), "{status}");
    }
    assert_eq!(counted("b").await, 3, "a /64 is one client");
    // Another /64 is another client.
    let other = http::client_with_headers(&[("x-forwarded-for", "2001:db8:7:a::1")]);
    let (status, _) = attempt(&other, &gw, ANN, WRONG).await;
    assert_eq!(status, 401);
}
both_backends!(made_up_addresses_count_only_until_the_client_is_blocked);
