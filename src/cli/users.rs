//! `vigile user ...`: account administration from the shell.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::admin::{self, Admin, Revoked, Sessions};
use crate::auth::password::Lane;
use crate::auth::{devices, lockout, policy};
use crate::edge::email::Email;
use crate::edge::phone::Phone;
use crate::i18n::Lang;
use crate::store::{
    AccountStatus, AttemptKey, Confirmed, Contact, Millis, SessionId, StoreError, User, UserId, Via,
};
use crate::Vigile;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an active account; the password is read from standard input.
    Add {
        email: String,
        #[arg(long)]
        admin: bool,
        #[arg(long, default_value = "")]
        name: String,
        /// Mobile number (E.164, or national in `site.phone_region`).
        #[arg(long)]
        mobile: Option<String>,
        /// The address (and the mobile, if given) are known to be right: they start
        /// confirmed. Otherwise the member confirms them (contact page) before password
        /// recovery can use them.
        #[arg(long)]
        confirmed: bool,
    },
    /// List accounts (every one, or those a search finds, as the console does).
    List {
        /// Text to find in the address or the name (ASCII case folded).
        #[arg(long)]
        search: Option<String>,
        /// Only accounts in this state: active, pending, locked or over-cap.
        #[arg(long)]
        state: Option<String>,
    },
    /// Show one account with its sessions.
    Show { email: String },
    /// Invite an address (lets it sign up when `signup.mode = "invite"`) and mail it a
    /// sign-up link; the running gateway sends the mail. Inviting again renews it.
    Invite {
        email: String,
        /// Language of the invitation mail (fr or en; default: `i18n.default`).
        #[arg(long)]
        lang: Option<String>,
    },
    /// Create (or with --invite, invite) a cohort from a CSV file.
    ///
    /// A refused row is reported as `line N: field: reason` and nothing of it is
    /// written; the others are applied. Created accounts have no password: members set
    /// one through a password reset, which needs a confirmed address (--confirmed).
    /// Invitations keep no name or mobile: the invited person types theirs.
    Import {
        /// CSV whose first line names the columns: email (required), name, lang (fr or
        /// en), mobile, org (an organisation id: the account joins it as a member,
        /// within its seats).
        file: std::path::PathBuf,
        /// Mail invitations (to sign up, or to join the row's organisation) instead of
        /// creating accounts.
        #[arg(long)]
        invite: bool,
        /// The addresses (and mobiles) are known to be right: they start confirmed.
        #[arg(long, conflicts_with = "invite")]
        confirmed: bool,
    },
    /// Lift a lockout: forget the failed attempts on the account and on its devices.
    Unlock { email: String },
    /// Set this member's own device cap (a number, 0 = unlimited) or go back to the
    /// site's (`default`). Applies at the member's next login.
    Cap { email: String, cap: String },
    /// End sessions: every one (--all) or one (--session ID).
    Revoke {
        email: String,
        #[arg(long, conflicts_with = "session", required_unless_present = "session")]
        all: bool,
        /// Session ids are base64url and may start with `-`.
        #[arg(long, allow_hyphen_values = true)]
        session: Option<String>,
    },
    /// Remove every second factor of a member (a lost phone): authenticator apps,
    /// passkeys, codes by mail or text, recovery codes and trusted devices. The member is
    /// mailed; their next login asks them to enrol again if a factor is required.
    #[command(name = "2fa-reset")]
    TwoFactorReset { email: String },
}

type CmdResult = Result<ExitCode, Box<dyn std::error::Error>>;

fn fail(msg: impl std::fmt::Display) -> CmdResult {
    eprintln!("vigile: {msg}");
    Ok(ExitCode::FAILURE)
}

/// An address given on the command line, parsed as the forms parse it.
fn parse_email(raw: &str) -> Result<Email, String> {
    Email::parse(raw).map_err(|e| format!("{:?} is not an email address: {e}", raw))
}

/// Failed mails looked through by `user show` (the admin page shows fewer).
const FAILED_SHOWN: usize = 1000;

fn fmt_time(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}

pub fn run(v: &Vigile, cmd: UserCommand) -> CmdResult {
    // The command's one reading of the clock.
    let now = v.app.clock.now_ms();
    v.block_on(async {
        match cmd {
            UserCommand::Invite { email, lang } => invite(v, &email, lang.as_deref(), now).await,
            UserCommand::Add {
                email,
                admin,
                name,
                mobile,
                confirmed,
            } => {
                let new = NewAccount {
                    admin,
                    name,
                    mobile,
                    confirmed,
                };
                add(v, &email, new, now).await
            }
            UserCommand::Import {
                file,
                invite,
                confirmed,
            } => super::import::run(v, &file, invite, confirmed).await,
            UserCommand::List { search, state } => list(v, search, state, now).await,
            UserCommand::Show { email } => show(v, &email, now).await,
            UserCommand::Unlock { email } => unlock(v, &email, now).await,
            UserCommand::Cap { email, cap } => set_cap(v, &email, &cap, now).await,
            UserCommand::Revoke {
                email,
                all,
                session,
            } => revoke(v, &email, all, session, now).await,
            UserCommand::TwoFactorReset { email } => twofactor_reset(v, &email, now).await,
        }
    })
}

async fn invite(v: &Vigile, email: &str, lang: Option<&str>, now: Millis) -> CmdResult {
    let email = match parse_email(email) {
        Ok(email) => email,
        Err(msg) => return fail(msg),
    };
    let lang = match lang.map(Lang::parse) {
        None => v.app.config.default_lang,
        Some(Some(l)) => l,
        Some(None) => return fail("--lang: expected fr or en"),
    };
    crate::auth::signup::invite(&v.app, &email, lang, now).await?;
    println!("invited {email}; the invitation mail is queued");
    Ok(ExitCode::SUCCESS)
}

struct NewAccount {
    admin: bool,
    name: String,
    mobile: Option<String>,
    confirmed: bool,
}

async fn add(v: &Vigile, email: &str, new: NewAccount, now: Millis) -> CmdResult {
    let email = match parse_email(email) {
        Ok(email) => email,
        Err(msg) => return fail(msg),
    };
    // Empty: the account has no name yet (the member may set one on the account page).
    let name = if new.name.trim().is_empty() {
        String::new()
    } else {
        match crate::edge::name::DisplayName::parse(&new.name) {
            Some(n) => n.as_str().to_string(),
            None => return fail("--name: 1 to 200 characters, no control or invisible characters"),
        }
    };
    let mobile = match new
        .mobile
        .as_deref()
        .map(|m| Phone::parse_mobile(m, v.app.config.phone_region))
    {
        None => None,
        Some(Ok(m)) => Some(m.into_string()),
        Some(Err(e)) => return fail(format!("--mobile: {e}")),
    };
    let vouched = new.confirmed.then_some(Confirmed {
        at: now,
        via: Via::Admin,
    });
    let contact = Contact {
        mobile_confirmed: vouched.filter(|_| mobile.is_some()),
        mobile,
        email_confirmed: vouched,
        campaign: None,
    };
    let password = read_password()?;
    let unmet = policy::check(&password, &v.app.config.file.password);
    if !unmet.is_empty() {
        let t = Lang::En.tr();
        let rules: Vec<String> = unmet.iter().map(|u| u.text(&t)).collect();
        return fail(format!("password refused: {}", rules.join("; ")));
    }
    let user = User {
        id: UserId::for_address(email.as_str()),
        email: email.to_string(),
        name,
        password_hash: v.app.auth.hasher.hash(&password, Lane::operator()).await?,
        admin: new.admin,
        status: AccountStatus::Active,
        lang: None,
        created_at: now,
        org: None,
        contact,
    };
    match v.app.store.user_insert(&user).await {
        Ok(()) => {
            println!("created {} ({})", user.email, user.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::Conflict) => fail(format!("{email} already has an account")),
        Err(e) => Err(e.into()),
    }
}

async fn list(v: &Vigile, search: Option<String>, state: Option<String>, now: Millis) -> CmdResult {
    use crate::auth::member_search::{self, State};
    let Some(state) = State::parse(state.as_deref().unwrap_or("")) else {
        return fail("--state: one of active, pending, locked, over-cap");
    };
    let text = search.unwrap_or_default();
    println!(
        "{:<36} {:<24} {:<13} {:<8} CREATED",
        "EMAIL", "NAME", "ROLES", "STATUS"
    );
    // Page after page, as the console's members section walks them.
    let mut after = None;
    loop {
        let page = member_search::search(&v.app, &text, state, after, now).await?;
        for f in page.found {
            let u = f.user;
            let status = if f.locked {
                "locked"
            } else {
                u.status.as_str()
            };
            println!(
                "{:<36} {:<24} {:<13} {:<8} {}",
                u.email,
                u.name,
                u.roles(),
                status,
                fmt_time(u.created_at)
            );
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn show(v: &Vigile, email: &str, now: Millis) -> CmdResult {
    let store = &v.app.store;
    let email = match parse_email(email) {
        Ok(email) => email,
        Err(msg) => return fail(msg),
    };
    let Some(u) = store.user_by_email(email.as_str()).await? else {
        return fail(format!("no account for {email}"));
    };
    println!("id:       {}", u.id);
    let state = |c: Option<Confirmed>| match c {
        Some(c) => format!("(confirmed {} by {})", fmt_time(c.at), c.via.as_str()),
        None => "(unconfirmed)".to_string(),
    };
    println!("email:    {} {}", u.email, state(u.contact.email_confirmed));
    match &u.contact.mobile {
        Some(m) => println!("mobile:   {m} {}", state(u.contact.mobile_confirmed)),
        None => println!("mobile:   none"),
    }
    if let Some(mark) = &u.contact.campaign {
        let seen = if mark.seen_at.is_some() {
            "seen"
        } else {
            "not seen"
        };
        println!("campaign: {} ({seen})", mark.id);
    }
    let (_, factors) = crate::auth::twofactor::load(&v.app, &u.id, now).await?;
    let methods: Vec<&str> = factors.list.iter().map(|f| f.method().as_str()).collect();
    let methods = if methods.is_empty() {
        "none".to_string()
    } else {
        methods.join(", ")
    };
    println!("second factors: {methods}");
    println!("recovery codes: {} left", factors.recovery.len());
    println!("name:     {}", u.name);
    println!("roles:    {}", u.roles());
    println!("status:   {}", u.status.as_str());
    println!("created:  {}", fmt_time(u.created_at));
    let failures = store.attempts_of(AttemptKey::Account(&u.email)).await?;
    let max = v.app.config.file.lockout.account_max_failures;
    let lock = if lockout::is_locked(failures, max) {
        "locked"
    } else {
        "open"
    };
    let hint = "`vigile user unlock` lifts it";
    println!("lock:     {lock} ({failures} failed attempt(s) in a row; {hint})");
    let policy = devices::policy_for(&v.app, &u.id, devices::org_of(&u)).await?;
    let own = store.member_cap(&u.id).await?;
    let cap = match policy.max {
        0 => "unlimited".to_string(),
        n => n.to_string(),
    };
    let whose = if own.is_some() {
        "this member's own"
    } else {
        "the site's"
    };
    println!("devices:  at most {cap} ({whose} limit)");
    let sessions = store.sessions_of(&u.id, now).await?;
    println!("sessions: {}", sessions.len());
    for s in sessions {
        println!(
            "  {}  {}  ip {}  since {}  last seen {}  expires {}",
            s.id,
            devices::describe(&s.user_agent, Lang::En),
            s.ip,
            fmt_time(s.created_at),
            fmt_time(s.last_seen),
            fmt_time(s.expires_at()),
        );
    }
    let failed: Vec<_> = store
        .outbox_failed(FAILED_SHOWN)
        .await?
        .into_iter()
        .filter(|m| m.to == u.email)
        .collect();
    let kept = "refused by the mail server, kept 30 days";
    println!("undelivered mail: {} ({kept})", failed.len());
    for m in failed {
        println!(
            "  {}  {}  after {} attempt(s): {}",
            fmt_time(m.failed_at),
            m.kind,
            m.attempts,
            m.last_error.escape_debug(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn unlock(v: &Vigile, email: &str, now: Millis) -> CmdResult {
    let email = match parse_email(email) {
        Ok(email) => email,
        Err(msg) => return fail(msg),
    };
    let n = admin::unlock(&v.app.store, Admin::Cli, &email, now).await?;
    println!("unlocked {email} ({n} counter(s) cleared)");
    Ok(ExitCode::SUCCESS)
}

async fn set_cap(v: &Vigile, email: &str, cap: &str, now: Millis) -> CmdResult {
    let cap = match cap {
        "default" => None,
        n => match n.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => return fail("cap: expected a number (0 = unlimited) or `default`"),
        },
    };
    let email = match parse_email(email) {
        Ok(email) => email,
        Err(msg) => return fail(msg),
    };
    let Some(u) = admin::set_member_cap(&v.app.store, Admin::Cli, &email, cap, now).await? else {
        return fail(format!("no account for {email}"));
    };
    match cap {
        Some(n) => println!(
            "{} may keep {n} device(s) signed in (0 = unlimited)",
            u.email
        ),
        None => println!("{} follows the site's device limit again", u.email),
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(
    v: &Vigile,
    email: &str,
    all: bool,
    session: Option<String>,
    now: Millis,
) -> CmdResult {
    let email = match parse_email(email) {
        Ok(email) => email,
        Err(msg) => return fail(msg),
    };
    let sid = session.map(SessionId::from_string);
    let which = match (&sid, all) {
        (_, true) => Sessions::All,
        (Some(sid), false) => Sessions::One(sid),
        (None, false) => return fail("give --all or --session ID"),
    };
    let revoked = admin::revoke(&v.app, Admin::Cli, &email, which, now).await?;
    let Revoked::Ended { user: u, count } = revoked else {
        return fail(format!("no account for {email}"));
    };
    match (which, count) {
        (Sessions::All, n) => println!("ended {n} session(s) of {}", u.email),
        (Sessions::One(sid), 0) => return fail(format!("{} has no session {sid}", u.email)),
        (Sessions::One(sid), _) => println!("ended session {sid} of {}", u.email),
    }
    Ok(ExitCode::SUCCESS)
}

/// One line from stdin (no echo control: pipe it, or type it when prompted).
fn read_password() -> Result<String, Box<dyn std::error::Error>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password: ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("no password given on standard input".into());
    }
    Ok(password)
}

async fn twofactor_reset(v: &Vigile, email: &str, now: Millis) -> CmdResult {
    let email = match parse_email(email) {
        Ok(email) => email,
        Err(msg) => return fail(msg),
    };
    match admin::twofactor_reset(&v.app, Admin::Cli, &email, now).await? {
        Some(_) => {
            println!("second factors removed for {email}");
            Ok(ExitCode::SUCCESS)
        }
        None => fail(format!("no account for {email}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn session_ids_may_start_with_a_hyphen() {
        let cli =
            Cli::try_parse_from(["vigile", "user", "revoke", "a@b.c", "--session", "-NnjO8Cu"])
                .unwrap();
        let Command::User {
            action: super::UserCommand::Revoke { session, all, .. },
            ..
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(session.as_deref(), Some("-NnjO8Cu"));
        assert!(!all);
    }
}
