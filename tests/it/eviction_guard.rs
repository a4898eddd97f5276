//! A Redis that may evict keys (issue 21): `vigile serve` refuses to start on any
//! `maxmemory-policy` but `noeviction`, saying why; `store.allow_eviction` serves anyway
//! and `/readyz` and `vigile_store_eviction_policy_unsafe` keep saying so; a policy changed
//! at run time stops the service (503, `/readyz` failing) until it is set back, with no
//! restart. Real redis-server, real binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::backend::Backend;
use crate::common::consts::PW;
use crate::common::gateway::BIN;
use crate::common::http::{self, client, get, login_ok};
use crate::common::redis_server::RedisServer;
use crate::common::upstream::Upstream;

async fn set_policy(redis: &RedisServer, policy: &str) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg(policy)
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn readyz(metrics_url: &str) -> (u16, String) {
    let r = http::bare_client()
        .get(format!("{metrics_url}/readyz"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Runs `vigile serve` on `redis` and waits for it to exit (it must, within 20 s); then
/// an admin command on the same configuration, which must refuse too.
fn serve_exits(redis: &RedisServer, upstream: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics) = (crate::common::free_port(), crate::common::free_port());
    let config = dir.path().join("vigile.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n[upstream]\nurl = \"{upstream}\"\n\
             [store]\nurl = \"{}\"\n[mail]\ntransport = \"log\"\n",
            redis.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("VIGILE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vigile serve kept running on an evicting Redis");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let admin = Command::new(BIN)
        .args(["user", "list", "--config"])
        .arg(&config)
        .env_remove("VIGILE_CONFIG")
        .output()
        .unwrap();
    let admin_err = String::from_utf8_lossy(&admin.stderr).into_owned();
    assert!(
        !admin.status.success() && admin_err.contains("maxmemory-policy"),
        "vigile user list on an evicting Redis: {admin_err}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_an_evicting_redis_and_says_what_to_set() {
    let redis = RedisServer::start().await;
    let upstream = Upstream::start().await;
    for policy in [
        "volatile-lru",
        "allkeys-lru",
        "volatile-ttl",
        "allkeys-random",
    ] {
        set_policy(&redis, policy).await;
        let (ok, stderr) = serve_exits(&redis, &upstream.url());
        assert!(!ok, "{policy}: exit status");
        assert!(
            stderr.contains(&format!("maxmemory-policy is {policy}"))
                && stderr.contains("noeviction")
                && stderr.contains("store.allow_eviction"),
            "{policy}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_serves_and_keeps_saying_so() {
    let redis = RedisServer::start().await;
    set_policy(&redis, "volatile-lru").await;
    let upstream = Upstream::start().await;
    let gw = crate::common::gateway::GatewayBuilder::new(upstream.url())
        .store(redis.url())
        .extra("[store]\nallow_eviction = true\n")
        .start()
        .await;
    gw.add_user("ann@example.com", PW, false);
    let c = client();
    login_ok(&c, &gw.url(), "ann@example.com", PW).await;
    let r = get(&c, &format!("{}/courses/1", gw.url()), true).await;
    assert_eq!(r.status(), 200, "served, as the operator asked");
    let (status, body) = readyz(&gw.metrics_url()).await;
    assert_eq!(status, 200);
    assert!(body.contains("unsafe"), "/readyz: {body}");
    assert_eq!(
        gw.metric("vigile_store_eviction_policy_unsafe").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_changed_at_run_time_stops_service_until_set_back() {
    let s = Backend::Redis.stack("").await;
    let redis = s.redis.as_ref().unwrap();
    s.gw.add_user("ann@example.com", PW, false);
    let c = client();
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    assert_eq!(readyz(&s.gw.metrics_url()).await.0, 200);
    assert_eq!(
        s.gw.metric("vigile_store_eviction_policy_unsafe").await,
        Some(0.0)
    );

    set_policy(redis, "allkeys-lru").await;
    // Noticed at the next check (/readyz runs one; the gateway runs one every 10 s).
    let (status, body) = readyz(&s.gw.metrics_url()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("allkeys-lru"), "{body}");
    // Members and logins fail closed: nothing is read from or written to that Redis.
    crate::common::poll_for("protected pages to answer 503", 200, || async {
        let r = get(&c, &format!("{}/courses/1", s.gw.url()), false).await;
        (r.status() == 503).then_some(())
    })
    .await;

    set_policy(redis, "noeviction").await;
    assert_eq!(readyz(&s.gw.metrics_url()).await.0, 200);
    let r = get(&c, &format!("{}/courses/1", s.gw.url()), true).await;
    assert_eq!(r.status(), 200, "back without a restart, session kept");
    assert_eq!(
        s.gw.metric("vigile_store_eviction_policy_unsafe").await,
        Some(0.0)
    );
}

/// Makes `redis` full: `maxmemory` far below what it uses, so under `noeviction` it
/// refuses every write (as a Redis that filled up does) while reads still work.
async fn fill_up(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let refused: redis::RedisResult<()> = redis::cmd("SET")
        .arg("junk")
        .arg("x")
        .query_async(&mut conn)
        .await;
    assert!(refused.is_err(), "Redis still takes writes");
    conn
}

/// With `noeviction` and a full Redis, a login whose failure could not be counted is never
/// let through (503, not "success because the counter could not be written"), a signed-in
/// member's session is not lost, and once room is made the lockout picks up where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_fails_closed_and_loses_nothing() {
    let s = Backend::Redis.stack("").await;
    let redis = s.redis.as_ref().unwrap();
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    let member = client();
    login_ok(&member, &gw, "ann@example.com", PW).await;
    let attacker = client();
    for _ in 0..5 {
        let r = http::login(&attacker, &gw, "ann@example.com", "wrong password 1!").await;
        assert_eq!(r.status(), 401);
    }

    // The member's session was last seen two minutes ago, so their next request wants to
    // record activity: a write the full store refuses.
    let store = crate::common::backend::open_store(&s);
    let ann = store
        .user_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    let now = crate::common::records::real_now();
    let raw = redis::Client::open(redis.url()).unwrap();
    let mut raw = raw.get_multiplexed_async_connection().await.unwrap();
    for session in store.sessions_of(&ann.id, now).await.unwrap() {
        let key = vigile::store::keys::Key::Session(&session.id).name();
        // `l`: last_seen in the session hash (store/keys.rs).
        let _: () = redis::cmd("HSET")
            .arg(key)
            .arg("l")
            .arg(now - 120_000)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let mut conn = fill_up(redis).await;
    // Signed-in members go on: the activity that cannot be recorded is skipped. (Over
    // 1.5 s, past the half-second session cache, so the store is read too.)
    for _ in 0..6 {
        let r = get(&member, &format!("{gw}/courses/1"), true).await;
        assert_eq!(r.status(), 200, "a signed-in member with a full store");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let errors =
        s.gw.metric("vigile_store_errors_total")
            .await
            .unwrap_or(0.0);
    for password in ["wrong password 1!", PW] {
        let r = http::login(&attacker, &gw, "ann@example.com", password).await;
        assert_eq!(r.status(), 503, "full store: refused, not let in");
        assert!(r.headers().contains_key("retry-after"));
    }
    let now =
        s.gw.metric("vigile_store_errors_total")
            .await
            .unwrap_or(0.0);
    assert!(now > errors, "refused writes are counted as store errors");
    let full = s.gw.metric("vigile_store_full_total").await.unwrap_or(0.0);
    assert!(full >= 2.0, "and as refused for a full store: {full}");

    // Room again: nothing was lost, the lockout goes on from five.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let r = get(&member, &format!("{gw}/courses/1"), true).await;
    assert_eq!(r.status(), 200, "the member's session survived");
    let r = http::login(&attacker, &gw, "ann@example.com", "wrong password 1!").await;
    assert_eq!(r.status(), 401, "the sixth failure");
    let r = http::login(&attacker, &gw, "ann@example.com", PW).await;
    assert_ne!(
        r.status(),
        303,
        "locked after six failures: the right password is refused"
    );
}

async fn used_memory(redis: &RedisServer) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The scenario with `noeviction`: a member signed in, six wrong guesses lock
/// another member, then a flood of failed logins on made-up addresses into a Redis with
/// little room. Whether the flood left room or not, the right password never gets
/// through afterwards (the lock was not lost), and the signed-in member's session is
/// still there. (A guess refused for want of room is not counted, so the sixth goes
/// before the flood: after it, space the store frees meanwhile would rightly let a
/// sixth attempt with the right password in.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_into_a_small_redis_never_unlocks_anyone() {
    let s = Backend::Redis
        .stack("[lockout]\nip_max_failures = 0\n")
        .await;
    let redis = s.redis.as_ref().unwrap();
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    s.gw.add_user("bob@example.com", PW, false);
    let member = client();
    login_ok(&member, &gw, "bob@example.com", PW).await;
    let attacker = client();
    for _ in 0..6 {
        let r = http::login(&attacker, &gw, "ann@example.com", "wrong password 1!").await;
        assert_eq!(r.status(), 401);
    }
    let client_ = redis::Client::open(redis.url()).unwrap();
    let mut conn = client_.get_multiplexed_async_connection().await.unwrap();
    let room = used_memory(redis).await + 16 * 1024;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(room)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..400 {
        let r = http::login(
            &attacker,
            &gw,
            &format!("x{i}@made-up.example"),
            "nope 12345!",
        )
        .await;
        *statuses.entry(r.status().as_u16()).or_insert(0) += 1;
    }
    assert!(
        statuses.keys().all(|s| [401, 503].contains(s)),
        "a flood answers wrong password or unavailable: {statuses:?}"
    );
    assert!(
        statuses.contains_key(&503),
        "the flood filled the room left: {statuses:?}"
    );
    for password in [PW, "wrong password 1!", PW] {
        let r = http::login(&attacker, &gw, "ann@example.com", password).await;
        assert_ne!(r.status(), 303, "never let in: {statuses:?}");
    }
    let r = get(&member, &format!("{gw}/courses/1"), true).await;
    assert_eq!(
        r.status(),
        200,
        "the signed-in member's session is still there"
    );
}

/// After the connection fails, the policy is read again before the next use: a Redis that
/// comes back evicting (a restarted or failed-over server) is refused at once, not after
/// the next periodic check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_coming_back_evicting_is_refused_at_once() {
    let mut s = Backend::Redis.stack("").await;
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    let member = client();
    login_ok(&member, &gw, "ann@example.com", PW).await;
    let redis = s.redis.as_mut().unwrap();
    redis.stop();
    // Pingora logs aside, what the member sees while Redis is down: 503.
    crate::common::poll_for("the gateway to notice Redis is down", 200, || async {
        let r = get(&member, &format!("{gw}/courses/1"), false).await;
        (r.status() == 503).then_some(())
    })
    .await;
    redis.start_again().await;
    set_policy(redis, "volatile-lru").await;
    for _ in 0..3 {
        let r = get(&member, &format!("{gw}/courses/1"), false).await;
        assert_eq!(r.status(), 503, "served from an evicting Redis");
        let r = get(&client(), &format!("{gw}/_vigile/login"), false).await;
        assert_eq!(r.status(), 503, "the login page on an evicting Redis");
    }
}
