//! The "bare Pingora" baseline for `bench/compare`: the smallest Pingora HTTP proxy that
//! forwards every request to one upstream, with no authentication, no header rewriting and
//! no metrics. The gap between it and `vigile serve` is what Vigile's own work costs.
//!
//! Usage: `bare_proxy LISTEN UPSTREAM [THREADS]`, e.g.
//! `bare_proxy 127.0.0.1:8100 127.0.0.1:8081 2` (THREADS 0 or absent: one per CPU, as
//! `[server] threads = 0` in Vigile).
//!
//! It is set up like the gateway wherever that is not Vigile's own logic, so the
//! comparison isolates that logic: same Pingora version, same worker thread count, same
//! upstream keep-alive pool and peer options, same global allocator (mimalloc).

use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        // The same peer options as the gateway's `upstream_peer`.
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.total_connection_timeout = Some(Duration::from_secs(6));
        peer.options.read_timeout = Some(Duration::from_secs(60));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy LISTEN UPSTREAM [THREADS]");
        std::process::exit(2);
    };
    let threads = match args.next().map(|t| t.parse::<usize>()) {
        None | Some(Ok(0)) => std::thread::available_parallelism().map_or(2, |n| n.get()),
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("bare_proxy: THREADS: {e}");
            std::process::exit(2);
        }
    };
    let tag = listen.replace([':', '.'], "_");
    let tmp = std::env::temp_dir();
    let conf = ServerConf {
        threads,
        // A benchmark baseline: stop at once (Pingora's default grace period is minutes).
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        // Per-listener files, so several instances (and other Pingora processes) coexist.
        pid_file: tmp
            .join(format!("bare-proxy-{tag}.pid"))
            .display()
            .to_string(),
        upgrade_sock: tmp
            .join(format!("bare-proxy-upgrade-{tag}.sock"))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
