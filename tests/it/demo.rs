//! `vigile demo`: one command, nothing else running, and the tour works end to end;
//! Ctrl-C (or SIGTERM) stops it at once and removes its data directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::consts::PW;
use crate::common::gateway::BIN;
use crate::common::http::{self, client, get, get_page, login_ok};
use crate::common::{free_port, poll_for, poll_until};

/// How long a stopped demo may take to be gone: "a second or two", with room for a
/// loaded 2-core CI machine; far below the 25 s of a graceful `vigile serve` stop.
const STOP_BOUND: Duration = Duration::from_secs(5);

/// A running `vigile demo`, its base URL, the admin login and the data directory it
/// printed. Dropped: stopped like a user does (Ctrl-C), killed if that fails.
pub(crate) struct Demo {
    child: Child,
    pub base: String,
    pub email: String,
    pub password: String,
    pub data: PathBuf,
}

impl Demo {
    /// Sends `signal` (SIGINT is what Ctrl-C sends) and waits up to [`STOP_BOUND`] for
    /// the exit; `None` if the process is still running then.
    fn stop(&mut self, signal: i32) -> Option<ExitStatus> {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
        let deadline = Instant::now() + STOP_BOUND;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && self.stop(libc::SIGINT).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `vigile demo` on a free port and waits until it answers.
pub(crate) async fn start_demo() -> Demo {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["demo", "--port", &port.to_string()])
        .env_remove("VIGILE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The banner names the site, the admin login and its password, the data directory.
    let (email, password, data) = tokio::task::spawn_blocking(move || {
        let (mut email, mut password) = (None, None);
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next() {
            let line = line.unwrap();
            let line = line.trim();
            if let Some(v) = line.strip_prefix("Email:") {
                email = Some(v.trim().to_string());
            }
            if let Some(v) = line.strip_prefix("Password:") {
                password = Some(v.trim().to_string());
            }
            if let Some(v) = line.strip_prefix("Data:") {
                let dir = v.trim().split(" (").next().unwrap();
                let found = (email.unwrap(), password.unwrap(), PathBuf::from(dir));
                // Keep draining stdout so the demo never writes into a closed pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return found;
            }
        }
        panic!("demo exited without printing its admin login and data directory");
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    poll_until("the demo to listen", 1200, || async {
        http::bare_client()
            .get(format!("{base}/"))
            .send()
            .await
            .is_ok()
    })
    .await;
    Demo {
        child,
        base,
        email,
        password,
        data,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_whole_tour_with_nothing_installed() {
    let demo = start_demo().await;
    let (base, email, password) = (
        demo.base.as_str(),
        demo.email.as_str(),
        demo.password.as_str(),
    );
    let c = client();
    let home = http::decode_entities(&get_page(&c, &format!("{base}/")).await);
    // French by default, as the demo's configuration says.
    assert!(
        home.contains("Aucun en-tête d'identité"),
        "anonymous visitor: {home}"
    );
    assert!(!home.contains("remote-user"));
    let r = get(&c, &format!("{base}/courses/rust"), true).await;
    assert_eq!(r.status(), 302, "members-only course needs a login");

    login_ok(&c, base, email, password).await;
    let course = get_page(&c, &format!("{base}/courses/rust")).await;
    assert!(
        course.contains("remote-email") && course.contains(email),
        "{course}"
    );
    let admin = get_page(&c, &format!("{base}/admin/")).await;
    assert!(admin.contains("member,admin"), "{admin}");
    let outbox = http::decode_entities(&get_page(&c, &format!("{base}/_vigile/dev/mail")).await);
    assert!(outbox.contains("Boîte d'envoi"), "{outbox}");

    // A visitor signs up; the activation mail shows in the dev outbox with a clickable
    // link, which signs them in.
    let visitor = client();
    let resp = http::signup(&visitor, base, "visitor@example.com", PW, PW, "fr").await;
    assert_eq!(resp.status(), 200);
    let link = poll_for("the activation mail in the dev outbox", 400, || async {
        let page = http::decode_entities(&get_page(&c, &format!("{base}/_vigile/dev/mail")).await);
        page.contains("Veuillez activer votre compte")
            .then(|| {
                page.split("href=\"")
                    .skip(1)
                    .filter_map(|rest| rest.split('"').next())
                    .find(|href| href.contains("/_vigile/activate?token="))
                    .map(str::to_string)
            })
            .flatten()
    })
    .await;
    assert!(link.starts_with(base), "{link}");
    assert_eq!(get(&visitor, &link, true).await.status(), 302);
    let account = get_page(&visitor, &format!("{base}/_vigile/account")).await;
    assert!(account.contains("visitor@example.com"), "{account}");
}

/// Ctrl-C (SIGINT), a plain `kill` (SIGTERM) or a closed terminal (SIGHUP) stops the demo
/// within a second or two, with a clean exit, and its data directory (the store, written
/// to by a sign-in here) is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_demo_is_quick_and_removes_its_data() {
    for (name, signal) in [
        ("SIGINT", libc::SIGINT),
        ("SIGTERM", libc::SIGTERM),
        ("SIGHUP", libc::SIGHUP),
    ] {
        let mut demo = start_demo().await;
        login_ok(&client(), &demo.base, &demo.email, &demo.password).await;
        assert!(demo.data.join("vigile.db").exists(), "{:?}", demo.data);
        let status = tokio::task::block_in_place(|| demo.stop(signal))
            .unwrap_or_else(|| panic!("{name}: the demo still runs after {STOP_BOUND:?}"));
        assert_eq!(status.code(), Some(0), "{name}: {status}");
        assert!(
            !demo.data.exists(),
            "{name}: the demo left its data directory {:?}",
            demo.data
        );
    }
}
