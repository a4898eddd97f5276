//! Response headers that name an upstream's own address, rewritten by the real binary:
//! a browser must never be sent to `http://127.0.0.1:8081/...` (the internal address of
//! the video server), whichever upstream answered, nor keep a cookie scoped to an
//! upstream's host name.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;

use crate::common::gateway::GatewayBuilder;
use crate::common::http::client;

/// An application answering what the query asks: `location=URL` → 302 with that
/// `Location`, `refresh=VALUE` → a `Refresh` header, each `cookie=VALUE` → a
/// `Set-Cookie`. Returns its URL.
async fn echo_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(|req: Request| async move {
        let query = req.uri().query().unwrap_or("").to_string();
        let mut resp = Response::builder().status(StatusCode::OK);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "location" => {
                    resp = resp.status(StatusCode::FOUND).header("location", &*v);
                }
                "refresh" => resp = resp.header("refresh", &*v),
                "cookie" => resp = resp.header("set-cookie", &*v),
                _ => {}
            }
        }
        resp.body(axum::body::Body::from(format!(
            "app at {}",
            req.uri().path()
        )))
        .unwrap()
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_refreshes_and_cookies_naming_an_upstream_point_to_the_public_site() {
    let app = echo_upstream().await;
    let videos = echo_upstream().await;
    let gw = GatewayBuilder::new(&app)
        .extra(&format!(
            r#"
[access]
public = ["/**"]

[[route]]
path = "/videos/**"
upstream = "{videos}/media"
strip_prefix = "/videos"
"#
        ))
        .start()
        .await;
    let public = gw.url();
    let c = client();
    let ask = |path: &str, params: &[(&str, String)]| {
        let url = reqwest::Url::parse_with_params(&format!("{public}{path}"), params).unwrap();
        c.get(url).send()
    };
    let location = |path: &'static str, to: String| {
        let r = ask(path, &[("location", to)]);
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), 302);
            r.headers()
                .get("location")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        }
    };

    // The video server redirects within itself: back under /videos on the public site.
    assert_eq!(
        location("/videos/a", format!("{videos}/media/lesson1/?t=30#start")).await,
        format!("{public}/videos/lesson1/?t=30#start")
    );
    // The app names the video server's internal address: the public form of it.
    assert_eq!(
        location("/courses/1", format!("{videos}/media/lesson2.mp4")).await,
        format!("{public}/videos/lesson2.mp4")
    );
    // The app names itself, absolute or scheme-relative.
    assert_eq!(
        location("/courses/1", format!("{app}/courses/2")).await,
        format!("{public}/courses/2")
    );
    assert_eq!(
        location("/courses/1", format!("{}/courses/3", &app[5..])).await,
        format!("{public}/courses/3")
    );
    // Relative and foreign URLs are the application's business.
    for kept in ["/courses/4", "lesson/5", "https://cdn.example.net/v.mp4"] {
        assert_eq!(location("/courses/1", kept.to_string()).await, kept);
    }

    // Refresh: the URL part only.
    let r = ask(
        "/videos/b",
        &[("refresh", format!("5; url={videos}/media/next"))],
    )
    .await
    .unwrap();
    assert_eq!(
        r.headers().get("refresh").unwrap(),
        &format!("5; url={public}/videos/next")
    );

    // Set-Cookie: a Domain naming the upstream's host is dropped, others kept as sent.
    let r = ask(
        "/courses/1",
        &[
            (
                "cookie",
                "sid=abc; Domain=127.0.0.1; Path=/; HttpOnly".into(),
            ),
            ("cookie", "theme=dark; Domain=example.org; Path=/".into()),
            ("cookie", "lang=fr; Path=/".into()),
        ],
    )
    .await
    .unwrap();
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    let sid = cookies.iter().find(|c| c.starts_with("sid=abc")).unwrap();
    assert!(!sid.to_ascii_lowercase().contains("domain"), "{sid}");
    assert!(sid.contains("HttpOnly") && sid.contains("Path=/"), "{sid}");
    assert!(cookies.contains(&"theme=dark; Domain=example.org; Path=/".to_string()));
    assert!(cookies.contains(&"lang=fr; Path=/".to_string()));
}
