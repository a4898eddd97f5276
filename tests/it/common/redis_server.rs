//! A real `redis-server` process on a free port, without persistence, killed on Drop.
//!
//! Tests that need Redis use this instead of a mock so that Lua scripts, TTLs and
//! reconnection are exercised for real. `stop` / `start_again` (same port, empty data)
//! simulate a Redis outage. If `redis-server` is not installed the test panics with
//! instructions: it must never skip silently.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{free_port, POLL_INTERVAL};

/// Overrides the binary (default: `redis-server` from `PATH`).
pub const BINARY_ENV: &str = "VIGILE_TEST_REDIS_SERVER";

/// Readiness polls before giving up (× [`POLL_INTERVAL`]: 10 s).
const READY_TRIES: u32 = 200;

/// Fresh ports tried when the one picked was taken before Redis could bind it.
const PORT_ATTEMPTS: u32 = 5;

pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir for redis-server");
        let mut server = RedisServer {
            port: 0,
            dir,
            child: None,
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            if server.spawn_and_wait().await {
                return server;
            }
        }
        panic!(
            "redis-server did not start after {PORT_ATTEMPTS} ports; log:\n{}",
            server.log()
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/` for the store configuration.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: a crash, not a shutdown). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new, empty server on the same port after [`stop`](Self::stop).
    pub async fn start_again(&mut self) {
        self.stop();
        // The port was ours a moment ago; a few tries cover a slow release.
        for _ in 0..PORT_ATTEMPTS {
            if self.spawn_and_wait().await {
                return;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        panic!(
            "redis-server did not restart on port {}; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// Spawns the process and polls PING. `false` if it exited (port taken).
    async fn spawn_and_wait(&mut self) -> bool {
        let binary = std::env::var(BINARY_ENV).unwrap_or_else(|_| "redis-server".into());
        let spawned = Command::new(&binary)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`{binary}` not found. The store and gateway tests need a real Redis and never \
                 skip: install it (Debian/Ubuntu: `apt-get install redis-server`) or set \
                 {BINARY_ENV} to the redis-server binary."
            ),
            Err(e) => panic!("cannot run `{binary}`: {e}"),
        };
        let child = self.child.insert(child);
        for _ in 0..READY_TRIES {
            if let Ok(Some(_status)) = child.try_wait() {
                self.child = None;
                return false;
            }
            if ping(self.port).await {
                return true;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        panic!(
            "redis-server on port {} did not answer PING after {READY_TRIES} tries; log:\n{}",
            self.port,
            self.log()
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One PING over a plain socket, off the async executor; short timeouts keep it bounded.
async fn ping(port: u16) -> bool {
    tokio::task::spawn_blocking(move || {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let timeout = Duration::from_millis(500);
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(timeout));
        let _ = stream.set_write_timeout(Some(timeout));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    })
    .await
    .unwrap_or(false)
}
