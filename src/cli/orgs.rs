//! `vigile org ...`: organisations, as site admins see them on `/_vigile/admin`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::admin::{self, Admin};
use crate::auth::orgs::members::{occupancy, seats};
use crate::store::{Org, OrgId, OrgTerms};
use crate::Vigile;

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Every organisation: id, company, super-admin, members, seats used / seats.
    List,
    /// One organisation: profile, terms, members with their roles, pending invitations.
    Show {
        /// Organisation ids are base64url and may start with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Set an organisation's seats, plan or device cap; what is not given stays.
    Set {
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Seats (members plus pending invitations), or `default` for `orgs.default_seats`.
        #[arg(long, value_parser = number_or_default)]
        seats: Option<Limit>,
        /// Plan name shown on the billing page (empty: the default plan).
        #[arg(long)]
        plan: Option<String>,
        /// Devices each member may keep signed in, or `default` for the site's.
        #[arg(long, value_parser = number_or_default)]
        cap: Option<Limit>,
    },
}

/// A number, or `default` (follow the site's value).
#[derive(Debug, Clone, Copy)]
pub struct Limit(Option<u32>);

fn number_or_default(s: &str) -> Result<Limit, String> {
    if s == "default" {
        return Ok(Limit(None));
    }
    s.parse()
        .map(|n| Limit(Some(n)))
        .map_err(|_| "expected a whole number or `default`".to_string())
}

fn or_default(n: Option<u32>) -> String {
    n.map_or_else(|| "default".to_string(), |n| n.to_string())
}

pub fn run(v: &Vigile, cmd: OrgCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let now = v.app.clock.now_ms();
    let deps = &v.app.deps;
    v.block_on(async {
        let store = &deps.store;
        let summary = |org: Org| async move {
            let seated = occupancy(deps, &org, now).await?;
            let boss = store.user_by_id(&org.super_admin).await?;
            let boss = boss.map(|u| u.email).unwrap_or_default();
            Ok::<_, crate::auth::FlowError>(format!(
                "{}\t{}\t{}\t{} members\t{}/{} seats",
                org.id,
                org.profile.company,
                boss,
                seated.members,
                seated.used,
                seats(deps, &org)
            ))
        };
        match cmd {
            OrgCommand::List => {
                for org in store.org_list().await? {
                    println!("{}", summary(org).await?);
                }
            }
            OrgCommand::Show { id } => {
                let Some(org) = store.org_get(&OrgId::from_string(id.as_str())).await? else {
                    eprintln!("vigile: no organisation {id}");
                    return Ok(ExitCode::from(1));
                };
                let p = &org.profile;
                println!("id:          {}", org.id);
                println!("company:     {}", p.company);
                println!("identifier:  {} {}", p.id_type, p.id_number);
                println!("phone:       {}", p.phone);
                println!("address:     {}", p.address.replace('\n', ", "));
                println!(
                    "plan:        {}",
                    org.terms.plan.as_deref().unwrap_or("standard")
                );
                println!(
                    "seats:       {}/{} ({})",
                    occupancy(deps, &org, now).await?.used,
                    seats(deps, &org),
                    or_default(org.terms.seats)
                );
                println!("device cap:  {}", or_default(org.terms.max_devices));
                for u in store.org_members(&org.id).await? {
                    let role = u.org_role().map_or("member", |r| r.as_str());
                    println!("member:      {}\t{}\t{}", u.email, role, u.id);
                }
                for i in store.org_invites(&org.id, now).await? {
                    println!("invited:     {}", i.email);
                }
            }
            OrgCommand::Set {
                id,
                seats,
                plan,
                cap,
            } => {
                let Some(org) = store.org_get(&OrgId::from_string(id.as_str())).await? else {
                    eprintln!("vigile: no organisation {id}");
                    return Ok(ExitCode::from(1));
                };
                let terms = OrgTerms {
                    seats: seats.map_or(org.terms.seats, |l| l.0),
                    plan: plan.map_or(org.terms.plan.clone(), |p| {
                        let p = p.trim();
                        (!p.is_empty()).then(|| p.to_string())
                    }),
                    max_devices: cap.map_or(org.terms.max_devices, |l| l.0),
                };
                admin::set_org_terms(store, Admin::Cli, &org.id, &terms, now).await?;
                println!("{}", summary(Org { terms, ..org }).await?);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
