//! `vigile demo`: one command, nothing else running, and the tour works end to end;
//! Ctrl-C (or SIGTERM) stops it at once and removes its data directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::cookie::CookieStore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::browser::Browser;
use crate::common::consts::PW;
use crate::common::gateway::BIN;
use crate::common::http::{self, client, client_with_jar, get, get_page, login_ok};
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

/// The demo's live lesson page, its chat's WebSocket and its progress feed (the banner's
/// `Live:` line names the page).
const LIVE_PAGE: &str = "/courses/rust/live";
const CHAT: &str = "/live/chat";
const PROGRESS: &str = "/live/progress";
/// The demo admin's display name, which the chat puts in front of their lines.
const ADMIN_NAME: &str = "Demo Admin";
/// Longest wait for a chat line or a progress report (they come every 2 s), for a loaded
/// CI box; never a performance claim.
const LIVE_BOUND: Duration = Duration::from_secs(15);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket handshake to the demo's chat with `cookie` and extra `headers`: the socket,
/// or the status and body of the refusal.
async fn chat_ws(
    base: &str,
    cookie: Option<&str>,
    headers: &[(&'static str, &str)],
) -> Result<Ws, (u16, String)> {
    let url = format!("{}{CHAT}", base.replacen("http://", "ws://", 1));
    let mut request = url.as_str().into_client_request().unwrap();
    for (name, value) in cookie
        .map(|c| ("cookie", c))
        .into_iter()
        .chain(headers.iter().copied())
    {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    match tokio::time::timeout(LIVE_BOUND, tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) => {
            let body = r
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((r.status().as_u16(), body))
        }
        Ok(Err(e)) => panic!("WebSocket handshake to {url}: {e}"),
        Err(_) => panic!("WebSocket handshake to {url} took over {LIVE_BOUND:?}"),
    }
}

/// The next chat line (pings skipped).
async fn next_line(ws: &mut Ws) -> String {
    loop {
        let next = tokio::time::timeout(LIVE_BOUND, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no chat line within {LIVE_BOUND:?}"));
        match next {
            Some(Ok(Message::Text(t))) => return t.as_str().to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("waiting for a chat line, got {other:?}"),
        }
    }
}

/// A signed-in member's chat through the real `vigile demo`: what they send comes back to
/// every open connection of the room, in front of it the name the gateway vouches for (not
/// a `Remote-Name` the client sends, not a name typed in the message); binary frames are
/// ignored; another site's page cannot open it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_lesson_chat_names_the_member_the_gateway_knows() {
    let demo = start_demo().await;
    let base = demo.base.as_str();
    let (c, jar) = client_with_jar(http::UA_CHROME_WINDOWS);
    login_ok(&c, base, &demo.email, &demo.password).await;
    let cookie = jar
        .cookies(&base.parse().unwrap())
        .map(|v| v.to_str().unwrap().to_string())
        .expect("the session cookie");

    let forged = [
        ("remote-name", "Mallory"),
        ("remote-email", "mallory@evil.test"),
    ];
    let mut sender = chat_ws(base, Some(&cookie), &forged)
        .await
        .unwrap_or_else(|(s, b)| panic!("member's chat refused: {s}\n{b}"));
    let mut other_tab = chat_ws(base, Some(&cookie), &[])
        .await
        .unwrap_or_else(|(s, b)| panic!("member's chat refused: {s}\n{b}"));
    sender.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    sender
        .send(Message::text("Mallory: hello from the test"))
        .await
        .unwrap();
    let expected = format!("{ADMIN_NAME}: Mallory: hello from the test");
    assert_eq!(next_line(&mut sender).await, expected);
    assert_eq!(next_line(&mut other_tab).await, expected);

    // Another site's page, with the member's cookies (cross-site WebSocket hijacking): the
    // live server refuses a handshake whose Origin is not the site's own.
    match chat_ws(base, Some(&cookie), &[("origin", "http://evil.test")]).await {
        Ok(_) => panic!("a chat opened from another site's page"),
        Err((status, body)) => assert_eq!(status, 403, "{body}"),
    }
    let own = chat_ws(base, Some(&cookie), &[("origin", base)]).await;
    assert!(own.is_ok(), "the site's own page: {:?}", own.err());
}

/// Anonymous visitors never reach the live server: the gateway answers the chat's
/// handshake and the feed itself (401 for these API-style requests, or a redirect to the
/// sign-in page); the live server would say 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_live_chat_and_feed_refuse_anonymous_visitors() {
    let demo = start_demo().await;
    let base = demo.base.as_str();
    let by_the_gateway = |what: &str, status: u16, body: &str, location: Option<String>| {
        let refused = (status == 401 && body.contains("unauthenticated"))
            || (status == 302 && location.is_some_and(|l| l.contains("/_vigile/login")));
        assert!(refused, "anonymous {what}: {status} {body}");
    };
    match chat_ws(base, None, &[("remote-email", "mallory@evil.test")]).await {
        Ok(_) => panic!("an anonymous chat was opened"),
        Err((status, body)) => by_the_gateway("chat", status, &body, None),
    }
    for accept in ["text/event-stream", http::ACCEPT_HTML] {
        let r = http::bare_client()
            .get(format!("{base}{PROGRESS}"))
            .header("accept", accept)
            .header("remote-email", "mallory@evil.test")
            .send()
            .await
            .unwrap();
        let (status, location) = (r.status().as_u16(), http::header(&r, "location"));
        let body = r.text().await.unwrap();
        by_the_gateway(&format!("feed ({accept})"), status, &body, location);
    }
}

/// A member's progress feed through the real `vigile demo`: a `text/event-stream` of
/// reports about them, at least two of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_progress_feed_streams_to_a_member() {
    let demo = start_demo().await;
    let base = demo.base.as_str();
    let c = client();
    login_ok(&c, base, &demo.email, &demo.password).await;
    let mut r = c
        .get(format!("{base}{PROGRESS}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        http::header(&r, "content-type").as_deref(),
        Some("text/event-stream")
    );
    let mut text = String::new();
    let deadline = Instant::now() + 2 * LIVE_BOUND;
    while text.matches("event: progress").count() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, r.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "fewer than two reports within {:?}:\n{text}",
                    2 * LIVE_BOUND
                )
            })
            .unwrap()
            .unwrap_or_else(|| panic!("the feed ended:\n{text}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let member = format!(r#""member":"{}""#, demo.email);
    let reports: Vec<&str> = text.lines().filter(|l| l.starts_with("data: ")).collect();
    assert!(
        reports.len() >= 2 && reports.iter().all(|l| l.contains(&member)),
        "{text}"
    );
}

/// The live page in a real Chromium (English): its inline script runs under the site's
/// CSP, opens the chat and the feed through the gateway, shows the progress reports and
/// the member's own line under their name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_demo_live_page_chats_and_shows_progress() {
    let demo = start_demo().await;
    let base = demo.base.clone();
    let b = Browser::start("browser_demo_live_page_chats_and_shows_progress").await;
    b.run(async {
        b.step("live-page-asks-to-sign-in");
        b.goto(&format!("{base}/")).await;
        b.click(&format!("nav a[href='{LIVE_PAGE}']")).await;
        b.wait_path("/_vigile/login").await;

        b.step("sign-in");
        b.fill("#email", &demo.email).await;
        b.fill("#password", &demo.password).await;
        b.click("main form[action='/_vigile/login'] button[type='submit']")
            .await;
        b.wait_path(LIVE_PAGE).await;

        b.step("progress-and-chat");
        b.wait_text("#progress-log", "Lesson 1: 0% watched").await;
        b.wait_text("#chat-state", "Connected").await;
        b.fill("#chat-text", "hello from Chromium").await;
        b.click("#chat-form button[type='submit']").await;
        b.wait_text("#chat-log", &format!("{ADMIN_NAME}: hello from Chromium"))
            .await;
        b.wait_text("#progress-log", "Lesson 1: 20% watched").await;
    })
    .await;
    b.close().await;
}
