//! Where the Redis master is: one fixed address (`redis://`, `redis+unix://`), the
//! master Sentinel names (`redis+sentinel://`), followed through failovers, or a Redis
//! Cluster (`redis+cluster://`), whose client follows slots and failovers by itself.
//!
//! With Sentinel, the master is asked for at the first call, and again after any call
//! that failed for want of Redis on the connection in use (the master died, or came back
//! as a replica and refuses writes with `READONLY`): the connection is dropped and the
//! next call asks the Sentinels, which name the new master once they have promoted one.
//! Until then calls fail (`Unavailable`: the gateway answers 503, never lets a request
//! through unchecked). One call asks at a time; after an answer that found no usable
//! master, calls fail at once for [`RETRY_AFTER`] instead of queueing to ask again.
//!
//! A master cut off from the Sentinels but not from this gateway answers every call, and
//! still calls itself master, while the Sentinels promote another: a gateway that only
//! asked after failures would go on reading sessions revoked elsewhere. So the Sentinels
//! are also asked every [`VERIFY_EVERY`]; when they name another master, the connection
//! is dropped (and the change feed, which follows the same connection, subscribes again).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::SentinelClient;
use ::redis::{Client, Cmd, Pipeline, RedisFuture, Value};

use super::cluster::ClusterUrl;
use super::sentinel::SentinelUrl;
use super::OP_DEADLINE;
use crate::clock::Stopwatch;
use crate::store::{StoreError, StoreResult};

/// After a failed search for the master, how long calls fail without searching again.
const RETRY_AFTER: Duration = Duration::from_millis(200);
/// How often the Sentinels are asked whether the master in use is still theirs.
pub(super) const VERIFY_EVERY: Duration = Duration::from_secs(1);
/// A connection is given up after a failure only once it has been in use this long: a
/// slow master timing out under load is not asked for again on every call.
const KEEP_AT_LEAST: Duration = Duration::from_secs(1);

/// Tries of a command a Cluster node refused without running it (`MOVED`: the slot is
/// elsewhere, a failover or a resharding; `TRYAGAIN`), after the first. Not `READONLY`:
/// a script without flags meets it only at its first write, after its reads and any
/// `PUBLISH` ran (and a demoted node answers a command for its old slot `MOVED` anyway).
/// The client has no retries of its own (`CLUSTER_RETRIES`), so without these the first
/// calls after a failover would fail (503) while service is back; sending again a command
/// that was never run keeps it at most once.
const REFUSED_TRIES: u32 = 3;
/// Pause before each of those tries (times the try's number): the client rebuilds its
/// slot map in the background after such a refusal.
const REFUSED_PAUSE: Duration = Duration::from_millis(25);

/// Whether the node refused the command before running it, so it may be sent again.
fn refused_unrun(e: &::redis::RedisError) -> bool {
    use ::redis::{ErrorKind, ServerErrorKind};
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::TryAgain)
    )
}

/// A connection to one server, or to a whole Cluster (which routes each command to the
/// node holding its keys). Cheap to clone: both share one multiplexed connection.
#[derive(Clone)]
pub(super) enum Conn {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::One(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => Box::pin(async move {
                let mut tries = 0;
                loop {
                    match c.req_packed_command(cmd).await {
                        Err(e) if tries < REFUSED_TRIES && refused_unrun(&e) => {
                            tries += 1;
                            tokio::time::sleep(REFUSED_PAUSE * tries).await;
                        }
                        answer => return answer,
                    }
                }
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::One(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::One(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The connection calls use, and which one it is (see [`Endpoint::failed`]). Shared
/// behind an `Arc`: every store call takes it, and the client's address is not copied.
pub(super) struct Current {
    pub conn: Conn,
    /// Where the change feed subscribes, first one first: the master, or a Cluster's
    /// nodes (a message published on any node reaches the subscribers of every node).
    pub subscribe_on: Vec<Client>,
    pub generation: u64,
    since: Stopwatch,
}

enum Target {
    /// One address: the connection stays, reconnecting by itself.
    Fixed,
    /// A Cluster, whose client follows it by itself; its URL gives the credentials of the
    /// nodes it names at run time.
    Cluster(Box<ClusterUrl>),
    Sentinel {
        client: Box<tokio::sync::Mutex<SentinelClient>>,
        /// When the last search found no master, and why.
        failed: std::sync::Mutex<Option<(Stopwatch, String)>>,
    },
}

pub(super) struct Endpoint {
    target: Target,
    config: ConnectionManagerConfig,
    current: RwLock<Option<Arc<Current>>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl Endpoint {
    /// One address; connects lazily.
    pub fn fixed(client: Client, config: ConnectionManagerConfig) -> StoreResult<Arc<Self>> {
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(unavailable)?;
        Ok(Self::steady(
            Target::Fixed,
            Conn::One(conn),
            vec![client],
            config,
        ))
    }

    /// A Cluster, found from the URL's nodes at the first call. `retries`: see
    /// [`ClusterUrl::client`].
    pub fn cluster(
        url: &ClusterUrl,
        config: ConnectionManagerConfig,
        retries: u32,
    ) -> StoreResult<Arc<Self>> {
        let client = url
            .client(retries)
            .map_err(|e| StoreError::Unavailable(format!("invalid Cluster URL: {e}")))?;
        let timeouts = ::redis::cluster::ClusterConfig::new()
            .set_connection_timeout(super::CONNECT_TIMEOUT)
            .set_response_timeout(super::RESPONSE_TIMEOUT);
        let conn = client.get_pending_async_connection_with_config(timeouts);
        let nodes = url
            .nodes
            .iter()
            .map(|addr| url.node(addr.clone()).and_then(Client::open))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        let target = Target::Cluster(Box::new(url.clone()));
        Ok(Self::steady(target, Conn::Cluster(conn), nodes, config))
    }

    /// An endpoint whose connection never changes (one address, or a Cluster).
    fn steady(
        target: Target,
        conn: Conn,
        subscribe_on: Vec<Client>,
        config: ConnectionManagerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            target,
            config,
            current: RwLock::new(Some(Arc::new(Current {
                conn,
                subscribe_on,
                generation: 0,
                since: Stopwatch::start(),
            }))),
        })
    }

    /// The master of `url`'s service, asked for at the first call.
    pub fn sentinel(url: &SentinelUrl, config: ConnectionManagerConfig) -> StoreResult<Arc<Self>> {
        let client = url.client().map_err(unavailable)?;
        Ok(Arc::new(Self {
            target: Target::Sentinel {
                client: Box::new(tokio::sync::Mutex::new(client)),
                failed: std::sync::Mutex::new(None),
            },
            config,
            current: RwLock::new(None),
        }))
    }

    /// On a Cluster, a client for node `host:port` (one the Cluster named) with the
    /// URL's credentials; `None` elsewhere.
    pub fn cluster_node(&self, host: &str, port: u16) -> Option<Client> {
        let Target::Cluster(url) = &self.target else {
            return None;
        };
        let addr = ::redis::ConnectionAddr::Tcp(host.to_string(), port);
        url.node(addr).and_then(Client::open).ok()
    }

    /// Whether the connection in use may be dropped for another master (Sentinel); the
    /// others keep theirs.
    fn follows_sentinel(&self) -> bool {
        matches!(self.target, Target::Sentinel { .. })
    }

    fn known(&self) -> Option<Arc<Current>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// The connection to the master, found first if need be.
    pub async fn current(&self) -> StoreResult<Arc<Current>> {
        if let Some(current) = self.known() {
            return Ok(current);
        }
        let Target::Sentinel { client, failed } = &self.target else {
            return Err(unavailable("no connection"));
        };
        let recent_failure = |failed: &std::sync::Mutex<Option<(Stopwatch, String)>>| {
            failed
                .lock()
                .ok()
                .as_ref()
                .and_then(|f| f.as_ref())
                .filter(|(at, _)| at.elapsed() < RETRY_AFTER)
                .map(|(_, why)| why.clone())
        };
        if let Some(why) = recent_failure(failed) {
            return Err(unavailable(why));
        }
        let mut sentinel = match tokio::time::timeout(OP_DEADLINE, client.lock()).await {
            Ok(guard) => guard,
            Err(_) => return Err(unavailable("still looking for the master")),
        };
        // Found (or given up on) while this call waited its turn.
        if let Some(current) = self.known() {
            return Ok(current);
        }
        if let Some(why) = recent_failure(failed) {
            return Err(unavailable(why));
        }
        let found = match tokio::time::timeout(OP_DEADLINE, sentinel.async_get_client()).await {
            Ok(Ok(master)) => {
                ConnectionManager::new_lazy_with_config(master.clone(), self.config.clone())
                    .map(|conn| (master, Conn::One(conn)))
                    .map_err(|e| e.to_string())
            }
            Ok(Err(e)) => Err(format!("no master from Sentinel: {e}")),
            Err(_) => Err(format!("Sentinel did not answer within {OP_DEADLINE:?}")),
        };
        drop(sentinel);
        match found {
            Ok((master, conn)) => {
                let mut slot = self
                    .current
                    .write()
                    .map_err(|_| unavailable("connection state poisoned"))?;
                let generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(master = %master.get_connection_info().addr(), "redis master found through Sentinel");
                let current = Arc::new(Current {
                    conn,
                    subscribe_on: vec![master],
                    generation,
                    since: Stopwatch::start(),
                });
                *slot = Some(current.clone());
                Ok(current)
            }
            Err(why) => {
                tracing::warn!(reason = %why, "no redis master reachable through Sentinel");
                if let Ok(mut f) = failed.lock() {
                    *f = Some((Stopwatch::start(), why.clone()));
                }
                Err(unavailable(why))
            }
        }
    }

    /// A call on the connection of `generation` failed for want of Redis: with Sentinel,
    /// the next call asks for the master again (it may have changed). Nothing for a
    /// fixed address or a Cluster, whose connection reconnects by itself.
    pub fn failed(&self, generation: u64) {
        self.drop_if(generation, KEEP_AT_LEAST);
    }

    fn drop_if(&self, generation: u64, kept_for: Duration) {
        if !self.follows_sentinel() {
            return;
        }
        if let Ok(mut slot) = self.current.write() {
            if slot
                .as_ref()
                .is_some_and(|c| c.generation == generation && c.since.elapsed() >= kept_for)
            {
                *slot = None;
            }
        }
    }

    /// Whether the connection of `generation` is still the one calls use (always, for a
    /// fixed address or a Cluster).
    pub fn is_current(&self, generation: u64) -> bool {
        !self.follows_sentinel() || self.known().is_some_and(|c| c.generation == generation)
    }

    /// Asks the Sentinels which master is theirs and drops the connection in use if it
    /// is another one (see the module doc). Sentinels that cannot be asked change
    /// nothing: calls then go on, or fail, on their own.
    pub async fn verify(&self) {
        let Target::Sentinel { client, .. } = &self.target else {
            return;
        };
        let Some(current) = self.known() else { return };
        let theirs = {
            let mut sentinel = client.lock().await;
            match tokio::time::timeout(OP_DEADLINE, sentinel.async_get_client()).await {
                Ok(Ok(master)) => master.get_connection_info().addr().clone(),
                _ => return,
            }
        };
        let Some(ours) = current.subscribe_on.first() else {
            return;
        };
        let ours = ours.get_connection_info().addr();
        if *ours != theirs {
            tracing::warn!(ours = %ours, theirs = %theirs, "the Sentinels name another redis master; switching");
            self.drop_if(current.generation, Duration::ZERO);
        }
    }

    /// Runs [`Self::verify`] every [`VERIFY_EVERY`] while the endpoint lives (Sentinel
    /// only). Must be called inside a Tokio runtime.
    pub fn watch(self: &Arc<Self>) {
        if !self.follows_sentinel() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(VERIFY_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(endpoint) = weak.upgrade() else {
                    return;
                };
                endpoint.verify().await;
            }
        });
    }
}

/// Connection generations, unique in the process (each connection to a found master).
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
