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
use super::signup::{check_password, Problem};
use super::FlowError;
use crate::app::App;
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
    app: &Arc<App>,
    email: &Email,
    ip: IpAddr,
    now: Millis,
) -> Result<Result<(), RetryAfter>, FlowError> {
    link_request(
        app,
        email,
        ip,
        now,
        "password reset",
        move |app, email| async move { forgot_mail(&app, &email, ip, now).await },
    )
    .await
}

async fn forgot_mail(app: &App, email: &Email, ip: IpAddr, now: Millis) -> Result<(), FlowError> {
    let Some(user) = app.store.user_by_email(email.as_str()).await? else {
        return Ok(());
    };
    if user.status == AccountStatus::Pending {
        return super::signup::resend_for(app, &user, now).await;
    }
    let limits = FormLimits::from_config(&app.config.file);
    if !limits.mail_to(&app.store, email.as_str(), now).await? {
        return Ok(());
    }
    let token = issue_link(app, &user, now).await?;
    app.mailer.password_reset(&user, &token, now).await?;
    tracing::info!(target: "audit", event = "password_reset_requested", user = %user.id, ip = %ip, "password reset link sent");
    Ok(())
}

/// Stores a new reset link for `user` (valid `password.reset_ttl`, bound to the current
/// password) and returns its token, for a mail.
pub async fn issue_link(app: &App, user: &User, now: Millis) -> Result<String, FlowError> {
    let token = random_token(32);
    app.store
        .token_insert(&TokenRecord {
            kind: TokenKind::PasswordReset,
            hash: TokenHash::of(&token),
            subject: user.id.as_str().to_string(),
            bind: fingerprint(user),
            expires_at: now.saturating_add(millis(app.config.file.password.reset_ttl)),
        })
        .await?;
    Ok(token)
}

/// The account a reset link is valid for, if it is (does not use the link).
pub async fn check_link(app: &App, token: &str, now: Millis) -> Result<Option<User>, FlowError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let Some(link) = app
        .store
        .token_peek(TokenKind::PasswordReset, &TokenHash::of(token), now)
        .await?
    else {
        return Ok(None);
    };
    linked_user(app, &link).await
}

async fn linked_user(app: &App, link: &TokenRecord) -> Result<Option<User>, FlowError> {
    let user = app
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
    app: &App,
    token: &str,
    password: &str,
    confirm: &str,
    ip: IpAddr,
    now: Millis,
) -> Result<ResetOutcome, FlowError> {
    if check_link(app, token, now).await?.is_none() {
        return Ok(ResetOutcome::BadLink);
    }
    let problems = check_password(app, password, confirm);
    if !problems.is_empty() {
        return Ok(ResetOutcome::Invalid(problems));
    }
    let hash = app.auth.hasher.hash(password).await?;
    // Taken only now, so a refused password does not burn the link; taking is atomic, so
    // of two submissions racing with one link, one wins.
    let Some(link) = app
        .store
        .token_take(TokenKind::PasswordReset, &TokenHash::of(token), now)
        .await?
    else {
        return Ok(ResetOutcome::BadLink);
    };
    let Some(user) = linked_user(app, &link).await? else {
        return Ok(ResetOutcome::BadLink);
    };
    if !app.store.user_set_password(&user.id, &hash).await? {
        return Ok(ResetOutcome::BadLink);
    }
    let ended = app.store.session_delete_all(&user.id).await?;
    // Proof of owning the mailbox: lifts the lockout (the account's and its devices').
    app.store.attempts_clear_all(&user.email).await?;
    // Other instances' session caches drop them within their TTL (0.5 s).
    tracing::info!(target: "audit", event = "password_reset", user = %user.id, ip = %ip, sessions_ended = ended, "password reset; every session ended");
    app.mailer.password_changed(&user, now).await?;
    Ok(ResetOutcome::Done)
}
