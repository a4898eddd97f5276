//! `vigile user import FILE.csv [--invite] [--confirmed]`: create or invite a cohort from
//! a spreadsheet export (SPEC §2). The checks and writes are [`crate::auth::import`]'s,
//! shared with the console's import page; this reads the file and prints the report:
//! each refused row as `line N: field: reason` on standard error, then
//! `imported N, invited M, refused K`.

use std::path::Path;
use std::process::ExitCode;

use crate::auth::admin::Admin;
use crate::auth::import::{self, Field, Line, Options, Outcome};
use crate::clock::rfc3339;
use crate::Vigile;

type CmdResult = Result<ExitCode, Box<dyn std::error::Error>>;

/// How the command line reports a row that was not imported, one `line N: field:
/// reason` per problem: refused rows, and addresses left as they are (an account, or a
/// pending invitation), which count as refused here.
fn tell(line: &Line) {
    let email = Field::Email.as_str();
    match &line.outcome {
        Outcome::Create | Outcome::Invite => {}
        Outcome::Refused(problems) => {
            for p in problems {
                eprintln!("line {}: {}: {}", line.line, p.field.as_str(), p.reason);
            }
        }
        Outcome::Exists { pending } => {
            let how = if *pending {
                " (a sign-up waiting for activation)"
            } else {
                ""
            };
            eprintln!(
                "line {}: {email}: {} already has an account{how}",
                line.line, line.email
            );
        }
        Outcome::Invited { until } => eprintln!(
            "line {}: {email}: {} was invited already; the invitation is valid until {}",
            line.line,
            line.email,
            rfc3339(*until)
        ),
    }
}

/// The command: check every row, apply those that pass, report the others, print
/// `imported N, invited M, refused K`. Non-zero exit when a row was refused.
pub async fn run(v: &Vigile, file: &Path, invite: bool, confirmed: bool) -> CmdResult {
    let deps = &v.app.deps;
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("vigile: {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let opts = Options {
        invite,
        confirmed,
        max_rows: None,
    };
    let clock = v.app.clock.as_ref();
    let report = match import::apply(deps, &bytes, opts, Admin::Cli, clock).await? {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigile: {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    report.lines.iter().for_each(tell);
    let counts = report.counts();
    let (imported, invited) = (counts.created, counts.invited);
    // Addresses left as they are count as refused here, as they always have.
    let refused = counts.refused + counts.unchanged;
    if let Some(stop) = &report.stopped {
        eprintln!(
            "line {}: store: {}; this row and the ones after it were not applied",
            stop.line, stop.error
        );
        println!("imported {imported}, invited {invited}, refused {refused}");
        return Ok(ExitCode::FAILURE);
    }
    if imported > 0 && !confirmed {
        println!(
            "note: the imported addresses are unconfirmed, and password-reset links only \
             go to confirmed addresses: these members cannot reset their password (the only \
             way to set one) until they confirm their address. Import with --confirmed when \
             the file's addresses are known to be right, or with --invite to mail each a \
             link."
        );
    }
    println!("imported {imported}, invited {invited}, refused {refused}");
    Ok(if refused > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
