//! The password typed again by a member already signed in (the security page before a
//! change of second factors, the account page before a change of password).
//!
//! It is counted like a login attempt: on the client address, and on the counter of the
//! device the session was opened on (its id comes from the session, never from a cookie
//! the client could change), so a stolen session is no password oracle. Too many wrong
//! ones lock that device for logins too.

use std::net::IpAddr;

use super::lockout::{self, Gate};
use super::login::{failed, ip_rule, Counted};
use super::password::Lane;
use super::{Deps, FlowError};
use crate::store::{AttemptKey, DeviceId, Millis, User};

/// What typing the password again came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Reauth {
    Right,
    Wrong,
    /// That failure (or an earlier one) locked the session's device, as a login would.
    Locked,
    IpBlocked(Millis),
}

/// Checks `password` against `user`'s, counting a wrong one (see the module).
pub async fn password_again(
    deps: &Deps,
    user: &User,
    device: &DeviceId,
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
    let locked = failed(deps, Some(user), gate, counted, ip, now).await?;
    Ok(if locked.is_some() {
        Reauth::Locked
    } else {
        Reauth::Wrong
    })
}
