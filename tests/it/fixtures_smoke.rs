//! The fixtures on their own, without the gateway: if these fail, every other
//! integration test would fail for a reason that has nothing to do with Vigile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::gateway::{merge, metric_value, GatewayBuilder};
use crate::common::http::{self, csrf_from, form_with_action, forms, hidden_inputs};
use crate::common::sms_sink::{six_digit_runs, SmsSink};
use crate::common::smtp::{ReceivedMail, SmtpSink};
use crate::common::upstream::Upstream;
use crate::common::{free_port, poll_until};
use std::time::Duration;

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
fn refusing_port_refuses_and_cannot_be_taken() {
    let refusing = crate::common::RefusingPort::new();
    let err = std::net::TcpStream::connect(("127.0.0.1", refusing.port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(std::net::TcpListener::bind(("127.0.0.1", refusing.port)).is_err());
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

/// A port taken between picking it and the gateway binding it (another test's process
/// got it) costs a retry on fresh ports, not a failed test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_moves_to_another_port_when_its_port_is_taken() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let gw = GatewayBuilder::new("http://127.0.0.1:1")
        .first_port(taken)
        .start()
        .await;
    assert_ne!(gw.port(), taken);
    assert!(gw
        .config_text()
        .contains(&format!("127.0.0.1:{}", gw.port())));
    let page = http::bare_client()
        .get(format!("{}/_vigile/login", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the gateway serves on its new port");
    // The squatter still holds its port: a connection to it reaches the squatter, not a
    // gateway that would have joined the port. The bound only keeps a broken fixture from
    // hanging the suite.
    squatter.set_nonblocking(true).unwrap();
    let squatter = tokio::net::TcpListener::from_std(squatter).unwrap();
    let probe = tokio::net::TcpStream::connect(("127.0.0.1", taken))
        .await
        .unwrap();
    let (_accepted, from) = tokio::time::timeout(Duration::from_secs(60), squatter.accept())
        .await
        .expect("the squatter never got the probe connection")
        .expect("the squatter accepts");
    assert_eq!(
        from,
        probe.local_addr().unwrap(),
        "the probe reached the squatter"
    );
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

/// Sends one message to the sink with lettre, as the gateway does (plain SMTP, no TLS).
async fn send_mail(
    port: u16,
    to: &str,
    bcc: Option<&str>,
    subject: &str,
    text: &str,
    html: &str,
) -> Result<(), lettre::transport::smtp::Error> {
    use lettre::message::{Mailbox, MultiPart};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let mut builder = Message::builder()
        .from("Vigile <no-reply@example.com>".parse::<Mailbox>().unwrap())
        .to(to.parse::<Mailbox>().unwrap())
        .subject(subject);
    if let Some(bcc) = bcc {
        builder = builder.bcc(bcc.parse::<Mailbox>().unwrap());
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            text.to_string(),
            html.to_string(),
        ))
        .unwrap();
    // A fresh transport each time: no pooled connection outlives a stop().
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build();
    transport.send(message).await.map(|_| ())
}

/// Long enough for the server to fold it when it stores the message.
const SECOND: &str = "Second message, with a deliberately long subject line that a mail server \
    may fold when it stores it: well over seventy-eight characters";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_sink_receives_and_decodes_multipart_mail() {
    let smtp = SmtpSink::start().await;
    assert_eq!(smtp.url(), format!("smtp://127.0.0.1:{}", smtp.port()));
    assert!(smtp.mails().is_empty());

    let subject = "Veuillez activer votre compte — é";
    let link = "http://127.0.0.1:8080/_vigile/activate?token=AbC-d_9";
    let text = format!("Bonjour Zoé,\n\nCliquez : {link}.\nÀ bientôt, l'équipe\n");
    let html = format!(
        "<p>Bonjour Zoé,</p><p><a href=\"{}\">Activer</a></p><p>À bientôt</p>",
        link.replace('&', "&amp;")
    );
    send_mail(
        smtp.port(),
        "Zoé <zoe@example.com>",
        Some("audit@example.com"),
        subject,
        &text,
        &html,
    )
    .await
    .unwrap();
    send_mail(
        smtp.port(),
        "ann@example.com",
        None,
        SECOND,
        "no link here",
        "<p>none</p>",
    )
    .await
    .unwrap();

    let mail = smtp
        .wait_for_to("zoe@example.com", "activer votre compte")
        .await;
    assert_eq!(mail.subject, subject);
    assert_eq!(
        mail.to,
        ["zoe@example.com", "audit@example.com"],
        "envelope recipients"
    );
    assert_eq!(mail.from, "Vigile <no-reply@example.com>");
    assert_eq!(
        mail.header("x-mailfrom").as_deref(),
        Some("no-reply@example.com")
    );
    assert_eq!(mail.header("SUBJECT").as_deref(), Some(subject));
    assert_eq!(mail.header("bcc"), None, "Bcc is envelope only");
    assert!(mail.header("To").unwrap().contains("zoe@example.com"));
    assert_eq!(mail.text.replace("\r\n", "\n"), text);
    assert_eq!(mail.html.trim_end(), html);
    assert_eq!(mail.links(), [link]);
    assert_eq!(mail.link_containing("/_vigile/activate?token="), link);
    assert!(!mail.raw.is_empty());

    let second = smtp
        .wait_for("the second mail", |m| m.subject == SECOND)
        .await;
    assert!(second.links().is_empty());
    let subjects: Vec<String> = smtp.mails().into_iter().map(|m| m.subject).collect();
    assert_eq!(subjects, [subject, SECOND], "arrival order");
    assert_eq!(smtp.count_to("zoe@example.com"), 1);
    assert_eq!(smtp.count_to("audit@example.com"), 1);
    assert_eq!(smtp.count_to("ann@example.com"), 1);
    assert_eq!(smtp.count_to("nobody@example.com"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_sink_stops_and_starts_again_keeping_mail() {
    let mut smtp = SmtpSink::start().await;
    let port = smtp.port();
    send_mail(port, "a@example.com", None, "before", "one", "<p>one</p>")
        .await
        .unwrap();
    smtp.wait_for_to("a@example.com", "before").await;

    smtp.stop();
    smtp.stop(); // idempotent
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port refuses connections once stopped"
    );
    let err = send_mail(port, "a@example.com", None, "down", "x", "<p>x</p>").await;
    assert!(err.is_err(), "sending to a stopped sink fails");

    smtp.start_again().await;
    assert_eq!(smtp.port(), port, "same port");
    send_mail(port, "a@example.com", None, "after", "two", "<p>two</p>")
        .await
        .unwrap();
    smtp.wait_for_to("a@example.com", "after").await;
    let subjects: Vec<String> = smtp.mails().into_iter().map(|m| m.subject).collect();
    assert_eq!(
        subjects,
        ["before", "after"],
        "earlier mail is kept, in order"
    );
    assert_eq!(smtp.count_to("a@example.com"), 2);
}

#[test]
fn received_mail_parsing_and_links() {
    let raw = b"From: a@example.com\nTo: b@example.com\nSubject: =?utf-8?q?Caf=C3=A9?= ok\n\
        X-RcptTo: b@example.com,\n c@example.com\nX-MailFrom: a@example.com\n\n\
        See https://h.example/a?b=1&c=2, (http://h.example/p_(x)) and <https://h.example/z>.\n\
        Not http:// alone.\n"
        .to_vec();
    let mail = ReceivedMail::parse(raw);
    assert_eq!(mail.subject, "Café ok");
    assert_eq!(mail.to, ["b@example.com", "c@example.com"]);
    assert_eq!(mail.from, "a@example.com");
    assert_eq!(mail.html, "", "a text-only mail has no HTML part");
    assert_eq!(
        mail.links(),
        [
            "https://h.example/a?b=1&c=2",
            "http://h.example/p_(x)",
            "https://h.example/z"
        ]
    );
    assert_eq!(mail.link_containing("/z"), "https://h.example/z");
    assert_eq!(
        mail.header("x-rcptto").as_deref(),
        Some("b@example.com, c@example.com")
    );
}

#[test]
#[should_panic(expected = "no link containing \"/reset\"")]
fn link_containing_panics_listing_links() {
    let mail = ReceivedMail::parse(b"Subject: x\n\nhttps://h.example/activate\n".to_vec());
    mail.link_containing("/reset");
}

#[tokio::test]
async fn sms_sink_records_refuses_on_demand_and_finds_codes() {
    let sink = SmsSink::start().await;
    assert!(sink.url().starts_with("http://127.0.0.1:") && sink.url().ends_with("/send"));
    let client = http::bare_client();
    let post = |body: String| {
        client
            .post(sink.url())
            .header("Authorization", "Bearer t")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let sms = |text: &str| serde_json::json!({"to": "+33612345678", "text": text}).to_string();

    sink.fail_next(1);
    assert_eq!(post(sms("Code: 111111")).await.unwrap().status(), 500);
    assert_eq!(
        post(sms("Code: 222222 (10 min)")).await.unwrap().status(),
        200
    );
    assert_eq!(post("not json".into()).await.unwrap().status(), 200);

    let calls = sink.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].answered, 500);
    assert_eq!(calls[0].to, "+33612345678");
    assert_eq!(calls[1].method, "POST");
    assert_eq!(calls[1].path, "/send");
    assert_eq!(calls[1].header("authorization"), Some("Bearer t"));
    assert_eq!(calls[1].text, "Code: 222222 (10 min)");
    assert_eq!(
        (calls[2].to.as_str(), calls[2].body.as_str()),
        ("", "not json")
    );
    assert_eq!(sink.delivered().len(), 2);
    assert_eq!(sink.wait_delivered(2).await.len(), 2);
    // The refused text's code is not the one a member received.
    assert_eq!(sink.code_for("+33612345678").await, "222222");

    // A wait is woken by the call it waits for.
    let later = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        post(sms("Code 333333")).await.unwrap();
    };
    let (delivered, ()) = tokio::join!(sink.wait_delivered(3), later);
    assert_eq!(delivered.len(), 3);
    assert_eq!(sink.code_for("+33612345678").await, "333333");

    assert_eq!(
        six_digit_runs("a 123456 b 1234567 c 12345 d 654321"),
        ["123456", "654321"]
    );
}
