//! `vigile user import FILE.csv [--invite] [--confirmed]`: create or invite a cohort from
//! a spreadsheet export (SPEC §2).
//!
//! The file is read by the `csv` crate, so whatever a spreadsheet writes (quoted fields
//! with commas, line breaks or doubled quotes, a UTF-8 byte-order mark, CRLF) means what
//! it meant there. Its first row names the columns; rows are told apart by their line in
//! the file, which is what an operator sees in an editor.
//!
//! Every row is checked before anything is written: each field by the parser the forms
//! use (`Email::parse`, `Phone::parse_mobile`), then against the store (the organisation
//! exists, the address has no account, it is not in the file twice). A refused row is
//! reported as `line N: field: reason` and nothing of it is written; the other rows are
//! applied. Seats are the one thing checked while writing, because only the store can
//! count them atomically against invitations made meanwhile from the organisation page.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use crate::audit::{Actor, Event};
use crate::auth::orgs::members::seats;
use crate::auth::password::Lane;
use crate::auth::Deps;
use crate::crypto::random_token;
use crate::edge::email::Email;
use crate::edge::phone::{Phone, Region};
use crate::i18n::Lang;
use crate::store::{
    millis, AccountStatus, Confirmed, Contact, Invited, Joined, Membership, Millis, Org, OrgId,
    OrgInvite, OrgRole, StoreError, TokenHash, User, UserId, Via,
};
use crate::Vigile;

/// What the command line asked for.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Mail invitations instead of creating accounts.
    pub invite: bool,
    /// The addresses (and mobiles) are known to be right: created accounts start with
    /// them confirmed by an admin.
    pub confirmed: bool,
}

type CmdResult = Result<ExitCode, Box<dyn std::error::Error>>;

/// The columns a file may have; only `email` is required.
const COLUMNS: [&str; 5] = ["email", "name", "lang", "mobile", "org"];

/// Longest name accepted, in characters (as for the organisation forms).
const MAX_NAME: usize = 100;

/// Longest organisation id looked up. Ids are 22 URL-safe characters; anything longer
/// or with other characters is a typo, refused before it reaches a store key.
const MAX_ORG_ID: usize = 64;

/// How long the invitation that seats an imported organisation member may live. It is
/// spent by the next store operation; the lease only bounds the seat it would hold if
/// the command died between the two.
const SEAT_LEASE_MS: Millis = 5 * 60 * 1000;

/// Recorded as the inviter of invitations made here: the shell, not an account. Nothing
/// reads it back (the audit log says `by=cli`); it only has to be no account's id, which
/// random 22-character ids never are.
const CLI_INVITER: &str = "cli";

/// Which field of which column, once the header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    email: usize,
    name: Option<usize>,
    lang: Option<usize>,
    mobile: Option<usize>,
    org: Option<usize>,
    width: usize,
}

/// A file that cannot be imported at all: nothing of it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    line: u64,
    reason: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: header: {}", self.line, self.reason)
    }
}

/// One refused field of a row (or `row` for the row as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    field: &'static str,
    reason: String,
}

/// A refused row: its line and every problem found on it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refused {
    line: u64,
    problems: Vec<Problem>,
}

impl Refused {
    fn one(line: u64, field: &'static str, reason: impl Into<String>) -> Self {
        Refused {
            line,
            problems: vec![Problem {
                field,
                reason: reason.into(),
            }],
        }
    }

    /// Each problem as `line N: field: reason`, one per line, on standard error.
    fn report(&self) {
        for p in &self.problems {
            eprintln!("line {}: {}: {}", self.line, p.field, p.reason);
        }
    }
}

/// A row whose every field passed its parser.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    line: u64,
    email: Email,
    name: String,
    lang: Option<Lang>,
    mobile: Option<Phone>,
    org: Option<OrgId>,
}

/// What the file holds: good rows and refused ones, in file order.
#[derive(Debug, Default)]
struct Parsed {
    rows: Vec<Row>,
    refused: Vec<Refused>,
}

/// Reads the header: each column named once, `email` among them, nothing else.
fn columns(line: u64, header: &csv::ByteRecord) -> Result<Columns, FileError> {
    let refuse = |reason: String| FileError { line, reason };
    let mut at: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (i, raw) in header.iter().enumerate() {
        let name = std::str::from_utf8(raw)
            .map_err(|_| refuse(format!("column {} is not UTF-8 text", i + 1)))?
            .trim()
            .to_ascii_lowercase();
        let Some(known) = COLUMNS.iter().copied().find(|c| *c == name) else {
            let reason = if name.is_empty() {
                format!("column {} has no name", i + 1)
            } else {
                format!("unknown column {name:?}")
            };
            return Err(refuse(format!(
                "{reason} (the columns are {}); nothing imported",
                COLUMNS.join(", ")
            )));
        };
        if at.insert(known, i).is_some() {
            return Err(refuse(format!(
                "column {known:?} appears twice; nothing imported"
            )));
        }
    }
    let Some(&email) = at.get("email") else {
        return Err(refuse("no \"email\" column; nothing imported".into()));
    };
    Ok(Columns {
        email,
        name: at.get("name").copied(),
        lang: at.get("lang").copied(),
        mobile: at.get("mobile").copied(),
        org: at.get("org").copied(),
        width: header.len(),
    })
}

/// A name: any text of at most [`MAX_NAME`] characters on one line.
fn check_name(raw: &str) -> Result<String, String> {
    if raw.chars().count() > MAX_NAME {
        return Err(format!("longer than {MAX_NAME} characters"));
    }
    if raw.chars().any(crate::edge::name::is_hidden) {
        return Err("contains a line break or another control or invisible character".into());
    }
    Ok(raw.to_string())
}

/// An organisation id as `vigile org list` prints it.
fn check_org(raw: &str) -> Result<OrgId, String> {
    let shaped = raw.len() <= MAX_ORG_ID
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if shaped {
        Ok(OrgId::from_string(raw))
    } else {
        Err(format!(
            "{raw:?} is not an organisation id (`vigile org list` shows them)"
        ))
    }
}

/// Checks one record's fields at the edge; every refused field is reported.
fn check_row(
    line: u64,
    record: &csv::ByteRecord,
    cols: &Columns,
    region: Region,
) -> Result<Row, Refused> {
    if record.len() != cols.width {
        return Err(Refused::one(
            line,
            "row",
            format!(
                "{} field(s) where the header names {} (a missing or extra comma?)",
                record.len(),
                cols.width
            ),
        ));
    }
    let mut problems = Vec::new();
    let mut field = |name: &'static str, at: Option<usize>| -> Option<String> {
        let raw = at.and_then(|i| record.get(i)).unwrap_or_default();
        match std::str::from_utf8(raw) {
            Ok(text) => Some(text.trim().to_string()),
            Err(_) => {
                problems.push(Problem {
                    field: name,
                    reason: "not UTF-8 text (save the file as \"CSV UTF-8\")".into(),
                });
                None
            }
        }
    };
    let email = field("email", Some(cols.email));
    let name = field("name", cols.name);
    let lang = field("lang", cols.lang);
    let mobile = field("mobile", cols.mobile);
    let org = field("org", cols.org);
    let mut refuse = |field: &'static str, reason: String| problems.push(Problem { field, reason });
    let email = email.and_then(|raw| {
        Email::parse(&raw)
            .map_err(|e| refuse("email", format!("{raw:?}: {e}")))
            .ok()
    });
    let name = name.and_then(|raw| check_name(&raw).map_err(|e| refuse("name", e)).ok());
    let lang = lang.and_then(|raw| match raw.as_str() {
        "" => Some(None),
        _ => match Lang::parse(&raw) {
            Some(l) => Some(Some(l)),
            None => {
                refuse("lang", format!("{raw:?}: expected fr, en or nothing"));
                None
            }
        },
    });
    let mobile = mobile.and_then(|raw| match raw.as_str() {
        "" => Some(None),
        _ => Phone::parse_mobile(&raw, region)
            .map(Some)
            .map_err(|e| refuse("mobile", format!("{raw:?}: {e}")))
            .ok(),
    });
    let org = org.and_then(|raw| match raw.as_str() {
        "" => Some(None),
        _ => check_org(&raw).map(Some).map_err(|e| refuse("org", e)).ok(),
    });
    match (email, name, lang, mobile, org) {
        (Some(email), Some(name), Some(lang), Some(mobile), Some(org)) if problems.is_empty() => {
            Ok(Row {
                line,
                email,
                name,
                lang,
                mobile,
                org,
            })
        }
        _ => Err(Refused { line, problems }),
    }
}

/// Line numbers of the file, as an editor shows them (a line ends at `\n`, `\r\n` or a
/// lone `\r`).
///
/// The `csv` crate's own `Position::line` undercounts (a `\r\n` or an empty line before a
/// record is not counted), and a record's `Position::byte` may point into the line breaks
/// before it rather than at its first byte; so lines are counted here from that offset,
/// past those line breaks. Offsets only grow, so the whole file is scanned once.
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// Bytes before this offset are counted.
    at: usize,
    /// The line `at` is on.
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            at: 0,
            line: 1,
        }
    }

    /// The line of the record the parser reported at byte `offset`.
    fn record_at(&mut self, offset: u64) -> u64 {
        let mut start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        while matches!(self.bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        while self.at < start {
            let lone_cr =
                self.bytes[self.at] == b'\r' && self.bytes.get(self.at + 1) != Some(&b'\n');
            if self.bytes[self.at] == b'\n' || lone_cr {
                self.line += 1;
            }
            self.at += 1;
        }
        self.line
    }
}

/// Parses the whole file: the header, then every row, each checked at the edge. An
/// address given twice is refused on its second line (the first stands). Empty lines,
/// and rows whose every field is empty (a spreadsheet's trailing `,,,,`), are skipped.
fn parse(bytes: &[u8], region: Region) -> Result<Parsed, FileError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut cols = None;
    let mut parsed = Parsed::default();
    let mut first_line: HashMap<Email, u64> = HashMap::new();
    let mut lines = LineCounter::new(bytes);
    loop {
        // Reading a byte slice into byte records, flexible about widths: nothing fails
        // today, but the reader's contract allows errors.
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| FileError {
                line: lines.record_at(e.position().map_or(0, csv::Position::byte)),
                reason: format!("unreadable: {e}; nothing imported"),
            })?;
        if !more {
            break;
        }
        let line = lines.record_at(record.position().map_or(0, csv::Position::byte));
        if record.iter().all(|f| f.trim_ascii().is_empty()) {
            continue;
        }
        let Some(cols) = &cols else {
            cols = Some(columns(line, &record)?);
            continue;
        };
        match check_row(line, &record, cols, region) {
            Err(refused) => parsed.refused.push(refused),
            Ok(row) => match first_line.get(&row.email) {
                Some(first) => parsed.refused.push(Refused::one(
                    line,
                    "email",
                    format!("{} is already on line {first}", row.email),
                )),
                None => {
                    first_line.insert(row.email.clone(), line);
                    parsed.rows.push(row);
                }
            },
        }
    }
    if cols.is_none() {
        return Err(FileError {
            line: 1,
            reason: format!(
                "the file is empty; its first line names the columns ({}); nothing imported",
                COLUMNS.join(",")
            ),
        });
    }
    Ok(parsed)
}

/// A row checked against the store too, with its organisation as it is now.
struct Ready {
    row: Row,
    org: Option<Org>,
}

/// The store's part of the checks, before anything is written: the organisation exists,
/// the address has no account (a pending sign-up counts: it would be replaced silently
/// otherwise).
async fn check_store(
    deps: &Deps,
    rows: Vec<Row>,
) -> Result<(Vec<Ready>, Vec<Refused>), StoreError> {
    let mut orgs: HashMap<OrgId, Option<Org>> = HashMap::new();
    let (mut ready, mut refused) = (Vec::new(), Vec::new());
    for row in rows {
        let mut problems = Vec::new();
        if let Some(user) = deps.store.user_by_email(row.email.as_str()).await? {
            let reason = match user.status {
                AccountStatus::Active => format!("{} already has an account", row.email),
                AccountStatus::Pending => format!(
                    "{} already has an account (a sign-up waiting for activation)",
                    row.email
                ),
            };
            problems.push(Problem {
                field: "email",
                reason,
            });
        }
        let org = match &row.org {
            None => None,
            Some(id) => {
                if !orgs.contains_key(id) {
                    orgs.insert(id.clone(), deps.store.org_get(id).await?);
                }
                let org = orgs.get(id).cloned().flatten();
                if org.is_none() {
                    problems.push(Problem {
                        field: "org",
                        reason: format!("no organisation {id} (`vigile org list` shows them)"),
                    });
                }
                org
            }
        };
        if problems.is_empty() {
            ready.push(Ready { row, org });
        } else {
            refused.push(Refused {
                line: row.line,
                problems,
            });
        }
    }
    Ok((ready, refused))
}

/// What applying one row did.
enum Applied {
    Imported,
    Invited,
    Refused(Refused),
}

/// Why an organisation row got no seat, for the operator.
fn no_seat(row: &Row, org: &Org, seats: u32) -> Applied {
    Applied::Refused(Refused::one(
        row.line,
        "org",
        format!(
            "organisation {} ({}) is full: its {seats} seat(s) are taken by members and \
             pending invitations (`vigile org set --seats N -- {}` adds some)",
            org.id, org.profile.company, org.id
        ),
    ))
}

fn taken(row: &Row) -> Applied {
    Applied::Refused(Refused::one(
        row.line,
        "email",
        format!("{} already has an account", row.email),
    ))
}

/// Creates the row's account: active, with a password nobody knows (the hash of a random
/// token thrown away), so the member gets in through a password reset. An organisation
/// row goes through the store's invitation and join operations, which count the seats and
/// create the member atomically; the invitation is never mailed.
async fn create(
    deps: &Deps,
    ready: &Ready,
    opts: Options,
    now: Millis,
) -> Result<Applied, Box<dyn std::error::Error>> {
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
    let user = User {
        id: UserId::random(),
        email: row.email.to_string(),
        name: row.name.clone(),
        password_hash: deps
            .auth
            .hasher
            .hash(&random_token(32), Lane::operator())
            .await?,
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
            Ok(()) => Ok(Applied::Imported),
            Err(StoreError::Conflict) => Ok(taken(row)),
            Err(e) => Err(e.into()),
        };
    };
    let token = random_token(32);
    let seat = OrgInvite {
        org: org.id.clone(),
        email: user.email.clone(),
        token_hash: TokenHash::of(&token),
        invited_by: UserId::from_string(CLI_INVITER),
        created_at: now,
        expires_at: now.saturating_add(SEAT_LEASE_MS),
    };
    let seats = seats(deps, org);
    match deps.store.org_invite(&seat, seats, now).await? {
        Invited::Invited => {}
        Invited::NoSeat => return Ok(no_seat(row, org, seats)),
        Invited::AlreadyMember => return Ok(taken(row)),
    }
    match deps.store.org_join(&seat.token_hash, &user, now).await? {
        Joined::Joined => {}
        Joined::EmailTaken => return Ok(taken(row)),
        Joined::Gone => {
            return Ok(Applied::Refused(Refused::one(
                row.line,
                "org",
                "the seat was withdrawn from the organisation page meanwhile; import it again",
            )))
        }
    }
    let joined = Event::OrgJoined {
        org: &org.id,
        user: &user.id,
        email: &user.email,
    };
    joined.emit(&Actor::Cli, now);
    Ok(Applied::Imported)
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
    now: Millis,
) -> Result<Applied, Box<dyn std::error::Error>> {
    let row = &ready.row;
    let lang = row.lang.unwrap_or(deps.config.default_lang);
    let Some(org) = &ready.org else {
        crate::auth::signup::invite(deps, &row.email, lang, now).await?;
        return Ok(Applied::Invited);
    };
    let token = random_token(32);
    let ttl = millis(deps.config.file.signup.invite_ttl);
    let invitation = OrgInvite {
        org: org.id.clone(),
        email: row.email.to_string(),
        token_hash: TokenHash::of(&token),
        invited_by: UserId::from_string(CLI_INVITER),
        created_at: now,
        expires_at: now.saturating_add(ttl),
    };
    let seats = seats(deps, org);
    match deps.store.org_invite(&invitation, seats, now).await? {
        Invited::Invited => {}
        Invited::NoSeat => return Ok(no_seat(row, org, seats)),
        Invited::AlreadyMember => return Ok(taken(row)),
    }
    deps.mailer
        .org_invitation(&row.email, lang, &org.profile.company, &token, now)
        .await?;
    let invited = Event::OrgInvited {
        org: &org.id,
        email: row.email.as_str(),
    };
    invited.emit(&Actor::Cli, now);
    Ok(Applied::Invited)
}

/// The command: check every row, report the refused ones, apply the others, print
/// `imported N, invited M, refused K`. Non-zero exit when a row was refused.
pub async fn run(v: &Vigile, file: &Path, opts: Options) -> CmdResult {
    let deps = &v.app.deps;
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("vigile: {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let parsed = match parse(&bytes, deps.config.phone_region) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vigile: {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let (ready, late) = check_store(deps, parsed.rows).await?;
    let mut refused = parsed.refused;
    refused.extend(late);
    refused.sort_by_key(|r| r.line);
    for r in &refused {
        r.report();
    }
    let (mut imported, mut invited) = (0u64, 0u64);
    let mut refused = u64::try_from(refused.len()).unwrap_or(u64::MAX);
    for ready in &ready {
        // Read per row: a long import's accounts and invitations carry their own times.
        let now = v.app.clock.now_ms();
        let applied = if opts.invite {
            invite(deps, ready, now).await
        } else {
            create(deps, ready, opts, now).await
        };
        match applied {
            Ok(Applied::Imported) => imported += 1,
            Ok(Applied::Invited) => invited += 1,
            Ok(Applied::Refused(r)) => {
                r.report();
                refused += 1;
            }
            Err(e) => {
                eprintln!(
                    "line {}: store: {e}; this row and the ones after it were not applied",
                    ready.row.line
                );
                println!("imported {imported}, invited {invited}, refused {refused}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    if imported > 0 && !opts.confirmed {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fr() -> Region {
        Region::parse("FR").unwrap()
    }

    fn lines(refused: &[Refused]) -> Vec<String> {
        refused
            .iter()
            .flat_map(|r| {
                r.problems
                    .iter()
                    .map(move |p| format!("line {}: {}: {}", r.line, p.field, p.reason))
            })
            .collect()
    }

    #[test]
    fn columns_by_name_in_any_order_with_a_bom_and_quotes() {
        let file = "\u{feff}Org,EMAIL,name\r\n\
                    ,ana@example.com,\"Martin, Ana\"\r\n\
                    \r\n\
                    ,bob@example.com,\"Bob \"\"the\"\" builder\"\n\
                    ,,\n";
        let parsed = parse(file.as_bytes(), fr()).unwrap();
        assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
        let got: Vec<(u64, &str, &str)> = parsed
            .rows
            .iter()
            .map(|r| (r.line, r.email.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "ana@example.com", "Martin, Ana"),
                (4, "bob@example.com", "Bob \"the\" builder"),
            ]
        );
    }

    #[test]
    fn a_quoted_line_break_keeps_the_line_numbers_of_the_file() {
        let file = "email,name\n\"a@example.com\",\"two\nlines\"\nnot-an-address,x\n";
        let parsed = parse(file.as_bytes(), fr()).unwrap();
        assert_eq!(
            lines(&parsed.refused),
            [
                "line 2: name: contains a line break or another control or invisible character",
                "line 4: email: \"not-an-address\": the address has no @, or nothing before or \
                 after it",
            ]
        );
    }

    #[test]
    fn every_field_is_parsed_at_the_edge() {
        let file = "email,lang,mobile,org\n\
                    ANA@Example.COM,FR,06 12 34 56 78,AbC_12-x\n\
                    bad,de,01 23 45 67 89,no/such\n\
                    ana@example.com,,,\n\
                    c@example.com,en\n";
        let parsed = parse(file.as_bytes(), fr()).unwrap();
        let row = &parsed.rows[0];
        assert_eq!(
            (
                row.email.as_str(),
                row.lang,
                row.mobile.as_ref().map(Phone::as_str),
                row.org.as_ref().map(OrgId::as_str)
            ),
            (
                "ana@example.com",
                Some(Lang::Fr),
                Some("+33612345678"),
                Some("AbC_12-x")
            )
        );
        let report = lines(&parsed.refused);
        assert_eq!(report.len(), 6, "{report:#?}");
        assert!(
            report[0].starts_with("line 3: email: \"bad\""),
            "{report:#?}"
        );
        assert!(report[1].starts_with("line 3: lang: \"de\""), "{report:#?}");
        assert!(report[2].starts_with("line 3: mobile: \"01 23 45 67 89\""));
        assert!(report[3].starts_with("line 3: org: \"no/such\""));
        assert_eq!(
            report[4],
            "line 4: email: ana@example.com is already on line 2"
        );
        assert!(report[5].starts_with("line 5: row: 2 field(s) where the header names 4"));
    }

    #[test]
    fn lines_are_counted_as_an_editor_shows_them() {
        let cases: [(&str, &[u64]); 6] = [
            ("email\na@x.fr\nb@x.fr\n", &[2, 3]),
            ("email\r\na@x.fr\r\nb@x.fr\r\n", &[2, 3]),
            ("\u{feff}email\r\n\r\n\r\na@x.fr\r\n\nb@x.fr", &[4, 6]),
            ("\n\nemail\na@x.fr\n\n\nb@x.fr\n", &[4, 7]),
            ("email\ra@x.fr\r\rb@x.fr\r", &[2, 4]),
            (
                "email,name\r\na@x.fr,\"a\r\n\r\nb\"\r\nb@x.fr,\r\n",
                &[2, 5],
            ),
        ];
        for (file, want) in cases {
            let parsed = parse(file.as_bytes(), fr()).unwrap();
            let mut got: Vec<u64> = parsed
                .rows
                .iter()
                .map(|r| r.line)
                .chain(parsed.refused.iter().map(|r| r.line))
                .collect();
            got.sort_unstable();
            assert_eq!(got, want, "{file:?}");
        }
    }

    #[test]
    fn a_bad_header_refuses_the_whole_file() {
        let unknown = parse(b"email,phone\na@example.com,1\n", fr()).unwrap_err();
        assert_eq!(unknown.line, 1);
        assert!(
            unknown
                .to_string()
                .starts_with("line 1: header: unknown column \"phone\""),
            "{unknown}"
        );
        let twice = parse(b"email,Email\n", fr()).unwrap_err();
        assert!(twice.reason.contains("\"email\" appears twice"), "{twice}");
        let none = parse(b"name\nAna\n", fr()).unwrap_err();
        assert!(none.reason.starts_with("no \"email\" column"), "{none}");
        let empty = parse(b"\n\n", fr()).unwrap_err();
        assert!(empty.reason.starts_with("the file is empty"), "{empty}");
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_in_its_field() {
        let parsed = parse(b"email,name\na@example.com,Andr\xe9\n", fr()).unwrap();
        assert_eq!(
            lines(&parsed.refused),
            ["line 2: name: not UTF-8 text (save the file as \"CSV UTF-8\")"]
        );
    }
}
