//! Admin actions, each written once: the admin pages and the `vigile` CLI both call
//! these, so an unlock or a cap change does the same store work and leaves the same audit
//! line whoever makes it. Callers parse their input (form or command line) and render or
//! print the result.
//!
//! Nothing here checks that the actor is an administrator: the page guard does, and the
//! CLI needs the host's configuration and store.

use std::net::IpAddr;

use super::Deps;
use crate::audit::{Actor, Event};
use crate::config::OnOverflow;
use crate::edge::email::Email;
use crate::store::{
    Due, DynStore, Millis, SessionId, Settings, SignedOut, StoreResult, User, UserId, WaitingMail,
    WaitingQuery,
};

/// Who performs an admin action.
#[derive(Debug, Clone, Copy)]
pub enum Admin<'a> {
    /// An administrator on the admin pages, from `ip`.
    Page { user: &'a UserId, ip: IpAddr },
    /// The command line, on the gateway's host.
    Cli,
}

impl<'a> Admin<'a> {
    pub(crate) fn actor(self) -> Actor<'a> {
        match self {
            Admin::Page { user, ip } => Actor::Admin { user, ip },
            Admin::Cli => Actor::Cli,
        }
    }
}

/// Lifts a lockout: forgets the failed attempts on the account and on its devices (there
/// need not be an account: unknown addresses lock too). Returns the counters cleared.
pub async fn unlock(
    store: &DynStore,
    by: Admin<'_>,
    email: &Email,
    now: Millis,
) -> StoreResult<u64> {
    let cleared = store.attempts_clear_all(email.as_str()).await?;
    let unlocked = Event::Unlock {
        email: email.as_str(),
        cleared,
    };
    unlocked.emit(&by.actor(), now);
    Ok(cleared)
}

/// Sets the member's own device cap (a number, 0 = unlimited), or with `None` sends them
/// back to the site's. Applies at their next login. `None` when no account has `email`.
pub async fn set_member_cap(
    store: &DynStore,
    by: Admin<'_>,
    email: &Email,
    cap: Option<u32>,
    now: Millis,
) -> StoreResult<Option<User>> {
    let Some(user) = store.user_by_email(email.as_str()).await? else {
        return Ok(None);
    };
    if !store.member_cap_set(&user.id, cap).await? {
        return Ok(None);
    }
    let changed = Event::MemberCapChanged {
        user: &user.id,
        email: &user.email,
        cap,
    };
    changed.emit(&by.actor(), now);
    Ok(Some(user))
}

/// A change to the site's device-cap settings; what is not given stays as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct SitePolicy {
    /// Devices each member may keep signed in (0 = unlimited).
    pub max_per_member: Option<u32>,
    pub on_overflow: Option<OnOverflow>,
    /// Forget the saved settings first (the configuration file's apply again).
    pub reset: bool,
}

/// Saves the site's device-cap settings for every instance (applied at the next login);
/// returns them as saved.
pub async fn set_site_policy(
    store: &DynStore,
    by: Admin<'_>,
    change: SitePolicy,
    now: Millis,
) -> StoreResult<Settings> {
    let mut s = if change.reset {
        Settings::default()
    } else {
        store.settings_get().await?
    };
    s.max_per_member = change.max_per_member.or(s.max_per_member);
    s.on_overflow = change.on_overflow.or(s.on_overflow);
    store.settings_set(&s).await?;
    let changed = Event::SettingsChanged {
        max_per_member: s.max_per_member,
        on_overflow: s.on_overflow,
    };
    changed.emit(&by.actor(), now);
    Ok(s)
}

/// Which of a member's sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum Sessions<'a> {
    All,
    One(&'a SessionId),
}

#[derive(Debug)]
pub enum Revoked {
    NoAccount,
    /// `count` sessions ended (0: the one named was not there).
    Ended {
        user: Box<User>,
        count: u64,
    },
}

/// Ends a member's sessions. One session's device is told it was signed out at its next
/// request; ending them all just deletes them.
pub async fn revoke(
    deps: &Deps,
    by: Admin<'_>,
    email: &Email,
    which: Sessions<'_>,
    now: Millis,
) -> Result<Revoked, super::FlowError> {
    let Some(user) = deps.store.user_by_email(email.as_str()).await? else {
        return Ok(Revoked::NoAccount);
    };
    match which {
        Sessions::All => {
            let count = deps.store.session_delete_all(&user.id).await?;
            super::twofactor::untrust(deps, &user.id, None, now).await?;
            let revoked = Event::SessionsRevoked {
                user: &user.id,
                email: &user.email,
                count,
            };
            revoked.emit(&by.actor(), now);
            Ok(Revoked::Ended {
                user: Box::new(user),
                count,
            })
        }
        Sessions::One(session) => {
            let ended =
                super::devices::end_session(deps, &user.id, session, SignedOut::Revoked, now)
                    .await?;
            if ended {
                let revoked = Event::SessionRevoked {
                    user: &user.id,
                    email: &user.email,
                    session,
                };
                revoked.emit(&by.actor(), now);
            }
            Ok(Revoked::Ended {
                user: Box::new(user),
                count: u64::from(ended),
            })
        }
    }
}

/// Lifts the block on a client address (for IPv6, on its /64) and forgets its failures.
/// Returns whether it was blocked.
pub async fn ip_unblock(
    store: &DynStore,
    by: Admin<'_>,
    addr: IpAddr,
    now: Millis,
) -> StoreResult<bool> {
    let was = store
        .ip_unblock(&super::lockout::client_key(addr), now)
        .await?;
    Event::IpUnblock { address: addr }.emit(&by.actor(), now);
    Ok(was)
}

/// The blocks in force at `now`, the most recently started first (at most `limit`).
pub async fn ip_blocks(
    store: &DynStore,
    now: Millis,
    limit: usize,
) -> StoreResult<Vec<crate::store::IpBlock>> {
    store.ip_blocks(now, limit).await
}

/// A client key as listed (`192.0.2.7`, `2001:db8:1:2::/64`) or any address of it, back
/// to an address whose [`client_key`](super::lockout::client_key) is that key.
pub fn parse_client(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.strip_suffix("/64").unwrap_or(s).parse().ok()
}

/// "Retry now": the waiting message `id` becomes due at once (the senders of every
/// instance look at least every second). Returns the message as it was, or `None` when
/// no message `id` is waiting (sent or failed meanwhile). Audited.
pub async fn mail_retry(
    store: &DynStore,
    by: Admin<'_>,
    id: &str,
    now: Millis,
) -> StoreResult<Option<WaitingMail>> {
    let Some(mail) = store.outbox_get(id).await? else {
        return Ok(None);
    };
    if !store.outbox_due_now(&mail.id, now).await? {
        return Ok(None);
    }
    retried(by, &mail, now);
    Ok(Some(mail))
}

/// Waiting messages read per store call by [`mail_retry_all`].
const RETRY_ALL_PAGE: usize = 500;

/// [`mail_retry`] for every waiting message not due yet, read a page at a time (never
/// their bodies). Returns those made due.
pub async fn mail_retry_all(
    store: &DynStore,
    by: Admin<'_>,
    now: Millis,
) -> StoreResult<Vec<WaitingMail>> {
    let mut done = Vec::new();
    let mut after = None;
    loop {
        let query = WaitingQuery {
            due: Due::Later,
            now,
            after,
            limit: RETRY_ALL_PAGE,
        };
        let page = store.outbox_page(&query).await?;
        for mail in page.mails {
            // Made due at `now`, it leaves the messages due later: the walk goes on after
            // the last one read.
            if store.outbox_due_now(&mail.id, now).await? {
                retried(by, &mail, now);
                done.push(mail);
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(done),
        }
    }
}

fn retried(by: Admin<'_>, mail: &WaitingMail, now: Millis) {
    let event = Event::MailRetried {
        mail: &mail.id,
        kind: &mail.kind,
        to: &mail.to,
    };
    event.emit(&by.actor(), now);
}

/// Sets an organisation's seats, plan and device cap (`None`: the site's default).
/// Returns false when there is no such organisation.
pub async fn set_org_terms(
    store: &DynStore,
    by: Admin<'_>,
    org: &crate::store::OrgId,
    terms: &crate::store::OrgTerms,
    now: Millis,
) -> StoreResult<bool> {
    if !store.org_set_terms(org, terms).await? {
        return Ok(false);
    }
    Event::OrgTermsChanged { org }.emit(&by.actor(), now);
    Ok(true)
}

/// Removes every second factor of the member behind `email` (a lost phone), ends the
/// trust of their devices, and mails them. `None`: no such member. Sessions stay: the
/// member is signed in already; their next login asks (or enrols) again.
pub async fn twofactor_reset(
    deps: &Deps,
    by: Admin<'_>,
    email: &Email,
    now: Millis,
) -> Result<Option<bool>, super::FlowError> {
    let Some(user) = deps.store.user_by_email(email.as_str()).await? else {
        return Ok(None);
    };
    let had = super::twofactor::reset(deps, &user.id, now).await?;
    let reset = Event::SecondFactorReset {
        user: &user.id,
        email: &user.email,
    };
    reset.emit(&by.actor(), now);
    deps.mailer.twofactor_reset(&user, now).await?;
    Ok(Some(had))
}
