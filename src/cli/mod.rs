//! The `vigile` command line. Admin commands talk to the store directly, so they work
//! against both backends while `vigile serve` runs; what they change (a revocation) is
//! seen by every instance within the session cache's lifetime (under one second).

mod audit;
mod campaigns;
mod import;
mod ip;
mod mail;
mod orgs;
mod settings;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

#[derive(Parser, Debug)]
#[command(
    name = "vigile",
    version,
    about = "Authentication gateway for membership sites"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug)]
pub struct ConfigArg {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "VIGILE_CONFIG",
        default_value = "config/vigile.toml"
    )]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Zero-setup tour: gateway + demo course site + dev mail outbox.
    Demo {
        #[arg(long, default_value_t = 8000)]
        port: u16,
    },
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Take the listening sockets over from a running instance (zero-downtime upgrade).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Manage member accounts.
    User {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: users::UserCommand,
    },
    /// Device-cap settings (as on the admin page), for every instance.
    Settings {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: settings::SettingsCommand,
    },
    /// Organisations: list, show, set seats, plan and device cap.
    Org {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: orgs::OrgCommand,
    },
    /// Contact-confirmation campaigns: start one, see their progress.
    Campaign {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: campaigns::CampaignCommand,
    },
    /// The stored security events (the console's Security events).
    Audit {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: audit::AuditCommand,
    },
    /// Manage client addresses blocked after repeated failures.
    Ip {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: ip::IpCommand,
    },
    /// The mail outbox: messages waiting, retry now.
    Mail {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: mail::MailCommand,
    },
}

impl Command {
    /// A command that prints and exits (not the server, not the demo).
    pub fn is_admin(&self) -> bool {
        !matches!(self, Command::Demo { .. } | Command::Serve { .. })
    }
}

/// Logging to standard error (`VIGILE_LOG` filter, `[log] format`) and, with
/// `[log] audit_file`, the audit log to its file. `None` (the demo): text, no audit file.
pub fn init_logging(log: Option<&config::LogSection>) -> Result<(), Box<dyn std::error::Error>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_from_env("VIGILE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,pingora=warn"));
    let json = log.is_some_and(|l| l.format == config::LogFormat::Json);
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(!json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let stderr = if json {
        stderr.json().boxed()
    } else {
        stderr.boxed()
    };
    let audit = match log.map(|l| l.audit_file.as_str()).filter(|p| !p.is_empty()) {
        Some(path) => Some(
            crate::audit::AuditFile::open(std::path::Path::new(path))
                .map_err(|e| format!("log.audit_file {path}: {e}"))?,
        ),
        None => None,
    };
    // A second call (tests building several apps in one process) keeps the first setup.
    let _ = tracing_subscriber::registry()
        .with(stderr.with_filter(filter))
        .with(audit)
        .try_init();
    Ok(())
}

/// Refuses to start on a Redis whose eviction policy would drop sessions and lockout
/// counters (unless `store.allow_eviction`). A store that does not answer yet does not
/// stop the start: it is checked again every few seconds, and refused then.
fn refuse_evicting_store(vigile: &crate::Vigile) -> Result<(), Box<dyn std::error::Error>> {
    let app = &vigile.app;
    match vigile.block_on(crate::server::background::check_store(app)) {
        Err(e) if app.store.eviction_unsafe() => Err(format!("store.url: {e}").into()),
        Err(e) => {
            tracing::warn!(error = %e, "the store does not answer yet; starting anyway");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// An admin command: the gateway's state built from `config`, the command run, then its
/// audit events stored before the process exits.
fn admin(
    config: &ConfigArg,
    command: impl FnOnce(&crate::Vigile) -> Result<ExitCode, Box<dyn std::error::Error>>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let cfg = load(config)?;
    init_logging(Some(&cfg.file.log))?;
    let vigile = crate::build(cfg)?;
    let result = command(&vigile);
    vigile.flush_audit();
    result
}

fn load(arg: &ConfigArg) -> Result<Config, config::ConfigError> {
    config::load(&arg.config, std::env::vars())
}

pub fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Demo { port } => {
            init_logging(None)?;
            crate::demo::run(port)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config, upgrade } => {
            let cfg = load(&config)?;
            init_logging(Some(&cfg.file.log))?;
            tracing::info!(
                listen = %cfg.file.server.listen,
                upstream = %cfg.file.upstream.url,
                store = cfg.store_url_kind(),
                "starting vigile"
            );
            let vigile = crate::build(cfg)?;
            refuse_evicting_store(&vigile)?;
            let server = vigile.server(upgrade)?;
            let path = std::path::absolute(&config.config).unwrap_or(config.config.clone());
            vigile.reload_on_hangup(path)?;
            server.run_forever();
        }
        Command::CheckConfig { config } => match load(&config) {
            Ok(cfg) => {
                print!("{}", cfg.to_redacted_toml());
                eprintln!("{}: configuration is valid", config.config.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("vigile: {e}");
                Ok(ExitCode::from(2))
            }
        },
        Command::User { config, action } => admin(&config, |v| users::run(v, action)),
        Command::Settings { config, action } => admin(&config, |v| settings::run(v, action)),
        Command::Org { config, action } => admin(&config, |v| orgs::run(v, action)),
        Command::Campaign { config, action } => admin(&config, |v| campaigns::run(v, action)),
        Command::Ip { config, action } => admin(&config, |v| ip::run(v, action)),
        Command::Audit { config, action } => admin(&config, |v| audit::run(v, action)),
        Command::Mail { config, action } => admin(&config, |v| mail::run(v, action)),
    }
}
