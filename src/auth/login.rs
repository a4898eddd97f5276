//! The login flow: one answer for "no such account" and "wrong password" (same outcome,
//! same work: the hasher verifies against a dummy hash for unknown accounts), and a new
//! session token at every login (rotation: the browser's previous session is replaced).
//!
//! Brute-force defence wraps the password check (rules in [`super::lockout`]): once the
//! attempt has its place in the hashing queue (below), the client IP's attempt is
//! counted (a blocked IP stops here; the login page refuses one blocked earlier), then
//! the address's attempt, on a counter of its own for a device that has signed in to it
//! before, so an attacker elsewhere cannot lock the owner out of their known devices. A
//! locked address is still run through the hasher, so its answer takes as long as any
//! other. So is a string that is not an address at all: it gets the same answer and the
//! same hashing work, only no per-address counter (no account can have it; the IP's
//! counts).
//!
//! Under a storm of guesses the hashing queue is the bottleneck (see
//! [`super::hash_queue`]): a device already known to the account waits in the priority
//! lane, every other attempt in the shared lane, fair per client address. A place is taken
//! before anything is counted; an attempt that gets none is shed ([`LoginOutcome::Shed`],
//! a 503 with `Retry-After`) having changed nothing, and one pushed out of its place
//! before its check ran (by an address under its share) takes back what it counted. So
//! shed attempts neither lock an account nor block an address, and they reveal nothing,
//! as no password was checked. Whether an attempt is shed depends on the lane and the
//! client address only, never on whether the account exists (the priority lane needs a
//! known device's cookie, which only that device has).

use std::net::IpAddr;

use super::devices::{stop_for_code, Open, Stopped};
use super::lockout::{self, AfterFailure, Gate};
use super::password::{HashError, Lane};
use super::Deps;
use super::{Auth, FlowError};
use crate::audit::{Actor, Event};
use crate::config::OnOverflow;
use crate::edge::email::Email;
use crate::store::shard::{self, Shard};
use crate::store::{
    millis, AccountStatus, AttemptKey, AuthLevel, Cap, DeviceId, IpRule, Millis, SessionId,
    SessionRecord, StoreError, TokenHash, User,
};

pub struct LoginInput<'a> {
    /// Parsed at the edge; `None` when the input is not an address.
    pub email: Option<&'a Email>,
    pub password: &'a str,
    pub device: DeviceId,
    pub ip: IpAddr,
    pub user_agent: String,
    /// The token of the session this browser already holds, if any (rotated away).
    pub previous_token: Option<&'a str>,
    /// Where the member was going (kept while they deal with the device cap).
    pub rd: &'a str,
    pub now: Millis,
}

#[derive(Debug)]
pub enum LoginOutcome {
    /// `token` goes into the session cookie; it is stored only as a hash. `ended`:
    /// sessions the cap's `evict-oldest` policy ended to make room.
    Success {
        token: String,
        session: Box<SessionRecord>,
        user: Box<User>,
        ended: Vec<SessionId>,
    },
    /// Right password, but the device cap is reached (`choose`): a code was mailed and
    /// the device waits on `/_vigile/verify`.
    DeviceCode,
    /// Over the cap with `choose`, but this member was sent too many codes lately.
    TooManyCodes,
    /// Right password; a second factor is asked on `/_vigile/2fa` (no session yet).
    SecondFactor,
    /// Over the cap with `deny`.
    DeviceLimit {
        max: u32,
    },
    BadCredentials,
    /// Right password, but the activation link has not been followed yet.
    NotActivated,
    /// Too many consecutive failures on this address (from this kind of device).
    Locked(Lock),
    /// The client address is blocked until this instant.
    IpBlocked {
        until: Millis,
    },
    /// No room in the hashing queue for this attempt (a storm of guesses): refused
    /// unchecked and uncounted; try again shortly.
    Shed,
}

impl LoginOutcome {
    /// Its `vigile_logins_total{result}` label.
    pub fn label(&self) -> &'static str {
        match self {
            LoginOutcome::Success { .. } => "success",
            LoginOutcome::DeviceCode
            | LoginOutcome::TooManyCodes
            | LoginOutcome::DeviceLimit { .. } => "overflow",
            LoginOutcome::SecondFactor => "second_factor",
            LoginOutcome::BadCredentials => "bad_credentials",
            LoginOutcome::NotActivated => "not_activated",
            LoginOutcome::Locked(_) => "locked",
            LoginOutcome::IpBlocked { .. } => "ip_blocked",
            LoginOutcome::Shed => "shed",
        }
    }
}

/// Which counter refused an attempt, and so what its owner was told: the page says
/// only what is true (a device lock mails nobody).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// The address's counter, from a device that never signed in to it. When it locked,
    /// the owner of an active account was mailed how to reactivate it (a reset link, or
    /// whom to ask); a pending account or an unknown address gets no mail, yet the same
    /// answer, so the page must hold for all of them.
    Account,
    /// The counter of a device known to the account, locked by its own failures: only
    /// this device is locked, and no mail is sent (its owner is the one typing). Only a
    /// device that signed in to the account has one, so telling it reveals nothing.
    Device,
}

/// `[lockout]` as the store wants it.
pub fn ip_rule(deps: &Deps) -> IpRule {
    let l = &deps.config.file.lockout;
    IpRule {
        max: l.ip_max_failures,
        window_ms: millis(l.ip_window),
        block_ms: millis(l.ip_block),
        max_block_ms: 24 * 3_600_000,
    }
}

pub async fn login(deps: &Deps, input: LoginInput<'_>) -> Result<LoginOutcome, FlowError> {
    let (auth, store) = (&deps.auth, &deps.store);
    let max = deps.config.file.lockout.account_max_failures;
    let rule = ip_rule(deps);
    let ip = lockout::client_key(input.ip);

    let user = match input.email {
        Some(email) => store.user_by_email(email.as_str()).await?,
        None => None,
    };
    // Asked for unknown addresses too (of an id nobody has), so both cost the same.
    let nobody = crate::store::UserId::from_string("");
    let known_device = store
        .device_known(user.as_ref().map_or(&nobody, |u| &u.id), &input.device)
        .await?
        && user.is_some();
    // Before anything is counted: a shed attempt must change nothing.
    let lane = match &user {
        Some(user) if known_device => Lane::member(&user.id),
        _ => Lane::client(input.ip),
    };
    let slot = match auth.hasher.admit(lane) {
        Ok(slot) => slot,
        Err(HashError::Busy) => return Ok(LoginOutcome::Shed),
        Err(e) => return Err(e.into()),
    };
    let ip_count = if rule.max == 0 {
        0
    } else {
        match store.ip_attempt(&ip, &rule, input.now).await? {
            Ok(n) => n,
            Err(until) => return Ok(LoginOutcome::IpBlocked { until }),
        }
    };
    let key = input.email.map(|email| {
        if known_device {
            AttemptKey::Device(email.as_str(), &input.device)
        } else {
            AttemptKey::Account(email.as_str())
        }
    });
    let attempt = match key {
        Some(key) => store.attempt_begin(key, input.now).await?,
        None => 0,
    };
    let gate = lockout::gate(attempt, max);
    // Checked even when locked, so a locked address answers as slowly as any other.
    let checked = auth
        .hasher
        .verify_in(
            slot,
            input.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await;
    let ok = match checked {
        Ok(ok) => ok,
        Err(HashError::Busy) => {
            // Pushed out before the check ran: this attempt must count nowhere.
            if let Some(key) = key {
                store.attempt_refund(key).await?;
            }
            if rule.max > 0 {
                store.ip_refund(&ip).await?;
            }
            return Ok(LoginOutcome::Shed);
        }
        Err(e) => return Err(e.into()),
    };
    let user = match (gate, user) {
        (Gate::Open, Some(user)) if ok => user,
        (gate, user) => {
            let counted = Counted {
                attempt,
                ip_count,
                known_device,
            };
            let locked = failed(deps, user.as_ref(), gate, counted, input.ip, input.now).await?;
            return Ok(locked.map_or(LoginOutcome::BadCredentials, LoginOutcome::Locked));
        }
    };
    use super::twofactor::verify::{self, Need};
    let need = if user.status == AccountStatus::Active {
        verify::need(deps, &user, &input.device, input.now).await?
    } else {
        Need::Nothing
    };
    if let Some(key) = key {
        if matches!(need, Need::Ask { .. }) {
            // Not a success yet: the failures before it still count, so the password
            // cannot be used to reset the count between guesses of the second factor.
            store.attempt_refund(key).await?;
        } else {
            store.attempts_clear(key).await?;
        }
    }
    if rule.max > 0 {
        store.ip_refund(&ip).await?;
    }
    if user.status != AccountStatus::Active {
        return Ok(LoginOutcome::NotActivated);
    }
    if let Need::Ask { first } = need {
        let purpose = super::twofactor::step::Purpose::Login { known_device };
        let device = &input.device;
        verify::begin(deps, &user, device, purpose, first, input.rd, input.now).await?;
        return Ok(LoginOutcome::SecondFactor);
    }
    let browser = NewSession {
        device: input.device,
        ip: input.ip,
        user_agent: input.user_agent,
        previous_token: input.previous_token,
        level: if need == Need::Trusted {
            AuthLevel::SecondFactor
        } else {
            AuthLevel::Password
        },
        now: input.now,
    };
    open_for(deps, user, browser, input.rd, known_device).await
}

/// The rest of a login once every factor it needs was proven: the device is remembered
/// for its own lockout counter, and the session opens within the device cap (or the
/// member is asked to choose, or refused).
pub async fn open_for(
    deps: &Deps,
    user: User,
    browser: NewSession<'_>,
    rd: &str,
    known_device: bool,
) -> Result<LoginOutcome, FlowError> {
    if !known_device {
        deps.store
            .device_remember(&user.id, &browser.device)
            .await?;
    }
    match super::devices::open(deps, &user, browser.clone(), &[]).await? {
        Open::Started {
            token,
            session,
            ended,
        } => Ok(LoginOutcome::Success {
            token,
            session,
            user: Box::new(user),
            ended,
        }),
        Open::Full { active, policy } => {
            if policy.on_overflow == OnOverflow::Deny {
                return Ok(LoginOutcome::DeviceLimit { max: policy.max });
            }
            Ok(
                match stop_for_code(deps, &user, &browser, rd, active, policy).await? {
                    Stopped::CodeSent => LoginOutcome::DeviceCode,
                    Stopped::TooManyCodes => LoginOutcome::TooManyCodes,
                },
            )
        }
    }
}

/// What a failed attempt (password or second-factor code) was counted as.
pub(super) struct Counted {
    /// The address's (or device's) consecutive failures, this one included.
    pub attempt: u64,
    /// The client address's failures in its window, this one included.
    pub ip_count: u64,
    pub known_device: bool,
}

/// A failed attempt: the lock it completes (logged, counted, the owner mailed) and the
/// client address's block. Returns the lock the address (or device) is under, if any.
pub(super) async fn failed(
    deps: &Deps,
    user: Option<&User>,
    gate: Gate,
    counted: Counted,
    ip: IpAddr,
    now: Millis,
) -> Result<Option<Lock>, FlowError> {
    let max = deps.config.file.lockout.account_max_failures;
    let rule = ip_rule(deps);
    let locked = gate == Gate::Locked
        || lockout::after_failure(counted.attempt, max) == AfterFailure::LockedNow;
    if gate == Gate::Open && locked {
        on_locked(deps, user, counted.known_device, ip, now).await?;
    }
    // The address follows the same rule: this failure was its last allowed one.
    if lockout::after_failure(counted.ip_count, rule.max) == AfterFailure::LockedNow {
        let key = lockout::client_key(ip);
        let until = deps.store.ip_block(&key, &rule, now).await?;
        deps.metrics.ip_blocks.inc();
        let blocked = Event::IpBlocked { address: ip, until };
        blocked.emit(&Actor::System(Some(ip)), now);
    }
    Ok(locked.then_some(if counted.known_device {
        Lock::Device
    } else {
        Lock::Account
    }))
}

/// The failure that locked an address: counted, logged, and the owner of an active
/// account gets one mail with a reset link (a device lock only blocks that device, whose
/// owner is the one typing).
async fn on_locked(
    deps: &Deps,
    user: Option<&User>,
    known_device: bool,
    ip: IpAddr,
    now: Millis,
) -> Result<(), FlowError> {
    let Some(user) = user.filter(|u| u.status == AccountStatus::Active) else {
        return Ok(());
    };
    if known_device {
        let locked = Event::DeviceLocked { user: &user.id };
        locked.emit(&Actor::System(Some(ip)), now);
        return Ok(());
    }
    deps.metrics.account_lockouts.inc();
    let locked = Event::AccountLocked { user: &user.id };
    locked.emit(&Actor::System(Some(ip)), now);
    mail_lock(deps, user, now).await
}

/// Mails the owner of a locked account (or device) the way out: a reset link, which only
/// a confirmed address may receive (without one, whom to ask).
pub(super) async fn mail_lock(deps: &Deps, user: &User, now: Millis) -> Result<(), FlowError> {
    let token = if super::contact::recovers(user) {
        Some(super::reset::issue_link(deps, user, now).await?)
    } else {
        None
    };
    deps.mailer
        .account_locked(user, token.as_deref(), now)
        .await?;
    Ok(())
}

/// The browser a session is being opened for.
#[derive(Clone)]
pub struct NewSession<'a> {
    pub device: DeviceId,
    pub ip: IpAddr,
    pub user_agent: String,
    /// The token of the session this browser already holds, if any (rotated away).
    pub previous_token: Option<&'a str>,
    /// What the member proved.
    pub level: AuthLevel,
    pub now: Millis,
}

/// Opens a session for an account whose identity was just proven by an activation link,
/// replacing the browser's previous session. A new account holds no session, so no cap
/// applies. Returns the cookie token.
pub async fn start_session(
    auth: &Auth,
    user: &User,
    input: NewSession<'_>,
) -> Result<(String, SessionRecord), StoreError> {
    let replaces = replaced_session(auth, input.previous_token, input.now).await?;
    let now = input.now;
    let (token, session) = new_session(auth, user, input);
    auth.store
        .session_open(&session, replaces.as_ref(), &[], Cap::UNLIMITED, now)
        .await?;
    Ok((token, session))
}

/// The session the browser's cookie holds (to be rotated away), forgotten by the cache.
pub(super) async fn replaced_session(
    auth: &Auth,
    previous_token: Option<&str>,
    now: Millis,
) -> Result<Option<SessionId>, StoreError> {
    let Some(old) = previous_token else {
        return Ok(None);
    };
    let hash = TokenHash::of(old);
    auth.cache.forget(&hash);
    Ok(auth.store.session_by_token(&hash, now).await?.map(|s| s.id))
}

/// A new session record for `user` on this browser, and its cookie token.
pub(super) fn new_session(
    auth: &Auth,
    user: &User,
    input: NewSession<'_>,
) -> (String, SessionRecord) {
    // Token and id in the member's shard: every session script then runs in one slot of
    // a Cluster (`store::shard`), found again from the token or the id alone.
    let shard = Shard::of_user(&user.id);
    let token = shard::token_in(shard, 32);
    let (idle_ms, absolute_ms) = auth.timeouts();
    let session = SessionRecord {
        id: SessionId::random_in(shard),
        token_hash: TokenHash::of(&token),
        user_id: user.id.clone(),
        device_id: input.device,
        created_at: input.now,
        last_seen: input.now,
        idle_ms,
        absolute_expiry: input.now.saturating_add(absolute_ms),
        ip: input.ip.to_string(),
        user_agent: input.user_agent.chars().take(512).collect(),
        level: input.level,
    };
    (token, session)
}
