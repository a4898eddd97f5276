//! `vigile ip ...`: the client addresses blocked after repeated failed logins: list them,
//! lift a block.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::admin::{self, Admin};
use crate::clock::rfc3339;
use crate::Vigile;

#[derive(Subcommand, Debug)]
pub enum IpCommand {
    /// List the blocks in force, the most recently started first: one line per block,
    /// tab-separated, no header: address (an IPv4 address or an IPv6 /64), start, end
    /// (RFC 3339, UTC), seconds left.
    List,
    /// Lift the block on an address and forget its failures. ADDR: an address, or a
    /// listed IPv6 /64 (`2001:db8:1:2::/64`).
    Unblock {
        #[arg(value_parser = parse_addr)]
        addr: IpAddr,
    },
}

fn parse_addr(s: &str) -> Result<IpAddr, String> {
    admin::parse_client(s).ok_or_else(|| format!("not an IP address: {s:?}"))
}

pub fn run(v: &Vigile, cmd: IpCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // The command's one reading of the clock.
    let now = v.app.clock.now_ms();
    v.block_on(async {
        match cmd {
            IpCommand::List => {
                for b in admin::ip_blocks(&v.app.store, now, usize::MAX).await? {
                    let left = ((b.until - now).max(0) + 999) / 1000;
                    let start = if b.blocked_at > 0 {
                        rfc3339(b.blocked_at)
                    } else {
                        "-".to_string()
                    };
                    println!("{}\t{start}\t{}\t{left}", b.ip, rfc3339(b.until));
                }
                Ok(ExitCode::SUCCESS)
            }
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
