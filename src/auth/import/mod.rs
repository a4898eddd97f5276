//! Importing a cohort from a spreadsheet export: the one implementation behind
//! `vigile user import FILE.csv [--invite] [--confirmed]` and the console's import page.
//! Callers read the file (from disk, from an upload), call [`preview`] or [`apply`], and
//! render the typed [`Report`] (English on the command line, the reader's language on the
//! console); nothing here prints, and nothing reads the clock: [`apply`] is given one.
//!
//! The file is read by the `csv` crate, so whatever a spreadsheet writes (quoted fields
//! with commas, line breaks or doubled quotes, a UTF-8 byte-order mark, CRLF) means what
//! it meant there. Its first row names the columns; rows are told apart by their line in
//! the file, which is what an operator sees in an editor.
//!
//! Every row is checked before anything is written: each field by the parser the forms
//! use (`Email::parse`, `Phone::parse_mobile`), then against the store (the organisation
//! exists, the address has no account and no invitation pending, it is not in the file
//! twice). A refused row is reported by its line with each field's reason, and nothing of
//! it is written; the other rows are applied. An address that already has an account, or
//! (when inviting) an invitation still pending, is left as it is, so importing the same
//! file again does nothing twice. Seats are the one thing checked while writing, because
//! only the store can count them atomically against invitations made meanwhile from the
//! organisation page. [`apply`] never trusts an earlier [`preview`]: it checks again.

mod parse;
mod report;

use std::collections::HashMap;

pub use report::{
    Counts, Field, FileError, FileReason, Line, Outcome, Problem, Reason, Report, Stopped,
};

use super::admin::Admin;
use super::orgs::members::{occupancy, seats};
use super::password::Lane;
use super::{Deps, FlowError};
use crate::audit::Event;
use crate::clock::Clock;
use crate::crypto::random_token;
use crate::edge::email::Email;
use crate::store::shard::{self, Shard};
use crate::store::{
    millis, AccountStatus, Confirmed, Contact, Invited, Joined, Membership, Millis, Org, OrgId,
    OrgInvite, OrgRole, StoreError, TokenHash, TokenKind, User, UserId, Via,
};
use parse::{parse, Row};

/// How to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Mail invitations instead of creating accounts.
    pub invite: bool,
    /// The addresses (and mobiles) are known to be right: created accounts start with
    /// them confirmed by an admin.
    pub confirmed: bool,
    /// Refuse a file with more rows than this (the console bounds a request's work; the
    /// command line does not).
    pub max_rows: Option<usize>,
}

/// The columns a file may have; only `email` is required.
pub const COLUMNS: [&str; 5] = ["email", "name", "lang", "mobile", "org"];

/// Longest name accepted, in characters (as for the organisation forms).
pub const MAX_NAME: usize = 100;

/// How long the invitation that seats an imported organisation member may live. It is
/// spent by the next store operation; the lease only bounds the seat it would hold if
/// the import died between the two.
const SEAT_LEASE_MS: Millis = 5 * 60 * 1000;

/// Recorded as the inviter of invitations made from the command line: the shell, not an
/// account. Nothing reads it back (the audit log says `by=cli`); it only has to be no
/// account's id, which random 22-character ids never are.
const CLI_INVITER: &str = "cli";

/// A row checked against the store too, with its organisation as it is now.
struct Ready {
    row: Row,
    org: Option<Org>,
}

/// What the store says of a row before anything is written.
enum Checked {
    Ready(Box<Ready>),
    /// Exists, invited already, or refused: reported as is.
    Done(Line),
}

/// The store's part of the checks, before anything is written: the organisation exists,
/// the address has no account (a pending sign-up counts: it would be replaced silently
/// otherwise) and, when inviting, no invitation pending.
async fn check_store(
    deps: &Deps,
    rows: Vec<Row>,
    opts: Options,
    now: Millis,
) -> Result<Vec<Checked>, StoreError> {
    let mut orgs: HashMap<OrgId, Option<Org>> = HashMap::new();
    let mut invites: HashMap<OrgId, HashMap<String, Millis>> = HashMap::new();
    let mut out = Vec::new();
    for row in rows {
        let org = match &row.org {
            None => None,
            Some(id) => {
                if !orgs.contains_key(id) {
                    orgs.insert(id.clone(), deps.store.org_get(id).await?);
                }
                let org = orgs.get(id).cloned().flatten();
                if org.is_none() {
                    let problem = Problem {
                        field: Field::Org,
                        reason: Reason::NoOrg { id: id.clone() },
                    };
                    out.push(Checked::Done(row.report(Outcome::Refused(vec![problem]))));
                    continue;
                }
                org
            }
        };
        if let Some(user) = deps.store.user_by_email(row.email.as_str()).await? {
            let pending = user.status == AccountStatus::Pending;
            out.push(Checked::Done(row.report(Outcome::Exists { pending })));
            continue;
        }
        if opts.invite {
            let until = match &org {
                None => deps
                    .store
                    .token_peek(TokenKind::Invite, &invite_hash(&row.email), now)
                    .await?
                    .map(|t| t.expires_at),
                Some(org) => {
                    if !invites.contains_key(&org.id) {
                        let pending = deps.store.org_invites(&org.id, now).await?;
                        let by_email = pending
                            .into_iter()
                            .map(|i| (i.email, i.expires_at))
                            .collect();
                        invites.insert(org.id.clone(), by_email);
                    }
                    invites
                        .get(&org.id)
                        .and_then(|pending| pending.get(row.email.as_str()))
                        .copied()
                }
            };
            if let Some(until) = until {
                out.push(Checked::Done(row.report(Outcome::Invited { until })));
                continue;
            }
        }
        out.push(Checked::Ready(Box::new(Ready { row, org })));
    }
    Ok(out)
}

/// The key of a sign-up invitation (as `signup::invite` stores it).
fn invite_hash(email: &Email) -> TokenHash {
    super::signup::invite_hash(email.as_str())
}

/// Parses and checks `bytes` as they are now in the store: what [`apply`] would do with
/// each row. Nothing is written. Organisation seats are forecast from the members and
/// invitations pending now (the import itself counts them atomically).
pub async fn preview(
    deps: &Deps,
    bytes: &[u8],
    opts: Options,
    now: Millis,
) -> Result<Result<Report, FileError>, FlowError> {
    let parsed = match parse(bytes, deps.config.phone_region, opts.max_rows) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let mut lines = parsed.refused;
    let mut free: HashMap<OrgId, u32> = HashMap::new();
    for checked in check_store(deps, parsed.rows, opts, now).await? {
        let ready = match checked {
            Checked::Done(line) => {
                lines.push(line);
                continue;
            }
            Checked::Ready(ready) => ready,
        };
        let outcome = if opts.invite {
            Outcome::Invite
        } else {
            Outcome::Create
        };
        let Some(org) = &ready.org else {
            lines.push(ready.row.report(outcome));
            continue;
        };
        if !free.contains_key(&org.id) {
            let used = occupancy(deps, org, now).await?.used;
            free.insert(org.id.clone(), seats(deps, org).saturating_sub(used));
        }
        let left = free.entry(org.id.clone()).or_default();
        if *left == 0 {
            lines.push(ready.row.report(no_seat(deps, org)));
        } else {
            *left -= 1;
            lines.push(ready.row.report(outcome));
        }
    }
    lines.sort_by_key(|l| l.line);
    Ok(Ok(Report {
        lines,
        stopped: None,
    }))
}

/// Checks `bytes` again from scratch (never trusting a preview), then creates or invites
/// every row that passed, in file order, each at the time `clock` gives as it is written.
/// `Err` only when nothing could be checked; a failure while writing stops there and is
/// told by [`Report::stopped`] (the rows before it stand, and importing the same file
/// again does them no second time).
pub async fn apply(
    deps: &Deps,
    bytes: &[u8],
    opts: Options,
    by: Admin<'_>,
    clock: &dyn Clock,
) -> Result<Result<Report, FileError>, FlowError> {
    let parsed = match parse(bytes, deps.config.phone_region, opts.max_rows) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let mut report = Report {
        lines: parsed.refused,
        stopped: None,
    };
    let checked = check_store(deps, parsed.rows, opts, clock.now_ms()).await?;
    for checked in checked {
        let ready = match checked {
            Checked::Done(line) => {
                report.lines.push(line);
                continue;
            }
            Checked::Ready(ready) => ready,
        };
        let outcome = if report.stopped.is_some() {
            // Not applied: what the checks said.
            Ok(if opts.invite {
                Outcome::Invite
            } else {
                Outcome::Create
            })
        } else {
            // Read per row: a long import's accounts and invitations carry their own times.
            let now = clock.now_ms();
            if opts.invite {
                invite(deps, &ready, by, now).await
            } else {
                create(deps, &ready, opts, by, now).await
            }
        };
        match outcome {
            Ok(outcome) => report.lines.push(ready.row.report(outcome)),
            Err(e) => {
                tracing::warn!(line = ready.row.line, error = %e, "import stopped");
                report.stopped = Some(Stopped {
                    line: ready.row.line,
                    error: e.to_string(),
                });
                let planned = if opts.invite {
                    Outcome::Invite
                } else {
                    Outcome::Create
                };
                report.lines.push(ready.row.report(planned));
            }
        }
    }
    report.lines.sort_by_key(|l| l.line);
    Ok(Ok(report))
}

/// Why an organisation row gets no seat.
fn no_seat(deps: &Deps, org: &Org) -> Outcome {
    Outcome::Refused(vec![Problem {
        field: Field::Org,
        reason: Reason::OrgFull {
            id: org.id.clone(),
            company: org.profile.company.clone(),
            seats: seats(deps, org),
        },
    }])
}

/// The address got an account between the checks and the write.
fn taken() -> Outcome {
    Outcome::Exists { pending: false }
}

/// The inviter recorded on an organisation invitation.
fn inviter(by: Admin<'_>) -> UserId {
    match by {
        Admin::Page { user, .. } => user.clone(),
        Admin::Cli => UserId::from_string(CLI_INVITER),
    }
}

/// Where the hash of an imported account's unknown password waits: the admin's own turn
/// among signed-in members on the console, the command line's lane in the shell.
fn lane(by: Admin<'_>) -> Lane {
    match by {
        Admin::Page { user, .. } => Lane::member(user),
        Admin::Cli => Lane::operator(),
    }
}

/// Creates the row's account: active, with a password nobody knows (the hash of a random
/// token thrown away), so the member gets in through a password reset. An organisation
/// row goes through the store's invitation and join operations, which count the seats and
/// create the member atomically; the invitation is never mailed.
async fn create(
    deps: &Deps,
    ready: &Ready,
    opts: Options,
    by: Admin<'_>,
    now: Millis,
) -> Result<Outcome, FlowError> {
    let row = &ready.row;
    let vouched = opts.confirmed.then_some(Confirmed {
        at: now,
        via: Via::Admin,
    });
    let mobile = row.mobile.as_ref().map(|m| m.as_str().to_string());
    let contact = Contact {
        mobile_confirmed: vouched.filter(|_| mobile.is_some()),
        mobile,
        email_confirmed: vouched,
        campaign: None,
    };
    // Beside the organisation it joins (whose seat link it spends), else its address.
    let id = match &ready.org {
        Some(org) => UserId::random_in(Shard::of(org.id.as_str())),
        None => UserId::for_address(row.email.as_str()),
    };
    let user = User {
        id,
        email: row.email.to_string(),
        name: row.name.clone(),
        password_hash: deps.auth.hasher.hash(&random_token(32), lane(by)).await?,
        admin: false,
        status: AccountStatus::Active,
        lang: row.lang.map(|l| l.code().to_string()),
        created_at: now,
        org: ready.org.as_ref().map(|org| Membership {
            org: org.id.clone(),
            role: OrgRole::Member,
        }),
        contact,
    };
    let Some(org) = &ready.org else {
        return match deps.store.user_insert(&user).await {
            Ok(()) => {
                let created = Event::MemberCreated {
                    user: &user.id,
                    email: &user.email,
                };
                created.emit(&by.actor(), now);
                Ok(Outcome::Create)
            }
            Err(StoreError::Conflict) => Ok(taken()),
            Err(e) => Err(e.into()),
        };
    };
    let token = shard::token_in(Shard::of(org.id.as_str()), 32);
    let seat = OrgInvite {
        org: org.id.clone(),
        email: user.email.clone(),
        token_hash: TokenHash::of(&token),
        invited_by: inviter(by),
        created_at: now,
        expires_at: now.saturating_add(SEAT_LEASE_MS),
    };
    match deps.store.org_invite(&seat, seats(deps, org), now).await? {
        Invited::Invited => {}
        Invited::NoSeat => return Ok(no_seat(deps, org)),
        Invited::AlreadyMember => return Ok(taken()),
    }
    match deps.store.org_join(&seat.token_hash, &user, now).await? {
        Joined::Joined => {}
        Joined::EmailTaken => return Ok(taken()),
        Joined::Gone => {
            return Ok(Outcome::Refused(vec![Problem {
                field: Field::Org,
                reason: Reason::SeatWithdrawn,
            }]))
        }
    }
    let joined = Event::OrgJoined {
        org: &org.id,
        user: &user.id,
        email: &user.email,
    };
    joined.emit(&by.actor(), now);
    Ok(Outcome::Create)
}

/// Invites the row's address: to sign up (as `vigile user invite`), or to join its
/// organisation (as the organisation page does, the seat counted by the store). Name and
/// mobile are not kept: the invited person types their own when they accept.
///
/// The page's mail limits (per address, 100 per organisation and hour) are not applied:
/// they keep an organisation admin's form from relaying mail, and the site's operator
/// importing a class is not who they guard against.
async fn invite(
    deps: &Deps,
    ready: &Ready,
    by: Admin<'_>,
    now: Millis,
) -> Result<Outcome, FlowError> {
    let row = &ready.row;
    let lang = row.lang.unwrap_or(deps.config.default_lang);
    let Some(org) = &ready.org else {
        super::signup::invite(deps, &row.email, lang, now).await?;
        let invited = Event::SignupInvited {
            email: row.email.as_str(),
        };
        invited.emit(&by.actor(), now);
        return Ok(Outcome::Invite);
    };
    let token = shard::token_in(Shard::of(org.id.as_str()), 32);
    let ttl = millis(deps.config.file.signup.invite_ttl);
    let invitation = OrgInvite {
        org: org.id.clone(),
        email: row.email.to_string(),
        token_hash: TokenHash::of(&token),
        invited_by: inviter(by),
        created_at: now,
        expires_at: now.saturating_add(ttl),
    };
    match deps
        .store
        .org_invite(&invitation, seats(deps, org), now)
        .await?
    {
        Invited::Invited => {}
        Invited::NoSeat => return Ok(no_seat(deps, org)),
        Invited::AlreadyMember => return Ok(taken()),
    }
    deps.mailer
        .org_invitation(&row.email, lang, &org.profile.company, &token, now)
        .await?;
    let invited = Event::OrgInvited {
        org: &org.id,
        email: row.email.as_str(),
    };
    invited.emit(&by.actor(), now);
    Ok(Outcome::Invite)
}
