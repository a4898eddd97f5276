//! Assembles the Pingora server: the proxy listener (plain or TLS, HTTP/1.1 and HTTP/2),
//! the metrics listener, background tasks, and for `vigile demo` the demo site.
//! Pingora's `ServerConf` is built here from our TOML, so operators keep one file.

mod background;
mod ops;

use std::sync::Arc;

use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::app::App;
use crate::proxy::Gateway as ProxyLogic;

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
    app: Arc<App>,
    bg: Arc<tokio::runtime::Runtime>,
    upgrade: bool,
) -> Result<Server, ServerError> {
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

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        ProxyLogic::new(app.clone()),
        "vigile gateway",
    );
    match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            let mut tls = TlsSettings::intermediate(cert, key)
                .map_err(|e| ServerError::Tls(e.to_string()))?;
            tls.enable_h2();
            proxy.add_tls_with_settings(&cfg.listen, None, tls);
        }
        _ => {
            proxy.add_tcp(&cfg.listen);
            // h2c (prior knowledge) for clients that speak HTTP/2 without TLS.
            if let Some(logic) = proxy.app_logic_mut() {
                let mut options = HttpServerOptions::default();
                options.h2c = true;
                logic.server_options = Some(options);
            }
        }
    }
    server.add_service(proxy);

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
