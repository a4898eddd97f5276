//! `[[route]]` through the real binary, in front of several real upstreams: a course site
//! whose app, video server and API sit behind one gateway. Each upstream must see the
//! path meant for it (prefix stripped, its own prefix added), the identity headers and
//! the `X-Forwarded-Prefix` Vigile vouches for; each route applies its own access rules;
//! a pool of servers keeps serving from the live ones when one stops.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get as axum_get;
use axum::Router;

use crate::common::consts::{ANN, PW};
use crate::common::gateway::{GatewayBuilder, BIN};
use crate::common::http::{client, login_ok, ACCEPT_JSON};
use crate::common::poll_until;
use crate::common::upstream::Upstream;

/// Mail goes to the log: these tests sign in but read no mail.
const NO_MAIL: &str = "[mail]\ntransport = \"log\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_reaches_its_upstream_with_the_prefix_stripped() {
    let app = Upstream::start().await;
    let videos = Upstream::start().await;
    let special = Upstream::start().await;
    let api = Upstream::start().await;
    let gw = GatewayBuilder::new(app.url())
        .extra(NO_MAIL)
        .extra(&format!(
            r#"
[[route]]
path = "/videos/special/**"
upstream = "{special}"

[[route]]
path = "/videos/**"
upstream = "{videos}"
strip_prefix = "/videos"

[[route]]
path = "/api/**"
upstream = "{api}/v2"
strip_prefix = "/api"
forwarded_prefix = false
"#,
            special = special.url(),
            videos = videos.url(),
            api = api.url(),
        ))
        .start()
        .await;
    gw.add_user(ANN, PW, false);
    let c = client();
    login_ok(&c, &gw.url(), ANN, PW).await;
    let forged = |path: &str| {
        c.get(format!("{}{path}", gw.url()))
            .header("X-Forwarded-Prefix", "/evil")
            .header("x_forwarded_prefix", "/evil2")
            .header("Remote-User", "forged")
            .send()
    };

    // The app sees its paths as before, and no prefix header (nothing was stripped).
    let r = forged("/courses/1?page=2").await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = app.last().unwrap();
    assert_eq!(seen.path, "/courses/1?page=2");
    assert!(!seen.has_header("x-forwarded-prefix"), "{:?}", seen.headers);
    assert!(!seen.has_header("x_forwarded_prefix"), "{:?}", seen.headers);
    let ann_id = seen.header("remote-user").unwrap().to_string();
    assert_ne!(ann_id, "forged");
    assert_eq!(seen.header("remote-email"), Some(ANN));

    // The video server: prefix stripped, said once, identity the same as the app's.
    let r = forged("/videos/lesson1/a.mp4?t=30").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream saw /lesson1/a.mp4");
    let seen = videos.last().unwrap();
    assert_eq!(seen.path, "/lesson1/a.mp4?t=30");
    assert_eq!(seen.header_all("x-forwarded-prefix"), ["/videos"]);
    assert!(!seen.has_header("x_forwarded_prefix"), "{:?}", seen.headers);
    assert_eq!(seen.header("remote-user"), Some(ann_id.as_str()));
    assert_eq!(seen.header_all("remote-user").len(), 1);
    assert_eq!(seen.header("remote-email"), Some(ANN));
    assert_eq!(seen.header("x-forwarded-host").unwrap(), &gw.url()[7..]);
    forged("/videos").await.unwrap();
    assert_eq!(videos.last().unwrap().path, "/");

    // First match wins: the more specific route, listed first, takes its paths whole.
    forged("/videos/special/x").await.unwrap();
    let seen = special.last().unwrap();
    assert_eq!(seen.path, "/videos/special/x");
    assert!(!seen.has_header("x-forwarded-prefix"));
    assert_eq!(seen.header("remote-user"), Some(ann_id.as_str()));
    assert_eq!(seen.header_all("remote-user").len(), 1);

    // The API: stripped, its URL's own prefix added, no prefix header asked for.
    forged("/api/users/7").await.unwrap();
    let seen = api.last().unwrap();
    assert_eq!(seen.path, "/v2/users/7");
    assert!(!seen.has_header("x-forwarded-prefix"));

    // Nothing went astray.
    assert_eq!(app.count(), 1);
    assert_eq!(videos.count(), 2);
    assert_eq!(special.count(), 1);
    assert_eq!(api.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_url_may_carry_a_path_prefix() {
    let app = Upstream::start().await;
    let gw = GatewayBuilder::new(format!("{}/app/", app.url()))
        .extra("[access]\npublic = [\"/**\"]\n")
        .start()
        .await;
    let c = client();
    for (asked, seen) in [
        ("/courses/1?x=1&y=%2F", "/app/courses/1?x=1&y=%2F"),
        ("/", "/app/"),
        ("/a/b/", "/app/a/b/"),
    ] {
        let r = c.get(format!("{}{asked}", gw.url())).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asked}");
        assert_eq!(app.last().unwrap().path, seen, "{asked}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_applies_its_own_access_rules() {
    let app = Upstream::start().await;
    let trailers = Upstream::start().await;
    let lessons = Upstream::start().await;
    // The site is public, the lessons server is for members but its introduction; the
    // trailers route shares [access].
    let gw = GatewayBuilder::new(app.url())
        .extra(NO_MAIL)
        .extra(&format!(
            r#"
[access]
public = ["/**"]
admin = []

[[route]]
path = "/trailers/**"
upstream = "{trailers}"

[[route]]
path = "/lessons/**"
upstream = "{lessons}"
strip_prefix = "/lessons"
[route.access]
public = ["/lessons/intro"]
"#,
            trailers = trailers.url(),
            lessons = lessons.url(),
        ))
        .start()
        .await;
    let anon = client();
    let get = |c: &reqwest::Client, path: &str| {
        c.get(format!("{}{path}", gw.url()))
            .header("Accept", ACCEPT_JSON)
            .send()
    };
    assert_eq!(get(&anon, "/trailers/t1").await.unwrap().status(), 200);
    assert_eq!(trailers.count(), 1);
    assert_eq!(get(&anon, "/lessons/intro").await.unwrap().status(), 200);
    assert_eq!(lessons.last().unwrap().path, "/intro");
    for path in ["/lessons/1", "/lessons", "/lessons/"] {
        let r = get(&anon, path).await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthenticated");
    }
    assert_eq!(
        lessons.count(),
        1,
        "an anonymous request reached the lessons"
    );

    gw.add_user(ANN, PW, false);
    let member = client();
    login_ok(&member, &gw.url(), ANN, PW).await;
    assert_eq!(get(&member, "/lessons/1").await.unwrap().status(), 200);
    let seen = lessons.last().unwrap();
    assert_eq!(seen.path, "/1");
    assert_eq!(seen.header("remote-email"), Some(ANN));
}

/// A server whose `/healthz` answers the status held in `health` (other paths: 200
/// `server N`), for the HTTP health check.
async fn health_server(name: &'static str, health: Arc<AtomicU16>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/healthz",
            axum_get(move || {
                let status = health.load(Ordering::SeqCst);
                async move { StatusCode::from_u16(status).unwrap() }
            }),
        )
        .fallback(move || async move { name });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn healthy(url: &str) -> String {
    format!("vigile_upstream_healthy{{upstream=\"{url}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_sends_everything_to_the_live_server_once_one_stops() {
    let app = Upstream::start().await;
    let mut one = Upstream::start().await;
    let mut two = Upstream::start().await;
    let gw = GatewayBuilder::new(app.url())
        .extra(&format!(
            r#"
[access]
public = ["/**"]

[[route]]
path = "/media/**"
upstreams = ["{one}", "{two}"]
health_check_interval = "1s"
"#,
            one = one.url(),
            two = two.url(),
        ))
        .start()
        .await;
    let c = client();
    let fetch = |path: &'static str| {
        let c = c.clone();
        let url = format!("{}{path}", gw.url());
        async move { c.get(url).send().await.unwrap().status() }
    };
    // Round robin: both servers take a share while both are up.
    for _ in 0..6 {
        assert_eq!(fetch("/media/a").await, 200);
    }
    assert!(
        one.count() > 0 && two.count() > 0,
        "{} / {}",
        one.count(),
        two.count()
    );
    assert_eq!(app.count(), 0);
    assert_eq!(gw.metric(&healthy(&one.url())).await, Some(1.0));
    assert_eq!(gw.metric(&healthy(&two.url())).await, Some(1.0));

    two.stop().await;
    poll_until("the stopped server marked unhealthy", 200, || async {
        gw.metric(&healthy(&two.url())).await == Some(0.0)
    })
    .await;
    let before = one.count();
    for _ in 0..10 {
        assert_eq!(
            fetch("/media/b").await,
            200,
            "a request went to the stopped server"
        );
    }
    assert_eq!(one.count(), before + 10);
    assert_eq!(gw.metric(&healthy(&one.url())).await, Some(1.0));

    // None left: the 502 page, not the [upstream] app.
    one.stop().await;
    poll_until("the last server marked unhealthy", 200, || async {
        gw.metric(&healthy(&one.url())).await == Some(0.0)
    })
    .await;
    assert_eq!(fetch("/media/c").await, 502);
    assert_eq!(app.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_health_check_skips_a_server_that_answers_an_error() {
    let app = Upstream::start().await;
    let a_health = Arc::new(AtomicU16::new(200));
    let b_health = Arc::new(AtomicU16::new(200));
    let a = health_server("server a", a_health.clone()).await;
    let b = health_server("server b", b_health.clone()).await;
    let gw = GatewayBuilder::new(app.url())
        .extra(&format!(
            r#"
[access]
public = ["/**"]

[[route]]
path = "/api/**"
upstreams = ["{a}", "{b}"]
health_check = "/healthz"
health_check_interval = "1s"
"#
        ))
        .start()
        .await;
    let c = client();
    let body = || async {
        c.get(format!("{}/api/x", gw.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // Still listening, but sick: a TCP check would keep it; the HTTP check does not.
    b_health.store(503, Ordering::SeqCst);
    poll_until("server b marked unhealthy", 200, || async {
        gw.metric(&healthy(&b)).await == Some(0.0)
    })
    .await;
    for _ in 0..6 {
        assert_eq!(body().await, "server a");
    }
    // A redirect is a healthy answer; b comes back into the rotation.
    b_health.store(302, Ordering::SeqCst);
    poll_until("server b healthy again", 200, || async {
        gw.metric(&healthy(&b)).await == Some(1.0)
    })
    .await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(body().await);
    }
    assert!(seen.iter().any(|s| s == "server b"), "{seen:?}");
    assert_eq!(gw.metric(&healthy(&a)).await, Some(1.0));
}

#[test]
fn public_url_with_a_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vigile.toml");
    std::fs::write(
        &file,
        "[server]\npublic_url = \"https://courses.example.com/members\"\n\
         [upstream]\nurl = \"http://127.0.0.1:8080\"\n",
    )
    .unwrap();
    for command in ["check-config", "serve"] {
        let out = std::process::Command::new(BIN)
            .args([command, "--config"])
            .arg(&file)
            .env_remove("VIGILE_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command} accepted it: {stderr}");
        assert!(
            stderr.contains(
                "public_url: a path is not supported; Vigile's pages live at /_vigile/ on the site's host"
            ),
            "{command}: {stderr}"
        );
    }
}
