//! A real Redis Cluster on loopback: three masters (`redis-server --cluster-enabled yes`),
//! the 16 384 slots split between them, joined with `CLUSTER MEET`, and with
//! [`ClusterSet::with_replicas`] one replica each, which the Cluster promotes when its
//! master dies (after `cluster-node-timeout`, 2 s here). Killed on Drop.
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
/// The hash tag of the site's own records (`Shard::GLOBAL`).
pub const SITE_TAG: &str = "{vigile}";

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
        Self::form(false).await
    }

    /// [`Self::start`], plus a replica of each master, in sync before this returns.
    pub async fn with_replicas() -> Self {
        Self::form(true).await
    }

    async fn form(replicas: bool) -> Self {
        let count = if replicas { 2 * MASTERS } else { MASTERS };
        let dir = tempfile::tempdir().expect("tempdir for the cluster");
        let mut set = ClusterSet {
            dir,
            nodes: Vec::new(),
        };
        let mut buses = Vec::new();
        for _ in 0..count {
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
        for (i, node) in set.nodes.iter().take(MASTERS.into()).enumerate() {
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
        let meets: Vec<(String, String)> = set
            .nodes
            .iter()
            .zip(&buses)
            .skip(1)
            .map(|(node, bus)| (node.port.to_string(), bus.to_string()))
            .collect();
        let ports: Vec<u16> = set.nodes.iter().map(|n| n.port).collect();
        // A handshake not done within the node timeout is dropped (a loaded machine), so
        // the introductions are made again, every second, until every node knows every other.
        let polls = std::sync::atomic::AtomicU32::new(0);
        set.until("every node knows every other", || {
            let (ports, meets) = (ports.clone(), meets.clone());
            let poll = polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                let mut whole = true;
                for port in &ports {
                    whole &= command::<String>(*port, &["CLUSTER", "INFO"])
                        .await
                        .is_ok_and(|i| i.contains(&format!("cluster_known_nodes:{count}")));
                }
                if !whole && poll % 10 == 9 {
                    for (port, bus) in &meets {
                        let _: redis::RedisResult<String> =
                            command(first, &["CLUSTER", "MEET", "127.0.0.1", port, bus]).await;
                    }
                }
                whole
            }
        })
        .await;
        let masters: Vec<u16> = ports.iter().copied().take(MASTERS.into()).collect();
        for (replica, master) in ports.iter().skip(MASTERS.into()).zip(&masters) {
            let id: String = command(*master, &["CLUSTER", "MYID"]).await.expect("MYID");
            let _: String = command(*replica, &["CLUSTER", "REPLICATE", &id])
                .await
                .expect("CLUSTER REPLICATE");
            let replica = *replica;
            set.until(&format!("replica {replica} is in sync"), || async move {
                command::<String>(replica, &["INFO", "replication"])
                    .await
                    .is_ok_and(|i| i.contains("master_link_status:up"))
            })
            .await;
        }
        set.until("every node sees the cluster whole", || {
            let ports = ports.clone();
            async move {
                for port in ports {
                    let ok = command::<String>(port, &["CLUSTER", "INFO"])
                        .await
                        .is_ok_and(|i| {
                            i.contains("cluster_state:ok")
                                && i.contains(&format!("cluster_known_nodes:{count}"))
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

    /// The client port of the master holding `{vigile}`'s slot: the site's records
    /// (secret, settings, outbox, audit), where the change feed subscribes.
    pub async fn store_master(&self) -> u16 {
        self.master_of(SITE_TAG).await
    }

    /// The client port of the master holding hash tag `tag`'s slot (`{vigile:3}`, say).
    pub async fn master_of(&self, tag: &str) -> u16 {
        self.master_seen_by(self.nodes[0].port, tag)
            .await
            .expect("a master holds the slot")
    }

    /// The master of `tag`'s slot as node `port` sees it (`CLUSTER SLOTS`).
    async fn master_seen_by(&self, port: u16, tag: &str) -> Option<u16> {
        let slot: i64 = command(port, &["CLUSTER", "KEYSLOT", tag]).await.ok()?;
        let slots: Vec<Vec<redis::Value>> = command(port, &["CLUSTER", "SLOTS"]).await.ok()?;
        slots.iter().find_map(|range| match range.as_slice() {
            [redis::Value::Int(lo), redis::Value::Int(hi), redis::Value::Array(master), ..]
                if (*lo..=*hi).contains(&slot) =>
            {
                match master.get(1) {
                    Some(redis::Value::Int(p)) => u16::try_from(*p).ok(),
                    _ => None,
                }
            }
            _ => None,
        })
    }

    /// Kills the master holding the site's slot (`{vigile}`, and the shards beside it), as
    /// [`Self::kill`]; returns its port.
    pub async fn kill_store_master(&mut self) -> u16 {
        let port = self.store_master().await;
        self.kill(port);
        port
    }

    /// Waits until a replica was promoted in place of the store's master `killed`, and
    /// every node still up says the cluster is `ok` again.
    pub async fn wait_failover(&self, killed: u16) {
        let alive: Vec<u16> = self.ports().into_iter().filter(|p| *p != killed).collect();
        self.until("a replica is promoted for the store's slot", || {
            let alive = alive.clone();
            async move {
                for port in &alive {
                    let ok = command::<String>(*port, &["CLUSTER", "INFO"])
                        .await
                        .is_ok_and(|i| i.contains("cluster_state:ok"));
                    if !ok {
                        return false;
                    }
                }
                self.master_seen_by(alive[0], SITE_TAG).await != Some(killed)
            }
        })
        .await;
    }

    /// Moves hash tag `tag`'s slot, keys and all, to another master, as an operator's
    /// resharding does (`IMPORTING`/`MIGRATING`, `MIGRATE`, then `SETSLOT … NODE` on every
    /// master); returns the new master's port. Clients learn it from the `MOVED` answers.
    pub async fn move_slot_of(&self, tag: &str) -> u16 {
        let from = self.master_of(tag).await;
        let masters: Vec<u16> = self.ports().into_iter().take(MASTERS.into()).collect();
        let to = *masters
            .iter()
            .find(|p| **p != from)
            .expect("another master");
        let slot: i64 = command(from, &["CLUSTER", "KEYSLOT", tag])
            .await
            .expect("KEYSLOT");
        let slot = slot.to_string();
        let id = |port: u16| async move {
            command::<String>(port, &["CLUSTER", "MYID"])
                .await
                .expect("MYID")
        };
        let (from_id, to_id) = (id(from).await, id(to).await);
        let ok = |r: redis::RedisResult<String>, what: &str| {
            r.unwrap_or_else(|e| panic!("{what}: {e}"));
        };
        ok(
            command(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]).await,
            "SETSLOT IMPORTING",
        );
        ok(
            command(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]).await,
            "SETSLOT MIGRATING",
        );
        let to_port = to.to_string();
        loop {
            let keys: Vec<String> = command(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "100"])
                .await
                .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            ok(command(from, &args).await, "MIGRATE");
        }
        for port in [to, from]
            .into_iter()
            .chain(masters.iter().copied().filter(|p| *p != to && *p != from))
        {
            ok(
                command(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]).await,
                "SETSLOT NODE",
            );
        }
        to
    }

    /// Empties every master (`FLUSHALL`) and checks that every node still says the
    /// Cluster is `ok`; false if any node does not answer so.
    pub async fn empty(&self) -> bool {
        for port in self.ports().into_iter().take(MASTERS.into()) {
            if command::<String>(port, &["FLUSHALL"]).await.is_err() {
                return false;
            }
        }
        for port in self.ports() {
            let ok = command::<String>(port, &["CLUSTER", "INFO"])
                .await
                .is_ok_and(|i| i.contains("cluster_state:ok"));
            if !ok {
                return false;
            }
        }
        true
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
