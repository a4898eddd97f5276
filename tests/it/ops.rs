//! What an operator sees: metrics, health, `check-config`, TLS and HTTP/2, the 502 page.

use std::process::Command;

use crate::common::backend::Backend;
use crate::common::consts::PW;
use crate::common::gateway::BIN;
use crate::common::http::{self, client, get, login_ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic() {
    let s = Backend::Sqlite.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    let c = client();
    get(&c, &format!("{}/courses/1", s.gw.url()), true).await; // login_redirect
    get(&c, &format!("{}/courses/1", s.gw.url()), false).await; // unauthorized
    login_ok(&c, &s.gw.url(), "ann@example.com", PW).await; // page x2, success
    get(&c, &format!("{}/courses/1", s.gw.url()), true).await; // proxied
    get(&c, &format!("{}/admin/", s.gw.url()), true).await; // forbidden
    let m = |series: &'static str| {
        let gw = &s.gw;
        async move {
            gw.metric(series)
                .await
                .unwrap_or_else(|| panic!("{series} missing"))
        }
    };
    assert_eq!(
        m("vigile_requests_total{decision=\"login_redirect\"}").await,
        1.0
    );
    assert_eq!(
        m("vigile_requests_total{decision=\"unauthorized\"}").await,
        1.0
    );
    assert_eq!(m("vigile_requests_total{decision=\"proxied\"}").await, 1.0);
    assert_eq!(
        m("vigile_requests_total{decision=\"forbidden\"}").await,
        1.0
    );
    assert!(m("vigile_requests_total{decision=\"page\"}").await >= 2.0);
    assert_eq!(m("vigile_logins_total{result=\"success\"}").await, 1.0);
    assert_eq!(m("vigile_upstream_duration_seconds_count").await, 1.0);
    assert!(m("vigile_password_hash_seconds_count").await >= 1.0);
    assert!(m("vigile_store_duration_seconds_count{op=\"session_open\"}").await >= 1.0);
    let text = s.gw.metrics_text().await;
    for name in [
        "vigile_sessions_active",
        "vigile_store_errors_total",
        "vigile_device_overflows_total",
        "vigile_account_lockouts_total",
        "vigile_ip_blocks_total",
    ] {
        assert!(text.contains(name), "{name} not exported");
    }
    let health = http::bare_client()
        .get(format!("{}/healthz", s.gw.metrics_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = http::bare_client()
        .get(format!("{}/readyz", s.gw.metrics_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_a_502_page() {
    let mut s = Backend::Sqlite.stack("").await;
    s.upstream.stop().await;
    let r = get(&http::bare_client(), &format!("{}/", s.gw.url()), true).await;
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("Site unavailable"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cleartext_is_served() {
    let s = Backend::Sqlite.stack("").await;
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/catalog/x", s.gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream saw /catalog/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_termination_with_http2() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let s = Backend::Sqlite
        .stack(&format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ))
        .await;
    s.gw.add_user("ann@example.com", PW, false);
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let https = |c: reqwest::ClientBuilder| {
        c.add_root_certificate(root.clone())
            .resolve("localhost", ([127, 0, 0, 1], s.gw.port()).into())
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .no_proxy()
            .build()
            .unwrap()
    };
    let c = https(reqwest::Client::builder());
    let base = format!("https://localhost:{}", s.gw.port());
    let r = c.get(format!("{base}/_vigile/login")).send().await.unwrap();
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "h2 negotiated by ALPN"
    );
    let cookies = http::set_cookies(&r);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-vigile_device=") && c.contains("Secure")),
        "{cookies:?}"
    );
    let page = r.text().await.unwrap();
    let csrf = http::csrf_from(&page);
    let r = c
        .post(format!("{base}/_vigile/login"))
        .form(&[
            ("email", "ann@example.com"),
            ("password", PW),
            ("csrf", &csrf),
            ("rd", "/courses/1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(http::set_cookies(&r)
        .iter()
        .any(|c| c.starts_with("__Host-vigile_session=")));
    let r = c.get(format!("{base}/courses/1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = s.upstream.last().unwrap();
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert!(seen.header("remote-user").is_some());
    assert!(!seen
        .cookies()
        .iter()
        .any(|(n, _)| n.contains("vigile_session")));
}

#[test]
fn check_config_prints_redacted_config_or_precise_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[upstream]\nurl = \"http://127.0.0.1:8080\"\n[store]\nurl = \"redis://:hunter2@127.0.0.1:6379/0\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&good)
        .env_remove("VIGILE_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[sessions]") && stdout.contains("max_per_member = 3"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "secret printed: {stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[upstream]\nurl = \"http://127.0.0.1:8080\"\n[sessions]\nmax_per_membr = 2\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("bad.toml") && stderr.contains("max_per_membr"),
        "{stderr}"
    );

    // Environment overrides apply, and are named when wrong.
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&good)
        .env("VIGILE_SESSIONS__MAX_PER_MEMBER", "lots")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("VIGILE_SESSIONS__MAX_PER_MEMBER"),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_manages_accounts_while_serving() {
    let s = Backend::Sqlite.stack("").await;
    s.gw.add_user("ann@example.com", PW, false);
    s.gw.add_user("boss@example.com", PW, true);
    let list = s.gw.cli_ok(&["user", "list"], None);
    let ann = list
        .lines()
        .find(|l| l.starts_with("ann@example.com"))
        .unwrap();
    assert!(
        ann.contains("member") && !ann.contains("admin") && ann.contains("active"),
        "{list}"
    );
    assert!(list
        .lines()
        .any(|l| l.starts_with("boss@example.com") && l.contains("member,admin")));

    // Refusals change nothing and say why.
    let dup = s.gw.cli(&["user", "add", "ANN@example.com"], Some(PW));
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already has an account"));
    let weak =
        s.gw.cli(&["user", "add", "weak@example.com"], Some("short"));
    assert!(!weak.status.success());
    let why = String::from_utf8_lossy(&weak.stderr);
    assert!(
        why.contains("At least 10 characters") && why.contains("digit"),
        "{why}"
    );
    let bad = s.gw.cli(&["user", "add", "not-an-email"], Some(PW));
    assert!(!bad.status.success());
    let list_after = s.gw.cli_ok(&["user", "list"], None);
    assert_eq!(list_after.lines().count(), list.lines().count());

    // Revoking one session by id leaves the others.
    let (c1, c2) = (client(), client());
    login_ok(&c1, &s.gw.url(), "ann@example.com", PW).await;
    login_ok(&c2, &s.gw.url(), "ann@example.com", PW).await;
    let me: serde_json::Value = get(&c1, &format!("{}/_vigile/api/me", s.gw.url()), false)
        .await
        .json()
        .await
        .unwrap();
    let sid = me["session"].as_str().unwrap();
    let show = s.gw.cli_ok(&["user", "show", "ann@example.com"], None);
    assert!(show.contains("sessions: 2") && show.contains(sid), "{show}");
    s.gw.cli_ok(
        &["user", "revoke", "ann@example.com", "--session", sid],
        None,
    );
    let url = format!("{}/courses/1", s.gw.url());
    crate::common::poll_until("revocation of one session", 20, || async {
        get(&c1, &url, false).await.status() == 401
    })
    .await;
    assert_eq!(get(&c2, &url, false).await.status(), 200);
    let unknown = s.gw.cli(
        &["user", "revoke", "ann@example.com", "--session", "nope"],
        None,
    );
    assert!(!unknown.status.success());
}
