//! A configuration offering SMS codes as a second factor with nothing that delivers a text
//! (`[sms] transport = "log"`, the default) is refused by `vigile check-config`, naming
//! `twofactor.methods` and `sms`; with a transport that delivers (http, file) it passes.

use std::process::{Command, Output};

use crate::common::gateway::BIN;
use crate::contact::merged;

/// The smallest configuration the binary accepts, plus `extra`, written in `dir`.
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

const SMS_FACTOR: &str = "[twofactor]\nmethods = [\"sms\"]\n";

#[test]
fn check_config_refuses_sms_codes_that_nothing_delivers() {
    let dir = tempfile::tempdir().unwrap();
    for (name, sms) in [
        ("default.toml", ""),
        ("log.toml", "[sms]\ntransport = \"log\"\n"),
    ] {
        let path = config_with(dir.path(), name, &merged(&[SMS_FACTOR, sms]));
        let out = check_config(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{name}: accepted SMS codes that no transport delivers:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains("twofactor.methods") && stderr.contains("sms"),
            "{name}: the refusal does not name twofactor.methods and sms:\n{stderr}"
        );
    }
    for (name, sms) in [
        (
            "http.toml",
            "[sms]\ntransport = \"http\"\nhttp_url = \"http://127.0.0.1:9/send\"\n",
        ),
        ("file.toml", "[sms]\ntransport = \"file\"\n"),
    ] {
        let path = config_with(dir.path(), name, &merged(&[SMS_FACTOR, sms]));
        let out = check_config(&path);
        assert!(
            out.status.success(),
            "{name} refused ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The default methods need no SMS transport.
    let path = config_with(
        dir.path(),
        "no-sms.toml",
        "[twofactor]\nrequired_for = [\"admin\"]\n",
    );
    let out = check_config(&path);
    assert!(
        out.status.success(),
        "the default methods refused ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
