//! Sessions through the real binary: expiry, revocation (CLI and logout), several
//! instances on one store, and failing closed while the store is down.

use vigile::store::{self, DeviceId, SessionId, SessionRecord, StoreUrl, TokenHash};

use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::{DAY, HOUR, MINUTE, PW};
use crate::common::http::{self, client, get, header, login_ok};
use crate::common::{poll_for, poll_until};

fn now_ms() -> i64 {
    vigile::clock::now_ms()
}

/// Plants a session straight into the store (as a gateway would), with chosen times, and
/// returns its cookie token. Lets expiry be tested without waiting for it.
async fn plant_session(store_url: &str, email: &str, created: i64, last_seen: i64) -> String {
    let store = store::open(&StoreUrl::parse(store_url).unwrap(), false).unwrap();
    let user = store.user_by_email(email).await.unwrap().unwrap();
    let token = vigile::crypto::random_token(32);
    let session = SessionRecord {
        id: SessionId::random(),
        token_hash: TokenHash::of(&token),
        user_id: user.id,
        device_id: DeviceId::random(),
        created_at: created,
        last_seen,
        idle_ms: 14 * DAY,
        absolute_expiry: created + 30 * DAY,
        ip: "127.0.0.1".into(),
        user_agent: "test".into(),
        level: Default::default(),
    };
    store.session_insert(&session, None).await.unwrap();
    token
}

async fn status_with_token(gw_url: &str, token: &str) -> u16 {
    http::bare_client()
        .get(format!("{gw_url}/courses/1"))
        .header("Cookie", format!("vigile_session={token}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn expired_sessions_are_rejected(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let now = now_ms();
    let url = s.gw.store_url().to_string();
    let fresh = plant_session(&url, "ann@example.com", now - DAY, now - 1000).await;
    let idle = plant_session(&url, "ann@example.com", now - 20 * DAY, now - 15 * DAY).await;
    let too_old = plant_session(&url, "ann@example.com", now - 31 * DAY, now - 1000).await;
    assert_eq!(
        status_with_token(&s.gw.url(), &fresh).await,
        200,
        "a valid planted session works"
    );
    assert_eq!(
        status_with_token(&s.gw.url(), &idle).await,
        401,
        "idle timeout"
    );
    assert_eq!(
        status_with_token(&s.gw.url(), &too_old).await,
        401,
        "absolute timeout"
    );
    assert_eq!(status_with_token(&s.gw.url(), "not-a-session").await, 401);
    // A rejected cookie is cleared so the browser stops sending it.
    let r = http::bare_client()
        .get(format!("{}/courses/1", s.gw.url()))
        .header("Cookie", format!("vigile_session={idle}"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(
        http::set_cookies(&r)
            .iter()
            .any(|c| c.starts_with("vigile_session=;")),
        "{:?}",
        http::set_cookies(&r)
    );
}
both_backends!(expired_sessions_are_rejected);

/// The session a login writes: `[sessions] idle_timeout` and `absolute_timeout` as
/// configured (values no default has), last-seen moved by browsing, and ended once idle
/// past the configured timeout. The gateway writes last-seen at most once a minute, so
/// the record is put back with an earlier last-seen first (time as a parameter).
async fn login_writes_the_configured_timeouts_and_browsing_keeps_it_alive(backend: Backend) {
    let s = backend
        .stack("[sessions]\nidle_timeout = \"3h\"\nabsolute_timeout = \"5d\"\n")
        .await;
    s.gw.add_user("ann@example.com", PW, false);
    let store = open_store(&s);
    let user = store
        .user_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    let (c, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    let before = now_ms();
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    let after = now_ms();
    let token = http::jar_cookie(&jar, &s.gw.url(), "vigile_session").unwrap();
    let written = store.sessions_of(&user.id, now_ms()).await.unwrap();
    assert_eq!(written.len(), 1, "{written:?}");
    let session = written[0].clone();
    assert_eq!(session.token_hash, TokenHash::of(&token));
    assert!(
        (before..=after).contains(&session.created_at),
        "{session:?}"
    );
    assert_eq!(session.idle_ms, 3 * HOUR, "idle_timeout");
    assert_eq!(
        session.absolute_expiry - session.created_at,
        5 * DAY,
        "absolute_timeout"
    );

    // The same record, last seen two minutes ago: browsing moves last-seen to now.
    let replant = |last_seen: i64| {
        let (store, mut record) = (store.clone(), session.clone());
        async move {
            record.last_seen = last_seen;
            store.session_delete(&record.id).await.unwrap();
            store.session_insert(&record, None).await.unwrap();
        }
    };
    let page = format!("{}/courses/1", s.gw.url());
    replant(now_ms() - 2 * MINUTE).await;
    let browsed = now_ms();
    // The gateway may serve from its session cache (< 1 s) before asking the store again.
    let seen = poll_for("browsing to move last-seen", 40, || async {
        assert_eq!(get(&c, &page, true).await.status(), 200);
        let now = store.sessions_of(&user.id, now_ms()).await.unwrap();
        now.first().map(|r| r.last_seen).filter(|&t| t >= browsed)
    })
    .await;
    assert!(seen <= now_ms());

    // Last seen just over 3 hours ago: idle, signed out.
    replant(now_ms() - 3 * HOUR - MINUTE).await;
    poll_until("the idle session to be refused", 40, || async {
        let r = get(&c, &page, true).await;
        r.status() == 302 && header(&r, "location").is_some_and(|l| l.starts_with("/_vigile/login"))
    })
    .await;
}
both_backends!(login_writes_the_configured_timeouts_and_browsing_keeps_it_alive);

async fn cli_revocation_is_seen_within_a_second(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let c = client();
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    let url = format!("{}/courses/1", s.gw.url());
    assert_eq!(get(&c, &url, false).await.status(), 200);
    let shown = s.gw.cli_ok(&["user", "show", "ann@example.com"], None);
    assert!(shown.contains("sessions: 1"), "{shown}");
    let out =
        s.gw.cli_ok(&["user", "revoke", "ann@example.com", "--all"], None);
    assert!(out.contains("ended 1 session"), "{out}");
    // The SPEC allows one second; poll for at most that long (20 x 50 ms).
    poll_until("revocation to be seen", 20, || async {
        get(&c, &url, false).await.status() == 401
    })
    .await;
}
both_backends!(cli_revocation_is_seen_within_a_second);

async fn logout_ends_the_session_and_needs_csrf(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let (c, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    let token = http::jar_cookie(&jar, &s.gw.url(), "vigile_session").unwrap();
    let account = http::get_page(&c, &format!("{}/_vigile/account", s.gw.url())).await;
    assert!(account.contains("ann@example.com"));

    // Without the CSRF token: refused, still signed in.
    let r = http::post_form(&c, &format!("{}/_vigile/logout", s.gw.url()), &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(status_with_token(&s.gw.url(), &token).await, 200);

    let csrf = http::csrf_from(&account);
    let r = http::post_form(
        &c,
        &format!("{}/_vigile/logout", s.gw.url()),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        header(&r, "location").as_deref(),
        Some("/_vigile/login?logged_out=1")
    );
    // The old token is dead on the server, not just forgotten by the browser.
    assert_eq!(status_with_token(&s.gw.url(), &token).await, 401);
    let page = http::get_page(&c, &format!("{}/_vigile/login?logged_out=1", s.gw.url())).await;
    assert!(page.contains("You are signed out"), "{page}");
}
both_backends!(logout_ends_the_session_and_needs_csrf);

async fn login_rotates_the_session(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let (c, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    let first = http::jar_cookie(&jar, &s.gw.url(), "vigile_session").unwrap();
    // Signed in, the login page sends the browser on; post the form again directly.
    let r = get(&c, &format!("{}/_vigile/login", s.gw.url()), true).await;
    assert_eq!(r.status(), 302);
    let account = http::get_page(&c, &format!("{}/_vigile/account", s.gw.url())).await;
    let csrf = http::csrf_from(&account);
    let r = http::post_form(
        &c,
        &format!("{}/_vigile/login", s.gw.url()),
        &[
            ("email", "ann@example.com"),
            ("password", PW),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let second = http::jar_cookie(&jar, &s.gw.url(), "vigile_session").unwrap();
    assert_ne!(first, second);
    assert_eq!(
        status_with_token(&s.gw.url(), &first).await,
        401,
        "the previous token is replaced"
    );
    assert_eq!(status_with_token(&s.gw.url(), &second).await, 200);
    let shown = s.gw.cli_ok(&["user", "show", "ann@example.com"], None);
    assert!(shown.contains("sessions: 1"), "{shown}");
}
both_backends!(login_rotates_the_session);

/// Two gateway instances on one store: a login on one is valid on the other, and a logout
/// on the second is seen by the first within a second.
async fn two_instances_share_sessions(backend: Backend) {
    let s = backend.stack("").await;
    let b = s.second_instance("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let (c, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    let token = http::jar_cookie(&jar, &s.gw.url(), "vigile_session").unwrap();
    assert_eq!(
        status_with_token(&b.url(), &token).await,
        200,
        "instance B accepts A's session"
    );

    // CSRF tokens are shared too: log out through B with a form rendered by A.
    let cb = http::client();
    let page_a = http::get_page(&c, &format!("{}/_vigile/account", s.gw.url())).await;
    let csrf = http::csrf_from(&page_a);
    let device = http::jar_cookie(&jar, &s.gw.url(), "vigile_device").unwrap();
    let r = cb
        .post(format!("{}/_vigile/logout", b.url()))
        .header(
            "Cookie",
            format!("vigile_session={token}; vigile_device={device}"),
        )
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    poll_until("A to see B's logout", 20, || async {
        status_with_token(&s.gw.url(), &token).await == 401
    })
    .await;
}
both_backends!(two_instances_share_sessions);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_fails_closed_and_recovers() {
    let mut s = Backend::Redis.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let c = client();
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    let member = format!("{}/courses/1", s.gw.url());
    let ready = format!("{}/readyz", s.gw.metrics_url());
    assert_eq!(get(&c, &member, true).await.status(), 200);

    s.redis.as_mut().unwrap().stop();
    // Once the session cache entry lapses (< 1 s), protected paths answer 503.
    let r = crate::common::poll_for("503 on a protected path", 100, || async {
        let r = get(&c, &member, true).await;
        (r.status() == 503).then_some(r)
    })
    .await;
    assert!(header(&r, "retry-after").is_some());
    assert!(r.text().await.unwrap().contains("Temporarily unavailable"));
    // Public paths still work, /readyz says not ready, nothing protected leaked upstream.
    let before = s.upstream.count();
    assert_eq!(
        get(&c, &format!("{}/", s.gw.url()), true).await.status(),
        200
    );
    assert_eq!(s.upstream.count(), before + 1);
    assert_eq!(
        http::bare_client()
            .get(&ready)
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let api = get(&http::bare_client(), &member, false).await;
    assert_eq!(
        api.status(),
        401,
        "no cookie: nothing to look up, plain 401"
    );

    s.redis.as_mut().unwrap().start_again().await;
    poll_until("readyz after Redis returns", 200, || async {
        http::bare_client()
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // This Redis keeps nothing across restarts: sign up the member again and log in.
    s.gw.add_user("ann@example.com", PW, false);
    let c2 = client();
    login_ok(&c2, &s.gw.url(), "ann@example.com", PW).await;
    assert_eq!(get(&c2, &member, true).await.status(), 200);
}

/// Everything stored under `key`, read with the command for its type (not `DUMP`, whose
/// serialisation may compress a value and hide a token in it).
async fn redis_values(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<u8> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
    let cmd = match kind.as_str() {
        "string" => redis::cmd("GET").arg(key).clone(),
        "hash" => redis::cmd("HGETALL").arg(key).clone(),
        "set" => redis::cmd("SMEMBERS").arg(key).clone(),
        "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone(),
        "zset" => redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .clone(),
        // The audit trail: every entry's fields and values.
        "stream" => {
            let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .query_async(conn)
                .await
                .unwrap();
            let values: Vec<Vec<u8>> = entries.into_iter().flat_map(|(_, f)| f).collect();
            return values.join(&b'\n');
        }
        // A key that expired between KEYS and TYPE.
        "none" => return vec![],
        other => panic!("{key}: a {other} key, which this check cannot read"),
    };
    let parts: Vec<Vec<u8>> = cmd.query_async(conn).await.unwrap();
    parts.join(&b'\n')
}

/// The store keeps only the SHA-256 of a session token, never the token itself.
async fn store_holds_token_hashes_only(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let (c, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    let token = http::jar_cookie(&jar, &s.gw.url(), "vigile_session").unwrap();
    let hash = TokenHash::of(&token);
    let stored: Vec<u8> = match &s.redis {
        Some(redis) => {
            let client = redis::Client::open(redis.url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("*")
                .query_async(&mut conn)
                .await
                .unwrap();
            let mut all = vec![];
            for k in keys {
                all.extend_from_slice(k.as_bytes());
                all.extend(redis_values(&mut conn, &k).await);
            }
            all
        }
        None => {
            let db = s.gw.store_url().trim_start_matches("sqlite://").to_string();
            let mut all = std::fs::read(&db).unwrap();
            all.extend(std::fs::read(format!("{db}-wal")).unwrap_or_default());
            all
        }
    };
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    // SQLite keeps the hex; Redis's session hash keeps the hash's 32 bytes (store/keys.rs).
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hash.as_str()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(
        contains(hash.as_str().as_bytes()) || contains(&raw),
        "the session is stored under its hash"
    );
    assert!(
        !contains(token.as_bytes()),
        "the raw token must never be stored"
    );
}
both_backends!(store_holds_token_hashes_only);
