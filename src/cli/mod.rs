//! The `vigile` command line. Admin commands talk to the store directly, so they work
//! against both backends while `vigile serve` runs; what they change (a revocation) is
//! seen by every instance within the session cache's lifetime (under one second).

mod ip;
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
    /// Manage client addresses blocked after repeated failures.
    Ip {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: ip::IpCommand,
    },
}

pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VIGILE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,pingora=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn load(arg: &ConfigArg) -> Result<Config, config::ConfigError> {
    config::load(&arg.config, std::env::vars())
}

pub fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Demo { port } => {
            crate::demo::run(port)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config, upgrade } => {
            let cfg = load(&config)?;
            tracing::info!(
                listen = %cfg.file.server.listen,
                upstream = %cfg.file.upstream.url,
                store = cfg.store_url_kind(),
                "starting vigile"
            );
            let vigile = crate::build(cfg)?;
            let server = vigile.server(upgrade)?;
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
        Command::User { config, action } => {
            let vigile = crate::build(load(&config)?)?;
            users::run(&vigile, action)
        }
        Command::Settings { config, action } => {
            let vigile = crate::build(load(&config)?)?;
            settings::run(&vigile, action)
        }
        Command::Ip { config, action } => {
            let vigile = crate::build(load(&config)?)?;
            ip::run(&vigile, action)
        }
    }
}
