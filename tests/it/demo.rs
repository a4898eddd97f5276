//! `vigile demo`: one command, nothing else running, and the tour works end to end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::common::consts::PW;
use crate::common::gateway::BIN;
use crate::common::http::{self, client, get, get_page, login_ok};
use crate::common::{free_port, poll_for, poll_until};

/// A running `vigile demo` (killed on drop), its base URL and the admin login it printed.
pub(crate) struct Demo {
    child: Child,
    pub base: String,
    pub email: String,
    pub password: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    // The banner names the site, the admin login and its password.
    let (email, password) = tokio::task::spawn_blocking(move || {
        let mut email = None;
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next() {
            let line = line.unwrap();
            if let Some(v) = line.trim().strip_prefix("Email:") {
                email = Some(v.trim().to_string());
            }
            if let Some(v) = line.trim().strip_prefix("Password:") {
                let found = (email.unwrap(), v.trim().to_string());
                // Keep draining stdout so the demo never writes into a closed pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return found;
            }
        }
        panic!("demo exited without printing its admin login");
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
