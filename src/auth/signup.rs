//! Sign-up, activation by emailed link, resending that link, and admin invitations.
//!
//! What the page says never depends on whether the address already has an account: a
//! sign-up for a taken address looks like any other (same page, same status, the same
//! password hashing work) and the owner is mailed instead. Links are single use; only
//! their SHA-256 is stored. A later sign-up for an address still pending replaces that
//! pending account, so only the latest activation link works.
//!
//! This module must never reveal account existence in an outcome, nor log a password or
//! a link token.

use std::net::IpAddr;
use std::sync::Arc;

use super::limits::{link_request, FormLimits, RetryAfter};
use super::password::Lane;
use super::Deps;
use super::{policy, start_session, FlowError, NewSession};
use crate::audit::{Actor, Event};
use crate::config::SignupMode;
use crate::crypto::random_token;
use crate::edge::email::{Email, EmailError};
use crate::i18n::Lang;
use crate::store::{
    millis, AccountStatus, Confirmed, Contact, Millis, SessionRecord, StoreError, TokenHash,
    TokenKind, TokenRecord, User, UserId, Via,
};

/// Longest email or password looked at; longer input is refused as invalid.
pub const MAX_FIELD: usize = 1024;

pub struct SignupInput<'a> {
    /// Parsed at the edge; a refused address is reported with the other problems.
    pub email: Result<Email, EmailError>,
    pub password: &'a str,
    pub confirm: &'a str,
    pub lang: Lang,
    pub ip: IpAddr,
    pub now: Millis,
}

/// A reason the form is shown again; each is a catalog key, several may apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    BadEmail(EmailError),
    Mismatch,
    Policy(policy::Unmet),
}

impl Problem {
    pub fn key(&self) -> &'static str {
        match self {
            Problem::BadEmail(_) => "signup-bad-email",
            Problem::Mismatch => "password-mismatch",
            Problem::Policy(u) => u.key(),
        }
    }

    pub fn text(&self, t: &crate::i18n::Tr) -> String {
        match self {
            Problem::Policy(u) => u.text(t),
            // "Enter a valid email address." and what is wrong with this one.
            Problem::BadEmail(e) => format!("{} {}", t.get(self.key()), t.get(e.key())),
            other => t.get(other.key()),
        }
    }
}

#[derive(Debug)]
pub enum SignupOutcome {
    /// "Check your mailbox": for a new address, a pending one, or an existing account.
    CheckYourMail,
    Invalid(Vec<Problem>),
    /// Invite mode and this address was not invited (or its invitation expired).
    NotInvited,
    Closed,
    TooMany(RetryAfter),
}

/// Checks the form fields the same way for sign-up and password reset.
pub fn check_password(deps: &Deps, password: &str, confirm: &str) -> Vec<Problem> {
    let mut problems = vec![];
    if password.len() > MAX_FIELD {
        problems.push(Problem::Policy(policy::Unmet::TooLong(MAX_FIELD)));
    }
    problems.extend(
        policy::check(password, &deps.config.file.password)
            .into_iter()
            .map(Problem::Policy),
    );
    if password != confirm {
        problems.push(Problem::Mismatch);
    }
    problems
}

pub async fn signup(deps: &Deps, input: SignupInput<'_>) -> Result<SignupOutcome, FlowError> {
    let cfg = &deps.config.file.signup;
    if cfg.mode == SignupMode::Closed {
        return Ok(SignupOutcome::Closed);
    }
    let mut problems = vec![];
    if let Err(e) = &input.email {
        problems.push(Problem::BadEmail(*e));
    }
    problems.extend(check_password(deps, input.password, input.confirm));
    let email = match input.email {
        Ok(email) if problems.is_empty() => email,
        _ => return Ok(SignupOutcome::Invalid(problems)),
    };
    let limits = FormLimits::from_config(&deps.config.file);
    if let Err(retry) = limits.form_from(&deps.store, input.ip, input.now).await? {
        return Ok(SignupOutcome::TooMany(retry));
    }
    if cfg.mode == SignupMode::Invite
        && deps
            .store
            .token_peek(TokenKind::Invite, &invite_hash(email.as_str()), input.now)
            .await?
            .is_none()
    {
        return Ok(SignupOutcome::NotInvited);
    }

    // Hashed whatever happens next, so a taken address costs the same time as a new one.
    let password_hash = deps
        .auth
        .hasher
        .hash(input.password, Lane::client(input.ip))
        .await?;
    let user = User {
        id: UserId::for_address(email.as_str()),
        email: email.to_string(),
        name: String::new(),
        password_hash,
        admin: false,
        status: AccountStatus::Pending,
        lang: Some(input.lang.code().to_string()),
        created_at: input.now,
        org: None,
        // Confirmed by the activation link (`user_activate`).
        contact: Contact::default(),
    };
    let expires_at = input.now.saturating_add(millis(cfg.pending_account_ttl));
    let may_mail = limits
        .mail_to(&deps.store, email.as_str(), input.now)
        .await?;
    match deps.store.user_insert_pending(&user, expires_at).await {
        Ok(()) => {
            let created = Event::Signup {
                user: &user.id,
                email: &user.email,
            };
            created.emit(&Actor::Visitor(input.ip), input.now);
            if may_mail {
                send_activation(deps, &user, input.now).await?;
            }
        }
        Err(StoreError::Conflict) => {
            // The address belongs to an active account: its owner hears about it.
            if let (true, Some(owner)) = (may_mail, deps.store.user_by_email(email.as_str()).await?)
            {
                deps.mailer.signup_attempt(&owner, input.now).await?;
            }
            let existing = Event::SignupExisting {
                email: email.as_str(),
            };
            existing.emit(&Actor::Visitor(input.ip), input.now);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(SignupOutcome::CheckYourMail)
}

/// Issues a new activation link for a pending account and mails it.
async fn send_activation(deps: &Deps, user: &User, now: Millis) -> Result<(), FlowError> {
    let token = random_token(32);
    let ttl = millis(deps.config.file.signup.activation_ttl);
    deps.store
        .token_insert(&TokenRecord {
            kind: TokenKind::Activation,
            hash: TokenHash::of(&token),
            subject: user.id.as_str().to_string(),
            bind: String::new(),
            expires_at: now.saturating_add(ttl),
        })
        .await?;
    deps.mailer.activation(user, &token, now).await?;
    Ok(())
}

/// A pending account that is still within `pending_account_ttl` (the store deletes it
/// after; until the sweeper runs, this check keeps it dead).
fn live_pending(deps: &Deps, user: &User, now: Millis) -> bool {
    let ttl = millis(deps.config.file.signup.pending_account_ttl);
    user.status == AccountStatus::Pending && now < user.created_at.saturating_add(ttl)
}

pub enum ActivateOutcome {
    /// Activated and signed in on this browser: `token` goes into the session cookie.
    SignedIn {
        token: String,
        session: Box<SessionRecord>,
        user: Box<User>,
    },
    /// Unknown, used or expired link.
    Invalid,
}

pub struct ActivateInput<'a> {
    pub token: &'a str,
    /// The browser following the link, signed in once the account is active.
    pub browser: NewSession<'a>,
}

pub async fn activate(deps: &Deps, input: ActivateInput<'_>) -> Result<ActivateOutcome, FlowError> {
    let (now, ip) = (input.browser.now, input.browser.ip);
    if input.token.is_empty() || input.token.len() > 128 {
        return Ok(ActivateOutcome::Invalid);
    }
    let store = &deps.store;
    let Some(link) = store
        .token_take(TokenKind::Activation, &TokenHash::of(input.token), now)
        .await?
    else {
        return Ok(ActivateOutcome::Invalid);
    };
    let user_id = UserId::from_string(link.subject);
    let Some(mut user) = store.user_by_id(&user_id).await? else {
        return Ok(ActivateOutcome::Invalid);
    };
    if !live_pending(deps, &user, now) || !store.user_activate(&user.id, now).await? {
        return Ok(ActivateOutcome::Invalid);
    }
    // As `user_activate` stored it.
    user.status = AccountStatus::Active;
    user.contact.email_confirmed = Some(Confirmed {
        at: now,
        via: Via::Activation,
    });
    // The invitation has served; it is spent at activation, not at sign-up, so a sign-up
    // whose link expired unused can be made again.
    store
        .token_take(TokenKind::Invite, &invite_hash(&user.email), now)
        .await?;
    Event::Activation { user: &user.id }.emit(&Actor::Visitor(ip), now);
    let (token, session) = start_session(&deps.auth, &user, input.browser).await?;
    deps.mailer.account_created(&user, now).await?;
    Ok(ActivateOutcome::SignedIn {
        token,
        session: Box::new(session),
        user: Box::new(user),
    })
}

/// The same answer whatever the address: `Ok(())` means "if an account is waiting for
/// activation there, a new link is on its way".
pub async fn resend_activation(
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
        "activation resend",
        move |deps, email| async move {
            match deps.store.user_by_email(email.as_str()).await? {
                Some(user) => resend_for(&deps, &user, now).await,
                None => Ok(()),
            }
        },
    )
    .await
}

/// Mails a new activation link if `user` is still waiting for one (and the address is
/// within its mail limit); does nothing otherwise.
pub async fn resend_for(deps: &Deps, user: &User, now: Millis) -> Result<(), FlowError> {
    let limits = FormLimits::from_config(&deps.config.file);
    if live_pending(deps, user, now) && limits.mail_to(&deps.store, &user.email, now).await? {
        send_activation(deps, user, now).await?;
    }
    Ok(())
}

/// Lets `email` sign up while `signup.mode = "invite"`, and mails it an invitation.
/// Inviting again renews the invitation.
pub async fn invite(deps: &Deps, email: &Email, lang: Lang, now: Millis) -> Result<(), FlowError> {
    let hash = invite_hash(email.as_str());
    deps.store.token_take(TokenKind::Invite, &hash, now).await?;
    let ttl = millis(deps.config.file.signup.invite_ttl);
    deps.store
        .token_insert(&TokenRecord {
            kind: TokenKind::Invite,
            hash,
            subject: email.to_string(),
            bind: String::new(),
            expires_at: now.saturating_add(ttl),
        })
        .await?;
    deps.mailer.invitation(email, lang, now).await?;
    Ok(())
}

/// Invitations are keyed by address, hashed like every other token.
pub(crate) fn invite_hash(email: &str) -> TokenHash {
    TokenHash::of(email)
}
