//! The second step of a login (and of a step-up): whether it is asked, the codes sent for
//! it, and the check of what the member presents, counted on the same lockout counters as
//! passwords so a second factor is no unlimited oracle.

use std::net::IpAddr;

use super::step::{self, Passed, Purpose, SecondStep, SentCode};
use super::{channel_ready, load, required, update, FactorKind, Keys};
use crate::audit::{Actor, Event};
use crate::auth::contact::{member_limits, target_limits, Target};
use crate::auth::limits::RetryAfter;
use crate::auth::lockout::{self, Gate};
use crate::auth::login::{failed, ip_rule, Counted, Lock};
use crate::auth::{Deps, FlowError};
use crate::config::FactorMethod;
use crate::crypto::six_digit_code;
use crate::edge::email::Email;
use crate::edge::phone::Phone;
use crate::i18n::Lang;
use crate::store::{millis, AttemptKey, DeviceId, Millis, User};

/// What a login needs after the right password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No factor and none required: the password is the whole login.
    Nothing,
    /// This device passed the second factor lately with "trust this device".
    Trusted,
    /// `/_vigile/2fa`: check a factor (`first`: the one proposed), or enrol one first.
    Ask { first: Option<FactorMethod> },
}

pub async fn need(
    deps: &Deps,
    user: &User,
    device: &DeviceId,
    now: Millis,
) -> Result<Need, FlowError> {
    let (_, factors) = load(deps, &user.id, now).await?;
    if !factors.any() && !required(&deps.config.file, user) {
        return Ok(Need::Nothing);
    }
    if factors.any() && factors.trusts(device, now) {
        return Ok(Need::Trusted);
    }
    let first = factors.usable(&deps.config.file, user).first().copied();
    Ok(Need::Ask { first })
}

/// Starts the second step for this device, replacing an earlier one. When the method
/// proposed first sends a code (email, SMS), it is sent now, so the member finds it
/// waiting.
pub async fn begin(
    deps: &Deps,
    user: &User,
    device: &DeviceId,
    purpose: Purpose,
    first: Option<FactorMethod>,
    rd: &str,
    now: Millis,
) -> Result<(), FlowError> {
    let key = step::key_for_device(device);
    step::start(
        deps,
        &key,
        &SecondStep::new(&user.id, purpose, rd, now),
        now,
    )
    .await?;
    if let Some(method @ (FactorMethod::Email | FactorMethod::Sms)) = first {
        // Refused sends (limits) leave the "Send code" button to say why.
        let lang = user.lang.as_deref().and_then(Lang::parse);
        let lang = lang.unwrap_or(deps.config.default_lang);
        send(deps, &key, user, method, lang, now).await?;
    }
    Ok(())
}

/// What asking for a code came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Sent,
    TooMany(RetryAfter),
    /// The channel is not confirmed (or the method not offered): nothing sent.
    Unavailable,
    /// The step ended meanwhile.
    Gone,
}

/// Sends a 6-digit code for `method` (email or SMS) to the member's confirmed address or
/// number and keeps its hash in the step, replacing an earlier code. The same limits as
/// contact codes apply (per member and channel, per address or number, texts per site).
pub async fn send(
    deps: &Deps,
    key: &str,
    user: &User,
    method: FactorMethod,
    lang: Lang,
    now: Millis,
) -> Result<Sent, FlowError> {
    let Some(target) = target_of(deps, user, method) else {
        return Ok(Sent::Unavailable);
    };
    if let Err(retry) = member_limits(deps, &user.id, &target, now).await? {
        return Ok(Sent::TooMany(retry));
    }
    if let Err(retry) = target_limits(deps, &target, now).await? {
        return Ok(Sent::TooMany(retry));
    }
    let Some((current, mut s)) = step::get(deps, key, now).await? else {
        return Ok(Sent::Gone);
    };
    let code = six_digit_code();
    let ttl = millis(deps.config.file.contact.code_ttl);
    let keys = deps.twofactor_keys().await?;
    s.code = Some(SentCode {
        method,
        hash: step::code_hash(keys, key, &code),
        tries: 0,
        expires_at: now.saturating_add(ttl).min(s.expires_at),
    });
    if !step::put(deps, key, current, &s, now).await? {
        return Ok(Sent::Gone);
    }
    let lang = user.lang.as_deref().and_then(Lang::parse).unwrap_or(lang);
    match &target {
        Target::Email(to) => {
            deps.mailer
                .second_factor_code(lang, to.as_str(), &code, now)
                .await?
        }
        Target::Mobile(to) => {
            deps.mailer
                .second_factor_sms(lang, to.as_str(), &code, now)
                .await?
        }
    }
    Ok(Sent::Sent)
}

/// Where codes for `method` go for this member: their address or mobile, confirmed.
pub fn target_of(deps: &Deps, user: &User, method: FactorMethod) -> Option<Target> {
    if !channel_ready(&deps.config.file, user, method) {
        return None;
    }
    match method {
        FactorMethod::Email => Email::parse(&user.email).ok().map(Target::Email),
        FactorMethod::Sms => {
            let mobile = user.contact.mobile.as_deref()?;
            let phone = Phone::parse(mobile, deps.config.phone_region).ok()?;
            (deps.config.sms_delivers && super::super::contact::country_allowed(deps, &phone))
                .then_some(Target::Mobile(phone))
        }
        FactorMethod::Totp | FactorMethod::Webauthn => None,
    }
}

/// What the member presents at `/2fa`.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// A code from an authenticator app, a mail or a text.
    Code(FactorMethod, &'a str),
    Recovery(&'a str),
    /// The passkey ceremony's response (JSON).
    Passkey(&'a str),
}

impl Presented<'_> {
    /// Its `vigile_second_factor_total{method}` label.
    pub fn label(&self) -> &'static str {
        match self {
            Presented::Code(method, _) => method.as_str(),
            Presented::Passkey(_) => FactorMethod::Webauthn.as_str(),
            Presented::Recovery(_) => "recovery",
        }
    }
}

/// The browser presenting it.
pub struct Attempt<'a> {
    pub key: &'a str,
    pub device: &'a DeviceId,
    pub ip: IpAddr,
    pub trust: bool,
    pub now: Millis,
}

#[derive(Debug)]
pub enum Checked {
    /// Right: the step (now marked passed) and the member.
    Passed {
        step: Box<SecondStep>,
        version: u64,
        user: Box<User>,
    },
    /// Wrong (or a code that is spent, expired or never sent for this method).
    Wrong,
    /// A TOTP code already used: refused, counted like a wrong one.
    Replayed,
    /// That failure locked the address or device (or it was locked): the step is gone.
    Locked(Lock),
    IpBlocked {
        until: Millis,
    },
    /// No second step waiting on this device.
    Gone,
}

/// Why a presented factor was refused.
enum Refused {
    Wrong,
    Replayed,
}

/// Checks what the member presents for the step under `attempt.key`.
///
/// Counted before it is checked, exactly like a password: the client address first (a
/// blocked address stops here), then the address's (or known device's) consecutive
/// failures, which a locked address never gets past. A right answer clears both.
pub async fn check(
    deps: &Deps,
    keys: &Keys,
    attempt: Attempt<'_>,
    presented: Presented<'_>,
) -> Result<Checked, FlowError> {
    let (store, now) = (&deps.store, attempt.now);
    let Some((version, mut s)) = step::get(deps, attempt.key, now).await? else {
        return Ok(Checked::Gone);
    };
    let Some(user) = store.user_by_id(&s.user_id).await? else {
        return Ok(Checked::Gone);
    };
    let rule = ip_rule(deps);
    let ip = lockout::client_key(attempt.ip);
    let ip_count = if rule.max == 0 {
        0
    } else {
        match store.ip_attempt(&ip, &rule, now).await? {
            Ok(n) => n,
            Err(until) => return Ok(Checked::IpBlocked { until }),
        }
    };
    let known_device = match &s.purpose {
        Purpose::Login { known_device } => *known_device,
        Purpose::StepUp { .. } | Purpose::Account { .. } | Purpose::Unlock { .. } => {
            store.device_known(&user.id, attempt.device).await?
        }
    };
    let key = if known_device {
        AttemptKey::Device(&user.email, attempt.device)
    } else {
        AttemptKey::Account(&user.email)
    };
    let count = store.attempt_begin(key, now).await?;
    let max = deps.config.file.lockout.account_max_failures;
    let gate = lockout::gate(count, max);
    let verdict = if gate == Gate::Open {
        judge(deps, keys, &user, &attempt, version, &mut s, presented).await?
    } else {
        Err(Refused::Wrong)
    };
    let method = presented.label();
    let counted = |result: &str| {
        let m = &deps.metrics.second_factor;
        m.with_label_values(&[method, result]).inc();
    };
    match verdict {
        Ok(version) => {
            store.attempts_clear(key).await?;
            if rule.max > 0 {
                store.ip_refund(&ip).await?;
            }
            counted("success");
            let passed = Event::SecondFactorPassed {
                user: &user.id,
                method,
            };
            passed.emit(&Actor::Visitor(attempt.ip), now);
            s.passed = Some(Passed {
                trust: attempt.trust,
            });
            s.code = None;
            s.passkey = None;
            if !step::put(deps, attempt.key, version, &s, now).await? {
                return Ok(Checked::Gone);
            }
            Ok(Checked::Passed {
                step: Box::new(s),
                version: version + 1,
                user: Box::new(user),
            })
        }
        Err(refused) => {
            let failure = Event::SecondFactorFailed {
                user: &user.id,
                method,
            };
            failure.emit(&Actor::Visitor(attempt.ip), now);
            let counts = Counted {
                attempt: count,
                ip_count,
                known_device,
            };
            let locked = failed(deps, Some(&user), gate, counts, attempt.ip, now).await?;
            if let Some(lock) = locked {
                counted("locked");
                // The step dies with the lock: the way back is the reset link.
                let current = step::get(deps, attempt.key, now).await?.map(|(v, _)| v);
                if let Some(v) = current {
                    step::finish(deps, attempt.key, v, now).await?;
                }
                return Ok(Checked::Locked(lock));
            }
            Ok(match refused {
                Refused::Replayed => {
                    counted("replayed");
                    Checked::Replayed
                }
                Refused::Wrong => {
                    counted("failure");
                    Checked::Wrong
                }
            })
        }
    }
}

/// Checks `presented` against the member's factors; on success returns the step's
/// version to write it passed at (the check itself may have written it).
async fn judge(
    deps: &Deps,
    keys: &Keys,
    user: &User,
    attempt: &Attempt<'_>,
    version: u64,
    s: &mut SecondStep,
    presented: Presented<'_>,
) -> Result<Result<u64, Refused>, FlowError> {
    let (file, key, now) = (&deps.config.file, attempt.key, attempt.now);
    match presented {
        Presented::Code(FactorMethod::Totp, code) => {
            if !file.twofactor.methods.contains(&FactorMethod::Totp) {
                return Ok(Err(Refused::Wrong));
            }
            let spent = update(deps, &user.id, now, |f| {
                let mut replayed = false;
                for factor in &mut f.list {
                    let FactorKind::Totp { sealed, last_step } = &mut factor.kind else {
                        continue;
                    };
                    let Some(seed) = keys.sealer.open(sealed, user.id.as_str()) else {
                        continue;
                    };
                    let secret = crate::auth::totp::TotpSecret::from_bytes(seed);
                    match crate::auth::totp::check(&secret, code, now, *last_step) {
                        crate::auth::totp::TotpCheck::Valid { step } => {
                            *last_step = Some(step);
                            factor.last_used = Some(now);
                            f.last_method = Some(FactorMethod::Totp);
                            return Ok(());
                        }
                        crate::auth::totp::TotpCheck::Replayed => replayed = true,
                        crate::auth::totp::TotpCheck::Wrong => {}
                    }
                }
                Err(if replayed {
                    Refused::Replayed
                } else {
                    Refused::Wrong
                })
            })
            .await?;
            Ok(spent.map(|()| version))
        }
        Presented::Code(method @ (FactorMethod::Email | FactorMethod::Sms), code) => {
            let ready = channel_ready(file, user, method);
            let Some(sent) = s.code.as_ref().filter(|c| c.method == method && ready) else {
                return Ok(Err(Refused::Wrong));
            };
            if !sent.matches(keys, key, code, now) {
                s.code_failed(file.contact.max_tries);
                step::put(deps, key, version, s, now).await?;
                return Ok(Err(Refused::Wrong));
            }
            let used = update(deps, &user.id, now, |f| {
                let Some(factor) = f.list.iter_mut().find(|x| x.method() == method) else {
                    return Err(Refused::Wrong);
                };
                factor.last_used = Some(now);
                f.last_method = Some(method);
                Ok(())
            })
            .await?;
            Ok(used.map(|()| version))
        }
        Presented::Code(FactorMethod::Webauthn, _) => Ok(Err(Refused::Wrong)),
        Presented::Recovery(typed) => {
            let used = update(deps, &user.id, now, |f| {
                let at = crate::auth::recovery_codes::find(&keys.recovery, typed, &f.recovery)
                    .ok_or(Refused::Wrong)?;
                f.recovery.remove(at);
                Ok(f.recovery.len())
            })
            .await?;
            match used {
                Ok(left) => {
                    let spent = Event::RecoveryCodeUsed {
                        user: &user.id,
                        left,
                    };
                    spent.emit(&Actor::Visitor(attempt.ip), now);
                    deps.mailer.recovery_code_used(user, left, now).await?;
                    Ok(Ok(version))
                }
                Err(refused) => Ok(Err(refused)),
            }
        }
        Presented::Passkey(response) => {
            let (Some(passkeys), Some(state)) = (deps.passkeys.as_deref(), s.passkey.take()) else {
                return Ok(Err(Refused::Wrong));
            };
            // The ceremony's challenge is single-use whatever the outcome.
            if !step::put(deps, key, version, s, now).await? {
                return Ok(Err(Refused::Wrong));
            }
            let version = version + 1;
            let used = update(deps, &user.id, now, |f| {
                let (ids, mut stored) = f.passkeys();
                let at = passkeys
                    .finish_authentication(response, &state, &mut stored)
                    .map_err(|_| Refused::Wrong)?;
                let factor = &mut f.list[ids[at]];
                factor.kind = FactorKind::Passkey(Box::new(stored[at].clone()));
                factor.last_used = Some(now);
                f.last_method = Some(FactorMethod::Webauthn);
                Ok(())
            })
            .await?;
            Ok(used.map(|()| version))
        }
    }
}

/// Offers the passkey ceremony on this step: its options for the browser (JSON), the
/// state kept in the step. `None` when the member has no passkey or passkeys are off.
pub async fn passkey_options(
    deps: &Deps,
    key: &str,
    user: &User,
    now: Millis,
) -> Result<Option<String>, FlowError> {
    let Some(passkeys) = super::passkeys_offered(deps, user) else {
        return Ok(None);
    };
    let (_, factors) = load(deps, &user.id, now).await?;
    let (_, stored) = factors.passkeys();
    if stored.is_empty() {
        return Ok(None);
    }
    let Ok((options, state)) = passkeys.start_authentication(&stored) else {
        return Ok(None);
    };
    let Some((version, mut s)) = step::get(deps, key, now).await? else {
        return Ok(None);
    };
    s.passkey = Some(state);
    if !step::put(deps, key, version, &s, now).await? {
        return Ok(None);
    }
    Ok(Some(options))
}

/// After a passed step with "trust this device": this device skips the second factor
/// for `trusted_device`.
pub async fn trust_device(
    deps: &Deps,
    user: &User,
    device: &DeviceId,
    now: Millis,
) -> Result<(), FlowError> {
    let ttl = millis(deps.config.file.twofactor.trusted_device);
    if ttl <= 0 {
        return Ok(());
    }
    let _ = update(deps, &user.id, now, |f| {
        if !f.any() {
            return Err(());
        }
        f.trust(device, now.saturating_add(ttl), now);
        Ok(())
    })
    .await?;
    Ok(())
}
