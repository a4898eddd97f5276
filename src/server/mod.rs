//! Assembles the Pingora server: the proxy listener (plain or TLS, HTTP/1.1 and HTTP/2),
//! the metrics listener, background tasks, and for `vigile demo` the demo site.
//! Pingora's `ServerConf` is built here from our TOML, so operators keep one file.

pub(crate) mod background;
pub mod client_conns;
mod ops;
pub mod reload;

use std::sync::Arc;

use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::app::{App, Live};
use crate::proxy::Gateway as ProxyLogic;
use client_conns::{raise_fd_limit, ClientConns, Limits};

pub use ops::OpsEndpoints;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot start: {0}")]
    Start(String),
}

/// Builds the Pingora server with every Vigile service added; `extra` adds more
/// (the demo site). `upgrade` takes the listening sockets over from a running process.
pub fn assemble(
    live: Arc<Live>,
    bg: Arc<tokio::runtime::Runtime>,
    upgrade: bool,
) -> Result<Server, ServerError> {
    let app = live.get();
    let cfg = &app.config.file.server;
    let conf = ServerConf {
        threads: if cfg.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            cfg.threads
        },
        grace_period_seconds: Some(cfg.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(cfg.grace_period_seconds + 5),
        upgrade_sock: upgrade_sock_path(&app),
        pid_file: std::env::temp_dir()
            .join(format!(
                "vigile-{}.pid",
                cfg.listen.replace([':', '.'], "_")
            ))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    match raise_fd_limit() {
        Ok(n) => tracing::info!(open_files = n, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the file descriptor limit"),
    }
    let terminates_tls = cfg.tls_cert.is_some() && cfg.tls_key.is_some();
    // `[[route]]` pools: their health checks run as Pingora background services.
    let (upstreams, pools) =
        crate::proxy::Upstreams::build(app.config.clone(), app.metrics.clone())
            .map_err(ServerError::Start)?;
    for pool in pools {
        server.add_service(pool);
    }
    let mut proxy = pingora::proxy::HttpProxy::new(
        ProxyLogic::new(live, upstreams).map_err(ServerError::Start)?,
        server.configuration.clone(),
    );
    proxy.handle_init_modules();
    let mut options = HttpServerOptions::default();
    // h2c (prior knowledge) for clients that speak HTTP/2 without TLS.
    options.h2c = !terminates_tls;
    options.h2_idle_timeout = Some(cfg.keepalive_timeout);
    proxy.server_options = Some(options);
    let limits = Limits {
        header_timeout: cfg.header_timeout,
        keepalive_timeout: cfg.keepalive_timeout,
        max_per_addr: cfg.max_connections_per_ip,
        exempt: app.config.trusted_proxies.clone(),
        h2c: !terminates_tls,
    };
    let conns = ClientConns::new(Arc::new(proxy), limits, app.metrics.clone());
    let mut gateway = Service::new("vigile gateway".to_string(), conns);
    match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            let mut tls = TlsSettings::intermediate(cert, key)
                .map_err(|e| ServerError::Tls(e.to_string()))?;
            tls.enable_h2();
            gateway.add_tls_with_settings(&cfg.listen, None, tls);
        }
        _ => gateway.add_tcp(&cfg.listen),
    }
    server.add_service(gateway);

    let mut ops = Service::new("vigile metrics".to_string(), OpsEndpoints::new(app.clone()));
    ops.add_tcp(&app.config.file.metrics.listen);
    server.add_service(ops);

    background::spawn(&bg, app).map_err(ServerError::Start)?;
    Ok(server)
}

fn upgrade_sock_path(app: &App) -> String {
    std::env::temp_dir()
        .join(format!(
            "vigile-upgrade-{}.sock",
            app.config.file.server.listen.replace([':', '.'], "_")
        ))
        .display()
        .to_string()
}
