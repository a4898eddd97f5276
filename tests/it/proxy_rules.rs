//! SPEC section 4 through the real binary: header hygiene, redirects, 401/403, `rd`.

use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::PW;
use crate::common::http::{self, client, get, header, login_ok, login_rd};

async fn spoofed_identity_headers_never_reach_upstream(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let c = client();
    let spoof = |rb: reqwest::RequestBuilder| {
        rb.header("Remote-User", "admin")
            .header("remote_user", "admin")
            .header("REMOTE-GROUPS", "member,admin")
            .header("Remote-Email", "boss@example.com")
            .header("remote_session", "x")
            .header("X-Request-Id", "forged")
    };
    // Anonymous, on a public path: forwarded, but with none of the forged headers.
    let r = spoof(c.get(format!("{}/", s.gw.url())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = s.upstream.last().unwrap();
    for h in [
        "remote-user",
        "remote_user",
        "remote-groups",
        "remote-email",
        "remote_session",
    ] {
        assert!(
            !seen.has_header(h),
            "{h} reached upstream: {:?}",
            seen.headers
        );
    }
    assert_ne!(seen.header("x-request-id"), Some("forged"));

    // Signed in: the real identity replaces the forged one, header for header.
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    let ann = open_store(&s)
        .user_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    let r = spoof(c.get(format!("{}/courses/1", s.gw.url())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = s.upstream.last().unwrap();
    assert_eq!(
        seen.header_all("remote-user"),
        [ann.id.as_str().to_string()]
    );
    assert!(!seen.has_header("remote_user"));
    assert_eq!(seen.header_all("remote-email"), ["ann@example.com"]);
    assert_eq!(seen.header_all("remote-groups"), ["member"]);
    assert!(!seen.has_header("remote_session"));
}
both_backends!(spoofed_identity_headers_never_reach_upstream);

async fn identity_headers_and_cookie_hygiene(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let (c, jar) = http::client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await;
    jar.add_cookie_str("app_pref=dark; Path=/", &s.gw.url().parse().unwrap());
    let me: serde_json::Value = get(&c, &format!("{}/_vigile/api/me", s.gw.url()), false)
        .await
        .json()
        .await
        .unwrap();
    let r = c
        .get(format!("{}/courses/1?x=1", s.gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream saw /courses/1");
    let seen = s.upstream.last().unwrap();
    assert_eq!(
        seen.path, "/courses/1?x=1",
        "the query is forwarded untouched"
    );
    assert_eq!(seen.header("remote-user"), me["user"].as_str());
    assert_eq!(seen.header("remote-session"), me["session"].as_str());
    assert_eq!(seen.header("remote-name"), Some("ann"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host")
            .map(|h| h.starts_with("127.0.0.1:")),
        Some(true)
    );
    assert!(seen.header("x-request-id").is_some_and(|v| !v.is_empty()));
    // The session secret and the device id never reach the application; its own
    // cookies do.
    let names: Vec<String> = seen.cookies().into_iter().map(|(n, _)| n).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("vigile_session") || n.contains("vigile_device")),
        "{names:?}"
    );
    assert!(names.contains(&"app_pref".to_string()), "{names:?}");

    // An application's cookie holding UTF-8 (browsers send it as is) neither hides the
    // member's session nor carries the session secret past the stripping.
    let sent = {
        use reqwest::cookie::CookieStore;
        jar.cookies(&s.gw.url().parse().unwrap()).unwrap()
    };
    let mut raw = "pr\u{e9}nom=Jos\u{e9}; ".as_bytes().to_vec();
    raw.extend_from_slice(sent.as_bytes());
    let r = http::bare_client()
        .get(format!("{}/courses/1", s.gw.url()))
        .header(
            "Cookie",
            reqwest::header::HeaderValue::from_bytes(&raw).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the member is recognised");
    let seen = s.upstream.last().unwrap();
    assert_eq!(seen.header("remote-email"), Some("ann@example.com"));
    let forwarded = seen.header_all("cookie").join("; ");
    assert!(
        forwarded.starts_with("pr\u{e9}nom=Jos\u{e9}"),
        "{forwarded}"
    );
    assert!(
        !forwarded.contains("vigile_session") && !forwarded.contains("vigile_device"),
        "{forwarded}"
    );
}
both_backends!(identity_headers_and_cookie_hygiene);

async fn unauthenticated_browsers_redirect_apis_get_401(backend: Backend) {
    let s = backend.stack("").await;
    let c = http::bare_client();
    let r = get(&c, &format!("{}/courses/1?page=2", s.gw.url()), true).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        header(&r, "location").as_deref(),
        Some("/_vigile/login?rd=%2Fcourses%2F1%3Fpage%3D2")
    );
    let r = get(&c, &format!("{}/courses/1", s.gw.url()), false).await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error":"unauthenticated","login_url":"/_vigile/login"})
    );
    // A POST from a browser is not a navigation it can replay: 401 too.
    let r = c
        .post(format!("{}/courses/1", s.gw.url()))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(s.upstream.count(), 0, "nothing protected reached upstream");
    // Public paths are forwarded without a session.
    let r = get(&c, &format!("{}/catalog/rust", s.gw.url()), true).await;
    assert_eq!(r.status(), 200);
    // Vigile's own pages never reach upstream.
    let r = get(&c, &format!("{}/_vigile/nope", s.gw.url()), true).await;
    assert_eq!(r.status(), 404);
    assert_eq!(s.upstream.count(), 1);
}
both_backends!(unauthenticated_browsers_redirect_apis_get_401);

async fn admin_paths_need_the_admin_role(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    s.gw.add_user("boss@example.com", PW, true);
    let member = client();
    login_ok(&member, &s.gw.url(), "ann@example.com", PW).await;
    let r = get(&member, &format!("{}/admin/users", s.gw.url()), true).await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("Access denied"), "{page}");
    assert_eq!(s.upstream.count(), 0);

    let admin = client();
    login_ok(&admin, &s.gw.url(), "boss@example.com", PW).await;
    let r = get(&admin, &format!("{}/admin/users", s.gw.url()), true).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.upstream.last().unwrap().header("remote-groups"),
        Some("member,admin")
    );
}
both_backends!(admin_paths_need_the_admin_role);

/// Protected rules match in any case and through `;` parameters, as many upstreams route
/// them (Express and IIS ignore case, Tomcat and Spring drop `;...`); public rules stay
/// exact. Through the binary, for a visitor, a member and an admin.
async fn case_and_parameters_cannot_dodge_a_rule(backend: Backend) {
    let rules = "[access]\npublic = [\"/\", \"/catalog/**\"]\n\
                 member = [\"/catalog/premium/**\"]\nadmin = [\"/admin/**\"]\n";
    let s = backend.stack(rules).await;
    let gw = s.gw.url();
    s.gw.add_user("ann@example.com", PW, false);
    s.gw.add_user("boss@example.com", PW, true);
    let (visitor, member, admin) = (client(), client(), client());
    login_ok(&member, &gw, "ann@example.com", PW).await;
    login_ok(&admin, &gw, "boss@example.com", PW).await;
    let status = |c: &reqwest::Client, path: &'static str| {
        let (c, url) = (c.clone(), format!("{gw}{path}"));
        async move { get(&c, &url, true).await.status().as_u16() }
    };
    // (path, visitor, member, admin)
    for (path, want) in [
        ("/ADMIN/users", [302, 403, 200]),
        ("/Admin", [302, 403, 200]),
        ("/admin;x/users", [302, 403, 200]),
        ("/aDmIn;jsessionid=1/users", [302, 403, 200]),
        ("/catalog/PREMIUM/x", [302, 200, 200]),
        ("/catalog/premium;jsessionid=1/x", [302, 200, 200]),
        // Public rules are exact: another case is not the public page...
        ("/CATALOG/x", [302, 200, 200]),
        // ...and a parameter on a public path keeps it public.
        ("/catalog/a;b", [200, 200, 200]),
    ] {
        let got = [
            status(&visitor, path).await,
            status(&member, path).await,
            status(&admin, path).await,
        ];
        assert_eq!(got, want, "{path}: (visitor, member, admin)");
    }
    // What reached the application: the admin's and the members' allowed requests only,
    // with the path as sent.
    let admin_paths: Vec<String> = s
        .upstream
        .requests()
        .into_iter()
        .filter(|r| r.header("remote-groups") == Some("member,admin"))
        .map(|r| r.path)
        .collect();
    assert!(
        admin_paths.contains(&"/ADMIN/users".to_string())
            && admin_paths.contains(&"/admin;x/users".to_string()),
        "{admin_paths:?}"
    );
    let member_admin = s.upstream.requests().into_iter().find(|r| {
        r.header("remote-groups") == Some("member") && r.path.to_ascii_lowercase().contains("admin")
    });
    assert!(member_admin.is_none(), "{member_admin:?}");
}
both_backends!(case_and_parameters_cannot_dodge_a_rule);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rd_never_redirects_off_site() {
    // Five browsers sign in: no device cap in the way.
    let s = Backend::Sqlite
        .stack("[sessions]\nmax_per_member = 0\n")
        .await;
    s.gw.add_user("ann@example.com", PW, false);
    for evil in [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "http:/evil.example",
        "/%2F%2Fevil.example",
        "/..//evil.example",
        "/.//evil.example",
        "/%2e%2e//evil.example",
        "/a/../..//evil.example",
    ] {
        let c = client();
        let r = login_rd(&c, &s.gw.url(), "ann@example.com", PW, Some(evil)).await;
        assert_eq!(r.status(), 303, "{evil}");
        assert_eq!(header(&r, "location").as_deref(), Some("/"), "rd={evil}");
        // Already signed in, the login page's redirect is checked the same way.
        let r = get(
            &c,
            &format!("{}/_vigile/login?rd={}", s.gw.url(), urlencode(evil)),
            true,
        )
        .await;
        assert_eq!(
            header(&r, "location").as_deref(),
            Some("/"),
            "GET rd={evil}"
        );
        // And the language switch too.
        let r = get(
            &c,
            &format!("{}/_vigile/lang/fr?rd={}", s.gw.url(), urlencode(evil)),
            true,
        )
        .await;
        assert_eq!(
            header(&r, "location").as_deref(),
            Some("/"),
            "lang rd={evil}"
        );
    }
    let c = client();
    let r = login_rd(
        &c,
        &s.gw.url(),
        "ann@example.com",
        PW,
        Some("/courses/1?x=1"),
    )
    .await;
    assert_eq!(header(&r, "location").as_deref(), Some("/courses/1?x=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_paths_are_refused_not_guessed() {
    let s = Backend::Sqlite
        .stack("[access]\npublic = [\"/\", \"/catalog/**\"]\n")
        .await;
    // Sent raw: an HTTP client library would normalise these before sending.
    for path in [
        "/catalog/../courses/1",
        "/catalog/%2e%2e/courses/1",
        "/catalog%2f..%2fcourses",
        "/catalog/..%5ccourses",
        // Not origin-form: Pingora's URI says "/" (public) but Go's net/http, Puma and
        // gunicorn route the raw target to /courses/1.
        "foo:/courses/1",
        "x-y:/courses/1?a=b",
    ] {
        assert_eq!(raw_status(s.gw.port(), path).await, 400, "{path}");
    }
    assert_eq!(
        raw_status(s.gw.port(), "/catalog/x").await,
        200,
        "control: a public path"
    );
    // Double slashes are refused: Node's `new URL` reads `//courses/1` as a host.
    assert_eq!(raw_status(s.gw.port(), "//courses/1").await, 400);
    assert_eq!(
        s.upstream.count(),
        1,
        "only the control request reached upstream"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Status of a GET for `path` written byte for byte on a socket.
async fn raw_status(port: u16, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![];
    sock.read_to_end(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"))
}
