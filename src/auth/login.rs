//! The login flow: one answer for "no such account" and "wrong password" (same outcome,
//! same work: the hasher verifies against a dummy hash for unknown accounts), and a new
//! session token at every login (rotation: the browser's previous session is replaced).

use super::{normalize_email, Auth, FlowError};
use crate::crypto::random_token;
use crate::store::{
    AccountStatus, DeviceId, Millis, SessionId, SessionRecord, StoreError, TokenHash, User,
};

pub struct LoginInput<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub device: DeviceId,
    pub ip: String,
    pub user_agent: String,
    /// The token of the session this browser already holds, if any (rotated away).
    pub previous_token: Option<&'a str>,
    pub now: Millis,
}

#[derive(Debug)]
pub enum LoginOutcome {
    /// `token` goes into the session cookie; it is stored only as a hash.
    Success {
        token: String,
        session: Box<SessionRecord>,
        user: Box<User>,
    },
    BadCredentials,
    /// Right password, but the activation link has not been followed yet.
    NotActivated,
}

pub async fn login(auth: &Auth, input: LoginInput<'_>) -> Result<LoginOutcome, FlowError> {
    let email = normalize_email(input.email);
    let user = auth.store.user_by_email(&email).await?;
    let ok = auth
        .hasher
        .verify(
            input.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await?;
    let Some(user) = user.filter(|_| ok) else {
        return Ok(LoginOutcome::BadCredentials);
    };
    if user.status != AccountStatus::Active {
        return Ok(LoginOutcome::NotActivated);
    }
    let (token, session) = start_session(
        auth,
        &user,
        NewSession {
            device: input.device,
            ip: input.ip,
            user_agent: input.user_agent,
            previous_token: input.previous_token,
            now: input.now,
        },
    )
    .await?;
    Ok(LoginOutcome::Success {
        token,
        session: Box::new(session),
        user: Box::new(user),
    })
}

/// The browser a session is being opened for.
pub struct NewSession<'a> {
    pub device: DeviceId,
    pub ip: String,
    pub user_agent: String,
    /// The token of the session this browser already holds, if any (rotated away).
    pub previous_token: Option<&'a str>,
    pub now: Millis,
}

/// Opens a session for an account whose identity was just proven (password, or an
/// activation link), replacing the browser's previous session. Returns the cookie token.
pub async fn start_session(
    auth: &Auth,
    user: &User,
    input: NewSession<'_>,
) -> Result<(String, SessionRecord), StoreError> {
    let replaces = match input.previous_token {
        Some(old) => {
            let hash = TokenHash::of(old);
            auth.cache.forget(&hash);
            auth.store
                .session_by_token(&hash, input.now)
                .await?
                .map(|s| s.id)
        }
        None => None,
    };
    let token = random_token(32);
    let session = SessionRecord {
        id: SessionId::random(),
        token_hash: TokenHash::of(&token),
        user_id: user.id.clone(),
        device_id: input.device,
        created_at: input.now,
        last_seen: input.now,
        idle_ms: auth.idle_ms,
        absolute_expiry: input.now.saturating_add(auth.absolute_ms),
        ip: input.ip,
        user_agent: input.user_agent.chars().take(512).collect(),
    };
    auth.store
        .session_insert(&session, replaces.as_ref())
        .await?;
    Ok((token, session))
}
