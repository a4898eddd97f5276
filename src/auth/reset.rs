//! Forgotten password: a single-use link by email, then a new password.
//!
//! The request answers the same whether the address has an account or not. A link is
//! bound to the password it was issued for: once the password changes (by this link or
//! another), every older link is dead. A completed reset ends every session of the member
//! (on every instance: sessions live in the store), lifts any lockout, and tells them by
//! email.

use std::net::IpAddr;
use std::sync::Arc;

use super::limits::{link_request, FormLimits, RetryAfter};
use super::password::Lane;
use super::signup::{check_password, Problem};
use super::Deps;
use super::FlowError;
use crate::audit::{Actor, Event};
use crate::crypto::random_token;
use crate::edge::email::Email;
use crate::store::{
    millis, AccountStatus, Millis, TokenHash, TokenKind, TokenRecord, User, UserId,
};

/// Ties a link to the password hash it was issued under, without storing the hash twice.
fn fingerprint(user: &User) -> String {
    TokenHash::of(&user.password_hash).as_str()[..16].to_string()
}

/// "If an account exists for this address, a link is on its way." A pending account
/// gets its activation link again instead (it has no password to reset yet).
pub async fn forgot(
    deps: &Arc<Deps>,
    email: &Email,
    ip: IpAddr,
    now: Millis,
) -> Result<Result<(), RetryAfter>, FlowError> {
    link_request(
        deps,
        email,
        ip,
        now,
        "password reset",
        move |deps, email| async move { forgot_mail(&deps, &email, ip, now).await },
    )
    .await
}

async fn forgot_mail(deps: &Deps, email: &Email, ip: IpAddr, now: Millis) -> Result<(), FlowError> {
    let Some(user) = deps.store.user_by_email(email.as_str()).await? else {
        return Ok(());
    };
    if user.status == AccountStatus::Pending {
        return super::signup::resend_for(deps, &user, now).await;
    }
    if !super::contact::recovers(&user) {
        // Same page for the visitor; the page says recovery needs a confirmed address.
        return Ok(());
    }
    let limits = FormLimits::from_config(&deps.config.file);
    if !limits.mail_to(&deps.store, email.as_str(), now).await? {
        return Ok(());
    }
    let token = issue_link(deps, &user, now).await?;
    deps.mailer.password_reset(&user, &token, now).await?;
    Event::PasswordResetRequested { user: &user.id }.emit(&Actor::Visitor(ip), now);
    Ok(())
}

/// Stores a new reset link for `user` (valid `password.reset_ttl`, bound to the current
/// password) and returns its token, for a mail.
pub async fn issue_link(deps: &Deps, user: &User, now: Millis) -> Result<String, FlowError> {
    let token = random_token(32);
    deps.store
        .token_insert(&TokenRecord {
            kind: TokenKind::PasswordReset,
            hash: TokenHash::of(&token),
            subject: user.id.as_str().to_string(),
            bind: fingerprint(user),
            expires_at: now.saturating_add(millis(deps.config.file.password.reset_ttl)),
        })
        .await?;
    Ok(token)
}

/// The account a reset link is valid for, if it is (does not use the link).
pub async fn check_link(deps: &Deps, token: &str, now: Millis) -> Result<Option<User>, FlowError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let Some(link) = deps
        .store
        .token_peek(TokenKind::PasswordReset, &TokenHash::of(token), now)
        .await?
    else {
        return Ok(None);
    };
    linked_user(deps, &link).await
}

async fn linked_user(deps: &Deps, link: &TokenRecord) -> Result<Option<User>, FlowError> {
    let user = deps
        .store
        .user_by_id(&UserId::from_string(link.subject.clone()))
        .await?;
    Ok(user.filter(|u| {
        u.status == AccountStatus::Active && crate::crypto::ct_eq(&fingerprint(u), &link.bind)
    }))
}

pub enum ResetOutcome {
    /// Password changed, every session ended; the member signs in again.
    Done,
    /// The new password is refused; the link is still valid.
    Invalid(Vec<Problem>),
    /// Unknown, used, expired, or superseded link.
    BadLink,
}

pub async fn reset(
    deps: &Deps,
    token: &str,
    password: &str,
    confirm: &str,
    ip: IpAddr,
    now: Millis,
) -> Result<ResetOutcome, FlowError> {
    if check_link(deps, token, now).await?.is_none() {
        return Ok(ResetOutcome::BadLink);
    }
    let problems = check_password(deps, password, confirm);
    if !problems.is_empty() {
        return Ok(ResetOutcome::Invalid(problems));
    }
    let hash = deps.auth.hasher.hash(password, Lane::client(ip)).await?;
    // Taken only now, so a refused password does not burn the link; taking is atomic, so
    // of two submissions racing with one link, one wins.
    let Some(link) = deps
        .store
        .token_take(TokenKind::PasswordReset, &TokenHash::of(token), now)
        .await?
    else {
        return Ok(ResetOutcome::BadLink);
    };
    let Some(user) = linked_user(deps, &link).await? else {
        return Ok(ResetOutcome::BadLink);
    };
    if !deps.store.user_set_password(&user.id, &hash).await? {
        return Ok(ResetOutcome::BadLink);
    }
    let ended = deps.store.session_delete_all(&user.id).await?;
    // A new password: no device keeps skipping the second factor on the old one's word.
    super::twofactor::untrust(deps, &user.id, None, now).await?;
    // Proof of owning the mailbox: lifts the lockout (the account's and its devices').
    deps.store.attempts_clear_all(&user.email).await?;
    // Other instances' session caches drop them within their TTL (0.5 s).
    let reset = Event::PasswordReset {
        user: &user.id,
        ended,
    };
    reset.emit(&Actor::Visitor(ip), now);
    deps.mailer
        .password_changed(&user, crate::mail::SignedOutBy::Every, now)
        .await?;
    Ok(ResetOutcome::Done)
}
