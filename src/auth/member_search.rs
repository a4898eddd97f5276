//! The admin console's member search: the text in the address or the name, a state
//! (pending, active, locked, over their device cap), fifty a page in address order.
//!
//! The store filters by text and account state itself, in bounded work at any number of
//! accounts (`Store::user_page`). Locked and over-cap need each account's counters, so
//! those two walk the store's pages here, looking at no more than [`CHECK_BUDGET`]
//! accounts per request; a page may then come back short, with a link to go on.

use super::lockout;
use super::{devices, Deps, FlowError};
use crate::store::{AccountStatus, AttemptKey, Millis, User, UserQuery};

/// Members shown on a page.
pub const PAGE: usize = 50;
/// Most accounts whose lock or sessions one request looks at.
pub const CHECK_BUDGET: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Any,
    Active,
    Pending,
    Locked,
    OverCap,
}

impl State {
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "" | "any" => State::Any,
            "active" => State::Active,
            "pending" => State::Pending,
            "locked" => State::Locked,
            "over-cap" => State::OverCap,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Any => "any",
            State::Active => "active",
            State::Pending => "pending",
            State::Locked => "locked",
            State::OverCap => "over-cap",
        }
    }

    /// Catalog key of its name.
    pub fn key(self) -> &'static str {
        match self {
            State::Any => "console-state-any",
            State::Active => "console-state-active",
            State::Pending => "console-state-pending",
            State::Locked => "console-state-locked",
            State::OverCap => "console-state-over-cap",
        }
    }

    pub const ALL: [State; 5] = [
        State::Any,
        State::Active,
        State::Pending,
        State::Locked,
        State::OverCap,
    ];
}

/// One member found, with their lock.
pub struct Found {
    pub user: User,
    pub failures: u64,
    pub locked: bool,
}

pub struct Search {
    pub found: Vec<Found>,
    /// Where the next page starts, if anything may come after.
    pub next: Option<String>,
}

pub async fn search(
    deps: &Deps,
    text: &str,
    state: State,
    after: Option<String>,
    now: Millis,
) -> Result<Search, FlowError> {
    let max = deps.config.file.lockout.account_max_failures;
    let checks = matches!(state, State::Locked | State::OverCap);
    let mut query = UserQuery {
        text: text.trim().to_lowercase(),
        status: match state {
            State::Active | State::OverCap => Some(AccountStatus::Active),
            State::Pending => Some(AccountStatus::Pending),
            State::Any | State::Locked => None,
        },
        after,
        limit: if checks { 100 } else { PAGE },
    };
    // Read once for the whole walk: every member's cap falls back on it.
    let site = if state == State::OverCap {
        let settings = deps.store.settings_get().await?;
        Some(devices::site_policy(&settings, &deps.config.file.sessions))
    } else {
        None
    };
    let (mut found, mut checked) = (Vec::new(), 0);
    loop {
        let page = deps.store.user_page(&query).await?;
        for user in page.users {
            checked += 1;
            let failures = deps
                .store
                .attempts_of(AttemptKey::Account(&user.email))
                .await?;
            let locked = lockout::is_locked(failures, max);
            let keep = match state {
                State::Locked => locked,
                State::OverCap => match site {
                    Some(site) => over_cap(deps, site, &user, now).await?,
                    None => false,
                },
                _ => true,
            };
            if keep {
                query.after = Some(user.email.clone());
                found.push(Found {
                    user,
                    failures,
                    locked,
                });
                // (Without checks, the store's page is this page: its own `next` ends it.)
                if checks && found.len() == PAGE {
                    return Ok(Search {
                        found,
                        next: query.after,
                    });
                }
            }
        }
        match page.next {
            Some(next) if checks && checked < CHECK_BUDGET => query.after = Some(next),
            next => return Ok(Search { found, next }),
        }
    }
}

async fn over_cap(
    deps: &Deps,
    site: devices::Policy,
    user: &User,
    now: Millis,
) -> Result<bool, FlowError> {
    let policy = devices::policy_within(deps, site, &user.id, devices::org_of(user)).await?;
    if policy.max == 0 {
        return Ok(false);
    }
    let sessions = deps.store.sessions_of(&user.id, now).await?;
    Ok(sessions.len() > usize::try_from(policy.max).unwrap_or(usize::MAX))
}
