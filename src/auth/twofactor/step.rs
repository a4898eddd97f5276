//! The second step in progress: a login whose password was right (or a session asked for
//! more, or a member on their security page), waiting for a second factor. One document
//! per browser and purpose, kept [`STEP_TTL`]; nothing in it is a secret a member typed
//! (codes are kept hashed, seeds sealed, ceremony states are challenges).

use serde::{Deserialize, Serialize};

use super::super::{Deps, FlowError};
use super::Keys;
use crate::config::FactorMethod;
use crate::store::{DeviceId, Kept, Millis, SessionId, StoreError, UserId};

/// How long a second step waits (the member fetches a code, finds their phone).
pub const STEP_TTL: Millis = 10 * 60_000;

/// Why the second step was asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Purpose {
    /// A login: no session yet. `known_device`: the password was checked on this
    /// device's own lockout counter, so wrong codes count there too.
    Login { known_device: bool },
    /// A signed-in member reaching a path that needs the second factor.
    StepUp { session: SessionId },
    /// The member's security page (enrolling, naming, removing).
    Account { session: SessionId },
    /// Opening the security page from a session that never passed the second factor, for
    /// a member who has one: the password alone must not be enough to change factors
    /// (someone holding a stolen session and the password would replace the owner's).
    Unlock { session: SessionId },
}

/// A code mailed or texted for this step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentCode {
    pub method: FactorMethod,
    /// Keyed hash of the code, bound to the step ([`code_hash`]).
    pub hash: String,
    /// Wrong codes typed so far.
    pub tries: u32,
    pub expires_at: Millis,
}

impl SentCode {
    /// Whether `typed` is this code and it is still valid at `now`.
    pub fn matches(&self, keys: &Keys, key: &str, typed: &str, now: Millis) -> bool {
        let typed = typed.trim();
        now < self.expires_at
            && typed.len() == 6
            && crate::crypto::ct_eq(&code_hash(keys, key, typed), &self.hash)
    }
}

/// An enrolment started and not confirmed yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Enrolling {
    /// The seed shown as a QR code, sealed.
    Totp {
        sealed: String,
    },
    /// The registration ceremony's state.
    Webauthn {
        state: String,
    },
    /// Email or SMS: the code is in [`SecondStep::code`].
    Email,
    Sms,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondStep {
    pub user_id: UserId,
    pub purpose: Purpose,
    /// Where the member was going (a local path, checked when it was taken).
    pub rd: String,
    pub expires_at: Millis,
    #[serde(default)]
    pub code: Option<SentCode>,
    /// The passkey sign-in ceremony's state, while one is offered.
    #[serde(default)]
    pub passkey: Option<String>,
    #[serde(default)]
    pub enrolling: Option<Enrolling>,
    /// The second factor was passed (or, at login, the first one enrolled and its recovery
    /// codes shown): `continue` finishes.
    #[serde(default)]
    pub passed: Option<Passed>,
    /// The account page: the password was typed again, valid until then.
    #[serde(default)]
    pub unlocked_until: Option<Millis>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Passed {
    /// Trust this device afterwards.
    pub trust: bool,
}

impl SecondStep {
    pub fn new(user: &UserId, purpose: Purpose, rd: &str, now: Millis) -> Self {
        SecondStep {
            user_id: user.clone(),
            purpose,
            rd: rd.to_string(),
            expires_at: now.saturating_add(STEP_TTL),
            code: None,
            passkey: None,
            enrolling: None,
            passed: None,
            unlocked_until: None,
        }
    }

    /// A wrong code for the code in [`Self::code`]: one try more; after `max_tries` the
    /// code is spent and a new one must be sent.
    pub fn code_failed(&mut self, max_tries: u32) {
        if let Some(sent) = self.code.as_mut() {
            sent.tries += 1;
            if sent.tries >= max_tries {
                self.code = None;
            }
        }
    }
}

/// Where a browser's second step lives: the login (or step-up) one per device, the
/// security page's one per session.
pub fn key_for_device(device: &DeviceId) -> String {
    format!("sign:{}", device.as_str())
}

pub fn key_for_session(session: &SessionId) -> String {
    format!("account:{}", session.as_str())
}

/// The step under `key` and its version, if any is waiting.
pub async fn get(
    deps: &Deps,
    key: &str,
    now: Millis,
) -> Result<Option<(u64, SecondStep)>, FlowError> {
    let Some(doc) = deps.store.kept_get(Kept::SecondStep, key, now).await? else {
        return Ok(None);
    };
    let step = serde_json::from_str(&doc.doc)
        .map_err(|e| StoreError::Corrupt(format!("second step: {e}")))?;
    Ok(Some((doc.version, step)))
}

/// Writes the step if it is still at `version` (0: new); `false` when another request
/// changed it first (the caller answers as if it had not happened: the member retries).
pub async fn put(
    deps: &Deps,
    key: &str,
    version: u64,
    step: &SecondStep,
    now: Millis,
) -> Result<bool, FlowError> {
    let doc = serde_json::to_string(step)
        .map_err(|e| StoreError::Corrupt(format!("second step: {e}")))?;
    Ok(deps
        .store
        .kept_put(
            Kept::SecondStep,
            key,
            version,
            Some(&doc),
            Some(step.expires_at),
            now,
        )
        .await?)
}

/// Starts a step under `key`, replacing whatever was there (a newer login on the device).
pub async fn start(
    deps: &Deps,
    key: &str,
    step: &SecondStep,
    now: Millis,
) -> Result<u64, FlowError> {
    for _ in 0..4 {
        let version = get(deps, key, now).await?.map_or(0, |(v, _)| v);
        if put(deps, key, version, step, now).await? {
            return Ok(version + 1);
        }
    }
    Err(StoreError::Unavailable("second step kept changing".into()).into())
}

/// Ends the step if it is still at `version`; `false` if another request took it first
/// (exactly one of two racing completions goes on).
pub async fn finish(deps: &Deps, key: &str, version: u64, now: Millis) -> Result<bool, FlowError> {
    Ok(deps
        .store
        .kept_put(Kept::SecondStep, key, version, None, None, now)
        .await?)
}

/// The stored form of a mailed or texted code: keyed (someone reading the store cannot
/// try the million codes offline) and bound to the step it was sent for.
pub fn code_hash(keys: &Keys, key: &str, code: &str) -> String {
    crate::crypto::hmac_b64(&keys.recovery, &["vigile sign-in code v1", key, code])
}
