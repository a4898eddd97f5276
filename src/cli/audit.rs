//! `vigile audit export`: the stored security events (what the console's Security events
//! shows) as CSV on standard output, filtered like the console: by member, kind, days.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::events::{self, Filter};
use crate::edge::day::Day;
use crate::edge::email::Email;
use crate::pages::console_events::to_csv;
use crate::Vigile;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Write the matching events as CSV (a header row, newest first; at most 100 000 rows:
    /// narrow the filter for more). Columns: at, event, by, admin, member, user_id, ip,
    /// details (a JSON object).
    Export {
        /// Only the events concerning this member (their account's address).
        #[arg(long, value_parser = parse_email)]
        email: Option<Email>,
        /// Only this kind of event (`login`, `ip_blocked`... as in the audit log).
        #[arg(long, value_parser = parse_kind)]
        kind: Option<&'static str>,
        /// From the start of this UTC day (YYYY-MM-DD)...
        #[arg(long, value_parser = parse_day)]
        from: Option<Day>,
        /// ...to the end of this one.
        #[arg(long, value_parser = parse_day)]
        to: Option<Day>,
    },
}

fn parse_email(s: &str) -> Result<Email, String> {
    Email::parse(s).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_kind(s: &str) -> Result<&'static str, String> {
    crate::audit::KINDS
        .iter()
        .copied()
        .find(|k| *k == s)
        .ok_or_else(|| format!("unknown kind of event {s:?}"))
}

fn parse_day(s: &str) -> Result<Day, String> {
    Day::parse(s).ok_or_else(|| format!("{s:?}: dates are written YYYY-MM-DD"))
}

pub fn run(v: &Vigile, cmd: AuditCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let AuditCommand::Export {
        email,
        kind,
        from,
        to,
    } = cmd;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            eprintln!("vigile: --from comes after --to");
            return Ok(ExitCode::from(2));
        }
    }
    let filter = Filter {
        member: email,
        kind,
        from,
        to,
    };
    let Some((rows, more)) = v.block_on(events::export(&v.app, &filter))? else {
        if let Some(email) = &filter.member {
            eprintln!("vigile: no account has the address {}", email.as_str());
        }
        return Ok(ExitCode::from(1));
    };
    std::io::stdout().write_all(&to_csv(&rows, false)?)?;
    if more {
        eprintln!(
            "vigile: cut at {} events; narrow the filter",
            events::EXPORT_MAX
        );
    }
    Ok(ExitCode::SUCCESS)
}
