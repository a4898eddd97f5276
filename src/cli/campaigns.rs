//! `vigile campaign ...`: contact-confirmation campaigns, as on `/_vigile/admin`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::audit::Actor;
use crate::auth::campaign::{self, Refused, Scope};
use crate::store::OrgId;
use crate::Vigile;

#[derive(Subcommand, Debug)]
pub enum CampaignCommand {
    /// Ask members to confirm their email and mobile at their next sign-ins: their
    /// chosen channels become unconfirmed (values kept) until they confirm them.
    Start {
        /// Every active account.
        #[arg(long, group = "who")]
        all: bool,
        /// The active members of this organisation (ids may start with `-`).
        #[arg(long, group = "who", allow_hyphen_values = true)]
        org: Option<String>,
        /// A file with one address per line (blank lines and # comments skipped).
        #[arg(long, group = "who")]
        members: Option<std::path::PathBuf>,
        /// Channels to confirm: email, mobile or both (default: email, and mobile when
        /// `contact.ask_mobile`).
        #[arg(long, value_delimiter = ',')]
        channels: Vec<String>,
    },
    /// Every campaign, newest first, with its progress.
    Status,
}

type CmdResult = Result<ExitCode, Box<dyn std::error::Error>>;

fn fail(msg: impl std::fmt::Display) -> CmdResult {
    eprintln!("vigile: {msg}");
    Ok(ExitCode::FAILURE)
}

pub fn run(v: &Vigile, cmd: CampaignCommand) -> CmdResult {
    let now = v.app.clock.now_ms();
    let deps = &v.app.deps;
    v.block_on(async {
        match cmd {
            CampaignCommand::Status => {
                let all = campaign::progress(deps).await?;
                if all.is_empty() {
                    println!("no campaign yet");
                }
                for (c, p) in all {
                    println!(
                        "campaign {} started {} by {} ({}, {}): asked {}, email confirmed {}, \
                         mobile confirmed {}, not yet seen {}",
                        c.id,
                        crate::clock::rfc3339(c.started_at),
                        c.by,
                        c.scope,
                        c.channels.label(),
                        p.asked,
                        p.email,
                        p.mobile,
                        p.unseen
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            CampaignCommand::Start {
                all,
                org,
                members,
                channels,
            } => {
                let scope = match (all, org, members) {
                    (true, _, _) => Scope::All,
                    (_, Some(org), _) => Scope::Org(OrgId::from_string(org)),
                    (_, _, Some(path)) => {
                        let text = std::fs::read_to_string(&path)
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        match campaign::parse_members(&text) {
                            Ok(lines) => Scope::Members(lines),
                            Err(bad) => {
                                return fail(format!(
                                    "{}: not an email address on line(s) {}; nothing started",
                                    path.display(),
                                    campaign::line_list(&bad)
                                ))
                            }
                        }
                    }
                    _ => return fail("say who is asked: --all, --org ID or --members FILE"),
                };
                let channels = if channels.is_empty() {
                    campaign::default_channels(deps)
                } else {
                    match campaign::parse_channels(channels.iter().map(String::as_str)) {
                        Some(c) => c,
                        None => return fail("--channels: expected email, mobile or email,mobile"),
                    }
                };
                match campaign::start(deps, &Actor::Cli, "cli", &scope, channels, now).await? {
                    Ok(c) => {
                        println!("campaign {} started: {} members asked", c.id, c.asked);
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(refused) => fail(refusal(&refused)),
                }
            }
        }
    })
}

/// Why nothing was started, for the shell.
pub fn refusal(r: &Refused) -> String {
    match r {
        Refused::NoChannel => "no channel to confirm; nothing started".into(),
        Refused::NoSms => "mobile numbers need text messages, and sms.transport delivers \
                           none (\"log\"); set sms.transport, or --channels email; nothing \
                           started"
            .into(),
        Refused::UnknownOrg => "no such organisation; nothing started".into(),
        Refused::UnknownMembers(bad) => format!(
            "no active account for the address on line(s) {}; nothing started",
            campaign::line_list(bad)
        ),
        Refused::Nobody => "no active member to ask; nothing started".into(),
    }
}
