//! Issue 18: `SIGHUP` reloads the configuration file through the real binary: a changed
//! access rule, device cap and mail server apply to the next request (on a connection
//! opened before), nothing running is dropped, an invalid file changes nothing, and
//! restart-only sections are kept and named.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::both_backends;
use crate::common::backend::{Backend, Stack};
use crate::common::consts::{ANN, PW};
use crate::common::gateway::Gateway;
use crate::common::http::{self, client_ua, get, header, login, login_ok};
use crate::common::smtp::SmtpSink;
use crate::devices::post_on;

const LAPTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0";
const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148";

/// Sends SIGHUP and waits (up to 10 s) until `vigile_config_reloads_total{result}` has
/// moved by one.
async fn hang_up(gw: &Gateway, result: &str) {
    let series = format!("vigile_config_reloads_total{{result=\"{result}\"}}");
    let before = gw.metric(&series).await.expect("reload counter exported");
    gw.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metric(&series).await != Some(before + 1.0) {
        assert!(
            Instant::now() < deadline,
            "no reload counted as {result}:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One keep-alive GET on `conn`; returns the status code.
fn status_on(conn: &mut TcpStream, path: &str) -> u16 {
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
        conn.peer_addr().unwrap()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "connection closed");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("a length");
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).unwrap();
    head[9..12].parse().unwrap()
}

async fn rules_caps_and_mail_apply_on_sighup(backend: Backend) {
    let s: Stack = backend
        .stack("[access]\npublic = [\"/news/**\", \"/slow/**\"]\n[sessions]\nmax_per_member = 3\n")
        .await;
    s.gw.add_user(ANN, PW, false);
    let gw = s.gw.url();
    let mut conn = TcpStream::connect(("127.0.0.1", s.gw.port())).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(status_on(&mut conn, "/news/1"), 200, "public before");
    let laptop = client_ua(LAPTOP);
    login_ok(&laptop, &gw, ANN, PW).await;

    // The rule and the cap change, and mail goes to another server.
    let other_smtp = SmtpSink::start().await;
    s.gw.update_config(&format!(
        "[access]\npublic = []\n[sessions]\nmax_per_member = 1\n[mail]\nsmtp_url = \"{}\"\n",
        other_smtp.url()
    ));
    // A request under way when the signal comes finishes with the rules it started with.
    let under_way = tokio::spawn(
        http::bare_client()
            .get(format!("{gw}/slow/1500"))
            .header("Accept", "application/json")
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    hang_up(&s.gw, "ok").await;
    let r = under_way.await.unwrap().unwrap();
    assert_eq!(
        r.status(),
        200,
        "the request under way was served to its end"
    );
    assert_eq!(
        get(&http::client(), &format!("{gw}/slow/1"), false)
            .await
            .status(),
        401,
        "the next one meets the new rule"
    );

    // The connection opened before is still served, with the new rule.
    assert_eq!(status_on(&mut conn, "/news/1"), 401, "protected after");
    // The member signed in before keeps their session.
    let r = get(&laptop, &format!("{gw}/courses/1"), true).await;
    assert_eq!(r.status(), 200);
    // A second device is now over the cap of one: it must confirm a mailed code, which
    // the new mail server receives.
    let r = login(&client_ua(PHONE), &gw, ANN, PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/_vigile/verify"));
    other_smtp.wait_for_to(ANN, "").await;
    assert_eq!(
        s.smtp.count_to(ANN),
        0,
        "the first mail server got nothing after the reload"
    );
    assert!(
        s.gw.logs().contains("configuration reloaded"),
        "{}",
        s.gw.logs()
    );
}
both_backends!(rules_caps_and_mail_apply_on_sighup);

async fn an_invalid_file_changes_nothing_and_says_why(backend: Backend) {
    let s = backend.stack("[access]\npublic = [\"/news/**\"]\n").await;
    let gw = s.gw.url();
    let good = s.gw.config_text();
    std::fs::write(
        s.gw.config_path(),
        format!("{good}\n[lockout]\naccount_max_failures = \"many\"\n"),
    )
    .unwrap();
    hang_up(&s.gw, "error").await;
    let logs = s.gw.logs();
    assert!(
        logs.contains("configuration not reloaded") && logs.contains("account_max_failures"),
        "{logs}"
    );
    let anon = http::client();
    assert_eq!(
        get(&anon, &format!("{gw}/news/1"), false).await.status(),
        200
    );

    // Fixed, with a restart-only change beside a rule: the rule applies, the other is
    // named and kept (metrics still answer where they did).
    std::fs::write(s.gw.config_path(), &good).unwrap();
    s.gw.update_config("[access]\npublic = []\n[metrics]\nlisten = \"127.0.0.1:1\"\n");
    hang_up(&s.gw, "ok").await;
    assert_eq!(
        get(&anon, &format!("{gw}/news/1"), false).await.status(),
        401
    );
    assert!(
        s.gw.logs()
            .contains("changed in the file but only applied at the next restart"),
        "{}",
        s.gw.logs()
    );
    assert!(s.gw.logs().contains("metrics"));
}
both_backends!(an_invalid_file_changes_nothing_and_says_why);

/// A reload whose mail settings cannot be used (valid in the file, but the directory
/// cannot be made) keeps the running senders: a mail queued after it still goes out.
async fn unusable_mail_settings_keep_the_running_sender(backend: Backend) {
    let s = backend.stack("").await;
    s.gw.add_user(ANN, PW, false);
    // Under the config file itself: no directory can be made there.
    let beneath_a_file = s.gw.config_path().join("mails");
    s.gw.update_config(&format!(
        "[mail]\ntransport = \"file\"\nfile_dir = \"{}\"\n",
        beneath_a_file.display()
    ));
    hang_up(&s.gw, "error").await;
    assert!(s.gw.logs().contains("mail.file_dir"), "{}", s.gw.logs());
    let r = post_on(
        &http::client(),
        &s.gw.url(),
        "/_vigile/password/forgot",
        "/_vigile/password/forgot",
        &[("email", ANN)],
    )
    .await;
    assert_eq!(r.status(), 200);
    s.smtp.wait_for_to(ANN, "").await;
}
both_backends!(unusable_mail_settings_keep_the_running_sender);
