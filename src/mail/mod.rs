//! Mail and text messages: one function per message, named for its purpose (after
//! vaultwarden's mail.rs), and a durable outbox with a sender task per channel owning its
//! transport (after rauthy's mailer).
//!
//! A flow calling, say, [`Mailer::activation`] only renders the mail in the recipient's
//! language and writes it to the store's outbox; the [`sender`] task sends it later and
//! retries until it goes. So a mail is never lost to an SMTP outage or a restart, and a
//! flow never waits for an SMTP server. This module must never log a mail's content.

mod contact;
mod dev;
mod devices;
mod letter;
mod orgs;
mod sender;
mod transport;
mod twofactor;

use std::sync::Arc;

use lettre::message::Mailbox;
use tokio::sync::Notify;

pub use dev::{DevOutbox, SentMail};
pub use devices::Overflow;
pub use sender::backoff;

use crate::config::Config;
use crate::edge::email::Email;
use crate::i18n::Lang;
use crate::metrics::Metrics;
use crate::routes::Route;
use crate::store::{millis, Channel, DynStore, Millis, OutboxMail, StoreError, StoreResult, User};
use letter::{Letter, Link};

/// A rendered message before it gets its outbox id and times.
struct Message<'a> {
    channel: Channel,
    kind: &'a str,
    to: &'a str,
    subject: String,
    text: String,
    html: String,
}

/// Which of the member's devices a password change signed out (what its mail says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedOutBy {
    /// A reset: every device.
    Every,
    /// A change on the account page asking for it: every device but the one used.
    AllButOne,
    /// A change on the account page that kept the other devices signed in.
    None,
}

pub struct Mailer {
    store: DynStore,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    wake_sms: Arc<Notify>,
    dev: Option<Arc<DevOutbox>>,
    dev_sms: Option<Arc<DevOutbox>>,
    /// The flag that stops the running senders, shared with the mailers a reload builds
    /// from this one: starting new senders stops the previous ones.
    senders: Arc<std::sync::Mutex<Option<Arc<std::sync::atomic::AtomicBool>>>>,
}

impl Mailer {
    pub fn new(config: Arc<Config>, store: DynStore, metrics: Arc<Metrics>) -> Self {
        let dev_mode = config.file.server.dev_mode;
        Self {
            store,
            config,
            metrics,
            wake: Arc::new(Notify::new()),
            wake_sms: Arc::new(Notify::new()),
            dev: dev_mode.then(|| Arc::new(DevOutbox::default())),
            dev_sms: dev_mode.then(|| Arc::new(DevOutbox::default())),
            senders: Default::default(),
        }
    }

    /// The same outbox, wake-ups and dev records, read with `config` (a reload). Its
    /// senders are started by [`Self::spawn_sender`] if the mail or SMS settings changed.
    pub fn reconfigured(&self, config: Arc<Config>) -> Self {
        Self {
            store: self.store.clone(),
            config,
            metrics: self.metrics.clone(),
            wake: self.wake.clone(),
            wake_sms: self.wake_sms.clone(),
            dev: self.dev.clone(),
            dev_sms: self.dev_sms.clone(),
            senders: self.senders.clone(),
        }
    }

    /// Whether this mailer's senders would deliver differently from `other`'s.
    pub fn sends_like(&self, other: &Mailer) -> bool {
        use crate::config::reload::same;
        same(&self.config.file.mail, &other.config.file.mail)
            && same(&self.config.file.sms, &other.config.file.sms)
            && self.config.file.contact.code_ttl == other.config.file.contact.code_ttl
            && self.config.public_url == other.config.public_url
    }

    /// Starts the sender tasks on `rt` (`vigile serve` and the demo; admin commands only
    /// queue, and the running gateway sends), stopping those started before (a reload
    /// with new mail or SMS settings).
    pub fn spawn_sender(
        &self,
        rt: &tokio::runtime::Handle,
        clock: crate::clock::SharedClock,
    ) -> Result<(), String> {
        let retired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cfg = &self.config.file.mail;
        let from: Mailbox = cfg.from.parse().map_err(|e| format!("mail.from: {e}"))?;
        // The SMTP pool spawns its reaper task when built: inside the runtime it lives in.
        let transport = {
            let _guard = rt.enter();
            transport::Transport::from_config(cfg)?
        };
        let sender = sender::Sender {
            store: self.store.clone(),
            delivery: sender::Delivery::Mail {
                transport,
                from,
                host: self.host(),
            },
            // Mails carry links valid hours or days; they are never dropped.
            useless_after: None,
            timeout: cfg.timeout,
            retry_initial: millis(cfg.retry_initial),
            retry_max: millis(cfg.retry_max),
            metrics: self.metrics.clone(),
            wake: self.wake.clone(),
            dev: self.dev.clone(),
            clock: clock.clone(),
            outage: Default::default(),
            retired: retired.clone(),
        };

        let sms = &self.config.file.sms;
        let transport = {
            let _guard = rt.enter();
            crate::sms::Transport::from_config(sms)?
        };
        let texter = sender::Sender {
            store: self.store.clone(),
            delivery: sender::Delivery::Sms(transport),
            // Every text carries a code valid `contact.code_ttl`.
            useless_after: Some(millis(self.config.file.contact.code_ttl)),
            timeout: sms.timeout,
            retry_initial: millis(sms.retry_initial),
            retry_max: millis(sms.retry_max),
            metrics: self.metrics.clone(),
            wake: self.wake_sms.clone(),
            dev: self.dev_sms.clone(),
            clock,
            outage: Default::default(),
            retired: retired.clone(),
        };
        // Both built before either runs: a reload whose settings fail starts nothing.
        rt.spawn(sender.run());
        rt.spawn(texter.run());
        let previous = self
            .senders
            .lock()
            .ok()
            .and_then(|mut s| s.replace(retired));
        if let Some(previous) = previous {
            // Those started with the settings before a reload stop at their next wait
            // (a message being sent is finished first); the outbox keeps the rest.
            previous.store(true, std::sync::atomic::Ordering::Release);
            self.wake.notify_waiters();
            self.wake_sms.notify_waiters();
        }
        Ok(())
    }

    /// Wakes this instance's senders: a message was made due now ("Retry now").
    pub fn wake_senders(&self) {
        self.wake.notify_one();
        self.wake_sms.notify_one();
    }

    /// Mails handed to the transport lately, newest first (dev mode only, else empty).
    pub fn dev_outbox(&self) -> Vec<SentMail> {
        self.dev.as_ref().map(|d| d.list()).unwrap_or_default()
    }

    /// Text messages handed to the transport lately, newest first (dev mode only).
    pub fn dev_sms(&self) -> Vec<SentMail> {
        self.dev_sms.as_ref().map(|d| d.list()).unwrap_or_default()
    }

    /// Writes a text message to the outbox, due `now`, then wakes its sender.
    async fn queue_sms(&self, kind: &str, to: &str, text: String, now: Millis) -> StoreResult<()> {
        let sms = Message {
            channel: Channel::Mobile,
            kind,
            to,
            subject: String::new(),
            text,
            html: String::new(),
        };
        self.push(sms, now).await
    }

    /// The site's name in mails: `site.name`, else the host of `public_url`.
    fn site(&self) -> String {
        match self.config.file.site.name.as_str() {
            "" => self.host(),
            name => name.to_string(),
        }
    }

    /// The host of `public_url`: the domain of Message-IDs, and the site's name in text
    /// messages (a host fits in one GSM-7 segment; a free-form name may not).
    fn host(&self) -> String {
        self.config
            .public_url
            .host_str()
            .unwrap_or("localhost")
            .to_string()
    }

    /// `public_url` (an origin: a path is refused by the configuration) + `path_and_query`
    /// (which starts with `/`).
    fn link(&self, path_and_query: &str) -> String {
        let base = self.config.public_url.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
    }

    fn lang_of(&self, user: &User) -> Lang {
        user.lang
            .as_deref()
            .and_then(Lang::parse)
            .unwrap_or(self.config.default_lang)
    }

    fn letter(&self, lang: Lang, subject_key: &str) -> Letter {
        let site = self.site();
        let subject = lang.tr().with(subject_key, &[("site", site.clone())]);
        Letter {
            lang,
            site,
            subject,
            paragraphs: vec![],
            action: None,
            links: vec![],
            footer: lang.tr().get("mail-auto"),
            support: self.config.support_email.as_ref().map(|e| letter::Support {
                email: e.to_string(),
                mailto: e.mailto(),
            }),
        }
    }

    fn args(&self, email: &str) -> [(&'static str, String); 2] {
        [("site", self.site()), ("email", email.to_string())]
    }

    /// Renders and writes the mail to the outbox, due `now`, then wakes the sender.
    async fn queue(&self, kind: &str, to: &str, letter: Letter, now: Millis) -> StoreResult<()> {
        let rendered = letter.render().map_err(|e| {
            // A template error is a bug; the flow fails (503) rather than lose the mail.
            tracing::error!(error = %e, kind, "mail template failed");
            StoreError::Corrupt(format!("mail template {kind}: {e}"))
        })?;
        let mail = Message {
            channel: Channel::Email,
            kind,
            to,
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        };
        self.push(mail, now).await
    }

    /// Writes a message to the outbox, due `now`, then wakes its channel's sender.
    async fn push(&self, m: Message<'_>, now: Millis) -> StoreResult<()> {
        let channel = m.channel;
        let message = OutboxMail {
            id: OutboxMail::new_id(),
            channel,
            kind: m.kind.to_string(),
            to: m.to.to_string(),
            subject: m.subject,
            text: m.text,
            html: m.html,
            created_at: now,
            attempts: 0,
            next_attempt: now,
            last_error: None,
        };
        self.store.outbox_push(&message).await?;
        match channel {
            Channel::Email => self.wake.notify_one(),
            Channel::Mobile => self.wake_sms.notify_one(),
        }
        Ok(())
    }

    /// "Activate your account": the single-use link of a new sign-up.
    pub async fn activation(&self, user: &User, token: &str, now: Millis) -> StoreResult<()> {
        let lang = self.lang_of(user);
        let t = lang.tr();
        let hours = self
            .config
            .file
            .signup
            .activation_ttl
            .as_secs()
            .div_ceil(3600);
        let mut l = self.letter(lang, "mail-activation-subject");
        l.paragraphs = vec![
            t.with("mail-activation-intro", &self.args(&user.email)),
            t.with("mail-activation-validity", &[("hours", hours.to_string())]),
        ];
        l.action = Some(Link {
            label: t.get("mail-activation-action"),
            url: self.link(&Route::Activate.with_query(&[("token", token)])),
        });
        l.footer = t.get("mail-ignore");
        self.queue("activation", &user.email, l, now).await
    }

    /// Confirms the account exists, once activated.
    pub async fn account_created(&self, user: &User, now: Millis) -> StoreResult<()> {
        let lang = self.lang_of(user);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-created-subject");
        l.paragraphs = vec![
            t.with("mail-created-intro", &self.args(&user.email)),
            t.get("mail-created-next"),
        ];
        l.action = Some(Link {
            label: t.get("mail-created-action"),
            url: self.link(Route::Account.path()),
        });
        self.queue("account_created", &user.email, l, now).await
    }

    /// Someone signed up with an address that already has an account: its owner hears.
    pub async fn signup_attempt(&self, user: &User, now: Millis) -> StoreResult<()> {
        let lang = self.lang_of(user);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-attempt-subject");
        l.paragraphs = vec![
            t.with("mail-attempt-intro", &self.args(&user.email)),
            t.get("mail-attempt-nothing"),
        ];
        l.action = Some(Link {
            label: t.get("mail-attempt-login"),
            url: self.link(Route::Login.path()),
        });
        l.links = vec![Link {
            label: t.get("mail-attempt-forgot"),
            url: self.link(Route::PasswordForgot.path()),
        }];
        l.footer = t.get("mail-attempt-footer");
        self.queue("signup_attempt", &user.email, l, now).await
    }

    /// The single-use link to choose a new password.
    pub async fn password_reset(&self, user: &User, token: &str, now: Millis) -> StoreResult<()> {
        let lang = self.lang_of(user);
        let t = lang.tr();
        let minutes = self.config.file.password.reset_ttl.as_secs().div_ceil(60);
        let mut l = self.letter(lang, "mail-reset-subject");
        l.paragraphs = vec![
            t.with("mail-reset-intro", &self.args(&user.email)),
            t.with("mail-reset-validity", &[("minutes", minutes.to_string())]),
        ];
        l.action = Some(Link {
            label: t.get("mail-reset-action"),
            url: self.link(&Route::PasswordReset.with_query(&[("token", token)])),
        });
        l.footer = t.get("mail-ignore");
        self.queue("password_reset", &user.email, l, now).await
    }

    /// Tells the member their password changed (and how to react if it was not them).
    /// The password was changed; `signed_out` says which devices that signed out.
    pub async fn password_changed(
        &self,
        user: &User,
        signed_out: SignedOutBy,
        now: Millis,
    ) -> StoreResult<()> {
        let lang = self.lang_of(user);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-changed-subject");
        l.paragraphs = vec![
            t.with("mail-changed-intro", &self.args(&user.email)),
            t.get(match signed_out {
                SignedOutBy::Every => "mail-changed-signedout",
                SignedOutBy::AllButOne => "mail-changed-others-signedout",
                SignedOutBy::None => "mail-changed-kept",
            }),
        ];
        l.links = vec![Link {
            label: t.get("mail-changed-notme"),
            url: self.link(Route::PasswordForgot.path()),
        }];
        self.queue("password_changed", &user.email, l, now).await
    }

    /// The account was locked after repeated wrong passwords: what happened, and the
    /// reset link that reactivates it.
    /// The account was locked. `token`: a reset link to lift it, when the address is
    /// confirmed; without one the member is told to confirm it or write to support.
    pub async fn account_locked(
        &self,
        user: &User,
        token: Option<&str>,
        now: Millis,
    ) -> StoreResult<()> {
        let lang = self.lang_of(user);
        let t = lang.tr();
        let minutes = self.config.file.password.reset_ttl.as_secs().div_ceil(60);
        let failures = self.config.file.lockout.account_max_failures;
        let mut l = self.letter(lang, "mail-locked-subject");
        l.paragraphs = vec![
            t.with(
                "mail-locked-intro",
                &[
                    ("site", self.site()),
                    ("email", user.email.clone()),
                    ("failures", failures.to_string()),
                ],
            ),
            t.get("mail-locked-devices"),
        ];
        match token {
            Some(token) => {
                l.paragraphs
                    .push(t.with("mail-locked-how", &[("minutes", minutes.to_string())]));
                l.action = Some(Link {
                    label: t.get("mail-locked-action"),
                    url: self.link(&Route::PasswordReset.with_query(&[("token", token)])),
                });
            }
            None => {
                l.paragraphs.push(match &self.config.support_email {
                    None => t.get("mail-locked-unconfirmed"),
                    Some(support) => t.with(
                        "mail-locked-unconfirmed-support",
                        &[("support", support.to_string())],
                    ),
                });
            }
        }
        l.footer = t.get("mail-locked-footer");
        self.queue("account_locked", &user.email, l, now).await
    }

    /// An admin invited this address (invite mode): a link to the sign-up form.
    pub async fn invitation(&self, email: &Email, lang: Lang, now: Millis) -> StoreResult<()> {
        let email = email.as_str();
        let t = lang.tr();
        let days = self
            .config
            .file
            .signup
            .invite_ttl
            .as_secs()
            .div_ceil(86_400);
        let mut l = self.letter(lang, "mail-invite-subject");
        l.paragraphs = vec![
            t.with("mail-invite-intro", &self.args(email)),
            t.with("mail-invite-validity", &[("days", days.to_string())]),
        ];
        l.action = Some(Link {
            label: t.get("mail-invite-action"),
            url: self.link(&Route::Signup.with_query(&[("email", email)])),
        });
        l.footer = t.get("mail-ignore");
        self.queue("invitation", email, l, now).await
    }
}

#[cfg(test)]
mod tests;
