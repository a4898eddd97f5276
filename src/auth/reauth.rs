//! The password typed again by a member already signed in (the security page before a
//! change of second factors, the account page before a change of password).
//!
//! It is counted like a login attempt: on the client address, and on the counter of the
//! device the session was opened on (its id comes from the session, never from a cookie
//! the client could change), so a stolen session is no password oracle. Too many wrong
//! ones lock that device for logins too, and end the session they were typed in (a
//! stolen one is then of no further use); the failure that locks mails the owner how to
//! get back in (a reset link), since the one typing may not be them.

use std::net::IpAddr;

use super::lockout::{self, AfterFailure, Gate};
use super::login::{failed, ip_rule, Counted};
use super::password::Lane;
use super::{devices, Deps, FlowError};
use crate::store::{AttemptKey, DeviceId, Millis, SessionId, SignedOut, User};

/// What typing the password again came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Reauth {
    Right,
    Wrong,
    /// That failure (or an earlier one) locked the session's device, as a login would;
    /// the session is ended.
    Locked,
    IpBlocked(Millis),
}

/// Checks `password` against `user`'s, counting a wrong one (see the module).
pub async fn password_again(
    deps: &Deps,
    user: &User,
    (session, device): (&SessionId, &DeviceId),
    ip: IpAddr,
    password: &str,
    now: Millis,
) -> Result<Reauth, FlowError> {
    let store = &deps.store;
    let rule = ip_rule(deps);
    let ip_key = lockout::client_key(ip);
    let ip_count = if rule.max == 0 {
        0
    } else {
        match store.ip_attempt(&ip_key, &rule, now).await? {
            Ok(n) => n,
            Err(until) => return Ok(Reauth::IpBlocked(until)),
        }
    };
    let key = AttemptKey::Device(&user.email, device);
    let count = store.attempt_begin(key, now).await?;
    let gate = lockout::gate(count, deps.config.file.lockout.account_max_failures);
    let right = password.len() <= 1024
        && deps
            .auth
            .hasher
            .verify(password, Some(&user.password_hash), Lane::member(&user.id))
            .await?;
    if gate == Gate::Open && right {
        store.attempts_clear(key).await?;
        if rule.max > 0 {
            store.ip_refund(&ip_key).await?;
        }
        return Ok(Reauth::Right);
    }
    let counted = Counted {
        attempt: count,
        ip_count,
        known_device: true,
    };
    let max = deps.config.file.lockout.account_max_failures;
    let locks_now =
        gate == Gate::Open && lockout::after_failure(count, max) == AfterFailure::LockedNow;
    if failed(deps, Some(user), gate, counted, ip, now)
        .await?
        .is_none()
    {
        return Ok(Reauth::Wrong);
    }
    devices::end_session(deps, &user.id, session, SignedOut::Revoked, now).await?;
    if locks_now {
        // A device lock from a login mails nobody (its owner is the one typing); inside a
        // session the one typing may have stolen it, so the owner is told.
        super::login::mail_lock(deps, user, now).await?;
    }
    Ok(Reauth::Locked)
}
