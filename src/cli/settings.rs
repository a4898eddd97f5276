//! `vigile settings ...`: the device-cap settings admins also change on `/_vigile/admin`.
//! Saved in the store, so every running instance applies them at the next login.

use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::admin::{self, Admin, SitePolicy};
use crate::store::{overflow_parse, overflow_str};
use crate::Vigile;

#[derive(Subcommand, Debug)]
pub enum SettingsCommand {
    /// Print the settings in force (store, else configuration file).
    Show,
    /// Change the device cap; what is not given stays as it is.
    Set {
        /// Devices each member may keep signed in (0 = unlimited).
        #[arg(long)]
        max_per_member: Option<u32>,
        /// choose | evict-oldest | deny
        #[arg(long, value_parser = parse_policy)]
        on_overflow: Option<crate::config::OnOverflow>,
        /// Forget the saved settings: the configuration file's apply again.
        #[arg(long, conflicts_with_all = ["max_per_member", "on_overflow"])]
        reset: bool,
    },
}

fn parse_policy(s: &str) -> Result<crate::config::OnOverflow, String> {
    overflow_parse(s).ok_or_else(|| "expected choose, evict-oldest or deny".to_string())
}

pub fn run(v: &Vigile, cmd: SettingsCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let now = v.app.clock.now_ms();
    v.block_on(async {
        let store = &v.app.store;
        let file = &v.app.config.file.sessions;
        if let SettingsCommand::Set {
            max_per_member,
            on_overflow,
            reset,
        } = cmd
        {
            let change = SitePolicy {
                max_per_member,
                on_overflow,
                reset,
            };
            admin::set_site_policy(store, Admin::Cli, change, now).await?;
        }
        let s = store.settings_get().await?;
        let site = crate::auth::devices::site_policy(&s, file);
        let origin = |saved: bool| if saved { "saved" } else { "configuration file" };
        println!(
            "max_per_member: {} ({})",
            site.max,
            origin(s.max_per_member.is_some())
        );
        println!(
            "on_overflow:    {} ({})",
            overflow_str(site.on_overflow),
            origin(s.on_overflow.is_some())
        );
        Ok(ExitCode::SUCCESS)
    })
}
