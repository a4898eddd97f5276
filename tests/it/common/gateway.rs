//! The real `vigile` binary, started as a child process (`vigile serve --config FILE`)
//! with a configuration written into a temporary directory: free ports for the proxy and
//! the metrics listener, cheap Argon2 parameters, English pages, and whatever a test
//! merges on top. stdout and stderr go to files in that directory and are printed when a
//! test panics, which is usually the fastest way to see why.
//!
//! The process is killed on Drop. Two gateways can share one store (two instances on one
//! Redis, or one SQLite file): build the second with [`GatewayBuilder::share_store_with`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::free_port;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vigile");

/// Tries (50 ms apart) to wait for `/healthz` after a start: 60 s, for a loaded 2-core CI.
const READY_TRIES: u32 = 1200;

/// Fresh port pairs tried when a port picked was taken before the gateway could bind it
/// (the Redis and SMTP fixtures do the same).
const PORT_ATTEMPTS: u32 = 5;

/// What Pingora logs when a listening address is taken (it then retries for 30 s).
const PORT_IN_USE: &str = "is in use, will try again";

/// Configures and starts a [`Gateway`].
pub struct GatewayBuilder {
    name: String,
    upstream_url: String,
    store_url: Option<String>,
    store_dir: Option<Arc<TempDir>>,
    extra: Vec<toml::Table>,
    env: Vec<(String, String)>,
    first_port: Option<u16>,
}

impl GatewayBuilder {
    /// A gateway in front of `upstream_url`, on a fresh SQLite store unless told otherwise.
    pub fn new(upstream_url: impl Into<String>) -> Self {
        GatewayBuilder {
            name: "gateway".into(),
            upstream_url: upstream_url.into(),
            store_url: None,
            store_dir: None,
            extra: Vec::new(),
            env: Vec::new(),
            first_port: None,
        }
    }

    /// Tries `port` for the proxy listener first (instead of a free one); if it turns out
    /// to be taken, the gateway starts on another free port like any other. For testing
    /// that retry.
    pub fn first_port(mut self, port: u16) -> Self {
        self.first_port = Some(port);
        self
    }

    /// A label used when printing logs (handy with several instances).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Store URL: `redis://127.0.0.1:PORT/0` or `sqlite:///abs/path.db`.
    /// Default: `sqlite://<own tempdir>/vigile.db`.
    pub fn store(mut self, url: impl Into<String>) -> Self {
        self.store_url = Some(url.into());
        self
    }

    /// Uses the same store as `other` (same URL; a SQLite file is kept alive as long as
    /// either gateway lives).
    pub fn share_store_with(mut self, other: &Gateway) -> Self {
        self.store_url = Some(other.store_url.clone());
        self.store_dir = other.store_dir.clone();
        self
    }

    /// TOML merged over the base configuration, key by key within each section (later
    /// snippets win; arrays are replaced, not appended). Panics on invalid TOML.
    ///
    /// ```text
    /// .extra(r#"
    ///     [access]
    ///     public = ["/", "/free/**"]
    ///     [sessions]
    ///     idle_timeout = "2s"
    /// "#)
    /// ```
    pub fn extra(mut self, toml_snippet: &str) -> Self {
        let table: toml::Table = toml::from_str(toml_snippet)
            .unwrap_or_else(|e| panic!("invalid extra TOML: {e}\n{toml_snippet}"));
        self.extra.push(table);
        self
    }

    /// An environment variable for the child (e.g. `VIGILE_LOG=debug`, or a
    /// `VIGILE_SECTION__KEY` override). Inherited `VIGILE_*` variables other than
    /// `VIGILE_LOG` are always removed.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The configuration this builder would write, with these ports and store URL.
    pub fn config_table(&self, port: u16, metrics_port: u16, store_url: &str) -> toml::Table {
        let base = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[upstream]
url = "{upstream}"

[store]
url = "{store}"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[password]
argon2_memory_kib = 1024
argon2_iterations = 1

[i18n]
default = "en"
"#,
            upstream = toml_escape(&self.upstream_url),
            store = toml_escape(store_url),
        );
        let mut table: toml::Table = toml::from_str(&base).expect("base config is valid TOML");
        for extra in &self.extra {
            merge(&mut table, extra.clone());
        }
        table
    }

    /// Writes the configuration, starts the process and waits until `/healthz` answers
    /// `200` and the process listens on the proxy port. A port taken meanwhile by someone
    /// else (another test's process) is retried on fresh ports, up to [`PORT_ATTEMPTS`]
    /// pairs. Panics (printing the logs) if the process exits or never gets ready.
    pub async fn start(self) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("vigile-it-")
            .tempdir()
            .expect("create tempdir");
        let (store_url, store_dir) = match (self.store_url.clone(), self.store_dir.clone()) {
            (Some(url), dir) => (url, dir),
            (None, _) => {
                let store_dir = Arc::new(
                    tempfile::Builder::new()
                        .prefix("vigile-store-")
                        .tempdir()
                        .expect("create store tempdir"),
                );
                let url = format!("sqlite://{}", store_dir.path().join("vigile.db").display());
                (url, Some(store_dir))
            }
        };
        let config_path = dir.path().join("vigile.toml");
        let mut gw = Gateway {
            name: self.name.clone(),
            dir,
            config_path,
            port: 0,
            metrics_port: 0,
            store_url,
            store_dir,
            env: self.env.clone(),
            child: None,
            starts: 0,
        };
        let mut taken = Vec::new();
        for attempt in 0..PORT_ATTEMPTS {
            let port = match (attempt, self.first_port) {
                (0, Some(port)) => port,
                _ => free_port(),
            };
            let mut metrics_port = free_port();
            while metrics_port == port {
                metrics_port = free_port();
            }
            (gw.port, gw.metrics_port) = (port, metrics_port);
            let table = self.config_table(port, metrics_port, &gw.store_url);
            std::fs::write(
                &gw.config_path,
                toml::to_string(&table).expect("serialize config"),
            )
            .expect("write config");
            match gw.spawn_and_wait(true).await {
                Started::Ready => return gw,
                Started::PortTaken => taken.push((port, metrics_port)),
            }
        }
        panic!(
            "{}: a port was taken at each of {PORT_ATTEMPTS} tries (proxy, metrics): {taken:?}",
            gw.name
        );
    }
}

/// Whether process `pid` holds a listening socket on `port` (Linux: the socket inodes of
/// `/proc/net/tcp{,6}` against the process's descriptors). Not a mere TCP connect: a
/// squatter on the port (another test's listener) accepts connections too and would pass
/// for the gateway; nor a request, which would show in the metrics tests read.
fn listens_on(pid: u32, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if local_port == Some(port) && *state == LISTEN {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| target.to_str().is_some_and(|t| inodes.contains(t)))
    })
}

/// How a start went when it did not panic.
enum Started {
    Ready,
    /// A listening port was taken: the process was killed, try other ports.
    PortTaken,
}

/// A running `vigile serve`. Killed on Drop; logs printed if the test is panicking.
pub struct Gateway {
    name: String,
    dir: TempDir,
    config_path: PathBuf,
    port: u16,
    metrics_port: u16,
    store_url: String,
    store_dir: Option<Arc<TempDir>>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    starts: u32,
}

impl Gateway {
    /// Shorthand for [`GatewayBuilder::new`].
    pub fn builder(upstream_url: impl Into<String>) -> GatewayBuilder {
        GatewayBuilder::new(upstream_url)
    }

    /// A gateway in front of `upstream_url` with a fresh SQLite store and defaults.
    pub async fn start(upstream_url: impl Into<String>) -> Gateway {
        GatewayBuilder::new(upstream_url).start().await
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:MPORT` (serves `/metrics`, `/healthz`, `/readyz`).
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.metrics_port)
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temporary directory holding the config and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn store_url(&self) -> &str {
        &self.store_url
    }

    /// Whether the child process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("gateway is running").id()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the running process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// Waits (up to `within`) for the process to exit; returns its exit status.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            let child = self.child.as_mut().expect("gateway is running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} still running after {within:?}",
                self.name
            );
            tokio::time::sleep(super::POLL_INTERVAL).await;
        }
    }

    /// Pingora's zero-downtime upgrade, as an operator does it: starts `vigile serve
    /// --upgrade` on the same config (it waits on the upgrade socket), then sends the
    /// running process SIGQUIT, which hands its listening sockets over and drains.
    /// Returns once the old process has exited; the new one is then this gateway.
    pub async fn upgrade(&mut self) {
        let sock =
            std::env::temp_dir().join(format!("vigile-upgrade-127_0_0_1_{}.sock", self.port));
        let _ = std::fs::remove_file(&sock);
        self.starts += 1;
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--upgrade")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(self.log_file("stdout.log"))
            .stderr(self.log_file("stderr.log"));
        child_env(&mut cmd, &self.env);
        let mut new = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !sock.exists() {
            if let Ok(Some(status)) = new.try_wait() {
                panic!("the upgrading process exited before listening on {sock:?}: {status}");
            }
            assert!(std::time::Instant::now() < deadline, "no {sock:?}");
            tokio::time::sleep(super::POLL_INTERVAL).await;
        }
        self.signal(libc::SIGQUIT);
        let grace = Duration::from_secs(60);
        self.wait_exit(grace).await;
        self.child = Some(new);
    }

    /// Kills the process (SIGKILL) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process if running, then starts it again on the same ports, config and
    /// store, and waits until it is ready.
    pub async fn restart(&mut self) {
        self.kill();
        // The ports were ours a moment ago: Pingora's own retries cover a slow release.
        self.spawn_and_wait(false).await;
    }

    /// Merges `toml_snippet` into the config file on disk (takes effect at the next
    /// [`restart`](Self::restart)).
    pub fn update_config(&self, toml_snippet: &str) {
        let current = std::fs::read_to_string(&self.config_path).expect("read config");
        let mut table: toml::Table = toml::from_str(&current).expect("config is valid TOML");
        let extra: toml::Table = toml::from_str(toml_snippet)
            .unwrap_or_else(|e| panic!("invalid TOML: {e}\n{toml_snippet}"));
        merge(&mut table, extra);
        std::fs::write(
            &self.config_path,
            toml::to_string(&table).expect("serialize"),
        )
        .expect("write config");
    }

    /// The config file as written.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config_path).expect("read config")
    }

    /// Runs the real binary with `args` and `--config <path>`, feeding `stdin` if given,
    /// and returns its output (whatever the exit status). `--config` goes right after the
    /// first word (`user --config P add a@b.c`), where clap accepts it whether or not the
    /// option is global. Blocks the calling thread; see [`cli_async`](Self::cli_async) to
    /// keep the runtime free.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_cli(&self.env, &self.config_path, args, stdin)
    }

    /// [`cli`](Self::cli) on the blocking pool, so tasks of a current-thread test runtime
    /// (such as the upstream fixture) keep running meanwhile.
    pub async fn cli_async(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let env = self.env.clone();
        let config = self.config_path.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdin = stdin.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_cli(&env, &config, &args, stdin.as_deref())
        })
        .await
        .expect("cli task")
    }

    /// [`cli`](Self::cli), asserting a zero exit; returns stdout.
    pub fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "vigile {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `vigile user add EMAIL [--admin] --name <local part> --confirmed` with `password`
    /// on stdin; asserts success. The address is a known-good one (recovery mails reach
    /// it); tests of unconfirmed accounts run the command themselves.
    pub fn add_user(&self, email: &str, password: &str, admin: bool) {
        let name = email.split('@').next().unwrap_or(email).to_string();
        let mut args = vec!["user", "add", email, "--name", name.as_str(), "--confirmed"];
        if admin {
            args.push("--admin");
        }
        self.cli_ok(&args, Some(&format!("{password}\n")));
    }

    /// Body of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        let resp = super::http::bare_client()
            .get(format!("{}/metrics", self.metrics_url()))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status(), 200, "GET /metrics");
        resp.text().await.unwrap()
    }

    /// Value of one sample, written as in the exposition format without spaces, e.g.
    /// `vigile_logins_total{result="success"}` (labels in the order Prometheus prints
    /// them, i.e. sorted). `None` when the series is absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics_text().await, series)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default();
        let err = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        format!("--- stdout ---\n{out}--- stderr ---\n{err}")
    }

    /// Prints [`logs`](Self::logs) (captured by the test harness, shown on failure).
    pub fn print_logs(&self) {
        eprintln!(
            "===== {} ({}) logs, config {} =====\n{}\n{}===== end of {} logs =====",
            self.name,
            self.url(),
            self.config_path.display(),
            self.config_text(),
            self.logs(),
            self.name
        );
    }

    /// Starts the process and waits until it is ready. With `new_ports`, a listening port
    /// found taken (Pingora says so at once, then retries for 30 s) kills the process and
    /// returns [`Started::PortTaken`] so the caller picks others.
    async fn spawn_and_wait(&mut self, new_ports: bool) -> Started {
        self.starts += 1;
        let stdout = self.log_file("stdout.log");
        let stderr = self.log_file("stderr.log");
        let stderr_path = self.dir.path().join("stderr.log");
        let logged_before = std::fs::metadata(&stderr_path).map_or(0, |m| m.len() as usize);
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        child_env(&mut cmd, &self.env);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        self.child = Some(child);

        let health = format!("{}/healthz", self.metrics_url());
        let client = super::http::bare_client();
        for attempt in 0..READY_TRIES {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                // Drop prints the logs while this panic unwinds.
                panic!("{} exited before getting ready: {status}", self.name);
            }
            if new_ports {
                let logged = std::fs::read(&stderr_path).unwrap_or_default();
                let since = String::from_utf8_lossy(logged.get(logged_before..).unwrap_or(&[]));
                if since.contains(PORT_IN_USE) {
                    eprintln!(
                        "{}: port {} or {} is taken; trying others",
                        self.name, self.port, self.metrics_port
                    );
                    self.kill();
                    return Started::PortTaken;
                }
            }
            let healthy = matches!(
                client.get(&health).timeout(Duration::from_secs(2)).send().await,
                Ok(r) if r.status() == 200
            );
            if healthy
                && self
                    .child
                    .as_ref()
                    .is_some_and(|c| listens_on(c.id(), self.port))
            {
                return Started::Ready;
            }
            if attempt + 1 < READY_TRIES {
                tokio::time::sleep(super::POLL_INTERVAL).await;
            }
        }
        panic!(
            "{} not ready after {READY_TRIES} tries ({health})",
            self.name
        );
    }

    fn log_file(&self, name: &str) -> File {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(name))
            .expect("open log file");
        if self.starts > 1 {
            let _ = writeln!(f, "===== restart #{} =====", self.starts - 1);
        }
        f
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            self.print_logs();
        }
    }
}

fn run_cli(env: &[(String, String)], config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    let (first, rest) = args.split_first().expect("cli needs a command");
    cmd.arg(first)
        .arg("--config")
        .arg(config)
        .args(rest)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = config.parent() {
        cmd.current_dir(dir);
    }
    child_env(&mut cmd, env);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // A command that exits without reading stdin closes the pipe: not our error.
        let _ = pipe.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("wait for vigile")
}

/// Environment of every child: no inherited `VIGILE_*` variables (config overrides,
/// `VIGILE_CONFIG`) except `VIGILE_LOG`, so a developer can still raise the log level.
fn child_env(cmd: &mut Command, env: &[(String, String)]) {
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("VIGILE_") && key_str != "VIGILE_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd.env("RUST_BACKTRACE", "1");
    // Plain log files (tracing-subscriber writes ANSI colours unless NO_COLOR is set).
    cmd.env("NO_COLOR", "1");
    for (key, value) in env {
        cmd.env(key, value);
    }
}

/// Deep-merges `extra` into `base`: tables merge key by key, anything else replaces.
pub fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(dst)), toml::Value::Table(src)) => merge(dst, src),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Value of `series` (e.g. `name{label="v"}` or `name`) in a Prometheus text exposition.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name.trim() == series).then(|| value.trim().parse().ok())?
        })
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
