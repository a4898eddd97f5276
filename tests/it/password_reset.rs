//! Forgotten password through the real binary and a real SMTP server, on both backends:
//! the journey, the same answer for known and unknown addresses (given before the address
//! is even looked up), single use, the link's lifetime as written and its expiry (planted
//! with a past instant), and every session ended by a reset.

use std::time::Duration;

use reqwest::Client;
use vigile::store::{TokenHash, TokenKind, TokenRecord};

use crate::both_backends;
use crate::common::backend::{open_store, Backend, Stack};
use crate::common::consts::{ANN, HOUR, MINUTE, PW};
use crate::common::gateway::GatewayBuilder;
use crate::common::http::{self, client, form_with_action, get, get_page, submit};
use crate::common::redis_server::RedisServer;
use crate::common::relay::HoldingRelay;
use crate::common::upstream::Upstream;

const NEW_PW: &str = "Brand-new 77 pass";

/// Posts the forgot-password form for `email`; returns (status, body).
async fn forgot(c: &Client, gw: &str, email: &str) -> (u16, String) {
    let page = get_page(c, &format!("{gw}/_vigile/password/forgot")).await;
    let form = form_with_action(&page, "/_vigile/password/forgot")
        .unwrap_or_else(|| panic!("no forgot form:\n{page}"));
    let resp = submit(c, gw, &form, &[("email", email)]).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn reset_link(s: &Stack, email: &str) -> String {
    s.smtp
        .wait_for("password reset mail", |m| {
            m.to.iter().any(|t| t == email) && m.text.contains("/_vigile/password/reset?token=")
        })
        .await
        .link_containing("/_vigile/password/reset?token=")
}

/// Submits the reset form reached by `link`.
async fn reset(c: &Client, gw: &str, link: &str, password: &str, confirm: &str) -> (u16, String) {
    let page = get_page(c, link).await;
    let form = form_with_action(&page, "/_vigile/password/reset")
        .unwrap_or_else(|| panic!("no reset form:\n{page}"));
    let resp = submit(
        c,
        gw,
        &form,
        &[("password", password), ("confirm", confirm)],
    )
    .await;
    let status = resp.status().as_u16();
    let location = http::header(&resp, "location").unwrap_or_default();
    let body = resp.text().await.unwrap();
    (status, if status == 303 { location } else { body })
}

async fn forgot_and_reset_journey(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    let (laptop, phone) = (client(), client());
    http::login_ok(&laptop, &gw, "ann@example.com", PW).await;
    http::login_ok(&phone, &gw, "ann@example.com", PW).await;

    let c = client();
    let (status, body) = forgot(&c, &gw, "Ann@Example.com").await;
    assert_eq!(status, 200);
    assert!(body.contains("Check your mailbox"), "{body}");
    let link = reset_link(&s, "ann@example.com").await;
    assert!(link.starts_with(&format!("{gw}/_vigile/password/reset?token=")));

    // A refused password names each rule and leaves the link usable.
    let (status, body) = reset(&c, &gw, &link, "short", "short").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("At least 10 characters") && body.contains("At least one digit"),
        "{body}"
    );
    let (status, body) = reset(&c, &gw, &link, NEW_PW, "Brand-new 77 pasS").await;
    assert_eq!(status, 400);
    assert!(body.contains("do not match"), "{body}");

    let (status, location) = reset(&c, &gw, &link, NEW_PW, NEW_PW).await;
    assert_eq!(status, 303);
    assert_eq!(location, "/_vigile/login?reset=1");
    let notice = get_page(&c, &format!("{gw}{location}")).await;
    assert!(
        notice.contains("Your password has been changed"),
        "{notice}"
    );

    // Every device was signed out (on any instance: sessions live in the store).
    for device in [&laptop, &phone] {
        crate::common::poll_until("sessions ended", 40, || async {
            get(device, &format!("{gw}/courses/1"), true).await.status() == 302
        })
        .await;
    }
    assert_eq!(
        http::login(&client(), &gw, "ann@example.com", PW)
            .await
            .status(),
        401
    );
    http::login_ok(&client(), &gw, "ann@example.com", NEW_PW).await;

    // The member is told, and the link cannot be used twice.
    let told = s
        .smtp
        .wait_for("password changed mail", |m| {
            m.to.iter().any(|t| t == "ann@example.com") && !m.text.contains("reset?token=")
        })
        .await;
    assert!(told
        .link_containing("/_vigile/password/forgot")
        .starts_with(&gw));
    let resp = get(&client(), &link, true).await;
    assert_eq!(resp.status(), 410);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("/_vigile/password/forgot"));
}
both_backends!(forgot_and_reset_journey);

async fn forgot_answers_the_same_for_unknown_addresses(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    let unknown = forgot(&client(), &gw, "nobody@example.com").await;
    let known = forgot(&client(), &gw, "ann@example.com").await;
    assert_eq!(known, unknown, "status and page must be identical");
    // Same for the activation resend.
    let resend = |email: &'static str| {
        let gw = gw.clone();
        async move {
            let c = client();
            let page = get_page(&c, &format!("{gw}/_vigile/activate/resend")).await;
            let form = form_with_action(&page, "/_vigile/activate/resend").unwrap();
            let resp = submit(&c, &gw, &form, &[("email", email)]).await;
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    assert_eq!(
        resend("nobody@example.com").await,
        resend("ann@example.com").await
    );

    // The last request's mail has come, and nothing else waits to be sent.
    reset_link(&s, "ann@example.com").await;
    s.outbox_drained().await;
    assert_eq!(s.smtp.count_to("nobody@example.com"), 0);
    assert_eq!(
        s.smtp.count_to("ann@example.com"),
        1,
        "an active account gets no activation mail"
    );
}
both_backends!(forgot_answers_the_same_for_unknown_addresses);

/// The answer to "mail me a reset link" is given before anything depends on the address:
/// a relay in front of Redis holds the gateway's lookup of the address, and the usual page
/// still comes. The gateway gives up on a store reply after a second (the Redis store's
/// response timeout), so an answer that waited for the lookup would come only after that
/// failure, logged as a warning; none is there when the answer arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_answers_before_looking_the_address_up() {
    let upstream = Upstream::start().await;
    let redis = RedisServer::start().await;
    let relay = HoldingRelay::start(redis.port()).await;
    let gw = GatewayBuilder::new(upstream.url())
        .store(format!("redis://127.0.0.1:{}/", relay.port()))
        .extra("[mail]\ntransport = \"log\"\n")
        .start()
        .await;
    gw.add_user(ANN, PW, false);
    let (url, c) = (gw.url(), client());
    let page = get_page(&c, &format!("{url}/_vigile/password/forgot")).await;
    let form = form_with_action(&page, "/_vigile/password/forgot").unwrap();
    let stderr = gw.dir().join("stderr.log");
    let logged = std::fs::read_to_string(&stderr).unwrap().len();

    relay.hold_at(&format!("vigile:user_email:{ANN}"));
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        submit(&c, &url, &form, &[("email", ANN)]),
    )
    .await
    .expect("the answer waited for the lookup of the address");
    let since = std::fs::read_to_string(&stderr).unwrap()[logged..].to_string();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Check your mailbox"));
    assert!(
        !since.contains(" WARN ") && !since.contains(" ERROR "),
        "the answer came after the address lookup had failed:\n{since}"
    );
    // The lookup of this address was indeed under way, and held.
    relay
        .wait_holding("the address lookup to reach the relay")
        .await;
    let direct = vigile::store::open(
        &vigile::store::StoreUrl::parse(&redis.url()).unwrap(),
        false,
    )
    .unwrap();
    assert!(
        direct.outbox_list().await.unwrap().is_empty(),
        "a mail was queued"
    );
    relay.release();
}

async fn reset_links_expire_and_die_with_the_password(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    let store = open_store(&s);
    let user = store
        .user_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();

    // The link the gateway writes lives 1 h (`password.reset_ttl`).
    let before = vigile::clock::now_ms();
    forgot(&client(), &gw, "ann@example.com").await;
    let link = reset_link(&s, "ann@example.com").await;
    let after = vigile::clock::now_ms();
    let token = link.split("token=").nth(1).unwrap();
    let issued = store
        .token_peek(TokenKind::PasswordReset, &TokenHash::of(token), after)
        .await
        .unwrap()
        .expect("the mailed link is stored");
    assert_eq!(issued.subject, user.id.as_str());
    assert!(
        (before + HOUR..=after + HOUR).contains(&issued.expires_at),
        "the link expires {} ms after the request, not 1 h",
        issued.expires_at - before
    );
    // The same link a minute past its end: refused with a clear page; a minute before
    // its end: the form (the control, so the refusal is the expiry's doing).
    let copy = |expires_at: i64| {
        let (store, issued, gw) = (store.clone(), issued.clone(), gw.clone());
        async move {
            let token = vigile::crypto::random_token(32);
            store
                .token_insert(&TokenRecord {
                    hash: TokenHash::of(&token),
                    expires_at,
                    ..issued
                })
                .await
                .unwrap();
            get(
                &client(),
                &format!("{gw}/_vigile/password/reset?token={token}"),
                true,
            )
            .await
        }
    };
    let resp = copy(vigile::clock::now_ms() - MINUTE).await;
    assert_eq!(resp.status(), 410);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("expired or has already been used"));
    let resp = copy(vigile::clock::now_ms() + MINUTE).await;
    assert_eq!(resp.status(), 200, "a copy within its time shows the form");
    assert!(form_with_action(&resp.text().await.unwrap(), "/_vigile/password/reset").is_some());

    // Two links: using one kills the other (it was issued for the old password).
    let first = link;
    forgot(&client(), &gw, "ann@example.com").await;
    let second = s
        .smtp
        .wait_for("second reset mail", |m| {
            m.text.contains("/_vigile/password/reset?token=") && !m.text.contains(&first)
        })
        .await
        .link_containing("/_vigile/password/reset?token=");
    assert_eq!(reset(&client(), &gw, &second, NEW_PW, NEW_PW).await.0, 303);
    assert_eq!(get(&client(), &first, true).await.status(), 410);
}
both_backends!(reset_links_expire_and_die_with_the_password);
