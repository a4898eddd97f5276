//! Sign-up and activation through the real binary, a real SMTP server and both store
//! backends: the whole journey, the policy, what a taken address reveals (nothing), link
//! and pending-account expiry (planted in the store with past instants, no sleeping),
//! invite and closed modes, the per-IP limit.

use reqwest::Response;
use vigile::store::{AccountStatus, DynStore, TokenHash, TokenKind, TokenRecord, User, UserId};

use crate::common::backend::{activation_mail, open_store, Backend};
use crate::common::consts::{DAY, MINUTE, PW};
use crate::common::http::{self, client, form_with_action, get, get_page, header, signup, submit};
use crate::{both_backends, every_store};

async fn text(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn signup_mail_click_signed_in(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let c = client();

    let (status, body) = text(signup(&c, &gw, "Zoe@Example.com", PW, PW, "fr").await).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Check your mailbox"), "{body}");

    // Not activated yet: the login says so, reminds about spam, offers a new link.
    let resp = http::login(&c, &gw, "zoe@example.com", PW).await;
    let (status, body) = text(resp).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("not activated yet") && body.contains("spam"),
        "{body}"
    );
    assert!(
        body.contains("/_vigile/activate/resend?email=zoe%40example.com"),
        "{body}"
    );

    // The member chose French: the mail is French, both parts carry the link.
    let (mail, link) =
        activation_mail(&s, "zoe@example.com", "Veuillez activer votre compte").await;
    assert!(
        link.starts_with(&format!("{gw}/_vigile/activate?token=")),
        "{link}"
    );
    assert!(
        http::decode_entities(&mail.html).contains(&link),
        "{}",
        mail.html
    );
    assert!(!mail.text.is_empty());

    // Following it activates, signs in on this browser, and lands on the member's page.
    let resp = get(&c, &link, true).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(
        header(&resp, "location").as_deref(),
        Some("/_vigile/account?welcome=1")
    );
    let account = get_page(&c, &format!("{gw}/_vigile/account?welcome=1")).await;
    assert!(account.contains("zoe@example.com"), "{account}");
    let resp = get(&c, &format!("{gw}/courses/1"), true).await;
    assert_eq!(resp.status(), 200);
    let seen = s
        .upstream
        .requests()
        .into_iter()
        .find(|r| r.path == "/courses/1");
    assert_eq!(
        seen.unwrap().header("remote-email"),
        Some("zoe@example.com")
    );

    // A second mail confirms the creation, in her language, with a link to her page.
    let created = s
        .smtp
        .wait_for_to("zoe@example.com", "Votre compte a été créé")
        .await;
    assert!(
        created
            .text
            .contains("Votre compte zoe@example.com sur 127.0.0.1 est maintenant actif"),
        "{}",
        created.text
    );
    assert!(created.link_containing("/_vigile/account").starts_with(&gw));

    // The link was single use: a clear page offering a new one, from any browser.
    for c in [&c, &client()] {
        let (status, body) = text(get(c, &link, true).await).await;
        assert_eq!(status, 410);
        assert!(body.contains("/_vigile/activate/resend"), "{body}");
    }
    // And the password works for a normal login now.
    http::login_ok(&client(), &gw, "zoe@example.com", PW).await;
}
every_store!(signup_mail_click_signed_in);

async fn english_signup_gets_english_mail(backend: Backend) {
    let s = backend.stack("").await;
    let resp = signup(&client(), &s.gw.url(), "ed@example.com", PW, PW, "en").await;
    assert_eq!(resp.status(), 200);
    let (mail, link) = activation_mail(&s, "ed@example.com", "Activate your account").await;
    // Both parts in English (the catalog's sentences, the link's lifetime), none in French.
    let html = http::decode_entities(&mail.html);
    for part in [&mail.text, &html] {
        for sentence in [
            "Thank you for signing up on 127.0.0.1.",
            "The link can be used once and is valid for 48 hours.",
        ] {
            assert!(
                part.contains(sentence),
                "{sentence:?} missing from:\n{part}"
            );
        }
        assert!(part.contains(&link), "no link in:\n{part}");
        assert!(
            !part.contains("Merci") && !part.contains("activer"),
            "French in:\n{part}"
        );
    }
}
both_backends!(english_signup_gets_english_mail);

async fn bad_signups_name_each_problem_and_change_nothing(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let c = client();
    let (status, body) = text(signup(&c, &gw, "ann@example.com", "abc", "abd", "en").await).await;
    assert_eq!(status, 400);
    for rule in [
        "At least 10 characters",
        "At least one capital letter",
        "At least one digit",
        "At least one symbol",
        "The two passwords do not match",
    ] {
        assert!(body.contains(rule), "missing {rule:?} in:\n{body}");
    }
    assert!(
        body.contains("value=\"ann@example.com\""),
        "email kept: {body}"
    );
    let (status, body) = text(signup(&c, &gw, "not-an-address", PW, PW, "en").await).await;
    assert_eq!(status, 400);
    assert!(body.contains("Enter a valid email address"), "{body}");

    // Without the CSRF token: refused.
    let resp = http::post_form(
        &c,
        &format!("{gw}/_vigile/signup"),
        &[
            ("email", "bob@example.com"),
            ("password", PW),
            ("confirm", PW),
        ],
    )
    .await;
    assert_eq!(resp.status(), 403);

    assert!(open_store(&s).user_list().await.unwrap().is_empty());
    s.outbox_drained().await;
    assert_eq!(s.smtp.mails().len(), 0);
}
both_backends!(bad_signups_name_each_problem_and_change_nothing);

async fn taken_address_reveals_nothing_and_owner_is_told(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user("owner@example.com", PW, false);

    let (new_status, new_body) = text(
        signup(
            &client(),
            &gw,
            "fresh@example.com",
            "Other-pass 22",
            "Other-pass 22",
            "en",
        )
        .await,
    )
    .await;
    let (taken_status, taken_body) = text(
        signup(
            &client(),
            &gw,
            "owner@example.com",
            "Other-pass 22",
            "Other-pass 22",
            "en",
        )
        .await,
    )
    .await;
    assert_eq!(new_status, taken_status);
    assert_eq!(new_body, taken_body, "pages must be identical");

    let warning = s
        .smtp
        .wait_for("mail to the owner", |m| {
            m.to.iter().any(|t| t == "owner@example.com")
        })
        .await;
    assert!(
        warning.text.contains("tried to create an account"),
        "{}",
        warning.text
    );
    assert!(warning
        .link_containing("/_vigile/password/forgot")
        .starts_with(&gw));
    // The owner's account is untouched.
    http::login_ok(&client(), &gw, "owner@example.com", PW).await;
    assert_eq!(
        http::login(&client(), &gw, "owner@example.com", "Other-pass 22")
            .await
            .status(),
        401
    );
}
both_backends!(taken_address_reveals_nothing_and_owner_is_told);

/// A pending account created `age` ago that expires `ttl` after its creation, with an
/// activation link shaped like the one the gateway issued in `issued` (kind, binding)
/// that is still valid for `link_left` (negative: expired that long ago). Returns the
/// account and the link's token.
async fn plant_pending(
    store: &DynStore,
    issued: &TokenRecord,
    email: &str,
    age: i64,
    ttl: i64,
    link_left: i64,
) -> (User, String) {
    let now = vigile::clock::now_ms();
    let user = User {
        id: UserId::random(),
        email: email.into(),
        name: String::new(),
        password_hash:
            "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$2uJy7Hl2kkLTO2Aw6ZMlN8V0ORlpWcLNlWkcBhBP4m8"
                .into(),
        admin: false,
        status: AccountStatus::Pending,
        lang: Some("en".into()),
        created_at: now - age,
        org: None,
        contact: Default::default(),
    };
    store
        .user_insert_pending(&user, now - age + ttl)
        .await
        .unwrap();
    let token = plant_link(store, issued, user.id.as_str(), now + link_left).await;
    (user, token)
}

/// A copy of the link record `issued` (kind, binding) for `subject`, valid until
/// `expires_at`, under a fresh token, which is returned.
async fn plant_link(
    store: &DynStore,
    issued: &TokenRecord,
    subject: &str,
    expires_at: i64,
) -> String {
    let token = vigile::crypto::random_token(32);
    store
        .token_insert(&TokenRecord {
            hash: TokenHash::of(&token),
            subject: subject.into(),
            expires_at,
            ..issued.clone()
        })
        .await
        .unwrap();
    token
}

/// The stored record of the link `link` (`...?token=T`) of kind `kind`.
async fn link_record(store: &DynStore, kind: TokenKind, link: &str) -> TokenRecord {
    let token = link.split("token=").nth(1).expect("a token in the link");
    store
        .token_peek(kind, &TokenHash::of(token), vigile::clock::now_ms())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no valid {kind:?} record for {link}"))
}

/// What the gateway writes at a sign-up: a link valid `activation_ttl` (48 h) and an
/// account deleted `pending_account_ttl` (7 d) after, unless activated.
async fn signup_writes_the_configured_lifetimes(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let store = open_store(&s);
    let before = vigile::clock::now_ms();
    assert_eq!(
        signup(&client(), &gw, "new@example.com", PW, PW, "en")
            .await
            .status(),
        200
    );
    let after = vigile::clock::now_ms();
    let (_, link) = activation_mail(&s, "new@example.com", "Activate your account").await;
    let record = link_record(&store, TokenKind::Activation, &link).await;
    assert!(
        (before + 2 * DAY..=after + 2 * DAY).contains(&record.expires_at),
        "the link expires {} ms after the sign-up, not 48 h",
        record.expires_at - before
    );
    let user = store
        .user_by_email("new@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.status, AccountStatus::Pending);
    assert_eq!(record.subject, user.id.as_str());
    // The account outlives a sweep just before its 7 days, not one just after.
    store.sweep(before + 7 * DAY - MINUTE).await.unwrap();
    assert!(
        store.user_by_id(&user.id).await.unwrap().is_some(),
        "gone before 7 days"
    );
    store.sweep(after + 7 * DAY + MINUTE).await.unwrap();
    assert!(
        store.user_by_id(&user.id).await.unwrap().is_none(),
        "kept past 7 days"
    );
}
both_backends!(signup_writes_the_configured_lifetimes);

async fn expired_links_and_pending_accounts(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let store = open_store(&s);
    let activate = |token: String| {
        let gw = gw.clone();
        async move {
            text(
                get(
                    &client(),
                    &format!("{gw}/_vigile/activate?token={token}"),
                    true,
                )
                .await,
            )
            .await
        }
    };

    // A real sign-up's link is the model for the planted ones.
    signup(&client(), &gw, "model@example.com", PW, PW, "en").await;
    let (_, link) = activation_mail(&s, "model@example.com", "Activate your account").await;
    let issued = link_record(&store, TokenKind::Activation, &link).await;

    // A live pending account: its link a minute past its end is refused with a clear
    // page; the same link a minute before its end activates (the control).
    let (_, stale) = plant_pending(
        &store,
        &issued,
        "late@example.com",
        3 * DAY,
        7 * DAY,
        -MINUTE,
    )
    .await;
    let (status, body) = activate(stale).await;
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("expired or has already been used"), "{body}");
    // A new link can be had.
    let c = client();
    let page = get_page(
        &c,
        &format!("{gw}/_vigile/activate/resend?email=late%40example.com"),
    )
    .await;
    let form = form_with_action(&page, "/_vigile/activate/resend").unwrap();
    let resp = submit(&c, &gw, &form, &[("email", "late@example.com")]).await;
    assert_eq!(resp.status(), 200);
    let (_, fresh) = activation_mail(&s, "late@example.com", "Activate your account").await;
    assert_eq!(get(&client(), &fresh, true).await.status(), 302);
    let (_, live) =
        plant_pending(&store, &issued, "ctl@example.com", 3 * DAY, 7 * DAY, MINUTE).await;
    let (status, body) = activate(live).await;
    assert_eq!(status, 302, "a planted link within its time works: {body}");

    // A pending account past pending_account_ttl (7 d) is gone: even a link still valid
    // is dead (the control: the same at 6 days works), and the address signs up again.
    let (_, old) = plant_pending(
        &store,
        &issued,
        "gone@example.com",
        8 * DAY,
        7 * DAY,
        MINUTE,
    )
    .await;
    assert_eq!(activate(old).await.0, 410);
    let (_, young) = plant_pending(
        &store,
        &issued,
        "young@example.com",
        6 * DAY,
        7 * DAY,
        MINUTE,
    )
    .await;
    assert_eq!(activate(young).await.0, 302, "the control: 6 days old");
    assert_eq!(
        signup(&client(), &gw, "gone@example.com", PW, PW, "en")
            .await
            .status(),
        200
    );
    let (_, link) = activation_mail(&s, "gone@example.com", "Activate your account").await;
    assert_eq!(get(&client(), &link, true).await.status(), 302);
    let user = store
        .user_by_email("gone@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.status, AccountStatus::Active);

    // The store forgets expired pending accounts by itself (Redis by TTL, SQLite by the
    // sweeper, run here with the instant it would run at).
    let (ghost, _) = plant_pending(
        &store,
        &issued,
        "ghost@example.com",
        8 * DAY,
        7 * DAY,
        MINUTE,
    )
    .await;
    store.sweep(vigile::clock::now_ms()).await.unwrap();
    assert!(store.user_by_id(&ghost.id).await.unwrap().is_none());
    assert!(store
        .user_by_email("ghost@example.com")
        .await
        .unwrap()
        .is_none());
}
both_backends!(expired_links_and_pending_accounts);

async fn invite_mode_admits_invited_addresses_only(backend: Backend) {
    let s = backend.stack("[signup]\nmode = \"invite\"\n").await;
    let gw = s.gw.url();
    let (status, body) =
        text(signup(&client(), &gw, "stranger@example.com", PW, PW, "en").await).await;
    assert_eq!(status, 403);
    assert!(body.contains("has not been invited"), "{body}");
    assert!(open_store(&s).user_list().await.unwrap().is_empty());

    s.gw.cli_ok(
        &["user", "invite", "Guest@Example.com", "--lang", "en"],
        None,
    );
    let invitation = s.smtp.wait_for_to("guest@example.com", "").await;
    let link = invitation.link_containing("/_vigile/signup?email=");
    let c = client();
    let page = get_page(&c, &link).await;
    assert!(
        page.contains("value=\"guest@example.com\""),
        "prefilled: {page}"
    );
    assert!(page.contains("Sign-up is by invitation"), "{page}");
    let form = form_with_action(&page, "/_vigile/signup").unwrap();
    let resp = submit(
        &c,
        &gw,
        &form,
        &[
            ("email", "guest@example.com"),
            ("password", PW),
            ("confirm", PW),
            ("lang", "en"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (_, link) = activation_mail(&s, "guest@example.com", "Activate your account").await;
    assert_eq!(get(&client(), &link, true).await.status(), 302);
}
both_backends!(invite_mode_admits_invited_addresses_only);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_mode_refuses_signups() {
    let s = Backend::Sqlite.stack("[signup]\nmode = \"closed\"\n").await;
    let gw = s.gw.url();
    let c = client();
    let resp = get(&c, &format!("{gw}/_vigile/signup"), true).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("Sign-up is closed"));
    let login = get_page(&c, &format!("{gw}/_vigile/login")).await;
    assert!(
        !login.contains("/_vigile/signup"),
        "no sign-up link: {login}"
    );
    let csrf = http::csrf_from(&login);
    let resp = http::post_form(
        &c,
        &format!("{gw}/_vigile/signup"),
        &[
            ("csrf", &csrf),
            ("email", "x@example.com"),
            ("password", PW),
            ("confirm", PW),
        ],
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert!(open_store(&s).user_list().await.unwrap().is_empty());
}

async fn signups_are_limited_per_ip(backend: Backend) {
    let s = backend
        .stack("[signup]\nmax_per_ip = 2\nip_window = \"1h\"\n")
        .await;
    let gw = s.gw.url();
    for i in 0..2 {
        let email = format!("u{i}@example.com");
        assert_eq!(
            signup(&client(), &gw, &email, PW, PW, "en").await.status(),
            200
        );
    }
    let resp = signup(&client(), &gw, "u2@example.com", PW, PW, "en").await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert!(resp.text().await.unwrap().contains("Too many requests"));
    assert!(open_store(&s)
        .user_by_email("u2@example.com")
        .await
        .unwrap()
        .is_none());
}
both_backends!(signups_are_limited_per_ip);
