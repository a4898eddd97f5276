//! Real applications behind the real binary (issue 16): a Django site using Django's own
//! `RemoteUserMiddleware` and `RemoteUserBackend` (Debian's python3-django), and the Node
//! example of `examples/apps/node/server.js`, each started here as a child process.
//!
//! - `[headers] user_value` chooses what Django's users are named after: the member's
//!   email (`"email"`, and `"username"`, the login name, which is the email) or the
//!   stable id (`"id"`).
//! - A client's own `Remote-User`, `REMOTE_USER` or `Remote_User` header never changes the
//!   user Django sees, anonymous or signed in (the fixture serves with wsgiref, which
//!   would map every one of them to `HTTP_REMOTE_USER`), and never creates a Django user.
//! - The Node example reads the member from `Remote-User`, `Remote-Email`, `Remote-Groups`.
//!
//! A missing program (python3 with Django, node) fails the test with instructions: these
//! tests never skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::common::consts::{ANN, BOSS, PW};
use crate::common::gateway::{Gateway, GatewayBuilder};
use crate::common::http::{self, ACCEPT_JSON};

/// Overrides the interpreter for the Django fixture (default: the first of `python3` on
/// `PATH` and `/usr/bin/python3` that can import Django).
const PYTHON_ENV: &str = "VIGILE_TEST_PYTHON";
/// Overrides the Node binary (default: `node` on `PATH`, then `/usr/bin/node`).
const NODE_ENV: &str = "VIGILE_TEST_NODE";

/// Longest wait for an application to say it listens (Python on a loaded box).
const READY_BOUND: Duration = Duration::from_secs(60);

/// What a client claims, under every spelling an app framework could read as the user.
const SPOOFS: [(&str, &str); 4] = [
    ("Remote-User", "admin"),
    ("REMOTE_USER", "admin"),
    ("Remote_User", "admin"),
    ("remote-user", BOSS),
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/django_remote_user")
}

fn node_example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/apps/node/server.js")
}

/// An application process that printed `listening on http://127.0.0.1:PORT`; killed on
/// Drop (its stderr printed if the test is failing).
struct App {
    name: &'static str,
    child: Child,
    url: String,
    dir: TempDir,
}

impl App {
    /// Spawns `cmd` (stderr to a file in `dir`) and waits for its `listening on URL` line.
    fn spawn(name: &'static str, mut cmd: Command, dir: TempDir) -> App {
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout pipe");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining, so the application never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(READY_BOUND) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.path().join("stderr.log"));
                panic!(
                    "{name} did not say it listens within {READY_BOUND:?} ({other:?}); stderr:\n{}",
                    log.unwrap_or_default()
                );
            }
        };
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name} printed {line:?}, not `listening on URL`"))
            .trim()
            .to_string();
        App {
            name,
            child,
            url,
            dir,
        }
    }

    fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("stderr.log"));
            eprintln!(
                "===== {} stderr =====\n{}===== end =====",
                self.name,
                log.unwrap_or_default()
            );
        }
    }
}

/// The first interpreter that runs `probe` successfully among `$env_var` (if set) or
/// `defaults`; panics with `install` as the remedy when none does.
fn find_program(env_var: &str, defaults: &[&str], probe: &[&str], install: &str) -> PathBuf {
    let candidates: Vec<String> = match std::env::var(env_var) {
        Ok(p) if !p.is_empty() => vec![p],
        _ => defaults.iter().map(|s| s.to_string()).collect(),
    };
    let mut tried = Vec::new();
    for candidate in &candidates {
        match Command::new(candidate)
            .args(probe)
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                // sys.executable resolves shims (pyenv), so that kill() hits the server.
                let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
                return if exe.starts_with('/') {
                    PathBuf::from(exe)
                } else {
                    PathBuf::from(candidate)
                };
            }
            Ok(out) => tried.push(format!(
                "{candidate}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => tried.push(format!("{candidate}: {e}")),
        }
    }
    panic!(
        "this test needs {install}; tried:\n  {}\n(set {env_var} to another binary)",
        tried.join("\n  ")
    );
}

fn python_with_django() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        find_program(
            PYTHON_ENV,
            &["python3", "/usr/bin/python3"],
            &["-c", "import sys, django; print(sys.executable)"],
            "python3 with Django: never skipped; install it (Debian/Ubuntu: \
             `apt-get install python3-django`; scripts/test does it when run as root)",
        )
    })
}

fn node() -> &'static PathBuf {
    static NODE: OnceLock<PathBuf> = OnceLock::new();
    NODE.get_or_init(|| {
        find_program(
            NODE_ENV,
            &["node", "/usr/bin/node"],
            &["-e", "console.log(process.execPath)"],
            "Node.js (`node`): never skipped; install it (Debian/Ubuntu: \
             `apt-get install nodejs`; scripts/test does it when run as root)",
        )
    })
}

/// The Django fixture on a fresh SQLite database (migrated first), on a free port.
async fn start_django() -> App {
    tokio::task::spawn_blocking(|| {
        let python = python_with_django();
        let dir = tempfile::Builder::new()
            .prefix("vigile-django-")
            .tempdir()
            .unwrap();
        let db = dir.path().join("db.sqlite3");
        let django = |args: &[&str]| {
            let mut cmd = Command::new(python);
            cmd.args(args)
                .current_dir(fixture_dir())
                .env("DJANGO_DB", &db)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env("PYTHONUNBUFFERED", "1");
            cmd
        };
        let out = django(&["manage.py", "migrate", "--noinput", "-v", "0"])
            .stdin(Stdio::null())
            .output()
            .expect("run manage.py migrate");
        assert!(
            out.status.success(),
            "manage.py migrate failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        App::spawn("django", django(&["serve.py"]), dir)
    })
    .await
    .unwrap()
}

/// `examples/apps/node/server.js` on a free port.
async fn start_node() -> App {
    tokio::task::spawn_blocking(|| {
        let dir = tempfile::Builder::new()
            .prefix("vigile-node-")
            .tempdir()
            .unwrap();
        let mut cmd = Command::new(node());
        cmd.arg(node_example())
            .env("PORT", "0")
            .env("HOST", "127.0.0.1");
        App::spawn("node", cmd, dir)
    })
    .await
    .unwrap()
}

/// A gateway in front of `app`, with `/public/**` open to anyone and `extra` merged.
async fn gateway(app: &App, extra: &str) -> Gateway {
    GatewayBuilder::new(app.url())
        .extra("[access]\npublic = [\"/\", \"/public/**\"]\n[mail]\ntransport = \"log\"\n")
        .extra(extra)
        .start()
        .await
}

/// `email` made a member and signed in on `gw`; the client carries the session.
async fn member(gw: &Gateway, email: &str) -> reqwest::Client {
    gw.add_user(email, PW, false);
    let client = http::client();
    http::login_ok(&client, &gw.url(), email, PW).await;
    client
}

/// The member's stable id, as `vigile user show` prints it.
fn stable_id(gw: &Gateway, email: &str) -> String {
    let shown = gw.cli_ok(&["user", "show", email], None);
    shown
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap_or_else(|| panic!("no id in `vigile user show`:\n{shown}"))
        .trim()
        .to_string()
}

/// GET `path` through the gateway with `client`, adding `headers`; the body of the `200`.
async fn text(
    client: &reqwest::Client,
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut request = client
        .get(format!("{}{path}", gw.url()))
        .header("accept", ACCEPT_JSON);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The usernames Django has created, asked of Django directly.
async fn django_users(django: &App) -> Vec<String> {
    let body = http::bare_client()
        .get(format!("{}/users/", django.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines().map(str::to_string).collect()
}

/// The Django user seen by an anonymous visitor and by `ann` (signed in on `gw`), with and
/// without forged identity headers: the anonymous one is always anonymous, `ann` always
/// `expected`.
async fn django_sees_only_the_gateways_user(django: &App, gw: &Gateway, expected: &str) {
    // Anonymous on a public path: Django sees nobody, whatever the client claims.
    let anonymous = http::bare_client();
    assert_eq!(text(&anonymous, gw, "/public/whoami/", &[]).await, "");
    for spoof in SPOOFS {
        assert_eq!(
            text(&anonymous, gw, "/public/whoami/", &[spoof]).await,
            "",
            "an anonymous client's {spoof:?} reached Django"
        );
    }
    assert_eq!(
        text(&anonymous, gw, "/public/whoami/", &SPOOFS).await,
        "",
        "an anonymous client's forged headers reached Django"
    );

    // A member: Django sees the member, and only the member.
    let ann = member(gw, ANN).await;
    assert_eq!(text(&ann, gw, "/whoami/", &[]).await, expected);
    for spoof in SPOOFS {
        assert_eq!(
            text(&ann, gw, "/whoami/", &[spoof]).await,
            expected,
            "a member's {spoof:?} changed the user Django sees"
        );
    }
    assert_eq!(
        text(&ann, gw, "/whoami/", &SPOOFS).await,
        expected,
        "a member's forged headers changed the user Django sees"
    );
    // On a public path a member is either recognised or anonymous, never someone else.
    let public = text(&ann, gw, "/public/whoami/", &SPOOFS).await;
    assert!(
        public.is_empty() || public == expected,
        "on a public path Django saw {public:?}"
    );

    // No forged name ever became a Django user.
    assert_eq!(django_users(django).await, [expected.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_users_are_the_members_emails_with_user_value_email() {
    let django = start_django().await;
    let gw = gateway(&django, "[headers]\nuser_value = \"email\"\n").await;
    django_sees_only_the_gateways_user(&django, &gw, ANN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_users_are_the_members_login_names_with_user_value_username() {
    let django = start_django().await;
    let gw = gateway(&django, "[headers]\nuser_value = \"username\"\n").await;
    // Members sign in with their email address: that is their login name.
    django_sees_only_the_gateways_user(&django, &gw, ANN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_users_are_stable_ids_with_user_value_id() {
    let django = start_django().await;
    let gw = gateway(&django, "[headers]\nuser_value = \"id\"\n").await;
    gw.add_user(ANN, PW, false);
    let id = stable_id(&gw, ANN);
    assert!(!id.is_empty() && id != ANN, "{id:?}");
    // `member` adds the account again: sign in without it.
    let ann = http::client();
    http::login_ok(&ann, &gw.url(), ANN, PW).await;
    assert_eq!(text(&ann, &gw, "/whoami/", &[]).await, id);
    assert_eq!(
        text(&ann, &gw, "/whoami/", &SPOOFS).await,
        id,
        "a member's forged headers changed the user Django sees"
    );
    assert_eq!(
        text(&http::bare_client(), &gw, "/public/whoami/", &SPOOFS).await,
        ""
    );
    assert_eq!(django_users(&django).await, [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_example_sees_the_member_through_the_gateway() {
    let app = start_node().await;
    let gw = gateway(&app, "").await;

    // Anonymous on a public path: no member.
    let body = text(&http::bare_client(), &gw, "/public/hello", &SPOOFS).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["path"], "/public/hello", "{body}");
    assert!(json["member"].is_null(), "{body}");

    // A member: the stable id (the default user_value), the address, the roles.
    let ann = member(&gw, ANN).await;
    let id = stable_id(&gw, ANN);
    let body = text(&ann, &gw, "/courses/1", &SPOOFS).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let seen = &json["member"];
    assert_eq!(seen["user"], id.as_str(), "{body}");
    assert_eq!(seen["email"], ANN, "{body}");
    assert_eq!(seen["groups"], serde_json::json!(["member"]), "{body}");
    assert_eq!(seen["admin"], false, "{body}");
}
