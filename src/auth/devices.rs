//! The device cap (SPEC §6, Devices): which limit applies to a member, opening a session
//! within it, and the "choose" overflow: a 6-digit code mailed to the member, entered on
//! `/_vigile/verify`, then the device to replace picked on `/_vigile/devices/choose`.
//!
//! The cap itself is enforced by the store in one atomic operation
//! ([`crate::store::DeviceStore::session_open`]); this module only decides what to ask
//! for. Nothing changes until the member's choice: an abandoned overflow leaves every
//! session as it was. The limit is read from the store at every login, so an admin's
//! change applies at once on every instance; lowering it signs nobody out by itself, the
//! next login past it meets the policy.

use super::login::{new_session, replaced_session, NewSession};
use super::Deps;
use super::{device_label, FlowError};
use crate::config::{OnOverflow, SessionsSection};
use crate::crypto::six_digit_code;
use crate::i18n::Lang;
use crate::mail::Overflow;
use crate::store::{
    Cap, Challenge, CodeCheck, CounterScope, DeviceId, Millis, Opened, OrgId, SessionId,
    SessionRecord, Settings, SignedOut, StoreResult, TokenHash, User, UserId,
};

/// A mailed code is valid this long.
pub const CODE_TTL_MS: Millis = 15 * 60_000;
/// Wrong codes allowed per login; the last one ends the attempt (sign in again).
pub const CODE_TRIES: u32 = 5;
/// Codes mailed to one member per hour and per day (logins past the cap and resends
/// together): with [`CODE_TRIES`] each, someone holding the password gets at most 50
/// guesses of a 6-digit code a day, each code also telling the member.
pub const CODES_PER_HOUR: u64 = 5;
pub const CODES_PER_DAY: u64 = 10;
/// After the right code, this long to pick the device to replace.
const CHOOSE_TTL_MS: Millis = 15 * 60_000;

/// The limit that applies to one member now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// 0 = unlimited.
    pub max: u32,
    pub on_overflow: OnOverflow,
}

impl Policy {
    pub fn cap(self) -> Cap {
        Cap {
            max: self.max,
            evict_oldest: self.on_overflow == OnOverflow::EvictOldest,
        }
    }
}

/// The site's policy: the admin settings, else `[sessions]`.
pub fn site_policy(settings: &Settings, file: &SessionsSection) -> Policy {
    Policy {
        max: settings.max_per_member.unwrap_or(file.max_per_member),
        on_overflow: settings.on_overflow.unwrap_or(file.on_overflow),
    }
}

/// The member's own cap, else their organisation's, else the site's policy.
pub async fn policy_for(deps: &Deps, user: &UserId, org: Option<&OrgId>) -> StoreResult<Policy> {
    let site = site_policy(
        &deps.store.settings_get().await?,
        &deps.config.file.sessions,
    );
    policy_within(deps, site, user, org).await
}

/// [`policy_for`] with the site's policy already read (a walk over many members).
pub async fn policy_within(
    deps: &Deps,
    site: Policy,
    user: &UserId,
    org: Option<&OrgId>,
) -> StoreResult<Policy> {
    let max = match deps.store.member_cap(user).await? {
        Some(own) => own,
        None => match org {
            Some(org) => deps
                .store
                .org_get(org)
                .await?
                .and_then(|o| o.terms.max_devices),
            None => None,
        }
        .unwrap_or(site.max),
    };
    Ok(Policy { max, ..site })
}

/// The organisation an account belongs to, for [`policy_for`].
pub fn org_of(user: &User) -> Option<&OrgId> {
    user.org.as_ref().map(|m| &m.org)
}

/// "Chrome on Windows", in `lang`; generic words when the user agent says too little.
pub fn describe(user_agent: &str, lang: Lang) -> String {
    let l = device_label::label(user_agent);
    let t = lang.tr();
    match (l.browser.is_empty(), l.os.is_empty()) {
        (false, false) => t.with("device-label", &[("browser", l.browser), ("os", l.os)]),
        (false, true) => l.browser,
        (true, false) => l.os,
        (true, true) => t.get("device-unknown"),
    }
}

/// A session opened, or the cap in the way.
#[derive(Debug)]
pub enum Open {
    Started {
        token: String,
        session: Box<SessionRecord>,
        /// Sessions ended to make room.
        ended: Vec<SessionId>,
    },
    Full {
        active: u64,
        policy: Policy,
    },
}

/// Opens a session for `user` on this browser within their cap, ending `victims` (the
/// member's choice) if given.
pub async fn open(
    deps: &Deps,
    user: &User,
    browser: NewSession<'_>,
    victims: &[SessionId],
) -> Result<Open, FlowError> {
    let policy = policy_for(deps, &user.id, org_of(user)).await?;
    let replaces = replaced_session(&deps.auth, browser.previous_token, browser.now).await?;
    // Read first so this instance's cache can forget the sessions the cap ends (the store
    // answers with ids; the cache is keyed by token hash).
    let before = deps.store.sessions_of(&user.id, browser.now).await?;
    let (token, session) = new_session(&deps.auth, user, browser);
    let opened = deps
        .store
        .session_open(
            &session,
            replaces.as_ref(),
            victims,
            policy.cap(),
            session.created_at,
        )
        .await?;
    Ok(match opened {
        Opened::Opened { ended } => {
            forget(deps, &before, &ended);
            Open::Started {
                token,
                session: Box::new(session),
                ended,
            }
        }
        Opened::Full { active } => Open::Full { active, policy },
    })
}

/// Drops the `ended` sessions from this instance's cache at once (other instances see
/// the end within the cache's lifetime).
fn forget(deps: &Deps, sessions: &[SessionRecord], ended: &[SessionId]) {
    for s in sessions.iter().filter(|s| ended.contains(&s.id)) {
        deps.auth.cache.forget(&s.token_hash);
    }
}

/// Ends one of `user`'s sessions from elsewhere (the member's other device, an admin),
/// telling its device `why`. Returns whether it was there.
pub async fn end_session(
    deps: &Deps,
    user: &UserId,
    id: &SessionId,
    why: SignedOut,
    now: Millis,
) -> Result<bool, FlowError> {
    let sessions = deps.store.sessions_of(user, now).await?;
    let ended = deps.store.session_end(user, id, why, now).await?;
    forget(deps, &sessions, std::slice::from_ref(id));
    // A revoked device is no longer trusted to skip the second factor.
    if let Some(s) = sessions.iter().find(|s| &s.id == id) {
        let device = std::slice::from_ref(&s.device_id);
        super::twofactor::untrust(deps, user, Some(device), now).await?;
    }
    Ok(ended)
}

/// Signs out every session of `user` but `keep` ("sign out everywhere else", and a
/// password change asking for it). Returns how many ended.
pub async fn end_others(
    deps: &Deps,
    user: &UserId,
    keep: &SessionId,
    now: Millis,
) -> Result<u64, FlowError> {
    let mut ended = 0;
    for s in deps.store.sessions_of(user, now).await? {
        if &s.id != keep && end_session(deps, user, &s.id, SignedOut::Revoked, now).await? {
            ended += 1;
        }
    }
    Ok(ended)
}

/// What a login stopped by the cap led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The code is on its way; the device's challenge waits on `/_vigile/verify`.
    CodeSent,
    /// Too many codes for this member lately.
    TooManyCodes,
}

/// Counts one more code for `user`; false once over the hourly or daily limit.
async fn code_allowed(deps: &Deps, user: &UserId, now: Millis) -> StoreResult<bool> {
    let store = &deps.store;
    let hour = store
        .counter_hit(CounterScope::DeviceCodes, user.as_str(), 3_600_000, now)
        .await?;
    let day = store
        .counter_hit(
            CounterScope::DeviceCodesDaily,
            user.as_str(),
            86_400_000,
            now,
        )
        .await?;
    Ok(hour <= CODES_PER_HOUR && day <= CODES_PER_DAY)
}

/// The stored form of a code: bound to the device it was issued for.
fn code_hash(device: &DeviceId, code: &str) -> TokenHash {
    TokenHash::of(&format!("{}:{}", device.as_str(), code.trim()))
}

/// The login was right but over the cap with `choose`: mails the member a code (and,
/// once a day per member, the admins a notice), and leaves a challenge for the device.
pub async fn stop_for_code(
    deps: &Deps,
    user: &User,
    browser: &NewSession<'_>,
    rd: &str,
    active: u64,
    policy: Policy,
) -> Result<Stopped, FlowError> {
    let store = &deps.store;
    if !code_allowed(deps, &user.id, browser.now).await? {
        return Ok(Stopped::TooManyCodes);
    }
    let code = six_digit_code();
    let challenge = Challenge {
        user_id: user.id.clone(),
        code_hash: code_hash(&browser.device, &code),
        attempts: 0,
        verified: false,
        rd: rd.to_string(),
        expires_at: browser.now + CODE_TTL_MS,
        level: browser.level,
    };
    if store.challenge_put(&browser.device, &challenge).await? {
        deps.metrics
            .device_overflows
            .with_label_values(&["abandoned"])
            .inc();
    }
    mail_code(deps, user, browser, &code, active, policy.max).await?;
    let notices = store
        .counter_hit(
            CounterScope::AdminNotices,
            user.id.as_str(),
            86_400_000,
            browser.now,
        )
        .await?;
    if notices == 1 {
        notify_admins(deps, user, browser, active, policy.max).await?;
    }
    Ok(Stopped::CodeSent)
}

/// Mails `code` to the member, naming this browser in their language.
async fn mail_code(
    deps: &Deps,
    user: &User,
    browser: &NewSession<'_>,
    code: &str,
    active: u64,
    max: u32,
) -> Result<(), FlowError> {
    let lang = user
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or(deps.config.default_lang);
    let device = describe(&browser.user_agent, lang);
    let overflow = Overflow {
        member: user,
        device: &device,
        ip: browser.ip,
        active,
        max,
    };
    deps.mailer
        .device_code(&overflow, code, (CODE_TTL_MS / 60_000) as u64, browser.now)
        .await?;
    Ok(())
}

/// Every `mail.admin_notify` address and every active admin, each once, in their language.
async fn notify_admins(
    deps: &Deps,
    member: &User,
    browser: &NewSession<'_>,
    active: u64,
    max: u32,
) -> Result<(), FlowError> {
    let mut sent: Vec<String> = Vec::new();
    let admins = deps.store.user_list().await?;
    let admins = admins
        .iter()
        .filter(|u| u.admin && u.status == crate::store::AccountStatus::Active);
    let notify = deps.config.file.mail.admin_notify.iter().filter_map(|a| {
        match crate::edge::email::Email::parse(a) {
            Ok(email) => Some((email.into_string(), None)),
            Err(e) => {
                tracing::warn!(address = %a.escape_debug(), error = %e, "mail.admin_notify: not an address; skipped");
                None
            }
        }
    });
    let recipients =
        notify.chain(admins.map(|u| (u.email.clone(), u.lang.as_deref().and_then(Lang::parse))));
    for (to, lang) in recipients {
        if sent.contains(&to) {
            continue;
        }
        // The device in the admin's language.
        let device = describe(
            &browser.user_agent,
            lang.unwrap_or(deps.config.default_lang),
        );
        let o = Overflow {
            member,
            device: &device,
            ip: browser.ip,
            active,
            max,
        };
        deps.mailer
            .device_overflow_notice(&to, lang, &o, browser.now)
            .await?;
        sent.push(to);
    }
    Ok(())
}

/// Checks a code entered on `/_vigile/verify`.
pub async fn verify(
    deps: &Deps,
    device: &DeviceId,
    code: &str,
    now: Millis,
) -> Result<CodeCheck, FlowError> {
    let hash = code_hash(device, code);
    let check = deps
        .store
        .challenge_check(device, &hash, CODE_TRIES, now + CHOOSE_TTL_MS, now)
        .await?;
    if check == CodeCheck::Exhausted {
        deps.metrics
            .device_overflows
            .with_label_values(&["abandoned"])
            .inc();
    }
    Ok(check)
}

/// "Send me a new code": a new code for the device's pending challenge.
#[derive(Debug, PartialEq, Eq)]
pub enum Resent {
    Sent,
    TooMany,
    /// No pending challenge (expired, already verified, or never).
    Missing,
}

pub async fn resend(deps: &Deps, browser: &NewSession<'_>) -> Result<Resent, FlowError> {
    let store = &deps.store;
    let Some(ch) = store.challenge_get(&browser.device, browser.now).await? else {
        return Ok(Resent::Missing);
    };
    let Some(user) = store.user_by_id(&ch.user_id).await? else {
        return Ok(Resent::Missing);
    };
    if ch.verified {
        return Ok(Resent::Missing);
    }
    if !code_allowed(deps, &user.id, browser.now).await? {
        return Ok(Resent::TooMany);
    }
    let code = six_digit_code();
    let renewed = store
        .challenge_renew(
            &browser.device,
            &code_hash(&browser.device, &code),
            browser.now + CODE_TTL_MS,
            browser.now,
        )
        .await?;
    if !renewed {
        return Ok(Resent::Missing);
    }
    let policy = policy_for(deps, &user.id, org_of(&user)).await?;
    let active = store.sessions_of(&user.id, browser.now).await?.len() as u64;
    mail_code(deps, &user, browser, &code, active, policy.max).await?;
    Ok(Resent::Sent)
}

/// The verified challenge of this device and its member, if any.
pub async fn verified(
    deps: &Deps,
    device: &DeviceId,
    now: Millis,
) -> Result<Option<(Challenge, User)>, FlowError> {
    let Some(ch) = deps.store.challenge_get(device, now).await? else {
        return Ok(None);
    };
    if !ch.verified {
        return Ok(None);
    }
    match deps.store.user_by_id(&ch.user_id).await? {
        Some(user) => Ok(Some((ch, user))),
        None => {
            // The account went meanwhile: so does its pending choice.
            deps.store.challenge_delete(device).await?;
            Ok(None)
        }
    }
}

/// What the member's choice led to.
#[derive(Debug)]
pub enum Chosen {
    /// Signed in; go to `rd`.
    Started {
        token: String,
        user: Box<User>,
        rd: String,
        ended: Vec<SessionId>,
    },
    /// Still over the cap (the choice was not enough, or other devices signed in
    /// meanwhile): nothing changed; choose again.
    StillFull,
    /// No verified challenge on this device.
    Missing,
}

/// "Replace with my current device": ends the chosen sessions and opens this device's,
/// in one store operation.
pub async fn choose(
    deps: &Deps,
    browser: NewSession<'_>,
    victims: &[SessionId],
) -> Result<Chosen, FlowError> {
    let Some((ch, user)) = verified(deps, &browser.device, browser.now).await? else {
        return Ok(Chosen::Missing);
    };
    // The level the login reached before the cap stopped it, not this request's.
    let browser = NewSession {
        level: ch.level,
        ..browser
    };
    let device = browser.device.clone();
    match open(deps, &user, browser, victims).await? {
        Open::Started { token, ended, .. } => {
            deps.store.challenge_delete(&device).await?;
            deps.metrics
                .device_overflows
                .with_label_values(&["replaced"])
                .inc();
            Ok(Chosen::Started {
                token,
                user: Box::new(user),
                rd: ch.rd,
                ended,
            })
        }
        Open::Full { .. } => Ok(Chosen::StillFull),
    }
}

/// The member gave up on the overflow: nothing changes but the challenge goes.
pub async fn cancel(deps: &Deps, device: &DeviceId) -> Result<(), FlowError> {
    if deps.store.challenge_delete(device).await? {
        deps.metrics
            .device_overflows
            .with_label_values(&["abandoned"])
            .inc();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..50).map(|_| six_digit_code()).collect();
        assert!(codes
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        assert!(codes.len() > 40, "{codes:?}");
    }

    #[test]
    fn a_code_is_bound_to_its_device() {
        let (a, b) = (DeviceId::from_string("a"), DeviceId::from_string("b"));
        assert_eq!(code_hash(&a, "123456"), code_hash(&a, " 123456 "));
        assert!(code_hash(&a, "123456") != code_hash(&b, "123456"));
    }
}
