//! Which server a forwarded request connects to: `[upstream]`, or the server of the
//! `[[route]]` it matched, or, for a route with several `upstreams`, the next healthy one
//! of its pool.
//!
//! Pools are Pingora's own `LoadBalancer<RoundRobin>`: each runs its health checks (a TCP
//! connect, or `GET health_check` expecting 2xx/3xx) every `health_check_interval` as a
//! Pingora background service, and selection skips the servers that failed their last
//! check. A pool with no healthy server fails the request before any byte is sent, which
//! the proxy answers with its 502. `vigile_upstream_healthy{upstream}` follows each
//! pooled server.
//!
//! Pooled names are resolved once, when the pools are built; an unresolvable name refuses
//! to start rather than leaving a pool short of a server nobody notices. A single server
//! (`[upstream]`, a route's one `upstream`) is made into a peer once (`peers`).

mod peers;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::services::background::{background_service, GenBackgroundService};
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{discovery, Backend, Backends, LoadBalancer};

use crate::config::{Config, UpstreamRoute, UpstreamTarget};
use crate::metrics::Metrics;
use crate::store::Millis;

/// A route's pool, run by Pingora as a background service.
pub type PoolService = GenBackgroundService<LoadBalancer<RoundRobin>>;

/// Candidates looked at before a pool gives up (round robin visits each server once).
const MAX_PICKS: usize = 256;

pub struct Upstreams {
    config: Arc<Config>,
    /// `[upstream]`'s server.
    main: peers::Server,
    /// One entry per route, by index: its pool when it has several `upstreams`, else its
    /// server.
    routes: Vec<RouteServers>,
    /// `upstream.connect_timeout`, for the peers of pooled servers.
    connect_timeout: Duration,
}

enum RouteServers {
    Pool(Pool),
    One(Box<peers::Server>),
}

struct Pool {
    balancer: Arc<LoadBalancer<RoundRobin>>,
    /// Resolved address → index of its server in the route's `upstreams`.
    servers: Arc<HashMap<SocketAddr, usize>>,
}

impl Upstreams {
    /// The routes' pools, and the background services that keep their health current
    /// (to be added to the Pingora server). Resolves every pooled server's name.
    pub fn build(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Vec<PoolService>), String> {
        let connect_timeout = config.file.upstream.connect_timeout;
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut services = Vec::new();
        for (i, route) in config.routes.iter().enumerate() {
            if !route.pooled {
                let Some(one) = route.upstreams.first() else {
                    return Err(format!("route[{i}]: no upstream"));
                };
                routes.push(RouteServers::One(Box::new(peers::Server::new(
                    one,
                    connect_timeout,
                ))));
                continue;
            }
            let (pool, service) = pool(i, route, metrics.clone())?;
            routes.push(RouteServers::Pool(pool));
            services.push(service);
        }
        let main = peers::Server::new(&config.upstream, connect_timeout);
        let upstreams = Self {
            config,
            main,
            routes,
            connect_timeout,
        };
        Ok((upstreams, services))
    }

    /// The peer for a request made at `now` that matched `route` (`None`: `[upstream]`),
    /// options set.
    pub async fn peer(&self, route: Option<usize>, now: Millis) -> Result<Box<HttpPeer>> {
        let Some(i) = route else {
            return self.main.peer(now).await;
        };
        let (Some(r), Some(servers)) = (self.config.routes.get(i), self.routes.get(i)) else {
            return Error::e_explain(ErrorType::InternalError, "no such route");
        };
        let pool = match servers {
            RouteServers::One(server) => return server.peer(now).await,
            RouteServers::Pool(pool) => pool,
        };
        let picked = pool.balancer.select(b"", MAX_PICKS).and_then(|b| {
            let addr = *b.addr.as_inet()?;
            let server = r.upstreams.get(*pool.servers.get(&addr)?)?;
            Some((addr, server))
        });
        match picked {
            Some((addr, server)) => Ok(Box::new(peers::peer(addr, server, self.connect_timeout))),
            None => Err(Error::create(
                ErrorType::ConnectNoRoute,
                ErrorSource::Upstream,
                Some(format!("no healthy server for route {}", r.pattern).into()),
                None,
            )),
        }
    }
}

/// Builds route `i`'s load balancer (every address of every server), its health check
/// and its gauge, and the background service that runs the checks.
fn pool(
    i: usize,
    route: &UpstreamRoute,
    metrics: Arc<Metrics>,
) -> Result<(Pool, PoolService), String> {
    let mut backends = BTreeSet::new();
    let mut servers = HashMap::new();
    for (index, server) in route.upstreams.iter().enumerate() {
        let addrs = server
            .address
            .to_socket_addrs()
            .map_err(|e| format!("route[{i}]: cannot resolve {}: {e}", server.label))?;
        for addr in addrs {
            if servers.insert(addr, index).is_some() {
                tracing::warn!(route = %route.pattern, %addr, "two servers of one route share an address");
            }
            backends.insert(Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                weight: 1,
                ext: Default::default(),
            });
        }
        metrics
            .upstream_healthy
            .with_label_values(&[server.label.as_str()])
            .set(1);
    }
    let servers = Arc::new(servers);
    let mut balancer =
        LoadBalancer::<RoundRobin>::from_backends(Backends::new(discovery::Static::new(backends)));
    balancer.set_health_check(Box::new(Probe::new(route, servers.clone(), metrics)));
    balancer.health_check_frequency = Some(route.health_check_interval);
    balancer.parallel_health_check = true;
    // Static discovery answers at once: the pool has its servers before the first
    // request, not only once the background service ran.
    let loaded = {
        let mut update = std::pin::pin!(balancer.update());
        update
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    };
    match loaded {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Err(format!("route[{i}]: {e}")),
        Poll::Pending => return Err(format!("route[{i}]: the server list did not load")),
    }
    let service = background_service(
        &format!("health checks of route {}", route.pattern),
        balancer,
    );
    let pool = Pool {
        balancer: service.task(),
        servers,
    };
    Ok((pool, service))
}

/// The health check of one pool: Pingora's TCP or HTTP check, one per server (each with
/// its own Host and TLS name), chosen by the probed address; flips go to the gauge.
struct Probe {
    checks: Vec<Box<dyn HealthCheck + Send + Sync>>,
    servers: Arc<HashMap<SocketAddr, usize>>,
    labels: Vec<String>,
    /// Last known health of each probed address, to tell a server with several addresses
    /// healthy while one of them answers.
    seen: Mutex<HashMap<SocketAddr, bool>>,
    metrics: Arc<Metrics>,
}

impl Probe {
    fn new(
        route: &UpstreamRoute,
        servers: Arc<HashMap<SocketAddr, usize>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let checks = route
            .upstreams
            .iter()
            .map(|server| check_for(server, &route.health_check))
            .collect();
        Self {
            checks,
            servers,
            labels: route.upstreams.iter().map(|u| u.label.clone()).collect(),
            seen: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn server_of(&self, target: &Backend) -> Option<(SocketAddr, usize)> {
        let addr = *target.addr.as_inet()?;
        Some((addr, *self.servers.get(&addr)?))
    }
}

/// `""`: a TCP (or TLS) connection must open. `/path`: `GET /path` must answer 2xx/3xx.
fn check_for(server: &UpstreamTarget, path: &str) -> Box<dyn HealthCheck + Send + Sync> {
    if path.is_empty() {
        return if server.tls {
            TcpHealthCheck::new_tls(&server.sni)
        } else {
            TcpHealthCheck::new()
        };
    }
    let mut check = HttpHealthCheck::new(&server.address, server.tls);
    if server.tls {
        check.peer_template.sni = server.sni.clone();
    }
    match RequestHeader::build("GET", path.as_bytes(), None) {
        Ok(mut req) => {
            if req.insert_header("Host", server.address.as_str()).is_ok() {
                check.req = req;
            }
        }
        Err(e) => tracing::warn!(error = %e, path, "health check path refused; checking /"),
    }
    check.validator = Some(Box::new(|resp: &ResponseHeader| {
        let status = resp.status.as_u16();
        if (200..400).contains(&status) {
            Ok(())
        } else {
            Error::e_explain(
                ErrorType::CustomCode("health check status", status),
                "expected 2xx or 3xx",
            )
        }
    }));
    Box::new(check)
}

#[async_trait]
impl HealthCheck for Probe {
    async fn check(&self, target: &Backend) -> Result<()> {
        match self.server_of(target).and_then(|(_, i)| self.checks.get(i)) {
            Some(check) => check.check(target).await,
            None => Error::e_explain(ErrorType::InternalError, "unknown server"),
        }
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        let Some((addr, index)) = self.server_of(target) else {
            return;
        };
        let label = self.labels.get(index).map_or("", String::as_str);
        let any_healthy = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.insert(addr, healthy);
            self.servers
                .iter()
                .filter(|(_, i)| **i == index)
                .any(|(a, _)| seen.get(a).copied().unwrap_or(true))
        };
        if healthy {
            tracing::info!(upstream = label, %addr, "upstream server healthy again");
        } else {
            tracing::warn!(upstream = label, %addr, "upstream server failed its health check; skipped");
        }
        self.metrics
            .upstream_healthy
            .with_label_values(&[label])
            .set(i64::from(any_healthy));
    }

    fn health_threshold(&self, _success: bool) -> usize {
        1
    }
}
