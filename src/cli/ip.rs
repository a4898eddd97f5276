//! `vigile ip ...`: lift an IP block set by repeated failed logins.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::admin::{self, Admin};
use crate::Vigile;

#[derive(Subcommand, Debug)]
pub enum IpCommand {
    /// Lift the block on an address and forget its failures.
    Unblock { addr: IpAddr },
}

pub fn run(v: &Vigile, cmd: IpCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // The command's one reading of the clock.
    let now = v.app.clock.now_ms();
    v.block_on(async {
        match cmd {
            IpCommand::Unblock { addr } => {
                let was = admin::ip_unblock(&v.app.store, Admin::Cli, addr, now).await?;
                if was {
                    println!("unblocked {addr}");
                } else {
                    println!("{addr} was not blocked (its failure history is cleared)");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
