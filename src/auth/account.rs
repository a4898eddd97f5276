//! What a member changes about their own account on the account page: the password (the
//! current one typed again, the policy applied, the other devices signed out on request,
//! a mail sent) and the profile (display name, preferred language; later mails follow the
//! language).

use std::net::IpAddr;

use super::reauth::{self, Reauth};
use super::signup::{check_password, Problem};
use super::{devices, password::Lane, Deps, FlowError, NewSession};
use crate::audit::{Actor, Event};
use crate::edge::name::DisplayName;
use crate::i18n::Lang;
use crate::mail::SignedOutBy;
use crate::store::{AccountStatus, DeviceId, Millis, SessionId, User, UserId};

/// A password change as typed, with the session it comes from.
pub struct PasswordChange<'a> {
    pub user: &'a UserId,
    /// The session (and its device) the form was sent from: kept signed in, and the device
    /// whose counter a wrong current password adds to.
    pub session: &'a SessionId,
    pub device: &'a DeviceId,
    pub current: &'a str,
    pub password: &'a str,
    pub confirm: &'a str,
    /// "Sign out my other devices".
    pub end_others: bool,
    /// This browser: its session is replaced by a new one (a new token), so a copy of the
    /// old cookie is worth nothing after the change.
    pub browser: NewSession<'a>,
    pub ip: IpAddr,
    pub now: Millis,
}

// No Debug: `Done` holds a session token.
pub enum PasswordChanged {
    /// Changed; `ended` other sessions were signed out; `token` is this browser's new
    /// session (the old one is replaced).
    Done {
        ended: u64,
        token: String,
    },
    /// The new password is refused; nothing was checked or counted.
    Invalid(Vec<Problem>),
    /// The current password is wrong (counted like a login attempt).
    WrongCurrent,
    /// Too many wrong passwords from this device: locked as a login would be, and this
    /// session ended (see `reauth`).
    Locked,
    IpBlocked(Millis),
    /// The account is gone or no longer active.
    Gone,
}

async fn active(deps: &Deps, id: &UserId) -> Result<Option<User>, FlowError> {
    let user = deps.store.user_by_id(id).await?;
    Ok(user.filter(|u| u.status == AccountStatus::Active))
}

pub async fn change_password(
    deps: &Deps,
    input: PasswordChange<'_>,
) -> Result<PasswordChanged, FlowError> {
    let Some(user) = active(deps, input.user).await? else {
        return Ok(PasswordChanged::Gone);
    };
    // The policy first: a refused new password costs no hash and counts nowhere.
    let problems = check_password(deps, input.password, input.confirm);
    if !problems.is_empty() {
        return Ok(PasswordChanged::Invalid(problems));
    }
    let typed = reauth::password_again(
        deps,
        &user,
        (input.session, input.device),
        input.ip,
        input.current,
        input.now,
    )
    .await?;
    match typed {
        Reauth::Right => {}
        Reauth::Wrong => return Ok(PasswordChanged::WrongCurrent),
        Reauth::Locked => return Ok(PasswordChanged::Locked),
        Reauth::IpBlocked(until) => return Ok(PasswordChanged::IpBlocked(until)),
    }
    let hash = deps
        .auth
        .hasher
        .hash(input.password, Lane::member(&user.id))
        .await?;
    if !deps.store.user_set_password(&user.id, &hash).await? {
        return Ok(PasswordChanged::Gone);
    }
    let (ended, signed_out) = if input.end_others {
        let n = devices::end_others(deps, &user.id, input.session, input.now).await?;
        super::twofactor::untrust_others(deps, &user.id, input.device, input.now).await?;
        (n, SignedOutBy::AllButOne)
    } else {
        (0, SignedOutBy::None)
    };
    let (token, _) = super::login::start_session(&deps.auth, &user, input.browser).await?;
    let changed = Event::PasswordChanged {
        user: &user.id,
        ended,
    };
    changed.emit(&Actor::Visitor(input.ip), input.now);
    deps.mailer
        .password_changed(&user, signed_out, input.now)
        .await?;
    Ok(PasswordChanged::Done { ended, token })
}

#[derive(Debug, PartialEq, Eq)]
pub enum ProfileChanged {
    Done,
    /// The name is empty, too long or holds hidden characters; nothing changed.
    BadName,
    /// Not a language Vigile speaks; nothing changed.
    BadLang,
    Gone,
}

/// Sets the display name and the preferred language (`""`: none, the browser decides).
pub async fn change_profile(
    deps: &Deps,
    id: &UserId,
    name: &str,
    lang: &str,
    ip: IpAddr,
    now: Millis,
) -> Result<ProfileChanged, FlowError> {
    let Some(name) = DisplayName::parse(name) else {
        return Ok(ProfileChanged::BadName);
    };
    let lang = match lang {
        "" => None,
        code => match Lang::parse(code) {
            Some(lang) => Some(lang),
            None => return Ok(ProfileChanged::BadLang),
        },
    };
    if active(deps, id).await?.is_none() {
        return Ok(ProfileChanged::Gone);
    }
    let code = lang.map(Lang::code);
    if !deps.store.user_set_profile(id, name.as_str(), code).await? {
        return Ok(ProfileChanged::Gone);
    }
    deps.auth.forget_user(id);
    Event::ProfileChanged { user: id }.emit(&Actor::Visitor(ip), now);
    Ok(ProfileChanged::Done)
}
