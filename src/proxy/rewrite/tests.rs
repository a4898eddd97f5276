use proptest::prelude::*;

use super::*;

/// A course site: the app on [upstream] (mounted at /app on its server), videos and an
/// API on routes.
const CONFIG: &str = r#"
[server]
public_url = "https://courses.example.com"
[upstream]
url = "http://127.0.0.1:8080/app"
[[route]]
path = "/videos/**"
upstream = "http://127.0.0.1:8081/media"
strip_prefix = "/videos"
[[route]]
path = "/api/**"
upstreams = ["http://api-1.internal:9000", "https://api-2.internal"]
"#;

fn rewriter() -> Rewriter {
    let config = crate::config::from_str(CONFIG, "test.toml", std::iter::empty()).unwrap();
    Rewriter::new(&config)
}

#[test]
fn locations_naming_an_upstream_go_to_the_public_site() {
    let r = rewriter();
    let loc = |v: &str, route: Option<usize>| r.location(v, route);
    // The video server, under its own prefix: the route's prefix comes back.
    assert_eq!(
        loc("http://127.0.0.1:8081/media/lesson1/", Some(0)).as_deref(),
        Some("https://courses.example.com/videos/lesson1/")
    );
    assert_eq!(
        loc("http://127.0.0.1:8081/media", Some(0)).as_deref(),
        Some("https://courses.example.com/videos")
    );
    assert_eq!(
        loc("HTTP://127.0.0.1:8081/media/a?x=1#t", Some(0)).as_deref(),
        Some("https://courses.example.com/videos/a?x=1#t")
    );
    // The app, from any route's response: its prefix removed, no route prefix.
    assert_eq!(
        loc("http://127.0.0.1:8080/app/courses/1", Some(0)).as_deref(),
        Some("https://courses.example.com/courses/1")
    );
    assert_eq!(
        loc("http://127.0.0.1:8080/app", None).as_deref(),
        Some("https://courses.example.com/")
    );
    // Default ports are the same origin; either API server counts.
    assert_eq!(
        loc("https://api-2.internal:443/v1/x", Some(1)).as_deref(),
        Some("https://courses.example.com/v1/x")
    );
    assert_eq!(
        loc("http://API-1.internal:9000/v1", Some(1)).as_deref(),
        Some("https://courses.example.com/v1")
    );
    // Scheme-relative, read with the server's scheme.
    assert_eq!(
        loc("//127.0.0.1:8081/media/b", Some(0)).as_deref(),
        Some("https://courses.example.com/videos/b")
    );
    assert_eq!(
        loc("/\\127.0.0.1:8081/media/b", Some(0)).as_deref(),
        Some("https://courses.example.com/videos/b")
    );
}

#[test]
fn other_locations_are_left_alone() {
    let r = rewriter();
    for v in [
        "/videos/a",
        "a/b",
        "?page=2",
        "#top",
        "https://courses.example.com/x",
        "https://cdn.example.net/x",
        "//cdn.example.net/x",
        "https://127.0.0.1:8081/media/x", // another scheme: another origin
        "http://127.0.0.1:9999/x",
        "mailto:a@b.c",
        "",
    ] {
        assert_eq!(r.location(v, Some(0)), None, "{v}");
    }
}

#[test]
fn refresh_urls_are_rewritten_in_place() {
    let r = rewriter();
    let f = |v: &str| r.refresh(v, Some(0));
    assert_eq!(
        f("5; url=http://127.0.0.1:8081/media/next").as_deref(),
        Some("5; url=https://courses.example.com/videos/next")
    );
    assert_eq!(
        f("0;URL='http://127.0.0.1:8080/app/x' ").as_deref(),
        Some("0;URL='https://courses.example.com/x' ")
    );
    assert_eq!(
        f("3, http://127.0.0.1:8080/app/y").as_deref(),
        Some("3, https://courses.example.com/y")
    );
    assert_eq!(f("5"), None);
    assert_eq!(f("5; url=/local"), None);
    assert_eq!(f("5; url=https://elsewhere.example/x"), None);
}

#[test]
fn the_upstream_cannot_set_vigiles_cookies() {
    let r = rewriter();
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for v in [
        "vigile_session=chosen; Path=/; HttpOnly",
        "__Host-vigile_device=d; Path=/; Secure",
        "app=1; Path=/",
    ] {
        resp.append_header(SET_COOKIE, v).unwrap();
    }
    r.response(&mut resp, None);
    let left: Vec<&str> = resp
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(left, ["app=1; Path=/"]);
}

#[test]
fn cookie_domains_naming_an_upstream_are_removed() {
    let r = rewriter();
    let c = |v: &str| r.set_cookie(v);
    let out = c("sid=abc; Domain=127.0.0.1; Path=/; HttpOnly").unwrap();
    let parsed = cookie::Cookie::parse(out.as_str()).unwrap();
    assert_eq!(parsed.domain(), None);
    assert_eq!((parsed.name(), parsed.value()), ("sid", "abc"));
    assert_eq!(parsed.path(), Some("/"));
    assert_eq!(parsed.http_only(), Some(true));
    assert!(c("a=1; domain=.API-1.internal; Secure")
        .is_some_and(|o| !o.to_ascii_lowercase().contains("domain")));
    assert_eq!(c("a=1; Domain=courses.example.com"), None);
    assert_eq!(c("a=1; Path=/"), None);
    assert_eq!(c("domain=1; Path=/"), None);
}

#[test]
fn response_headers_are_rewritten_together() {
    let r = rewriter();
    let mut resp = ResponseHeader::build(302, None).unwrap();
    resp.append_header("Location", "http://127.0.0.1:8081/media/x")
        .unwrap();
    resp.append_header("Set-Cookie", "a=1; Domain=127.0.0.1")
        .unwrap();
    resp.append_header("Set-Cookie", "b=2; Path=/").unwrap();
    resp.append_header("Refresh", "1; url=http://127.0.0.1:8080/app/")
        .unwrap();
    r.response(&mut resp, Some(0));
    assert_eq!(
        resp.headers.get("location").unwrap(),
        "https://courses.example.com/videos/x"
    );
    assert_eq!(
        resp.headers.get("refresh").unwrap(),
        "1; url=https://courses.example.com/"
    );
    let cookies: Vec<_> = resp
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2; Path=/"]);
}

/// Upstream origins of [`CONFIG`], as a browser on the public site would reach them.
fn upstream_origins() -> Vec<Origin> {
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8081",
        "http://api-1.internal:9000",
        "https://api-2.internal",
    ]
    .iter()
    .map(|u| Url::parse(u).unwrap().origin())
    .collect()
}

fn location_strategy() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec![
        "http:", "https:", "HTTP:", "hTtPs:", "", "http:/", "ftp:",
    ]);
    let slashes = prop::sample::select(vec!["//", "/\\", "\\\\", "///", "", " //", "\t//"]);
    let host = prop::sample::select(vec![
        "127.0.0.1",
        "api-1.internal",
        "API-2.INTERNAL",
        "api-2.internal.",
        "courses.example.com",
        "0x7f.0.0.1",
        "127.1",
        "[::1]",
        "user@127.0.0.1",
        "elsewhere.example",
    ]);
    let port = prop::sample::select(vec![
        "", ":8080", ":8081", ":9000", ":443", ":80", ":08081", ":1",
    ]);
    let path = "(/[a-z0-9%.;]{0,6}){0,3}";
    let tail = prop::sample::select(vec!["", "?q=1", "#f", "?a=/b#c"]);
    (scheme, slashes, host, port, path, tail)
        .prop_map(|(s, sl, h, p, path, t)| format!("{s}{sl}{h}{p}{path}{t}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the upstream answers, the Location the browser gets never takes it to an
    /// upstream's own origin.
    #[test]
    fn a_rewritten_location_never_points_to_an_upstream(
        loc in location_strategy(),
        route in prop::sample::select(vec![None, Some(0usize), Some(1)]),
    ) {
        let r = rewriter();
        let sent = r.location(&loc, route).unwrap_or(loc.clone());
        let public = Url::parse("https://courses.example.com/some/page").unwrap();
        if let Ok(seen) = public.join(&sent) {
            prop_assert!(
                !upstream_origins().contains(&seen.origin()),
                "{loc:?} became {sent:?}, which a browser reads as {seen}"
            );
        }
    }

    /// Arbitrary text never panics and a rewrite is always an absolute public URL.
    #[test]
    fn rewrites_are_public_urls(loc in "\\PC{0,40}", refresh in "\\PC{0,40}") {
        let r = rewriter();
        if let Some(out) = r.location(&loc, Some(0)) {
            prop_assert!(out.starts_with("https://courses.example.com/"), "{out}");
        }
        let _ = r.refresh(&refresh, None);
        let _ = r.set_cookie(&refresh);
    }
}
