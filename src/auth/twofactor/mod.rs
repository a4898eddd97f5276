//! Second factors: what a member holds ([`Factors`], one versioned document per member),
//! who must have one ([`required`]), and the keys that protect them at rest.
//!
//! Every change to a member's factors is read, changed in memory, and written back only
//! if nobody wrote in between ([`update`]): a TOTP step or a recovery code is spent once
//! even when two instances check the same code at the same instant.
//!
//! - [`step`]: the login (or step-up, or enrolment) waiting for its second factor.
//! - [`verify`]: checking what the member presents at `/2fa`, counted like passwords.
//! - [`enrol`]: adding, naming and removing factors, recovery codes, trusted devices.

pub mod enrol;
pub mod step;
pub mod verify;

use serde::{Deserialize, Serialize};

use super::{Deps, FlowError};
use crate::config::{FactorMethod, FileConfig};
use crate::store::{DeviceId, Kept, Millis, OrgRole, StoreError, User, UserId};

pub use crate::auth::passkeys::StoredPasskey;

/// The role names `[twofactor] required_for` accepts.
pub const ROLES: [&str; 5] = ["member", "admin", "org-admin", "org-super-admin", "all"];

/// How many times a read-change-write is tried when other writers keep winning.
const WRITE_TRIES: usize = 8;

/// `[twofactor] encryption_key`: 32 bytes in base64 (standard or URL alphabet).
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let text = text.trim();
    use base64::engine::general_purpose as b64;
    let engines = [
        b64::STANDARD,
        b64::STANDARD_NO_PAD,
        b64::URL_SAFE,
        b64::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(text).ok()?.try_into().ok())
}

/// Whether `[twofactor] required_for` names one of `user`'s roles.
pub fn required(file: &FileConfig, user: &User) -> bool {
    required_for_roles(file, user.admin, user.org_role())
}

/// [`required`] from the roles alone (a session's identity carries them).
pub fn required_for_roles(file: &FileConfig, admin: bool, org: Option<OrgRole>) -> bool {
    file.twofactor
        .required_for
        .iter()
        .any(|role| match role.as_str() {
            "all" | "member" => true,
            "admin" => admin,
            "org-admin" => matches!(org, Some(OrgRole::Admin | OrgRole::SuperAdmin)),
            "org-super-admin" => org == Some(OrgRole::SuperAdmin),
            _ => false,
        })
}

/// The keys protecting factors at rest: TOTP seeds are sealed (bound to their member),
/// recovery codes kept as keyed hashes. From `[twofactor] encryption_key`, else derived
/// from the secret every instance shares through the store.
pub struct Keys {
    pub sealer: crate::seal::Sealer,
    pub recovery: [u8; 32],
}

impl Keys {
    pub fn new(file: &FileConfig, shared_secret: &[u8]) -> Keys {
        let configured = parse_key(file.twofactor.encryption_key.expose());
        let root: Vec<u8> = match configured {
            Some(key) => key.to_vec(),
            None => shared_secret.to_vec(),
        };
        let mut recovery = [0u8; 32];
        let derived = crate::crypto::hmac_b64(&root, &["vigile recovery codes v1"]);
        recovery.copy_from_slice(&sha256(derived.as_bytes()));
        Keys {
            sealer: crate::seal::Sealer::derive(&root, "vigile totp seeds v1"),
            recovery,
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// One enrolled factor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Factor {
    /// Random; names the factor in forms.
    pub id: String,
    pub name: String,
    pub added_at: Millis,
    pub last_used: Option<Millis>,
    pub kind: FactorKind,
}

impl Factor {
    pub fn method(&self) -> FactorMethod {
        match self.kind {
            FactorKind::Totp { .. } => FactorMethod::Totp,
            FactorKind::Passkey(_) => FactorMethod::Webauthn,
            FactorKind::Email => FactorMethod::Email,
            FactorKind::Sms => FactorMethod::Sms,
        }
    }
}

/// What checking a factor needs. Email and SMS codes go to the account's confirmed
/// address or number at the time (never one stored here).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum FactorKind {
    Totp {
        /// The seed, sealed for this member ([`Keys::sealer`]).
        sealed: String,
        /// The last 30-second step accepted: codes of that step or earlier are refused.
        last_step: Option<u64>,
    },
    Passkey(Box<StoredPasskey>),
    Email,
    Sms,
}

/// A device that passed the second factor with "trust this device".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trust {
    pub device: DeviceId,
    pub until: Millis,
}

/// Everything second-factor a member holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Factors {
    #[serde(default)]
    pub list: Vec<Factor>,
    /// Keyed hashes of the recovery codes not used yet.
    #[serde(default)]
    pub recovery: Vec<String>,
    /// The method of the last successful check, proposed first at the next login.
    #[serde(default)]
    pub last_method: Option<FactorMethod>,
    #[serde(default)]
    pub trusted: Vec<Trust>,
}

/// Trusted devices kept per member; the oldest trust goes first.
const MAX_TRUSTED: usize = 20;

impl Factors {
    /// Whether any factor is enrolled (recovery codes alone are not one).
    pub fn any(&self) -> bool {
        !self.list.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Factor> {
        self.list.iter().find(|f| f.id == id)
    }

    /// The member's passkeys, and where each is in [`Self::list`].
    pub fn passkeys(&self) -> (Vec<usize>, Vec<StoredPasskey>) {
        self.list
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match &f.kind {
                FactorKind::Passkey(p) => Some((i, (**p).clone())),
                _ => None,
            })
            .unzip()
    }

    pub fn has(&self, method: FactorMethod) -> bool {
        self.list.iter().any(|f| f.method() == method)
    }

    /// Whether `device` skips the second factor at `now`.
    pub fn trusts(&self, device: &DeviceId, now: Millis) -> bool {
        self.trusted
            .iter()
            .any(|t| &t.device == device && now < t.until)
    }

    pub fn trust(&mut self, device: &DeviceId, until: Millis, now: Millis) {
        self.trusted
            .retain(|t| &t.device != device && now < t.until);
        self.trusted.push(Trust {
            device: device.clone(),
            until,
        });
        if self.trusted.len() > MAX_TRUSTED {
            self.trusted.remove(0);
        }
    }

    /// Methods the member can use now, in the order they are proposed: the last used
    /// first, then TOTP, passkeys, email, SMS. Email and SMS only while the address or
    /// number is confirmed, and only methods the site still offers.
    pub fn usable(&self, file: &FileConfig, user: &User) -> Vec<FactorMethod> {
        let mut methods: Vec<FactorMethod> = FactorMethod::ALL
            .into_iter()
            .filter(|m| self.has(*m) && channel_ready(file, user, *m))
            .collect();
        if let Some(last) = self.last_method {
            if let Some(at) = methods.iter().position(|m| *m == last) {
                methods.remove(at);
                methods.insert(0, last);
            }
        }
        methods
    }
}

/// Whether codes for `method` may be sent to this member now: the site offers the method
/// and (email, SMS) the channel is confirmed.
pub fn channel_ready(file: &FileConfig, user: &User, method: FactorMethod) -> bool {
    let offered = file.twofactor.methods.contains(&method);
    offered
        && match method {
            FactorMethod::Totp | FactorMethod::Webauthn => true,
            FactorMethod::Email => user.contact.email_confirmed.is_some(),
            FactorMethod::Sms => {
                user.contact.mobile.is_some() && user.contact.mobile_confirmed.is_some()
            }
        }
}

/// The passkey relying party, when the site offers passkeys and can (a domain name).
pub fn passkeys_offered<'a>(
    deps: &'a Deps,
    user: &User,
) -> Option<&'a crate::auth::passkeys::Passkeys> {
    let offered = channel_ready(&deps.config.file, user, FactorMethod::Webauthn);
    deps.passkeys.as_deref().filter(|_| offered)
}

/// A member's factors and the version they were read at (0: none yet).
pub async fn load(deps: &Deps, user: &UserId, now: Millis) -> Result<(u64, Factors), FlowError> {
    let Some(doc) = deps
        .store
        .kept_get(Kept::Factors, user.as_str(), now)
        .await?
    else {
        return Ok((0, Factors::default()));
    };
    let factors = serde_json::from_str(&doc.doc)
        .map_err(|e| StoreError::Corrupt(format!("factors of {}: {e}", user.as_str())))?;
    Ok((doc.version, factors))
}

/// Applies `change` to the member's current factors and writes them, again on the newest
/// version if someone wrote in between. `change` decides from what it sees: it returns
/// `Err(outcome)` to write nothing (e.g. the code was already spent by that other writer).
pub async fn update<T, E>(
    deps: &Deps,
    user: &UserId,
    now: Millis,
    mut change: impl FnMut(&mut Factors) -> Result<T, E>,
) -> Result<Result<T, E>, FlowError> {
    for _ in 0..WRITE_TRIES {
        let (version, mut factors) = load(deps, user, now).await?;
        let out = match change(&mut factors) {
            Ok(out) => out,
            Err(refused) => return Ok(Err(refused)),
        };
        let doc = serde_json::to_string(&factors)
            .map_err(|e| StoreError::Corrupt(format!("factors: {e}")))?;
        let key = user.as_str();
        if deps
            .store
            .kept_put(Kept::Factors, key, version, Some(&doc), None, now)
            .await?
        {
            return Ok(Ok(out));
        }
    }
    Err(StoreError::Unavailable("factors kept changing under this write".into()).into())
}

/// Removes every factor, recovery code and trust (an admin's reset; a lost phone).
/// Returns whether there was anything.
pub async fn reset(deps: &Deps, user: &UserId, now: Millis) -> Result<bool, FlowError> {
    let had = update(deps, user, now, |f| {
        let had = f.any() || !f.recovery.is_empty() || !f.trusted.is_empty();
        *f = Factors::default();
        Ok::<bool, ()>(had)
    })
    .await?;
    Ok(had.unwrap_or(false))
}

/// Ends the trust of `devices` (revoked), or of every device (`None`: a password change
/// or reset). Nothing is written when nothing was trusted.
pub async fn untrust(
    deps: &Deps,
    user: &UserId,
    devices: Option<&[DeviceId]>,
    now: Millis,
) -> Result<(), FlowError> {
    let _ = update(deps, user, now, |f| {
        let before = f.trusted.len();
        match devices {
            Some(ended) => f.trusted.retain(|t| !ended.contains(&t.device)),
            None => f.trusted.clear(),
        }
        if f.trusted.len() == before {
            return Err(());
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// Every device but `keep` stops skipping the second factor (a password change that
/// signed the other devices out).
pub async fn untrust_others(
    deps: &Deps,
    user: &UserId,
    keep: &DeviceId,
    now: Millis,
) -> Result<(), FlowError> {
    let _ = update(deps, user, now, |f| {
        let before = f.trusted.len();
        f.trusted.retain(|t| &t.device == keep);
        if f.trusted.len() == before {
            return Err(());
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// A name for a factor: the member's, trimmed and bounded, else the method's default.
pub fn factor_name(typed: &str, default: &str) -> String {
    let name: String = typed
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect();
    if name.is_empty() {
        default.to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_32_bytes_of_base64() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        assert!(parse_key(key).is_some());
        assert!(parse_key(key.trim_end_matches('=')).is_some());
        assert!(parse_key("c2hvcnQ=").is_none());
        assert!(parse_key("not base64 at all!").is_none());
    }

    #[test]
    fn trust_is_per_device_bounded_and_expires() {
        let mut f = Factors::default();
        let d = DeviceId::from_string("d1");
        f.trust(&d, 100, 0);
        assert!(f.trusts(&d, 99));
        assert!(!f.trusts(&d, 100));
        assert!(!f.trusts(&DeviceId::from_string("d2"), 50));
        for i in 0..30 {
            f.trust(&DeviceId::from_string(format!("x{i}")), 1_000, 10);
        }
        assert_eq!(f.trusted.len(), MAX_TRUSTED);
        assert!(f.trusts(&DeviceId::from_string("x29"), 500));
    }

    #[test]
    fn names_are_trimmed_bounded_and_defaulted() {
        assert_eq!(factor_name("  ", "Passkey"), "Passkey");
        assert_eq!(factor_name(" Phone\n", "x"), "Phone");
        assert_eq!(factor_name(&"a".repeat(100), "x").len(), 60);
    }
}
