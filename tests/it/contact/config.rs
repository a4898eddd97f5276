//! A configuration that must text codes to members with nothing that delivers a text is
//! refused by `vigile check-config` (naming `sms.transport`) and at start, not discovered
//! at a member's login; the same with a transport that delivers, or in development, or
//! without the mobile asked, passes. An HTTP transport whose call could never be built is
//! refused too. And a campaign that needs SMS cannot be started when none would arrive.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::backend::Backend;
use crate::common::consts::ANN;
use crate::common::gateway::BIN;

use super::*;

/// The smallest configuration the binary accepts, plus `extra`.
fn config_with(dir: &std::path::Path, name: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let base = "[upstream]\nurl = \"http://127.0.0.1:8080\"\n";
    std::fs::write(&path, merged(&[base, extra])).unwrap();
    path
}

fn check_config(path: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("VIGILE_CONFIG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const MUST_TEXT: &str = "[contact]\nrequire_confirmed = true\nask_mobile = true\n";

#[test]
fn check_config_refuses_texting_codes_through_the_log_transport() {
    let dir = tempfile::tempdir().unwrap();

    let refused = [
        ("log.toml", "[sms]\ntransport = \"log\"\n"),
        // "log" is also the default.
        ("default.toml", ""),
    ];
    for (name, sms) in refused {
        let path = config_with(dir.path(), name, &merged(&[MUST_TEXT, sms]));
        let out = check_config(&path);
        assert!(
            !out.status.success(),
            "{name}: accepted a configuration that texts codes through no transport:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr(&out).contains("sms.transport"),
            "{name}: the refusal does not name sms.transport:\n{}",
            stderr(&out)
        );
    }

    let accepted = [
        (
            "http.toml",
            merged(&[
                MUST_TEXT,
                "[sms]\ntransport = \"http\"\nhttp_url = \"http://127.0.0.1:9/send\"\n",
            ]),
        ),
        (
            "file.toml",
            merged(&[MUST_TEXT, "[sms]\ntransport = \"file\"\n"]),
        ),
        (
            "dev.toml",
            merged(&[
                MUST_TEXT,
                "[sms]\ntransport = \"log\"\n[server]\ndev_mode = true\n",
            ]),
        ),
        (
            "email-only.toml",
            "[contact]\nrequire_confirmed = true\nask_mobile = false\n[sms]\ntransport = \"log\"\n"
                .to_string(),
        ),
        (
            "not-required.toml",
            "[contact]\nrequire_confirmed = false\nask_mobile = true\n".to_string(),
        ),
    ];
    for (name, extra) in accepted {
        let path = config_with(dir.path(), name, &extra);
        let out = check_config(&path);
        assert!(
            out.status.success(),
            "{name} refused ({}):\n{}",
            out.status,
            stderr(&out)
        );
    }
}

#[test]
fn check_config_refuses_an_http_transport_that_cannot_be_built() {
    let dir = tempfile::tempdir().unwrap();
    let http = "[sms]\ntransport = \"http\"\nhttp_url = \"https://sms.example/send\"\n";
    let cases = [
        (
            "no-to.toml",
            "[sms]\nhttp_body = '{\"text\":\"{text}\"}'\n",
            "sms.http_body",
        ),
        (
            "no-text.toml",
            "[sms]\nhttp_body = '{\"to\":\"{to}\"}'\n",
            "sms.http_body",
        ),
        (
            "ftp.toml",
            "[sms]\nhttp_url = \"ftp://sms.example/send\"\n",
            "sms.http_url",
        ),
        (
            "no-url.toml",
            "[sms]\nhttp_url = \"sms.example\"\n",
            "sms.http_url",
        ),
    ];
    for (name, extra, key) in cases {
        let path = config_with(dir.path(), name, &merged(&[http, extra]));
        let out = check_config(&path);
        assert!(
            !out.status.success() && stderr(&out).contains(key),
            "{name}: expected a refusal naming {key} ({}):\n{}",
            out.status,
            stderr(&out)
        );
    }
    // The control: the same transport with a body holding both, to an https URL.
    let path = config_with(
        dir.path(),
        "good.toml",
        &merged(&[
            http,
            "[sms]\nhttp_body = '{\"to\":\"{to}\",\"text\":\"{text}\",\"from\":\"Vigile\"}'\n",
        ]),
    );
    let out = check_config(&path);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `vigile serve` with the same refused configuration exits at once, saying why.
#[test]
fn serve_refuses_to_start_when_codes_cannot_be_texted() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let metrics = crate::common::free_port();
    let extra = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
         [store]\nurl = \"sqlite://{}/vigile.db\"\n{MUST_TEXT}",
        dir.path().display()
    );
    let path = config_with(dir.path(), "serve.toml", &extra);
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("VIGILE_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vigile serve started with a configuration that texts codes through \"log\"");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success());
    assert!(stderr(&out).contains("sms.transport"), "{}", stderr(&out));
}

/// A campaign asking for the mobile when texts go nowhere (`transport = "log"` outside
/// development) is refused and starts nothing; asking for the email only is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_with_mobile_refused_when_texts_go_nowhere() {
    let s = Backend::Sqlite.stack("[sms]\ntransport = \"log\"\n").await;
    confirmed_member(&s.gw, ANN, Some(MOBILE_E164));
    for args in [
        vec!["campaign", "start", "--all"],
        vec!["campaign", "start", "--all", "--channels", "email,mobile"],
        vec!["campaign", "start", "--all", "--channels", "mobile"],
    ] {
        let out = s.gw.cli_async(&args, None).await;
        assert!(
            !out.status.success(),
            "{} started while texts go nowhere:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr(&out).contains("sms") || stderr(&out).contains("SMS"),
            "{}: the refusal does not say why:\n{}",
            args.join(" "),
            stderr(&out)
        );
    }
    let show = user_show(&s.gw, ANN).await;
    assert_eq!(
        show_line(&show, "campaign"),
        None,
        "a refused campaign asked {ANN}:\n{show}"
    );
    assert!(
        show_line(&show, "email").is_some_and(|l| l.contains("(confirmed")),
        "a refused campaign unconfirmed the email:\n{show}"
    );
    assert!(
        show_line(&show, "mobile").is_some_and(|l| l.contains("(confirmed")),
        "a refused campaign unconfirmed the mobile:\n{show}"
    );

    // The control: the email alone needs no SMS.
    let (_, asked) = campaign_start(&s.gw, &["--all", "--channels", "email"]).await;
    assert_eq!(asked, 1);
}
