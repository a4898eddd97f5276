//! Every metric of SPEC section 7, scraped from `/metrics` after the actions that move it,
//! on one gateway in front of a real Redis and a real SMTP server: each request decision,
//! each login result, each device-overflow resolution, lockouts and IP blocks, mails,
//! store timings and (with Redis stopped) store errors, and `/readyz` failing meanwhile.
//! SMS has no sender yet: its counter is exported at zero. Then the process metrics and
//! the build, compared with what the kernel says about the gateway process.

use crate::common::backend::Backend;
use crate::common::consts::{ANN, BOSS, PW};
use crate::common::gateway::{metric_value, Gateway};
use crate::common::http::{self, client, client_ua, get, login, login_ok};
use crate::common::{poll_for, poll_until};
use crate::devices::post_on;

async fn value(gw: &Gateway, series: &str) -> f64 {
    gw.metric(series)
        .await
        .unwrap_or_else(|| panic!("{series} is not exported"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spec_metric_moves_with_its_action() {
    let mut s = Backend::Redis
        .stack("[sessions]\nmax_per_member = 1\n[lockout]\nip_max_failures = 9\n")
        .await;
    let gw = s.gw.url();
    s.gw.add_user(ANN, PW, false);
    s.gw.add_user(BOSS, PW, true);
    let m = &s.gw;

    // Requests: each decision.
    let ann = client_ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0");
    get(&ann, &format!("{gw}/courses/1"), true).await; // login_redirect
    get(&ann, &format!("{gw}/courses/1"), false).await; // unauthorized
    login_ok(&ann, &gw, ANN, PW).await; // page, logins{success}
    get(&ann, &format!("{gw}/courses/1"), true).await; // proxied
    get(&ann, &format!("{gw}/admin/"), true).await; // forbidden
    for (decision, at_least) in [
        ("login_redirect", 1.0),
        ("unauthorized", 1.0),
        ("page", 2.0),
        ("proxied", 1.0),
        ("forbidden", 1.0),
    ] {
        let v = value(
            m,
            &format!("vigile_requests_total{{decision=\"{decision}\"}}"),
        )
        .await;
        assert!(v >= at_least, "{decision}: {v}");
    }
    assert!(value(m, "vigile_upstream_duration_seconds_count").await >= 1.0);
    assert!(value(m, "vigile_password_hash_seconds_count").await >= 1.0);
    assert_eq!(value(m, "vigile_sessions_active").await, 1.0);

    // Device cap: a second device (code mailed) cancels, then the policies change.
    let phone = client_ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148");
    login(&phone, &gw, ANN, PW).await;
    crate::devices::code_for(&s, ANN, 1).await;
    post_on(
        &phone,
        &gw,
        "/_vigile/verify",
        "/_vigile/devices/cancel",
        &[],
    )
    .await;
    login(&phone, &gw, ANN, PW).await;
    let code = crate::devices::code_for(&s, ANN, 2).await;
    post_on(
        &phone,
        &gw,
        "/_vigile/verify",
        "/_vigile/verify",
        &[("code", &code)],
    )
    .await;
    let html = http::get_page(&phone, &format!("{gw}/_vigile/devices/choose")).await;
    let victim = http::session_row(&html, |_| true);
    post_on(
        &phone,
        &gw,
        "/_vigile/devices/choose",
        "/_vigile/devices/choose",
        &[("session", &victim)],
    )
    .await;
    s.gw.cli_ok(&["settings", "set", "--on-overflow", "evict-oldest"], None);
    login_ok(&client(), &gw, ANN, PW).await;
    s.gw.cli_ok(&["settings", "set", "--on-overflow", "deny"], None);
    login(&client(), &gw, ANN, PW).await;
    for resolution in ["abandoned", "replaced", "evicted", "denied"] {
        let series = format!("vigile_device_overflows_total{{resolution=\"{resolution}\"}}");
        assert_eq!(value(m, &series).await, 1.0, "{resolution}");
    }
    assert_eq!(
        value(m, "vigile_logins_total{result=\"overflow\"}").await,
        3.0
    );
    // Mails are counted once the SMTP server has taken them.
    for line in [
        "vigile_mail_total{kind=\"device_code\",result=\"sent\"} 2",
        "vigile_mail_total{kind=\"device_overflow\",result=\"sent\"} 1",
    ] {
        poll_until(line, 200, || async {
            s.gw.metrics_text().await.contains(line)
        })
        .await;
    }

    // A pending sign-up's login, a wrong password, a lockout.
    http::signup(&client(), &gw, "new@example.com", PW, PW, "en").await;
    login(&client(), &gw, "new@example.com", PW).await;
    assert_eq!(
        value(m, "vigile_logins_total{result=\"not_activated\"}").await,
        1.0
    );
    for _ in 0..6 {
        login(&client(), &gw, BOSS, "Wrong-password-1").await;
    }
    assert_eq!(
        value(m, "vigile_logins_total{result=\"bad_credentials\"}").await,
        5.0
    );
    assert_eq!(
        value(m, "vigile_logins_total{result=\"locked\"}").await,
        1.0
    );
    assert_eq!(value(m, "vigile_account_lockouts_total").await, 1.0);

    // Three more failures from this address (nine in the window) block it; a form
    // fetched before the block is then refused.
    let late = client();
    let html = http::get_page(&late, &format!("{gw}/_vigile/login")).await;
    let form = http::form_with_action(&html, "/_vigile/login").unwrap();
    for _ in 0..3 {
        login(&client(), &gw, "nobody@example.com", "Wrong-password-1").await;
    }
    let fields = [("email", ANN), ("password", PW)];
    assert_eq!(http::submit(&late, &gw, &form, &fields).await.status(), 429);
    assert_eq!(value(m, "vigile_ip_blocks_total").await, 1.0);
    assert!(value(m, "vigile_logins_total{result=\"ip_blocked\"}").await >= 1.0);
    assert!(value(m, "vigile_requests_total{decision=\"blocked\"}").await >= 1.0);

    // Store timings by operation; SMS exported at zero.
    for op in [
        "session_open",
        "user_by_email",
        "challenge_check",
        "attempt_begin",
    ] {
        let series = format!("vigile_store_duration_seconds_count{{op=\"{op}\"}}");
        assert!(value(m, &series).await >= 1.0, "{op}");
    }
    assert_eq!(value(m, "vigile_sms_total{result=\"sent\"}").await, 0.0);

    // Redis stopped: store errors counted, 503s labelled, /readyz fails.
    assert_eq!(value(m, "vigile_store_errors_total").await, 0.0);
    s.redis.as_mut().unwrap().stop();
    let fresh = client();
    get(&fresh, &format!("{gw}/_vigile/login"), true).await;
    let c = http::client_with_headers(&[("cookie", "vigile_session=not-a-real-session-token")]);
    assert_eq!(
        get(&c, &format!("{gw}/courses/1"), true).await.status(),
        503
    );
    let m = &s.gw;
    assert!(value(m, "vigile_store_errors_total").await >= 1.0);
    assert!(value(m, "vigile_requests_total{decision=\"unavailable\"}").await >= 1.0);
    let ready = http::bare_client()
        .get(format!("{}/readyz", m.metrics_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

/// What `/proc` says about process `pid`: open descriptors, the soft limit on them,
/// resident bytes, CPU seconds (user + system).
fn proc_view(pid: u32) -> (f64, f64, f64, f64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as f64;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name: state is the 3rd field, utime the 14th, stime the 15th.
    let after = stat.rsplit_once(") ").unwrap().1;
    let fields: Vec<f64> = after
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf reads a constant of the C library.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (fields[10] + fields[11]) / ticks;
    (fds, max_fds, rss_kib * 1024.0, cpu)
}

/// The standard process metrics describe the gateway process as the kernel sees it, and
/// follow it (descriptors grow with the connections it holds); `vigile_build_info` names
/// the version of the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_metrics_and_build_info_describe_the_gateway() {
    let s = Backend::Sqlite.stack("").await;
    let pid = s.gw.pid();
    let exported = |text: &str, name: &str| {
        metric_value(text, name).unwrap_or_else(|| panic!("{name} is not exported:\n{text}"))
    };
    // One scraper on one kept-alive connection, so scrapes leave no connections closing
    // behind them in the counts.
    let scraper = http::bare_client();
    let scrape = || async {
        let resp = scraper
            .get(format!("{}/metrics", s.gw.metrics_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    };
    let text = scrape().await;
    let version = format!(
        "vigile_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(metric_value(&text, &version), Some(1.0), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("vigile_build_info"))
            .count(),
        1,
        "one build: {text}"
    );

    let text = scrape().await;
    let (fds, max_fds, rss, cpu) = proc_view(pid);
    let open = exported(&text, "process_open_fds");
    assert!(
        (open - fds).abs() <= 2.0,
        "process_open_fds {open}, /proc {fds}"
    );
    assert_eq!(exported(&text, "process_max_fds"), max_fds);
    let resident = exported(&text, "process_resident_memory_bytes");
    assert!(
        resident >= rss / 2.0 && resident <= rss * 2.0,
        "process_resident_memory_bytes {resident}, /proc VmRSS {rss}"
    );
    let seconds = exported(&text, "process_cpu_seconds_total");
    assert!(
        seconds <= cpu + 0.01 && seconds >= cpu.floor() - 1.0,
        "process_cpu_seconds_total {seconds}, /proc {cpu}"
    );

    // Twenty client connections held open: twenty more descriptors in the gateway.
    let before = exported(&scrape().await, "process_open_fds");
    let mut held = vec![];
    for _ in 0..20 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", s.gw.port()))
                .await
                .unwrap(),
        );
    }
    // Give or take two, as above: a background task (a mail sender's pooled connection,
    // the store) may close a descriptor meanwhile; it failed once in a full run.
    let now = poll_for("20 more open descriptors", 100, || async {
        let open = exported(&scrape().await, "process_open_fds");
        (open >= before + 18.0).then_some(open)
    })
    .await;
    assert!(
        (now - proc_view(pid).0).abs() <= 2.0,
        "process_open_fds {now} after the connections, /proc {}",
        proc_view(pid).0
    );
    drop(held);
}
