//! A real Redis Cluster on loopback: three masters (`redis-server --cluster-enabled yes`),
//! the 16 384 slots split between them, joined with `CLUSTER MEET`. Killed on Drop.
//! Each node's bus port is picked like its client port (the default, port + 10 000, may
//! not exist above 55 535).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::free_port;
use super::redis_server::BINARY_ENV;
use super::sentinel::command;

/// How long the cluster may take to agree that it is whole.
const FORM_WITHIN: Duration = Duration::from_secs(30);
const SLOTS: u16 = 16_384;
const MASTERS: u16 = 3;

struct Node {
    port: u16,
    child: Child,
}

pub struct ClusterSet {
    dir: TempDir,
    nodes: Vec<Node>,
}

fn binary() -> String {
    std::env::var(BINARY_ENV).unwrap_or_else(|_| "redis-server".into())
}

fn spawn(port: u16, bus: u16, dir: &Path) -> Child {
    Command::new(binary())
        .args([
            "--port",
            &port.to_string(),
            "--cluster-port",
            &bus.to_string(),
        ])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        .arg("--cluster-config-file")
        .arg(dir.join(format!("nodes-{port}.conf")))
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(format!("redis-{port}.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{}` ({e}): the Cluster tests need a real redis-server \
                 (Debian: apt-get install redis-server) and never skip",
                binary()
            )
        })
}

impl ClusterSet {
    /// Starts the three masters, gives each a third of the slots, introduces them, and
    /// waits until every node says the cluster is `ok`.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir for the cluster");
        let mut set = ClusterSet {
            dir,
            nodes: Vec::new(),
        };
        let mut buses = Vec::new();
        for _ in 0..MASTERS {
            let (port, bus) = (free_port(), free_port());
            let child = spawn(port, bus, set.dir.path());
            set.nodes.push(Node { port, child });
            buses.push(bus);
        }
        for node in &set.nodes {
            let port = node.port;
            set.until(&format!("node {port} answers"), || async move {
                command::<String>(port, &["PING"]).await.is_ok()
            })
            .await;
        }
        let per = SLOTS / MASTERS;
        for (i, node) in set.nodes.iter().enumerate() {
            let i = i as u16;
            let first = i * per;
            let last = if i + 1 == MASTERS {
                SLOTS - 1
            } else {
                first + per - 1
            };
            let (first, last) = (first.to_string(), last.to_string());
            let _: String = command(node.port, &["CLUSTER", "ADDSLOTSRANGE", &first, &last])
                .await
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        let first = set.nodes[0].port;
        for (node, bus) in set.nodes.iter().zip(&buses).skip(1) {
            let (port, bus) = (node.port.to_string(), bus.to_string());
            let _: String = command(first, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus])
                .await
                .expect("CLUSTER MEET");
        }
        let ports: Vec<u16> = set.nodes.iter().map(|n| n.port).collect();
        set.until("every node sees the cluster whole", || {
            let ports = ports.clone();
            async move {
                for port in ports {
                    let ok = command::<String>(port, &["CLUSTER", "INFO"])
                        .await
                        .is_ok_and(|i| {
                            i.contains("cluster_state:ok")
                                && i.contains(&format!("cluster_known_nodes:{MASTERS}"))
                        });
                    if !ok {
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
        let what = format!("Redis Cluster: {what}");
        super::until_within(&what, FORM_WITHIN, check, || self.logs()).await
    }

    /// `redis+cluster://` naming every node.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Kills the node on `port` (SIGKILL: a crash). Its slots stay without a master.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }

    /// The client port of the master holding `{vigile}`'s slot: the whole store.
    pub async fn store_master(&self) -> u16 {
        let first = self.nodes[0].port;
        let slot: i64 = command(first, &["CLUSTER", "KEYSLOT", "{vigile}"])
            .await
            .expect("CLUSTER KEYSLOT");
        let slots: Vec<(i64, i64, Vec<redis::Value>)> = command(first, &["CLUSTER", "SLOTS"])
            .await
            .expect("CLUSTER SLOTS");
        for (lo, hi, master) in slots {
            if (lo..=hi).contains(&slot) {
                if let Some(redis::Value::Int(port)) = master.get(1) {
                    return u16::try_from(*port).expect("a port");
                }
            }
        }
        panic!("no master holds slot {slot}");
    }

    /// The client ports of the nodes.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = self.dir.path().join(format!("redis-{}.log", n.port));
                format!(
                    "--- node {} ---\n{}",
                    n.port,
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for ClusterSet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("===== Redis Cluster logs =====\n{}", self.logs());
        }
    }
}
