//! A real browser for end-to-end tests: Debian's `chromium`, driven through a real
//! `chromedriver` (WebDriver) with the `fantoccini` client. Unit and reqwest tests prove
//! what the gateway answers; only a browser proves that people can actually use it: that
//! forms post what the handlers expect, cookies are kept and sent back, redirects land
//! where they should and links point at the right place.
//!
//! Each [`Browser`] is its own "device": its own `chromedriver` process on a free port,
//! its own WebDriver session and a fresh Chromium profile in a temporary directory, so
//! cookies never leak between two of them. Chromium runs headless, sends
//! `Accept-Language: en-US,en`, never uses a proxy and downloads nothing.
//!
//! Failures leave evidence: wrap a test's steps in [`Browser::run`] and, when anything in
//! it panics, a screenshot (and the page source) of the current page is written to
//! `test-artifacts/<test>/<step>.png` at the repository root, named after the last
//! [`Browser::step`]. Nest `run` calls to capture several browsers.
//!
//! Everything started here (chromedriver and the Chromium processes it spawns share one
//! process group) is killed on Drop; [`Browser::close`] ends the session gracefully first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use tempfile::TempDir;

use super::{free_port, poll_for, poll_until, POLL_INTERVAL};

/// Debian package `chromium`.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian package `chromium-driver`.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long to wait for an element, a URL or a text: generous, for a loaded 2-core CI.
pub const WAIT: Duration = Duration::from_secs(30);
/// Tries ([`POLL_INTERVAL`] apart) for chromedriver to answer `/status`: 30 s.
const DRIVER_READY_TRIES: u32 = 600;

/// Chromium switches: headless, sandbox off (tests run as root), and nothing that talks
/// to the network on its own.
const CHROME_ARGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-default-apps --disable-extensions --no-first-run --no-default-browser-check \
    --disable-breakpad --disable-crash-reporter --disable-quic --no-proxy-server \
    --lang=en-US --window-size=1280,900";

/// One browser "device". See the module docs.
pub struct Browser {
    client: Option<Client>,
    driver: Option<Child>,
    test: String,
    device: Option<String>,
    step: Mutex<String>,
    dir: TempDir,
}

impl Browser {
    /// A fresh browser for test `test` (names the artifacts folder).
    pub async fn start(test: &str) -> Browser {
        Self::launch(test, None).await
    }

    /// A further browser in the same test (another device, another profile); its
    /// artifacts go to `test-artifacts/<test>/<device>/`.
    pub async fn start_device(test: &str, device: &str) -> Browser {
        Self::launch(test, Some(device)).await
    }

    async fn launch(test: &str, device: Option<&str>) -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} (Debian package {package}) is missing: the browser tests need \
                 `apt-get install -y chromium chromium-driver` (scripts/test does it as root)"
            );
        }
        // Our connector speaks plain HTTP, but pick the process-wide rustls provider
        // anyway, as every test setup does, in case a dependency adds another one.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let dir = tempfile::Builder::new()
            .prefix("vigile-browser-")
            .tempdir()
            .expect("create browser tempdir");
        let port = free_port();
        let log = dir.path().join("chromedriver.log");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Chromium inherits the group: Drop kills them all with one signal.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {CHROMEDRIVER}: {e}"));
        let mut browser = Browser {
            client: None,
            driver: Some(driver),
            test: test.to_string(),
            device: device.map(str::to_string),
            step: Mutex::new("start".into()),
            dir,
        };
        browser.clear_artifacts();

        let status = format!("http://127.0.0.1:{port}/status");
        let http = super::http::bare_client();
        let driver = browser.driver.as_mut().expect("driver");
        poll_until("chromedriver /status", DRIVER_READY_TRIES, || {
            if let Ok(Some(exit)) = driver.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("chromedriver exited before answering ({exit}):\n{log}");
            }
            let req = http.get(&status).timeout(Duration::from_secs(2));
            async move {
                match req.send().await {
                    Ok(r) if r.status() == 200 => r
                        .json::<serde_json::Value>()
                        .await
                        .is_ok_and(|v| v["value"]["ready"] == true),
                    _ => false,
                }
            }
        })
        .await;

        let profile = browser.dir.path().join("profile");
        let mut args: Vec<String> = CHROME_ARGS.split_whitespace().map(String::from).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = serde_json::json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": { "intl": { "accept_languages": "en-US,en" } },
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("capabilities are an object")
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut builder = ClientBuilder::new(HttpConnector::new());
        let session = builder.capabilities(caps).connect(&webdriver);
        // Chromium starting: bounded like everything else, for a loaded 2-core CI.
        let client = match tokio::time::timeout(Duration::from_secs(60), session).await {
            Ok(Ok(client)) => client,
            other => {
                let log = std::fs::read_to_string(browser.dir.path().join("chromedriver.log"))
                    .unwrap_or_default();
                panic!("no WebDriver session from chromedriver: {other:?}\n{log}")
            }
        };
        browser.client = Some(client);
        browser
    }

    /// The fantoccini client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("browser is open")
    }

    /// Names what the test is doing now; a failure's screenshot is named after it.
    pub fn step(&self, name: &str) {
        *self.step.lock().unwrap() = name.to_string();
    }

    /// Runs `steps`; if they panic, saves a screenshot and the page source of the current
    /// page under `test-artifacts/`, then lets the panic go on.
    pub async fn run<T>(&self, steps: impl Future<Output = T>) -> T {
        match AssertUnwindSafe(steps).catch_unwind().await {
            Ok(value) => value,
            Err(panic) => {
                self.save_artifacts().await;
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Reloads the current page.
    pub async fn refresh(&self) {
        self.client().refresh().await.expect("refresh");
    }

    /// Waits (up to [`WAIT`]) for an element matching the CSS selector.
    pub async fn find(&self, css: &str) -> Element {
        self.client()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css:?} within {WAIT:?}: {e}"))
    }

    /// Whether an element matches the CSS selector right now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        self.client().find(Locator::Css(css)).await.is_ok()
    }

    /// Clears the input matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The `value` of the input matching `css`.
    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap_or_else(|e| panic!("value of {css}: {e}"))
            .unwrap_or_default()
    }

    /// Waits until the current URL's path is `path`; returns the URL.
    pub async fn wait_path(&self, path: &str) -> url::Url {
        let tries = (WAIT.as_millis() / POLL_INTERVAL.as_millis()) as u32;
        poll_for(&format!("the browser to reach {path}"), tries, || async {
            let url = self.client().current_url().await.ok()?;
            (url.path() == path).then_some(url)
        })
        .await
    }

    /// Waits until the text of the element matching `css` contains `needle`; returns it.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let tries = (WAIT.as_millis() / POLL_INTERVAL.as_millis()) as u32;
        poll_for(&format!("{css:?} to contain {needle:?}"), tries, || async {
            let element = self.client().find(Locator::Css(css)).await.ok()?;
            let text = element.text().await.ok()?;
            text.contains(needle).then_some(text)
        })
        .await
    }

    /// Ends the WebDriver session (Chromium quits), then stops chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
    }

    /// `test-artifacts/<test>/[<device>/]` under the repository root.
    pub fn artifacts_dir(&self) -> PathBuf {
        let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test-artifacts")
            .join(sanitize(&self.test));
        if let Some(device) = &self.device {
            dir.push(sanitize(device));
        }
        dir
    }

    /// Removes this browser's files from an earlier run, so the folder only ever shows
    /// the latest failure.
    fn clear_artifacts(&self) {
        let Ok(entries) = std::fs::read_dir(self.artifacts_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Best effort: a failing test must report its own panic, not one from here.
    async fn save_artifacts(&self) {
        let step = sanitize(&self.step.lock().unwrap());
        let dir = self.artifacts_dir();
        let Some(client) = self.client.as_ref() else {
            return;
        };
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("browser: cannot create {}: {e}", dir.display());
            return;
        }
        let limit = Duration::from_secs(10);
        let url = tokio::time::timeout(limit, client.current_url()).await;
        eprintln!("browser: failed at step {step:?} on {url:?}");
        let png = dir.join(format!("{step}.png"));
        match tokio::time::timeout(limit, client.screenshot()).await {
            Ok(Ok(bytes)) => match std::fs::write(&png, bytes) {
                Ok(()) => eprintln!("browser: screenshot {}", png.display()),
                Err(e) => eprintln!("browser: cannot write {}: {e}", png.display()),
            },
            other => eprintln!("browser: no screenshot: {other:?}"),
        }
        if let Ok(Ok(source)) = tokio::time::timeout(limit, client.source()).await {
            let _ = std::fs::write(dir.join(format!("{step}.html")), source);
        }
        let log = self.dir.path().join("chromedriver.log");
        let _ = std::fs::copy(&log, dir.join("chromedriver.log"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Dropping the last client handle asks chromedriver to end the session, but that
        // needs the runtime; the signal below does not.
        self.client.take();
        if let Some(mut driver) = self.driver.take() {
            if let Ok(pgid) = i32::try_from(driver.id()) {
                // SAFETY: kill(2) with a negative pid signals the process group we made
                // for chromedriver (and the Chromium processes it started).
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            let _ = driver.kill();
            let _ = driver.wait();
        }
    }
}

/// A step or test name as a file name: lower-case ASCII letters, digits, `-` and `_`.
fn sanitize(name: &str) -> String {
    let keep = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let s: String = name
        .chars()
        .map(|c| if keep(c) { c.to_ascii_lowercase() } else { '-' })
        .collect();
    if s.is_empty() {
        "step".into()
    } else {
        s
    }
}
