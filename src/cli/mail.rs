//! `vigile mail ...`: the outbox from the shell: the messages waiting (never their
//! content), and "retry now" for one of them or all.

use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::admin::{self, Admin};
use crate::clock::rfc3339;
use crate::Vigile;

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// List the messages waiting, earliest due first: one line per message,
    /// tab-separated, no header: id, channel (email or mobile), kind, recipient,
    /// created, next attempt (RFC 3339, UTC), failed attempts, last error (or `-`).
    List,
    /// Make waiting messages due now (after the mail server came back, say); a running
    /// gateway sends them within a second. Audited.
    Retry {
        /// The message's id (from `vigile mail list` or the console's outbox).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every waiting message.
        #[arg(long)]
        all: bool,
    },
}

pub fn run(v: &Vigile, cmd: MailCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // The command's one reading of the clock.
    let now = v.app.clock.now_ms();
    let store = &v.app.store;
    v.block_on(async {
        match cmd {
            MailCommand::List => {
                for m in store.outbox_list().await? {
                    let error = m.last_error.as_deref().unwrap_or("-");
                    // One line per message, whatever the server answered.
                    let error = error.replace(['\t', '\n', '\r'], " ");
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{error}",
                        m.id,
                        m.channel.as_str(),
                        m.kind,
                        m.to,
                        rfc3339(m.created_at),
                        rfc3339(m.next_attempt),
                        m.attempts
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            MailCommand::Retry { all: true, .. } => {
                let done = admin::mail_retry_all(store, Admin::Cli, now).await?;
                println!("{} message(s) due now", done.len());
                Ok(ExitCode::SUCCESS)
            }
            MailCommand::Retry { id, .. } => {
                let id = id.unwrap_or_default();
                match admin::mail_retry(store, Admin::Cli, &id, now).await? {
                    Some(m) => {
                        println!("{} ({} to {}) due now", m.id, m.kind, m.to);
                        Ok(ExitCode::SUCCESS)
                    }
                    None => {
                        eprintln!("vigile: no message {id:?} waiting (sent, or failed for good)");
                        Ok(ExitCode::from(1))
                    }
                }
            }
        }
    })
}
