//! The fixtures on their own, without the gateway: if these fail, every other
//! integration test would fail for a reason that has nothing to do with Vigile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::gateway::{merge, metric_value, GatewayBuilder};
use crate::common::http::{self, csrf_from, form_with_action, forms, hidden_inputs};
use crate::common::upstream::Upstream;
use crate::common::{free_port, poll_until};

#[tokio::test]
async fn upstream_records_what_it_receives() {
    let mut upstream = Upstream::start().await;
    let client = http::bare_client();

    let resp = client
        .get(format!("{}/course/1?page=2", upstream.url()))
        .header("X-Probe", "one")
        .header("x-probe", "two")
        .header("Remote-User", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "upstream saw /course/1");

    let last = upstream.last().unwrap();
    assert_eq!(last.method, "GET");
    assert_eq!(last.path, "/course/1?page=2");
    assert_eq!(last.header_all("X-PROBE"), ["one", "two"]);
    assert_eq!(
        upstream.last_header("remote-user").as_deref(),
        Some("mallory")
    );
    assert_eq!(upstream.last_header("remote-email"), None);

    let resp = client
        .post(format!("{}/form", upstream.url()))
        .header("Cookie", "a=1; vigile_lang=fr")
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "upstream saw /form");
    let last = upstream.last().unwrap();
    assert_eq!(last.method, "POST");
    assert_eq!(last.body, "x=1");
    assert_eq!(
        last.cookies(),
        [
            ("a".to_string(), "1".to_string()),
            ("vigile_lang".into(), "fr".into())
        ]
    );
    assert_eq!(upstream.count(), 2);

    upstream.clear();
    assert!(upstream.requests().is_empty());
    assert!(upstream.last().is_none());

    let url = upstream.url();
    upstream.stop().await;
    assert!(client.get(format!("{url}/")).send().await.is_err());
}

#[tokio::test]
async fn stopping_upstream_closes_kept_alive_connections() {
    let mut upstream = Upstream::start().await;
    // A pooled keep-alive connection, as the gateway would hold.
    let client = http::bare_client();
    let url = format!("{}/x", upstream.url());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    upstream.stop().await;
    assert!(client.get(&url).send().await.is_err());
}

#[tokio::test]
async fn poll_until_returns_once_true() {
    let mut n = 0;
    poll_until("third try", 10, || {
        n += 1;
        let ready = n >= 3;
        async move { ready }
    })
    .await;
    assert_eq!(n, 3);
}

#[tokio::test]
#[should_panic(expected = "gave up waiting for never")]
async fn poll_until_panics_after_bound() {
    poll_until("never", 2, || async { false }).await;
}

#[test]
fn free_ports_are_bindable() {
    let port = free_port();
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[test]
fn form_parsing() {
    let html = r#"<html><body>
      <form method="post" action="/_vigile/login?x=1">
        <input type="hidden" name="csrf" value="ab&amp;c&#x2F;d&#39;">
        <input type=hidden name=rd value="/course/1?a=1&amp;b=2">
        <INPUT id="email" name="email" type="email" required autofocus value="">
      </form>
      <form action="/_vigile/logout" method="POST"><input name="csrf" type="hidden" value="zz"/></form>
    </body></html>"#;
    assert_eq!(csrf_from(html), "ab&c/d'");
    assert_eq!(
        hidden_inputs(html),
        [
            ("csrf".to_string(), "ab&c/d'".to_string()),
            ("rd".into(), "/course/1?a=1&b=2".into()),
            ("csrf".into(), "zz".into()),
        ]
    );
    let all = forms(html);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].method, "post");
    assert_eq!(all[0].hidden.len(), 2);
    let logout = form_with_action(html, "/_vigile/logout").unwrap();
    assert_eq!(logout.method, "post");
    assert_eq!(logout.hidden_value("csrf"), Some("zz"));
}

#[test]
fn gateway_config_merges_extra_sections() {
    let builder = GatewayBuilder::new("http://127.0.0.1:1")
        .extra("[access]\npublic = [\"/free/**\"]\n[sessions]\nidle_timeout = \"2s\"")
        .extra("[server]\ndev_mode = true\n[password]\nargon2_iterations = 2");
    let table = builder.config_table(1000, 1001, "sqlite:///tmp/x.db");
    let text = toml::to_string(&table).unwrap();
    let back: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(back["server"]["listen"].as_str(), Some("127.0.0.1:1000"));
    assert_eq!(back["server"]["dev_mode"].as_bool(), Some(true));
    assert_eq!(back["metrics"]["listen"].as_str(), Some("127.0.0.1:1001"));
    assert_eq!(back["store"]["url"].as_str(), Some("sqlite:///tmp/x.db"));
    assert_eq!(
        back["password"]["argon2_memory_kib"].as_integer(),
        Some(1024)
    );
    assert_eq!(back["password"]["argon2_iterations"].as_integer(), Some(2));
    assert_eq!(back["access"]["public"].as_array().unwrap().len(), 1);
    assert_eq!(back["sessions"]["idle_timeout"].as_str(), Some("2s"));
    assert_eq!(back["i18n"]["default"].as_str(), Some("en"));

    let mut base: toml::Table = toml::from_str("[a]\nx = [1, 2]\ny = 1").unwrap();
    merge(&mut base, toml::from_str("[a]\nx = [3]").unwrap());
    assert_eq!(toml::to_string(&base).unwrap(), "[a]\nx = [3]\ny = 1\n");
}

#[test]
fn metric_values_are_read_from_exposition() {
    let text = "# HELP vigile_logins_total x\n# TYPE vigile_logins_total counter\n\
        vigile_logins_total{result=\"success\"} 3\nvigile_sessions_active 2\n";
    assert_eq!(
        metric_value(text, "vigile_logins_total{result=\"success\"}"),
        Some(3.0)
    );
    assert_eq!(metric_value(text, "vigile_sessions_active"), Some(2.0));
    assert_eq!(metric_value(text, "vigile_missing"), None);
}
