//! The transports against real endpoints: a local axum server standing in for the
//! provider, a temporary directory for the files.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap as Headers, Method as Verb, StatusCode, Uri};
use axum::Router;

use super::*;
use crate::clock::Stopwatch;
use crate::config::Secret;

const TO: &str = "+33612345678";
/// A text like the real ones: the code is what must never leak.
const TEXT: &str = "Your Vigile confirmation code: 482913 (valid 10 minutes).";
const CODE: &str = "482913";
const TOKEN: &str = "Bearer sk_live_9f8e7d6c5b4a";

/// One request as the provider saw it.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Clone)]
struct Provider {
    got: Arc<Mutex<Vec<Got>>>,
    status: StatusCode,
    answer: Answer,
}

#[derive(Clone, Copy)]
enum Answer {
    Plain(&'static str),
    /// The request's body and header values back, as a careless provider's error does.
    Echo,
}

/// A provider on 127.0.0.1 answering every request with `status`; its base URL and log.
async fn provider(status: u16, answer: Answer) -> (String, Arc<Mutex<Vec<Got>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Provider {
        got: Arc::default(),
        status: StatusCode::from_u16(status).unwrap(),
        answer,
    };
    let got = state.got.clone();
    let app = Router::new().fallback(record).with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

async fn record(
    State(p): State<Provider>,
    method: Verb,
    uri: Uri,
    headers: Headers,
    body: Bytes,
) -> (StatusCode, String) {
    let got = Got {
        method: method.to_string(),
        path: uri.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect(),
        body: String::from_utf8(body.to_vec()).unwrap(),
    };
    let answer = match p.answer {
        Answer::Plain(s) => s.to_string(),
        Answer::Echo => {
            let values: Vec<&str> = got.headers.iter().map(|(_, v)| v.as_str()).collect();
            format!("bad request {} {} {}", got.path, got.body, values.join(" "))
        }
    };
    p.got.lock().unwrap().push(got);
    (p.status, answer)
}

fn http_cfg(url: &str) -> SmsSection {
    SmsSection {
        transport: SmsTransport::Http,
        http_url: Secret::new(url),
        ..SmsSection::default()
    }
}

fn with_token(mut cfg: SmsSection) -> SmsSection {
    cfg.http_headers
        .insert("Authorization".into(), Secret::new(TOKEN));
    cfg
}

async fn send_http(cfg: &SmsSection, timeout: Duration) -> Result<(), String> {
    Transport::from_config(cfg)
        .unwrap()
        .send("id1", TO, TEXT, timeout)
        .await
}

fn assert_no_secret(err: &str) {
    for secret in [TEXT, CODE, TOKEN, "sk_live_9f8e7d6c5b4a", "urlsecret77"] {
        assert!(!err.contains(secret), "{secret:?} leaked into {err:?}");
    }
}

#[test]
fn the_template_is_filled_with_json_escaped_values() {
    let template = r#"{"to":"{to}","text":"{text}","copy":"{to}"}"#;
    let text = "Say \"hi\" \\ then\nnew line\té à 😀 \u{1} {to} {text}";
    let body = fill(template, TO, text);
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["to"], TO);
    assert_eq!(parsed["copy"], TO);
    // Placeholders inside a value are not filled again.
    assert_eq!(parsed["text"], text);
    assert!(body.contains(r#"Say \"hi\" \\ then\nnew line\t"#), "{body}");
    // Non-ASCII stays UTF-8; control characters are escaped.
    assert!(body.contains("é à 😀 \\u0001"), "{body}");
    // No quotes are added: a form-style template gets the bare escaped value.
    assert_eq!(fill("to={to}&m={text}", "+1", "a\"b"), r#"to=+1&m=a\"b"#);
}

#[tokio::test]
async fn one_request_with_the_method_url_headers_and_body() {
    let (base, got) = provider(200, Answer::Plain(r#"{"id":"m1"}"#)).await;
    let mut cfg = with_token(http_cfg(&format!("{base}/v1/send?from=Vigile")));
    cfg.http_method = "PUT".into();
    cfg.http_headers
        .insert("X-Account".into(), Secret::new("acme"));
    cfg.http_body = r#"{"recipient":"{to}","message":"{text}","ref":"{to}"}"#.into();
    send_http(&cfg, Duration::from_secs(5)).await.unwrap();

    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let req = &got[0];
    assert_eq!(req.method, "PUT");
    assert_eq!(req.path, "/v1/send?from=Vigile");
    assert_eq!(req.header_all("authorization"), [TOKEN]);
    assert_eq!(req.header_all("x-account"), ["acme"]);
    assert_eq!(req.header_all("content-type"), ["application/json"]);
    assert_eq!(
        req.body,
        format!(r#"{{"recipient":"{TO}","message":"{TEXT}","ref":"{TO}"}}"#)
    );
}

#[tokio::test]
async fn the_operator_s_content_type_replaces_the_default() {
    let (base, got) = provider(202, Answer::Plain("")).await;
    let mut cfg = http_cfg(&format!("{base}/send"));
    cfg.http_headers.insert(
        "content-type".into(),
        Secret::new("application/vnd.sms+json; charset=utf-8"),
    );
    send_http(&cfg, Duration::from_secs(5)).await.unwrap();
    let got = got.lock().unwrap().clone();
    assert_eq!(
        got[0].header_all("Content-Type"),
        ["application/vnd.sms+json; charset=utf-8"]
    );
    assert_eq!(got[0].method, "POST");
}

#[tokio::test]
async fn any_2xx_is_sent_anything_else_is_an_error_with_the_status() {
    let (base, _) = provider(204, Answer::Plain("")).await;
    send_http(&http_cfg(&format!("{base}/send")), Duration::from_secs(5))
        .await
        .unwrap();

    let (base, _) = provider(500, Answer::Plain("upstream carrier down")).await;
    let err = send_http(&http_cfg(&format!("{base}/send")), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("500"), "{err}");
    assert!(err.contains("upstream carrier down"), "{err}");

    // A redirect is not followed: the endpoint is misconfigured.
    let (base, got) = provider(302, Answer::Plain("")).await;
    let err = send_http(&http_cfg(&format!("{base}/send")), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("302"), "{err}");
    assert_eq!(got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_long_answer_is_cut_to_one_short_line() {
    let long: &'static str = Box::leak(format!("line one\nline two {}", "x".repeat(5000)).into());
    let (base, _) = provider(503, Answer::Plain(long)).await;
    let err = send_http(&http_cfg(&format!("{base}/send")), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("line one line two"), "{err}");
    assert!(err.chars().count() < 300, "{} chars: {err}", err.len());
    assert!(!err.contains('\n'));
}

#[tokio::test]
async fn a_provider_that_never_answers_fails_within_the_timeout() {
    // Accepted by the kernel, never read nor answered.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", silent.local_addr().unwrap());
    let watch = Stopwatch::start();
    let err = send_http(&http_cfg(&url), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        watch.elapsed() < Duration::from_secs(3),
        "{:?}",
        watch.elapsed()
    );
    assert!(err.contains("no answer within 200ms"), "{err}");
    drop(silent);
}

#[tokio::test]
async fn a_closed_port_is_an_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = with_token(http_cfg(&format!(
        "http://127.0.0.1:{port}/send?token=urlsecret77"
    )));
    let err = send_http(&cfg, Duration::from_secs(5)).await.unwrap_err();
    assert!(err.contains("unreachable"), "{err}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn errors_never_hold_the_text_the_code_or_a_header_value() {
    // The provider quotes the whole request back in its refusal.
    let (base, got) = provider(400, Answer::Echo).await;
    let cfg = with_token(http_cfg(&format!("{base}/send?token=urlsecret77")));
    let err = send_http(&cfg, Duration::from_secs(5)).await.unwrap_err();
    assert!(got.lock().unwrap()[0].body.contains(CODE));
    assert!(err.contains("400") && err.contains("****"), "{err}");
    assert!(err.contains(TO), "the number is no secret: {err}");
    assert_no_secret(&err);

    // Echoing the code alone (as a form-encoded text, say) is masked too.
    let scrubbed = Transport::from_config(&cfg).unwrap();
    let Transport::Http(http) = &scrubbed else {
        panic!("http transport expected")
    };
    let err = http.scrub("bad text Your+code%3A+482913", TEXT);
    assert_eq!(err, "bad text Your+code%3A+****");
}

#[test]
fn invalid_http_settings_are_refused_naming_the_key() {
    let err = |cfg: &SmsSection| Transport::from_config(cfg).err().unwrap();
    assert!(err(&http_cfg("ftp://example.com/x")).starts_with("sms.http_url"));
    assert!(err(&http_cfg("not a url")).starts_with("sms.http_url"));

    let mut cfg = http_cfg("https://sms.example/send");
    cfg.http_method = "PO ST".into();
    assert!(err(&cfg).starts_with("sms.http_method"));

    let mut cfg = http_cfg("https://sms.example/send");
    cfg.http_headers.insert("Bad Name".into(), Secret::new("v"));
    assert!(err(&cfg).starts_with("sms.http_headers: Bad Name"));

    let mut cfg = http_cfg("https://sms.example/send");
    cfg.http_headers
        .insert("Authorization".into(), Secret::new("token-1234\nx"));
    let e = err(&cfg);
    assert!(e.starts_with("sms.http_headers: Authorization"), "{e}");
    assert!(!e.contains("token-1234"), "{e}");

    let mut cfg = http_cfg("https://sms.example/send");
    cfg.http_body = r#"{"to":"{to}"}"#.into();
    assert!(err(&cfg).starts_with("sms.http_body"));

    assert!(Transport::from_config(&http_cfg("https://sms.example/send")).is_ok());
}

#[tokio::test]
async fn the_file_transport_writes_one_json_file_per_message() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("sms");
    let cfg = SmsSection {
        transport: SmsTransport::File,
        file_dir: dir.to_str().unwrap().into(),
        ..SmsSection::default()
    };
    let transport = Transport::from_config(&cfg).unwrap();
    let text = "Code \"482913\"\nà bientôt";
    transport
        .send("Ab_9-x", TO, text, Duration::from_secs(5))
        .await
        .unwrap();
    let written = std::fs::read_to_string(dir.join("Ab_9-x.json")).unwrap();
    assert_eq!(
        written,
        r#"{"to":"+33612345678","text":"Code \"482913\"\nà bientôt"}"#
    );

    // The directory is made again if it went away; a retry rewrites the same file.
    std::fs::remove_dir_all(&dir).unwrap();
    for _ in 0..2 {
        transport
            .send("Ab_9-x", TO, "again", Duration::from_secs(5))
            .await
            .unwrap();
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["Ab_9-x.json"], "no temporary file left behind");

    for bad in ["", "../escape", "a/b", "a.b", "a b", "é", "x\0"] {
        let err = transport
            .send(bad, TO, TEXT, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.contains("sms id"), "{bad:?}: {err}");
        assert_no_secret(&err);
    }
    assert!(!root.path().join("escape.json").exists());
}

#[tokio::test]
async fn the_log_transport_sends_nothing_and_succeeds() {
    let transport = Transport::from_config(&SmsSection::default()).unwrap();
    assert!(matches!(transport, Transport::Log));
    transport
        .send("id1", TO, TEXT, Duration::from_secs(1))
        .await
        .unwrap();
}
