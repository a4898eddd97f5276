//! Adding, naming and removing second factors, and the recovery codes. An enrolment is
//! started (a seed shown, a ceremony offered, a code sent) and counts only once the member
//! proved it works; the first factor brings ten recovery codes, shown once.

use super::step::{self, Enrolling};
use super::verify::{self, Sent};
use super::{channel_ready, required, update, Factor, FactorKind, Keys};
use crate::audit::{Actor, Event};
use crate::auth::password::Lane;
use crate::auth::recovery_codes;
use crate::auth::totp::{self, TotpCheck, TotpSecret};
use crate::auth::{Deps, FlowError};
use crate::config::FactorMethod;
use crate::crypto::random_token;
use crate::i18n::Lang;
use crate::store::{Millis, User};

/// A TOTP enrolment on screen: the secret as text and as a QR code.
pub struct TotpShown {
    pub secret: String,
    pub qr_svg: String,
}

/// What confirming an enrolment came to.
pub enum Enrolled {
    /// Added. `recovery`: the codes to show once (first factor), else `None`.
    Added {
        method: FactorMethod,
        recovery: Option<Vec<String>>,
    },
    /// Wrong code (or refused ceremony): nothing added; the enrolment waits.
    Wrong,
    /// Nothing being enrolled (expired, or another tab finished it).
    Gone,
}

/// Starts a TOTP enrolment: a new seed, sealed into the step, shown to the member.
pub async fn start_totp(
    deps: &Deps,
    keys: &Keys,
    key: &str,
    user: &User,
    now: Millis,
) -> Result<Option<TotpShown>, FlowError> {
    if !channel_ready(&deps.config.file, user, FactorMethod::Totp) {
        return Ok(None);
    }
    let Some((version, mut s)) = step::get(deps, key, now).await? else {
        return Ok(None);
    };
    let secret = TotpSecret::generate();
    s.enrolling = Some(Enrolling::Totp {
        sealed: keys.sealer.seal(secret.as_bytes(), user.id.as_str()),
    });
    if !step::put(deps, key, version, &s, now).await? {
        return Ok(None);
    }
    Ok(Some(display(deps, &secret, user)))
}

/// The seed as the member's app takes it: the key as text and the `otpauth://` QR code.
fn display(deps: &Deps, secret: &TotpSecret, user: &User) -> TotpShown {
    let t = &deps.config.file.twofactor;
    let issuer = if t.issuer.is_empty() {
        deps.config.public_url.host_str().unwrap_or("Vigile")
    } else {
        t.issuer.as_str()
    };
    let url = totp::otpauth_url(secret, issuer, &user.email);
    TotpShown {
        secret: secret.base32(),
        qr_svg: totp::qr_svg(&url),
    }
}

/// The seed being enrolled again (the page shown after a wrong code).
pub async fn shown_totp(
    deps: &Deps,
    keys: &Keys,
    key: &str,
    user: &User,
    now: Millis,
) -> Result<Option<TotpShown>, FlowError> {
    let Some((_, s)) = step::get(deps, key, now).await? else {
        return Ok(None);
    };
    let Some(Enrolling::Totp { sealed }) = &s.enrolling else {
        return Ok(None);
    };
    let Some(seed) = keys.sealer.open(sealed, user.id.as_str()) else {
        return Ok(None);
    };
    Ok(Some(display(deps, &TotpSecret::from_bytes(seed), user)))
}

/// Starts a passkey registration: the options for the browser (JSON).
pub async fn start_webauthn(
    deps: &Deps,
    key: &str,
    user: &User,
    now: Millis,
) -> Result<Option<String>, FlowError> {
    let Some(passkeys) = super::passkeys_offered(deps, user) else {
        return Ok(None);
    };
    let Some((version, mut s)) = step::get(deps, key, now).await? else {
        return Ok(None);
    };
    let (_, factors) = super::load(deps, &user.id, now).await?;
    let (_, existing) = factors.passkeys();
    let handle = crate::auth::passkeys::user_handle(user.id.as_str());
    let display = if user.name.is_empty() {
        user.email.as_str()
    } else {
        user.name.as_str()
    };
    let Ok((options, state)) = passkeys.start_registration(handle, &user.email, display, &existing)
    else {
        return Ok(None);
    };
    s.enrolling = Some(Enrolling::Webauthn { state });
    if !step::put(deps, key, version, &s, now).await? {
        return Ok(None);
    }
    Ok(Some(options))
}

/// Starts an email or SMS enrolment: a code to the confirmed address or number.
pub async fn start_code(
    deps: &Deps,
    key: &str,
    user: &User,
    method: FactorMethod,
    lang: Lang,
    now: Millis,
) -> Result<Sent, FlowError> {
    if verify::target_of(deps, user, method).is_none() {
        return Ok(Sent::Unavailable);
    }
    let Some((version, mut s)) = step::get(deps, key, now).await? else {
        return Ok(Sent::Gone);
    };
    s.enrolling = Some(match method {
        FactorMethod::Sms => Enrolling::Sms,
        _ => Enrolling::Email,
    });
    if !step::put(deps, key, version, &s, now).await? {
        return Ok(Sent::Gone);
    }
    verify::send(deps, key, user, method, lang, now).await
}

/// What the member answers to confirm the enrolment in progress.
pub enum Answer<'a> {
    Code(&'a str),
    Passkey(&'a str),
}

/// Confirms the enrolment in progress under `key` with the member's answer; on success
/// the factor is added (named `name`) and the enrolment ends.
pub async fn confirm(
    deps: &Deps,
    keys: &Keys,
    key: &str,
    user: &User,
    answer: Answer<'_>,
    name: &str,
    now: Millis,
) -> Result<Enrolled, FlowError> {
    let Some((version, mut s)) = step::get(deps, key, now).await? else {
        return Ok(Enrolled::Gone);
    };
    let Some(enrolling) = s.enrolling.clone() else {
        return Ok(Enrolled::Gone);
    };
    let kind = match (enrolling, answer) {
        (Enrolling::Totp { sealed }, Answer::Code(code)) => {
            let Some(seed) = keys.sealer.open(&sealed, user.id.as_str()) else {
                return Ok(Enrolled::Gone);
            };
            match totp::check(&TotpSecret::from_bytes(seed), code, now, None) {
                TotpCheck::Valid { step } => FactorKind::Totp {
                    sealed,
                    last_step: Some(step),
                },
                TotpCheck::Replayed | TotpCheck::Wrong => return Ok(Enrolled::Wrong),
            }
        }
        (Enrolling::Webauthn { state }, Answer::Passkey(response)) => {
            let Some(passkeys) = deps.passkeys.as_deref() else {
                return Ok(Enrolled::Gone);
            };
            // The ceremony's challenge is single-use whatever the outcome.
            s.enrolling = None;
            if !step::put(deps, key, version, &s, now).await? {
                return Ok(Enrolled::Gone);
            }
            match passkeys.finish_registration(response, &state) {
                Ok(passkey) => FactorKind::Passkey(Box::new(passkey)),
                Err(_) => return Ok(Enrolled::Wrong),
            }
        }
        (Enrolling::Email | Enrolling::Sms, Answer::Code(code)) => {
            let method = match s.enrolling {
                Some(Enrolling::Sms) => FactorMethod::Sms,
                _ => FactorMethod::Email,
            };
            let Some(sent) = s.code.as_ref().filter(|c| c.method == method) else {
                return Ok(Enrolled::Gone);
            };
            if !sent.matches(keys, key, code, now) {
                s.code_failed(deps.config.file.contact.max_tries);
                step::put(deps, key, version, &s, now).await?;
                return Ok(Enrolled::Wrong);
            }
            if method == FactorMethod::Sms {
                FactorKind::Sms
            } else {
                FactorKind::Email
            }
        }
        _ => return Ok(Enrolled::Wrong),
    };
    // The enrolment ends here (a second submit finds nothing to confirm).
    if let Some((v, mut s)) = step::get(deps, key, now).await? {
        s.enrolling = None;
        s.code = None;
        if !step::put(deps, key, v, &s, now).await? {
            return Ok(Enrolled::Gone);
        }
    }
    add(deps, keys, user, kind, name, now).await
}

/// Adds a proven factor; the first one brings recovery codes.
async fn add(
    deps: &Deps,
    keys: &Keys,
    user: &User,
    kind: FactorKind,
    name: &str,
    now: Millis,
) -> Result<Enrolled, FlowError> {
    let t = deps.config.file.twofactor.methods.clone();
    let factor = Factor {
        id: random_token(9),
        name: String::new(),
        added_at: now,
        last_used: None,
        kind,
    };
    let method = factor.method();
    if !t.contains(&method) {
        return Ok(Enrolled::Gone);
    }
    let lang = user.lang.as_deref().and_then(Lang::parse);
    let default = default_name(method, lang.unwrap_or(deps.config.default_lang));
    let name = super::factor_name(name, &default);
    let codes = recovery_codes::generate();
    let added = update(deps, &user.id, now, |f| {
        let mut factor = factor.clone();
        factor.name = name.clone();
        let first = f.recovery.is_empty();
        f.list.push(factor);
        if f.last_method.is_none() {
            f.last_method = Some(method);
        }
        if first {
            f.recovery = codes
                .iter()
                .map(|c| recovery_codes::hash(&keys.recovery, c))
                .collect();
        }
        Ok::<bool, ()>(first)
    })
    .await?;
    let first = added.unwrap_or(false);
    let label = method.as_str();
    deps.metrics
        .second_factor
        .with_label_values(&[label, "enrolled"])
        .inc();
    let enrolled = Event::SecondFactorEnrolled {
        user: &user.id,
        method: label,
    };
    enrolled.emit(&Actor::System(None), now);
    deps.mailer
        .twofactor_changed(user, true, &format!("twofa-method-{label}"), now)
        .await?;
    Ok(Enrolled::Added {
        method,
        recovery: first.then_some(codes),
    })
}

/// The name a factor gets when the member gives none.
pub fn default_name(method: FactorMethod, lang: Lang) -> String {
    let key = match method {
        FactorMethod::Totp => "twofa-method-totp",
        FactorMethod::Webauthn => "twofa-method-webauthn",
        FactorMethod::Email => "twofa-method-email",
        FactorMethod::Sms => "twofa-method-sms",
    };
    lang.tr().get(key)
}

/// What removing a factor came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    Removed(FactorMethod),
    /// The last factor of a member `required_for` names: kept.
    LastRequired,
    Missing,
}

pub async fn remove(deps: &Deps, user: &User, id: &str, now: Millis) -> Result<Removed, FlowError> {
    let must_keep = required(&deps.config.file, user);
    let removed = update(deps, &user.id, now, |f| {
        let at = f
            .list
            .iter()
            .position(|x| x.id == id)
            .ok_or(Removed::Missing)?;
        if must_keep && f.list.len() == 1 {
            return Err(Removed::LastRequired);
        }
        let method = f.list.remove(at).method();
        if f.list.is_empty() {
            // Without a factor nothing asks for recovery codes, nor trusts a device.
            f.recovery.clear();
            f.trusted.clear();
            f.last_method = None;
        }
        Ok(method)
    })
    .await?;
    match removed {
        Ok(method) => {
            let gone = Event::SecondFactorRemoved {
                user: &user.id,
                method: method.as_str(),
            };
            gone.emit(&Actor::System(None), now);
            let key = format!("twofa-method-{}", method.as_str());
            deps.mailer
                .twofactor_changed(user, false, &key, now)
                .await?;
            Ok(Removed::Removed(method))
        }
        Err(why) => Ok(why),
    }
}

pub async fn rename(
    deps: &Deps,
    user: &User,
    id: &str,
    name: &str,
    now: Millis,
) -> Result<bool, FlowError> {
    let renamed = update(deps, &user.id, now, |f| {
        let factor = f.list.iter_mut().find(|x| x.id == id).ok_or(())?;
        let default = factor.name.clone();
        factor.name = super::factor_name(name, &default);
        Ok::<(), ()>(())
    })
    .await?;
    Ok(renamed.is_ok())
}

/// New recovery codes replacing the old ones (only for a member with a factor).
pub async fn regenerate(
    deps: &Deps,
    keys: &Keys,
    user: &User,
    now: Millis,
) -> Result<Option<Vec<String>>, FlowError> {
    let codes = recovery_codes::generate();
    let done = update(deps, &user.id, now, |f| {
        if !f.any() {
            return Err(());
        }
        f.recovery = codes
            .iter()
            .map(|c| recovery_codes::hash(&keys.recovery, c))
            .collect();
        Ok(())
    })
    .await?;
    Ok(done.ok().map(|()| codes))
}

/// What typing the password again on the security page came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Unlock {
    Open,
    Wrong,
    /// That failure (or an earlier one) locked the session's device, as a login would.
    Locked,
    IpBlocked(Millis),
}

/// The password typed again on the security page, counted like a login attempt: on the
/// client address, and on the counter of the device the session was opened on (its id
/// comes from the session, never from a cookie the client could change), so a stolen
/// session is no password oracle.
pub async fn unlock(
    deps: &Deps,
    user: &User,
    device: &crate::store::DeviceId,
    ip: std::net::IpAddr,
    password: &str,
    now: Millis,
) -> Result<Unlock, FlowError> {
    use crate::auth::lockout::{self, Gate};
    use crate::auth::login::{failed, ip_rule, Counted};
    let store = &deps.store;
    let rule = ip_rule(deps);
    let ip_key = lockout::client_key(ip);
    let ip_count = if rule.max == 0 {
        0
    } else {
        match store.ip_attempt(&ip_key, &rule, now).await? {
            Ok(n) => n,
            Err(until) => return Ok(Unlock::IpBlocked(until)),
        }
    };
    let key = crate::store::AttemptKey::Device(&user.email, device);
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
        return Ok(Unlock::Open);
    }
    let counted = Counted {
        attempt: count,
        ip_count,
        known_device: true,
    };
    Ok(
        if failed(deps, Some(user), gate, counted, ip, now)
            .await?
            .is_some()
        {
            Unlock::Locked
        } else {
            Unlock::Wrong
        },
    )
}
