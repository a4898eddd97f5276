//! Issue 11 through the real binary: ambiguous paths, Host, framing and forwarding header
//! spellings, each written byte for byte on a socket (an HTTP library would normalise
//! them before sending), on both store backends.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::common::backend::{Backend, Stack};
use crate::common::consts::PW;
use crate::common::http::{client_with_jar, jar_cookie, login_ok};

const RULES: &str = "[access]\npublic = [\"/\", \"/catalog/**\"]\nadmin = [\"/admin/**\"]\n";

/// Writes `request` on a fresh connection and returns the status and the whole response.
async fn raw(port: u16, request: &str) -> (u16, String) {
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![];
    sock.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

/// A GET for `target` with `headers` (each a full `Name: value` line), closing after.
fn get(target: &str, headers: &[&str]) -> String {
    let mut req = format!("GET {target} HTTP/1.1\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Accept: text/html\r\nConnection: close\r\n\r\n");
    req
}

const HOST: &str = "Host: 127.0.0.1";

/// The session cookie of a member who signed in (so raw requests can carry it).
async fn member_cookie(s: &Stack, email: &str, admin: bool) -> String {
    s.gw.add_user(email, PW, admin);
    let (c, jar) = client_with_jar("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0");
    login_ok(&c, &s.gw.url(), email, PW).await;
    let value = jar_cookie(&jar, &s.gw.url(), "vigile_session").expect("session cookie");
    format!("Cookie: vigile_session={value}")
}

async fn ambiguous_paths_never_reach_protected_routes(backend: Backend) {
    let s = backend.stack(RULES).await;
    let port = s.gw.port();
    // Anonymous, through a public prefix (Tomcat, Jetty, Node's `new URL`).
    for path in [
        "/catalog/..;/admin/x",
        "/catalog/%2e%2e;/admin/x",
        "/catalog/..;jsessionid=1/admin/x",
        "/catalog/x/..;/..;/admin/x",
        "//catalog/admin/x",
        "/catalog//admin/x",
        "/catalog/.;/admin/x",
        "/catalog/%2E/admin/x",
        "/catalog/%252e%252e/admin/x",
        "/catalog/%ef%bc%8e%ef%bc%8e/admin/x",
        "/catalog/..%2fadmin/x",
        "/catalog/%5c../admin/x",
    ] {
        let (status, _) = raw(port, &get(path, &[HOST])).await;
        assert_eq!(status, 400, "anonymous {path}");
    }
    // A plain member, with a leading parameter segment (Tomcat routes it to /admin).
    let member = member_cookie(&s, "ann@example.com", false).await;
    for path in [
        "/;/admin/x",
        "/;x/admin/x",
        "/;jsessionid=1/admin/x",
        // Lookalikes an NFKC-normalising upstream would read as /admin.
        "/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E/x",
        "/admin%C2%AD/x",
    ] {
        let (status, _) = raw(port, &get(path, &[HOST, &member])).await;
        assert_eq!(status, 400, "member {path}");
    }
    assert_eq!(s.upstream.count(), 0, "{:?}", s.upstream.requests());
    // Case and parameters on a real segment still meet the admin rule.
    for path in [
        "/ADMIN/x",
        "/Admin/x",
        "/admin;x/users",
        "/admin;jsessionid=1",
        // IIS and Windows drop trailing dots and spaces.
        "/admin./x",
        "/admin%20/x",
    ] {
        let (status, _) = raw(port, &get(path, &[HOST, &member])).await;
        assert_eq!(status, 403, "member {path}");
    }
    // Controls: the same member reaches member paths, the canonical form goes upstream.
    let (status, _) = raw(port, &get("/courses/%61b%2b?q=%2F..", &[HOST, &member])).await;
    assert_eq!(status, 200);
    assert_eq!(s.upstream.last().unwrap().path, "/courses/ab%2B?q=%2F..");
    let abs = format!("http://127.0.0.1:{port}/catalog/x?y");
    let (status, _) = raw(port, &get(&abs, &[&format!("Host: 127.0.0.1:{port}")])).await;
    assert_eq!(status, 200);
    assert_eq!(s.upstream.last().unwrap().path, "/catalog/x?y");
    assert_eq!(
        s.gw.metric("vigile_requests_refused_total{reason=\"path\"}")
            .await,
        Some(17.0)
    );
}
both_backends!(ambiguous_paths_never_reach_protected_routes);

async fn host_is_validated(backend: Backend) {
    let s = backend.stack(RULES).await;
    let port = s.gw.port();
    for host in [
        "Host: 127.0.0.1/admin/x?",
        "Host: 127.0.0.1#x",
        "Host: 127.0.0.1\\x",
        "Host: a b",
        "Host: ",
        "Host: 127.0.0.1:99999",
        "Host: user@127.0.0.1",
    ] {
        let (status, _) = raw(port, &get("/catalog/x", &[host])).await;
        assert_eq!(status, 400, "{host:?}");
    }
    let (status, _) = raw(port, &get("/catalog/x", &[])).await;
    assert_eq!(status, 400, "HTTP/1.1 without Host");
    let (status, _) = raw(port, &get("/catalog/x", &[HOST, HOST])).await;
    assert_eq!(status, 400, "two Hosts");
    assert_eq!(s.upstream.count(), 0);
    let (status, _) = raw(
        port,
        &get("/catalog/x", &["Host: Courses.Example.COM:8443"]),
    )
    .await;
    assert_eq!(status, 200);
    let seen = s.upstream.last().unwrap();
    assert_eq!(seen.header("host"), Some("courses.example.com:8443"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some("courses.example.com:8443")
    );

    // With an allow-list, other hosts are refused.
    s.gw.update_config("[server]\nhosts = [\"courses.example.com\"]\n");
    let mut gw = s.gw;
    gw.restart().await;
    let (status, _) = raw(port, &get("/catalog/x", &["Host: evil.example"])).await;
    assert_eq!(status, 400);
    let (status, _) = raw(port, &get("/catalog/x", &["Host: courses.example.com"])).await;
    assert_eq!(status, 200);
    assert_eq!(
        gw.metric("vigile_requests_refused_total{reason=\"host\"}")
            .await,
        Some(1.0)
    );
}
both_backends!(host_is_validated);

async fn framing_and_forwarding_spellings_are_cleaned(backend: Backend) {
    let s = backend.stack(RULES).await;
    let port = s.gw.port();
    let req = "POST /catalog/form HTTP/1.1\r\nHost: 127.0.0.1\r\n\
               X_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Host: evil.example\r\n\
               X_Forwarded_Proto: https\r\nTransfer_Encoding: chunked\r\n\
               Content_Length: 3\r\nX-Original-URL: /admin/x\r\nX_Rewrite_URL: /admin/x\r\n\
               Remote_Email: boss@example.com\r\n\
               Content-Length: 5, 5\r\nConnection: close\r\n\r\nhello";
    let (status, _) = raw(port, req).await;
    assert_eq!(status, 200);
    let seen = s.upstream.last().unwrap();
    for h in [
        "x_forwarded_for",
        "x_forwarded_host",
        "x_forwarded_proto",
        "transfer_encoding",
        "content_length",
        "x-original-url",
        "x_rewrite_url",
        "remote_email",
    ] {
        assert!(
            !seen.has_header(h),
            "{h} reached upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header_all("content-length"), ["5".to_string()]);
    assert_eq!(seen.body, "hello");
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("127.0.0.1"));

    let before = s.upstream.count();
    for cl in [
        "Content-Length: 5, 6",
        "Content-Length: 5\r\nContent-Length: 6",
    ] {
        let req = format!(
            "POST /catalog/form HTTP/1.1\r\nHost: 127.0.0.1\r\n{cl}\r\nConnection: close\r\n\r\nhello!"
        );
        let (status, _) = raw(port, &req).await;
        assert_eq!(status, 400, "{cl}");
    }
    assert_eq!(s.upstream.count(), before);
}
both_backends!(framing_and_forwarding_spellings_are_cleaned);

/// What the second security review got through, each now refused or cleaned.
async fn second_review_cases(backend: Backend) {
    let rules = "[access]\npublic = [\"/\", \"/catalog/**\", \"/*.css\"]\n\
                 admin = [\"/admin/**\", \"/settings\", \"/panel/\"]\n\
                 [server]\nheader_timeout = \"1s\"\n";
    let s = backend.stack(rules).await;
    let port = s.gw.port();
    let member = member_cookie(&s, "ann@example.com", false).await;

    // An exact protected pattern with a trailing slash (Express routes it to the handler);
    // a rule written with the slash covers the path without it; a format suffix (Rails'
    // `(.:format)`) or a decoded `?`/`#` (a decode-and-split hop) cannot hide the rule.
    for path in [
        "/settings/",
        "/SETTINGS/",
        "/settings;x/",
        "/Settings./",
        "/settings%20/",
        "/panel",
        "/PANEL",
        "/settings.json",
        "/settings.css",
        "/admin%3F.css",
        "/admin%23.css",
    ] {
        let (status, _) = raw(port, &get(path, &[HOST, &member])).await;
        assert_eq!(status, 403, "member {path}");
    }
    // NTFS streams, dot-and-space segments, best-fit and case-folding lookalikes.
    for path in [
        "/administration::$INDEX_ALLOCATION/x",
        "/catalog/..%20/admin/x",
        "/catalog/.%20/admin/x",
        "/catalog/%E2%88%95admin",
        "/adm%C4%B1n/x",
    ] {
        let (status, _) = raw(port, &get(path, &[HOST, &member])).await;
        assert_eq!(status, 400, "{path}");
    }
    // Every spelling of Vigile's own prefix stays here.
    for path in ["/_VIGILE/login", "/_vigile;x/login", "/_vigile./login"] {
        let (status, _) = raw(port, &get(path, &[HOST, &member])).await;
        assert_eq!(status, 404, "{path}");
    }
    // HTTP/1 without Host, whatever the target's form; odd numeric host names.
    let abs = "GET http://evil.example/catalog/x HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(port, abs).await.0, 400);
    assert_eq!(raw(port, "GET /catalog/x HTTP/1.0\r\n\r\n").await.0, 400);
    for host in [
        "Host: 127.1",
        "Host: 0x7f.0.0.1",
        "Host: 2130706433",
        "Host: -a-.b",
    ] {
        assert_eq!(
            raw(port, &get("/catalog/x", &[host])).await.0,
            400,
            "{host}"
        );
    }
    assert_eq!(s.upstream.count(), 0, "{:?}", s.upstream.requests());

    // Headers other gateways or frameworks read as identity, client address or path.
    let req = "POST /catalog/form HTTP/1.1\r\nHost: 127.0.0.1\r\n\
               Remote-Auth-Level: 2fa\r\nRemote_Auth_Level: 2fa\r\nRemote.User: boss\r\n\
               X-Forwarded-User: boss\r\nX-Auth-Request-Email: boss@example.com\r\n\
               CF-Connecting-IP: 6.6.6.6\r\nX-Forwarded-Uri: /admin/x\r\n\
               Cf-Access-Authenticated-User-Email: boss@example.com\r\nX-WEBAUTH-USER: boss\r\n\
               X-Remote-Groups: admin\r\nRemote-Anything: x\r\n\
               Content.Length: 3\r\nContent-Length: 010\r\nConnection: close\r\n\r\n0123456789";
    let (status, _) = raw(port, req).await;
    assert_eq!(status, 200);
    let seen = s.upstream.last().unwrap();
    for h in [
        "remote-auth-level",
        "remote_auth_level",
        "remote.user",
        "x-forwarded-user",
        "x-auth-request-email",
        "cf-connecting-ip",
        "x-forwarded-uri",
        "cf-access-authenticated-user-email",
        "x-webauth-user",
        "x-remote-groups",
        "remote-anything",
        "content.length",
    ] {
        assert!(
            !seen.has_header(h),
            "{h} reached upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header_all("content-length"), ["10".to_string()]);
    assert_eq!(seen.body, "0123456789");
    // A member's request carries the level Vigile vouches for, not the client's claim.
    let claim = get("/courses/1", &[HOST, &member, "Remote-Auth-Level: 2fa"]);
    assert_eq!(raw(port, &claim).await.0, 200);
    assert_eq!(
        s.upstream.last().unwrap().header_all("remote-auth-level"),
        ["password".to_string()]
    );
    // A `#` or `?` that belongs to a public name is fine (a course tag `C#`).
    assert_eq!(raw(port, &get("/catalog/tags/C%23", &[HOST])).await.0, 200);

    // A form body to Vigile's pages that stalls is cut at header_timeout.
    let stalled = "POST /_vigile/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                   Content-Type: application/x-www-form-urlencoded\r\n\
                   Content-Length: 100\r\nConnection: close\r\n\r\nemail=a";
    assert_eq!(raw(port, stalled).await.0, 408);
}
both_backends!(second_review_cases);
