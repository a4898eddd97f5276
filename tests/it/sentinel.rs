//! Issue 18: two gateways on a Redis Sentinel set (`redis+sentinel://`), or on a Redis
//! Cluster with replicas (`redis+cluster://`), the master holding the store killed while
//! members browse and log in on both. Nothing unauthenticated reaches the upstream, calls
//! that need the store fail closed (503) while no master is reachable, `/readyz` follows,
//! the device cap holds for logins racing across the two instances, and service comes
//! back by itself on the promoted replica with every session kept.

use std::time::{Duration, Instant};

use crate::common::cluster::ClusterSet;
use crate::common::consts::{ANN, PW};
use crate::common::gateway::{Gateway, GatewayBuilder};
use crate::common::http::{self, client_ua, get, login_ok};
use crate::common::sentinel::SentinelSet;
use crate::common::smtp::SmtpSink;
use crate::common::upstream::Upstream;
use crate::devices::post_on;

/// Within how long service must be back once the Sentinels have promoted the replica.
const BACK_WITHIN: Duration = Duration::from_secs(15);

async fn gateway(up: &Upstream, smtp: &SmtpSink, store: &str) -> Gateway {
    GatewayBuilder::new(up.url())
        .store(store)
        .extra(&format!(
            "[mail]\ntransport = \"smtp\"\nsmtp_url = \"{}\"\n\
             retry_initial = \"200ms\"\nretry_max = \"1s\"\n\
             [sessions]\nmax_per_member = 2\non_overflow = \"deny\"\n",
            smtp.url()
        ))
        .start()
        .await
}

async fn ready(gw: &Gateway) -> u16 {
    match http::client()
        .get(format!("{}/readyz", gw.metrics_url()))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// ANN signed in on `gw` from a laptop: the browser, and the Cookie header it sends.
async fn signed_in(gw: &Gateway) -> (reqwest::Client, String) {
    use reqwest::cookie::CookieStore;
    let (laptop, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&laptop, &gw.url(), ANN, PW).await;
    let sent = jar.cookies(&gw.url().parse().unwrap()).unwrap();
    (laptop, sent.to_str().unwrap().to_string())
}

/// A member page with `cookie` (an API client: 401 rather than a redirect).
async fn status_with(gw: &Gateway, cookie: &str) -> u16 {
    http::bare_client()
        .get(format!("{}/courses/1", gw.url()))
        .header("Cookie", cookie)
        .header("Accept", "application/json")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A highly available Redis whose master can be killed and replaced by a replica.
enum Ha {
    Sentinel(SentinelSet),
    /// The set, and the port of the store's master once killed.
    Cluster(ClusterSet, Option<u16>),
}

impl Ha {
    fn url(&self) -> String {
        match self {
            Ha::Sentinel(set) => set.url(),
            Ha::Cluster(set, _) => set.url(),
        }
    }

    async fn kill_master(&mut self) {
        match self {
            Ha::Sentinel(set) => set.kill_master(),
            Ha::Cluster(set, killed) => *killed = Some(set.kill_store_master().await),
        }
    }

    async fn wait_failover(&self) {
        match self {
            Ha::Sentinel(set) => set.wait_failover().await,
            Ha::Cluster(set, killed) => {
                set.wait_failover(killed.expect("a master was killed"))
                    .await
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_killed_mid_traffic_fails_closed_and_comes_back() {
    master_killed_mid_traffic(Ha::Sentinel(SentinelSet::start().await)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_master_killed_mid_traffic_fails_closed_and_comes_back() {
    master_killed_mid_traffic(Ha::Cluster(ClusterSet::with_replicas().await, None)).await
}

async fn master_killed_mid_traffic(mut set: Ha) {
    let up = Upstream::start().await;
    let mut smtp = SmtpSink::start().await;
    let one = gateway(&up, &smtp, &set.url()).await;
    let two = gateway(&up, &smtp, &set.url()).await;
    one.add_user(ANN, PW, false);
    let (laptop, cookie) = signed_in(&one).await;
    for gw in [&one, &two] {
        assert_eq!(status_with(gw, &cookie).await, 200, "served before");
        assert_eq!(ready(gw).await, 200);
    }
    let forged = "vigile_session=not-a-session-token-at-all-0000000000000";
    // A mail queued while the mail server is down waits in the outbox, on the master.
    smtp.stop();
    let r = post_on(
        &http::client(),
        &one.url(),
        "/_vigile/password/forgot",
        "/_vigile/password/forgot",
        &[("email", ANN)],
    )
    .await;
    assert_eq!(r.status(), 200);
    // The page answers before the mail is queued (the same time whether the address has
    // an account or not): wait until it is, so the failover below finds it stored.
    let store: vigile::store::DynStore =
        std::sync::Arc::new(vigile::store::RedisStore::connect_lazy(&set.url(), false).unwrap());
    let queued = Instant::now();
    while store.outbox_waiting().await.unwrap() == 0 {
        assert!(
            queued.elapsed() < Duration::from_secs(10),
            "the mail was never queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(store);

    set.kill_master().await;
    let killed = Instant::now();
    // Logins from new devices race on both instances while the master is gone: each
    // retries until it gets an answer that is not 503.
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let gw = if i % 2 == 0 { one.url() } else { two.url() };
            tokio::spawn(async move {
                let device = client_ua(&format!("Mozilla/5.0 (X11; Linux x86_64) Racer/{i}"));
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    // The login page itself needs the store (its CSRF key, this device's
                    // records, in their shard on a Cluster): 503 too, until it answers.
                    let page = get(&device, &format!("{gw}/_vigile/login"), true).await;
                    if page.status() == 200 {
                        let page = page.text().await.unwrap();
                        let r = http::post_login(&device, &gw, &page, ANN, PW, None).await;
                        if r.status() != 503 {
                            let location = http::header(&r, "location").unwrap_or_default();
                            return (r.status().as_u16(), location);
                        }
                    }
                    assert!(Instant::now() < deadline, "racer {i} never got an answer");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();

    // While no master answers (the Sentinels wait a second before they even call it
    // down): a made-up session is never let through, and readiness says so.
    let mut saw_unready = false;
    let mut saw_503 = false;
    while killed.elapsed() < Duration::from_millis(900) {
        for gw in [&one, &two] {
            let s = status_with(gw, forged).await;
            assert!(s == 503 || s == 401, "a made-up session got {s}");
            saw_503 |= s == 503;
            saw_unready |= ready(gw).await == 503;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_503, "calls needing the store failed closed (503)");
    assert!(
        saw_unready,
        "/readyz said not ready while no master answered"
    );

    set.wait_failover().await;
    let promoted = Instant::now();
    // Back by itself on both instances, the member's session kept.
    for gw in [&one, &two] {
        loop {
            let s = status_with(gw, &cookie).await;
            if s == 200 && ready(gw).await == 200 {
                break;
            }
            assert!(
                promoted.elapsed() < BACK_WITHIN,
                "not back {BACK_WITHIN:?} after the failover (last status {s}):\n{}",
                gw.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status_with(gw, forged).await, 401);
    }

    // The cap (2) holds: the laptop holds one place, so one racer at most got in.
    let mut admitted = 0;
    for racer in racers {
        let (status, location) = racer.await.unwrap();
        assert_ne!(status, 503, "a login never got an answer");
        if status == 303 && !location.starts_with("/_vigile/") {
            admitted += 1;
        }
    }
    assert!(
        admitted <= 1,
        "{admitted} racing logins admitted past the cap"
    );
    assert_eq!(
        status_with(&one, &cookie).await,
        200,
        "the session from before the failover is kept"
    );

    // The mail queued before the failover was kept, and goes out.
    smtp.start_again().await;
    smtp.wait_for_to(ANN, "").await;

    // Nothing reached the upstream without an identity.
    for r in up.requests() {
        assert!(
            r.path.starts_with("/courses/") && r.header("remote-user").is_some(),
            "reached the upstream unauthenticated: {} {:?}",
            r.path,
            r.headers
        );
    }
    let _ = get(&laptop, &format!("{}/courses/2", two.url()), false).await;
}

/// A master cut off from the Sentinels but not from a gateway still answers it and still
/// calls itself master while the Sentinels promote the replica: the gateway must leave
/// it (within a few seconds), or it would go on serving sessions revoked elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_cut_off_from_the_sentinels_is_left_for_the_new_one() {
    let set = SentinelSet::start().await;
    set.add_user("gw", "gw-pass").await;
    let url = set
        .url()
        .replace("redis+sentinel://", "redis+sentinel://gw:gw-pass@");
    let up = Upstream::start().await;
    let smtp = SmtpSink::start().await;
    let one = gateway(&up, &smtp, &url).await;
    let two = gateway(&up, &smtp, &url).await;
    one.add_user(ANN, PW, false);
    let (_laptop, cookie) = signed_in(&one).await;
    assert_eq!(status_with(&one, &cookie).await, 200);

    set.isolate_master("gw", "gw-pass").await;
    set.wait_failover().await;
    // Revoked through the other gateway, on the new master.
    let revoked = Instant::now();
    loop {
        let out = two.cli(&["user", "revoke", ANN, "--all"], None);
        if out.status.success() {
            break;
        }
        assert!(revoked.elapsed() < BACK_WITHIN, "revoke failed: {out:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let revoked = Instant::now();
    while status_with(&one, &cookie).await != 401 {
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "the gateway still serves a revoked session from the old master:\n{}",
            one.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(one
        .logs()
        .contains("the Sentinels name another redis master"));
}
