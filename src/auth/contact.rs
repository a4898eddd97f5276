//! Contact confirmation (SPEC §6): which channels a member is asked to confirm, sending a
//! code to the address or number they typed, checking it, the mailed link, and where a
//! browser goes after a sign-in. Never blocking: the contact page is offered after a
//! sign-in, and the member may go on without it.
//!
//! A code confirms the value it was sent to: a new address becomes the account's only
//! when its code (or link) comes back, in the same store operation that counts the try.
//! Codes go out at most `contact.max_codes_per_hour` / `per_day` per member and channel.

use std::time::Duration;

use super::limits::{Limit, RetryAfter};
use super::password::Lane;
use super::{Deps, FlowError};
use crate::audit::{Actor, Event};
use crate::config::FileConfig;
use crate::crypto::six_digit_code;
use crate::edge::code::Code;
use crate::edge::email::Email;
use crate::edge::phone::Phone;
use crate::i18n::Lang;
use crate::routes::Route;
use crate::store::shard::{self, Shard};
use crate::store::{
    millis, Channel, Channels, Confirmed, ContactCheck, ContactCode, CounterScope, Millis, Proof,
    TokenHash, User, UserId, Via,
};

/// The channels `user` must have confirmed: their campaign's, plus what
/// `contact.require_confirmed` asks of everyone.
pub fn wanted(file: &FileConfig, user: &User) -> Channels {
    let mut want = user
        .contact
        .campaign
        .as_ref()
        .map(|m| m.channels)
        .unwrap_or_default();
    if file.contact.require_confirmed {
        want.email = true;
        want.mobile |= file.contact.ask_mobile;
    }
    want
}

/// What `user` is still asked to confirm.
pub fn asked(file: &FileConfig, user: &User) -> Channels {
    let want = wanted(file, user);
    Channels {
        email: want.email && user.contact.email_confirmed.is_none(),
        mobile: want.mobile && user.contact.mobile_confirmed.is_none(),
    }
}

/// Whether password-recovery links may go to the account's address: only to a confirmed
/// one (an address nobody proved may be someone else's mailbox).
pub fn recovers(user: &User) -> bool {
    user.contact.email_confirmed.is_some()
}

/// Where a browser goes after a sign-in opened its session: the contact page when
/// something is asked of the member, else where they were going.
pub fn after_sign_in(file: &FileConfig, user: &User, rd: &str) -> String {
    if asked(file, user).is_empty() {
        rd.to_string()
    } else {
        Route::Contact.with_query(&[("rd", rd)])
    }
}

/// Where a code goes, parsed at the edge.
#[derive(Debug, Clone)]
pub enum Target {
    Email(Email),
    Mobile(Phone),
}

impl Target {
    pub fn channel(&self) -> Channel {
        match self {
            Target::Email(_) => Channel::Email,
            Target::Mobile(_) => Channel::Mobile,
        }
    }

    fn value(&self) -> &str {
        match self {
            Target::Email(e) => e.as_str(),
            Target::Mobile(p) => p.as_str(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Sent,
    /// Too many codes lately (for this member and channel, to this address or number, or
    /// texts from the whole site): nothing sent.
    TooMany(RetryAfter),
    /// No text message can be delivered (`sms.transport = "log"` outside dev mode).
    NoSms,
    /// `sms.countries` does not include this number's country: nothing sent.
    Country,
    /// Changing the login address needs the account's password, and this was not it.
    BadPassword,
}

/// The stored form of a code: bound to the member and channel it was sent for.
fn code_hash(user: &UserId, channel: Channel, code: &str) -> TokenHash {
    TokenHash::of(&format!(
        "contact:{}:{}:{code}",
        user.as_str(),
        channel.as_str()
    ))
}

/// Counts one hit on each `(max, window, scope, subject)`; the first full one refuses.
async fn hit_all(
    deps: &Deps,
    windows: Vec<(u32, Duration, CounterScope, String)>,
    now: Millis,
) -> Result<Result<(), RetryAfter>, FlowError> {
    for (max, window, scope, subject) in windows {
        let limit = Limit { max, window };
        if let Err(retry) = limit.hit(&deps.store, scope, &subject, now).await? {
            return Ok(Err(retry));
        }
    }
    Ok(Ok(()))
}

/// Whether `user` may ask for one more code on `target`'s channel (counts it): per hour
/// and per day. Counted before the password of an address change is checked, so this
/// also bounds password guesses.
pub(super) async fn member_limits(
    deps: &Deps,
    user: &UserId,
    target: &Target,
    now: Millis,
) -> Result<Result<(), RetryAfter>, FlowError> {
    let c = &deps.config.file.contact;
    let member = format!("{}:{}", user.as_str(), target.channel().as_str());
    let windows = vec![
        (
            c.max_codes_per_hour,
            Duration::from_secs(3600),
            CounterScope::ContactCodes,
            member.clone(),
        ),
        (
            c.max_codes_per_day,
            Duration::from_secs(86_400),
            CounterScope::ContactCodesDaily,
            member,
        ),
    ];
    hit_all(deps, windows, now).await
}

/// Whether the address or number may receive one more code, whoever asks
/// (`mail.max_per_address`, on a counter of its own; `sms.max_per_number`), and the site
/// one more text this hour (`sms.max_per_hour`): the form must not bomb someone else's
/// mailbox or phone, or run up the SMS bill, from many accounts. Counted only once the
/// request is otherwise accepted, so refused requests use nobody's allowance.
pub(super) async fn target_limits(
    deps: &Deps,
    target: &Target,
    now: Millis,
) -> Result<Result<(), RetryAfter>, FlowError> {
    let file = &deps.config.file;
    let hour = Duration::from_secs(3600);
    let windows = match target {
        Target::Email(e) => vec![(
            file.mail.max_per_address,
            file.mail.address_window,
            CounterScope::ContactMailsTo,
            e.as_str().to_string(),
        )],
        Target::Mobile(p) => vec![
            (
                file.sms.max_per_number,
                hour,
                CounterScope::TextsPerNumber,
                p.as_str().to_string(),
            ),
            (
                file.sms.max_per_hour,
                hour,
                CounterScope::TextsSite,
                String::new(),
            ),
        ],
    };
    hit_all(deps, windows, now).await
}

/// Whether `sms.countries` lets this number be texted.
pub(super) fn country_allowed(deps: &Deps, phone: &Phone) -> bool {
    let allowed = &deps.config.file.sms.countries;
    allowed.is_empty()
        || phone.region().is_some_and(|r| {
            allowed
                .iter()
                .any(|c| c.trim().eq_ignore_ascii_case(&r.to_string()))
        })
}

/// Sends a code (and, for an address, a link) confirming `target` for `user`, replacing
/// any earlier code on that channel. The message is in the member's language, else in
/// `page_lang` (the page they asked from).
pub async fn send_code(
    deps: &Deps,
    user: &User,
    target: &Target,
    password: &str,
    page_lang: Lang,
    now: Millis,
) -> Result<Sent, FlowError> {
    let channel = target.channel();
    match target {
        Target::Mobile(_) if !deps.config.sms_delivers => return Ok(Sent::NoSms),
        Target::Mobile(p) if !country_allowed(deps, p) => return Ok(Sent::Country),
        _ => {}
    }
    if let Err(retry) = member_limits(deps, &user.id, target, now).await? {
        return Ok(Sent::TooMany(retry));
    }
    // A new login address takes the account with it (recovery goes there): a session
    // alone (a stolen cookie, a script on the site) must not be enough. Checked after the
    // limits, so guesses are bounded by them.
    let changes_login = matches!(target, Target::Email(e) if e.as_str() != user.email);
    if changes_login
        && !deps
            .auth
            .hasher
            .verify(password, Some(&user.password_hash), Lane::member(&user.id))
            .await?
    {
        return Ok(Sent::BadPassword);
    }
    if let Err(retry) = target_limits(deps, target, now).await? {
        return Ok(Sent::TooMany(retry));
    }
    let ttl = deps.config.file.contact.code_ttl;
    let code = six_digit_code();
    // Beside the member, whose code the link opens (`store::shard`).
    let token = (channel == Channel::Email).then(|| shard::token_in(Shard::of_user(&user.id), 16));
    let record = ContactCode {
        channel,
        value: target.value().to_string(),
        code_hash: code_hash(&user.id, channel, &code),
        link_hash: token.as_deref().map(TokenHash::of),
        attempts: 0,
        expires_at: now.saturating_add(millis(ttl)),
    };
    if !deps.store.contact_code_put(&user.id, &record).await? {
        // The account was deleted meanwhile: there is nobody to confirm for.
        return Ok(Sent::Sent);
    }
    let lang = user
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or(page_lang);
    let replaces = changes_login.then_some(user.email.as_str());
    match (target, token) {
        (Target::Email(to), Some(token)) => {
            deps.mailer
                .contact_code(lang, to.as_str(), replaces, &code, &token, now)
                .await?
        }
        (Target::Mobile(to), _) => deps.mailer.sms_code(lang, to.as_str(), &code, now).await?,
        (Target::Email(_), None) => {}
    }
    Ok(Sent::Sent)
}

/// What checking a code (or following the link) came to.
#[derive(Debug)]
pub enum Checked {
    Confirmed {
        user: Box<User>,
        channel: Channel,
    },
    /// Wrong code; `left` tries remain (0: that was the last, the code is spent).
    Wrong {
        left: u32,
    },
    /// No code pending (never sent, expired, used, or spent by wrong tries): a new code
    /// must be sent.
    Gone,
    /// The new address belongs to another account: nothing changed.
    Taken,
    /// The link would move the login to a new address: only that account, signed in,
    /// may follow it (nothing changed).
    SignIn,
    /// Followed while signed in to another account: nothing changed.
    OtherAccount,
}

/// Checks a code the signed-in `user` typed for `channel`.
pub async fn confirm_code(
    deps: &Deps,
    user: &UserId,
    channel: Channel,
    code: &Code,
    ip: std::net::IpAddr,
    now: Millis,
) -> Result<Checked, FlowError> {
    let hash = code_hash(user, channel, code.as_str());
    present(deps, user, channel, Proof::Code(&hash), ip, now).await
}

/// Follows the mailed link. Confirming the address the account already has works in any
/// browser (a phone's mail app); a link that would make a *new* address the login works
/// only for that account signed in (`visitor`): whoever owns the mailbox must not be
/// able to hand their address to someone else's account by one click, nor a mail
/// scanner fetching links.
pub async fn confirm_link(
    deps: &Deps,
    token: &str,
    visitor: Option<&UserId>,
    ip: std::net::IpAddr,
    now: Millis,
) -> Result<Checked, FlowError> {
    let hash = TokenHash::of(token);
    let Some(user) = deps.store.contact_link(&hash, now).await? else {
        return Ok(Checked::Gone);
    };
    let account = deps.store.user_by_id(&user).await?;
    let pending = deps
        .store
        .contact_code_get(&user, Channel::Email, now)
        .await?;
    let (Some(account), Some(pending)) = (account, pending) else {
        return Ok(Checked::Gone);
    };
    if pending.value != account.email {
        match visitor {
            None => return Ok(Checked::SignIn),
            Some(v) if *v != user => return Ok(Checked::OtherAccount),
            Some(_) => {}
        }
    }
    present(deps, &user, Channel::Email, Proof::Link(&hash), ip, now).await
}

/// Presents a code or link to the store, then counts, audits and tells what it did.
async fn present(
    deps: &Deps,
    user: &UserId,
    channel: Channel,
    proof: Proof<'_>,
    ip: std::net::IpAddr,
    now: Millis,
) -> Result<Checked, FlowError> {
    let via = match proof {
        Proof::Code(_) => Via::Code,
        Proof::Link(_) => Via::Link,
    };
    let at = Confirmed { at: now, via };
    let max = deps.config.file.contact.max_tries;
    let check = deps
        .store
        .contact_confirm(user, channel, proof, max, at, now)
        .await?;
    let by = Actor::Visitor(ip);
    Ok(match check {
        ContactCheck::Confirmed {
            user: account,
            previous,
        } => {
            deps.metrics
                .contact_confirmations
                .with_label_values(&[channel.as_str()])
                .inc();
            let confirmed = Event::ContactConfirmed {
                user,
                channel: channel.as_str(),
                via: via.as_str(),
            };
            confirmed.emit(&by, now);
            if let Some(old) = previous {
                Event::ContactChanged {
                    user,
                    channel: channel.as_str(),
                }
                .emit(&by, now);
                match channel {
                    Channel::Email => deps.mailer.email_changed(&account, &old, now).await?,
                    Channel::Mobile => deps.mailer.mobile_changed(&account, now).await?,
                }
                // Remote-Email changes at the member's next request here.
                deps.auth.forget_user(user);
            }
            Checked::Confirmed {
                user: account,
                channel,
            }
        }
        ContactCheck::Wrong { left } => Checked::Wrong { left },
        // The try that used the last chance was still a wrong code.
        ContactCheck::Exhausted => Checked::Wrong { left: 0 },
        ContactCheck::Missing => Checked::Gone,
        ContactCheck::Taken => Checked::Taken,
    })
}

/// Marks the member as having seen the contact page for their campaign (for progress).
pub async fn seen(deps: &Deps, user: &User, now: Millis) -> Result<(), FlowError> {
    if let Some(mark) = user
        .contact
        .campaign
        .as_ref()
        .filter(|m| m.seen_at.is_none())
    {
        deps.store.contact_seen(&user.id, &mark.id, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AccountStatus, CampaignMark, Contact};

    fn member(contact: Contact) -> User {
        User {
            id: UserId::from_string("u1"),
            email: "a@example.org".into(),
            name: String::new(),
            password_hash: String::new(),
            admin: false,
            status: AccountStatus::Active,
            lang: None,
            created_at: 0,
            org: None,
            contact,
        }
    }

    #[test]
    fn asked_follows_the_campaign_and_the_site_rule() {
        let mut file: FileConfig = toml::from_str("[upstream]\nurl = \"http://127.0.0.1:1\"")
            .unwrap_or_else(|e| panic!("{e}"));
        let confirmed = Contact::email_proved(1, Via::Code);
        assert!(asked(&file, &member(confirmed.clone())).is_empty());
        assert!(
            asked(&file, &member(Contact::default())).is_empty(),
            "nothing required"
        );

        file.contact.require_confirmed = true;
        let both = Channels {
            email: true,
            mobile: true,
        };
        assert_eq!(asked(&file, &member(Contact::default())), both);
        assert_eq!(
            asked(&file, &member(confirmed.clone())),
            Channels {
                email: false,
                mobile: true
            }
        );
        file.contact.ask_mobile = false;
        assert!(asked(&file, &member(confirmed.clone())).is_empty());
        assert_eq!(after_sign_in(&file, &member(confirmed.clone()), "/x"), "/x");

        file.contact.require_confirmed = false;
        let mut in_campaign = confirmed;
        in_campaign.campaign = Some(CampaignMark {
            id: "c".into(),
            channels: Channels {
                email: false,
                mobile: true,
            },
            asked_at: 0,
            seen_at: None,
        });
        assert_eq!(
            after_sign_in(&file, &member(in_campaign), "/courses/1"),
            "/_vigile/contact?rd=%2Fcourses%2F1"
        );
    }
}
