//! A real Redis Sentinel set on loopback: one master, one replica and three Sentinels
//! (`redis-server --sentinel`), quorum 2, a master called down after one second. Killed
//! on Drop. [`SentinelSet::kill_master`] crashes the master; the Sentinels then promote
//! the replica, which [`SentinelSet::wait_failover`] waits for.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::free_port;
use super::redis_server::BINARY_ENV;

pub const MASTER_NAME: &str = "mymaster";

/// How long the set may take to form, and a failover to happen.
const FORM_WITHIN: Duration = Duration::from_secs(30);

struct Process {
    port: u16,
    child: Option<Child>,
    /// Once killed, the port stays ours: the Sentinels keep calling it, and would make a
    /// replica of any server another test started there.
    held: Option<TcpListener>,
}

impl Process {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process and takes its port at once: whoever calls it there gets a
    /// connection that never answers, as from a dead host.
    fn kill_and_hold(&mut self) {
        self.kill();
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap_or_else(|e| {
            panic!(
                "could not hold the killed master's port {} ({e}): another fixture took it, \
                 and the Sentinels would turn its server into a replica",
                self.port
            )
        });
        self.held = Some(listener);
    }
}

pub struct SentinelSet {
    dir: TempDir,
    master: Process,
    replica: Process,
    sentinels: Vec<Process>,
}

fn binary() -> String {
    std::env::var(BINARY_ENV).unwrap_or_else(|_| "redis-server".into())
}

fn spawn(args: &[String], log: &Path) -> Child {
    Command::new(binary())
        .args(args)
        .arg("--logfile")
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{}` ({e}): the Sentinel tests need a real redis-server \
                 (Debian: apt-get install redis-server) and never skip",
                binary()
            )
        })
}

fn data_node(port: u16, dir: &Path, replica_of: Option<u16>) -> Child {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(dir.display().to_string());
    if let Some(master) = replica_of {
        args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
    }
    spawn(&args, &dir.join(format!("redis-{port}.log")))
}

/// One command on `port`, its reply as the `redis` crate reads it.
pub async fn command<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    command_as("", port, args).await
}

/// [`command`] as `user:password@` (empty: the default user).
pub async fn command_as<T: redis::FromRedisValue>(
    user: &str,
    port: u16,
    args: &[&str],
) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://{user}127.0.0.1:{port}/"))?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    tokio::time::timeout(Duration::from_secs(2), cmd.query_async(&mut conn))
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timed out")))?
}

impl SentinelSet {
    /// Starts the set and waits until every Sentinel knows the replica and the other two.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir for the Sentinel set");
        let master_port = free_port();
        let master = Process {
            port: master_port,
            child: Some(data_node(master_port, dir.path(), None)),
            held: None,
        };
        let replica_port = free_port();
        let replica = Process {
            port: replica_port,
            child: Some(data_node(replica_port, dir.path(), Some(master_port))),
            held: None,
        };
        let mut set = SentinelSet {
            dir,
            master,
            replica,
            sentinels: Vec::new(),
        };
        set.until("the replica is in sync", || async move {
            command::<String>(replica_port, &["INFO", "replication"])
                .await
                .is_ok_and(|i| i.contains("master_link_status:up"))
        })
        .await;
        for _ in 0..3 {
            let port = free_port();
            let conf = set.dir.path().join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 5000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    dir = set.dir.path().display()
                ),
            )
            .expect("write sentinel.conf");
            let log = set.dir.path().join(format!("sentinel-{port}.log"));
            let child = spawn(&[conf.display().to_string(), "--sentinel".into()], &log);
            set.sentinels.push(Process {
                port,
                child: Some(child),
                held: None,
            });
        }
        let ports: Vec<u16> = set.sentinels.iter().map(|s| s.port).collect();
        set.until("every Sentinel knows the replica and the others", || {
            let ports = ports.clone();
            async move {
                for port in ports {
                    let replicas: redis::RedisResult<Vec<redis::Value>> =
                        command(port, &["SENTINEL", "replicas", MASTER_NAME]).await;
                    let others: redis::RedisResult<Vec<redis::Value>> =
                        command(port, &["SENTINEL", "sentinels", MASTER_NAME]).await;
                    if !matches!((replicas, others), (Ok(r), Ok(o)) if r.len() == 1 && o.len() == 2)
                    {
                        return false;
                    }
                }
                true
            }
        })
        .await;
        set
    }

    async fn until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let what = format!("Sentinel set: {what}");
        super::until_within(&what, FORM_WITHIN, check, || self.logs()).await
    }

    /// `redis+sentinel://` naming the three Sentinels and the master.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}/0", hosts.join(","))
    }

    /// The port the Sentinels give as the master's now.
    pub async fn master_port(&self) -> Option<u16> {
        for s in &self.sentinels {
            let addr: redis::RedisResult<Vec<String>> = command(
                s.port,
                &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
            )
            .await;
            if let Ok(addr) = addr {
                return addr.get(1).and_then(|p| p.parse().ok());
            }
        }
        None
    }

    /// A Redis user `name` with `password` and every right, on the master and the replica.
    pub async fn add_user(&self, name: &str, password: &str) {
        for port in [self.master.port, self.replica.port] {
            let done: redis::RedisResult<String> = command(
                port,
                &[
                    "ACL",
                    "SETUSER",
                    name,
                    "on",
                    &format!(">{password}"),
                    "~*",
                    "&*",
                    "+@all",
                ],
            )
            .await;
            assert_eq!(done.as_deref(), Ok("OK"), "ACL SETUSER on {port}");
        }
    }

    /// Cuts the master off from the Sentinels (and its replica), which use the default
    /// user, while it stays up for `user` (a gateway's): it still calls itself master.
    pub async fn isolate_master(&self, user: &str, password: &str) {
        let port = self.master.port;
        let as_user = format!("{user}:{password}@");
        let off: redis::RedisResult<String> =
            command_as(&as_user, port, &["ACL", "SETUSER", "default", "off"]).await;
        assert_eq!(off.as_deref(), Ok("OK"));
        let _: redis::RedisResult<i64> =
            command_as(&as_user, port, &["CLIENT", "KILL", "USER", "default"]).await;
    }

    /// Crashes the master (SIGKILL).
    pub fn kill_master(&mut self) {
        self.master.kill_and_hold();
    }

    /// Waits until the Sentinels name the replica as master and it says it is one.
    pub async fn wait_failover(&self) {
        let replica = self.replica.port;
        self.until("the replica is promoted", || async move {
            let role: redis::RedisResult<Vec<redis::Value>> = command(replica, &["ROLE"]).await;
            let promoted =
                matches!(role.as_deref(), Ok([redis::Value::BulkString(r), ..]) if r == b"master");
            promoted && self.master_port().await == Some(replica)
        })
        .await;
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
            {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out += &format!("--- {} ---\n", p.display());
                for line in tail.into_iter().rev() {
                    out += line;
                    out += "\n";
                }
            }
        }
        out
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for s in &mut self.sentinels {
            s.kill();
        }
        self.replica.kill();
        self.master.kill();
    }
}
