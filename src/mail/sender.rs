//! The sender tasks, one per channel: each takes due messages of its channel from the
//! store's outbox one at a time, sends them, then deletes them or schedules the next
//! attempt. Text messages follow the mail's rules, except that nothing refuses one for
//! good: any answer but 2xx from the provider is retried. A mail the server cannot take now
//! (4xx, no connection) is retried with a growing delay; one it refuses for good (5xx)
//! is marked failed: counted (`vigile_mail_total{result="failed"}`), audited, listed for
//! admins, never retried. A mail whose sender died mid-send comes back when its lease
//! ends. Several instances can run a sender on one store; the lease keeps them from
//! sending the same mail twice.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use tokio::sync::Notify;

use super::dev::DevOutbox;
use super::transport::{SendError, Transport};
use crate::audit::{Actor, Event};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::{millis, Channel, DynStore, Millis, OutboxMail};

/// Without a wake-up, look for due mails (retries, mails queued by another instance or by
/// the CLI) this often.
const POLL: Duration = Duration::from_secs(1);
/// The same while the store is failing.
const OUTAGE_POLL: Duration = Duration::from_secs(5);

/// Longest server answer kept with a failed mail (characters).
const MAX_REASON: usize = 500;

/// What a sender hands its messages to.
pub enum Delivery {
    Mail {
        transport: Transport,
        from: Mailbox,
        /// Host of `public_url`, for Message-IDs.
        host: String,
    },
    Sms(crate::sms::Transport),
}

impl Delivery {
    fn channel(&self) -> Channel {
        match self {
            Delivery::Mail { .. } => Channel::Email,
            Delivery::Sms(_) => Channel::Mobile,
        }
    }
}

pub struct Sender {
    pub store: DynStore,
    pub delivery: Delivery,
    /// Messages older than this are dropped unsent (counted `expired`): a text carries a
    /// code that has expired by then, and arriving late it would only mislead.
    pub useless_after: Option<Millis>,
    pub timeout: Duration,
    pub retry_initial: Millis,
    pub retry_max: Millis,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    pub dev: Option<Arc<DevOutbox>>,
    /// Read before each claim and after each send (a send can take `timeout`).
    pub clock: SharedClock,
    /// The outbox could not be read at the last look: logged once per outage, not every
    /// second.
    pub outage: std::sync::atomic::AtomicBool,
    /// Set when a reload started a sender with new settings: this one stops at its next
    /// wait, never in the middle of a send.
    pub retired: Arc<std::sync::atomic::AtomicBool>,
}

/// Delay before the next attempt after `attempts` failed ones (at least one):
/// `initial`, doubling each time, capped at `max`.
/// A server's answer as kept for admins (outbox, audit trail, log): the values of
/// `token=` parameters cut out, as a relay may quote the rejected message's links, and
/// Vigile's single-use links all carry their secret there.
pub fn redact_tokens(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    while let Some(i) = rest.find("token=") {
        let (before, after) = rest.split_at(i + "token=".len());
        out.push_str(before);
        out.push('…');
        let end = after
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c == '>' || c.is_whitespace())
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

pub fn backoff(attempts: u32, initial: Millis, max: Millis) -> Millis {
    let doublings = attempts.saturating_sub(1).min(40);
    initial
        .saturating_mul(1_i64 << doublings)
        .min(max)
        .max(initial.min(max))
}

impl Sender {
    fn lease(&self) -> Millis {
        millis(self.timeout).saturating_add(1000)
    }

    pub async fn run(self) {
        use std::sync::atomic::Ordering;
        while !self.retired.load(Ordering::Acquire) {
            while let Some(handled) = self.step(self.clock.now_ms()).await {
                if !handled || self.retired.load(Ordering::Acquire) {
                    break;
                }
            }
            // While the store fails, look less often (each failed look is logged).
            let wait = if self.outage.load(std::sync::atomic::Ordering::Relaxed) {
                OUTAGE_POLL
            } else {
                POLL
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // A wake meant for the sender that replaced this one is passed on.
        self.wake.notify_one();
    }

    /// Handles at most one due mail. `Some(true)`: one was handled (look again),
    /// `Some(false)`: none due, `None`: the store failed (wait for the next tick).
    pub async fn step(&self, now: Millis) -> Option<bool> {
        let channel = self.delivery.channel();
        let claimed = match self.store.outbox_claim(channel, now, self.lease(), 1).await {
            Ok(c) => c,
            Err(e) => {
                if !self.outage.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    let channel = channel.as_str();
                    tracing::warn!(error = %e, channel, "outbox unreachable; will retry");
                }
                return None;
            }
        };
        if self
            .outage
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!(channel = channel.as_str(), "outbox reachable again");
        }
        let Some(mail) = claimed.into_iter().next() else {
            return Some(false);
        };
        if self
            .useless_after
            .is_some_and(|after| now.saturating_sub(mail.created_at) > after)
        {
            self.count(&mail, "expired");
            tracing::info!(
                target: "mail",
                id = %mail.id,
                channel = mail.channel.as_str(),
                kind = %mail.kind,
                attempts = mail.attempts,
                "message dropped unsent: what it carries has expired"
            );
            if let Err(e) = self.store.outbox_done(&mail.id).await {
                tracing::warn!(error = %e, id = %mail.id, "could not drop an expired message");
            }
            return Some(true);
        }
        self.deliver(&mail).await;
        Some(true)
    }

    async fn send(&self, mail: &OutboxMail) -> Result<(), SendError> {
        match &self.delivery {
            Delivery::Mail {
                transport,
                from,
                host,
            } => transport.send(from, host, mail, self.timeout).await,
            Delivery::Sms(sms) => sms
                .send(&mail.id, &mail.to, &mail.text, self.timeout)
                .await
                .map_err(SendError::transient),
        }
    }

    fn count(&self, mail: &OutboxMail, result: &str) {
        match self.delivery {
            Delivery::Mail { .. } => self.metrics.mail.with_label_values(&[&mail.kind, result]),
            Delivery::Sms(_) => self.metrics.sms.with_label_values(&[result]),
        }
        .inc();
    }

    async fn deliver(&self, mail: &OutboxMail) {
        let result = self.send(mail).await;
        let now = self.clock.now_ms();
        let counter = |result: &str| self.count(mail, result);
        match result {
            Ok(()) => {
                counter("sent");
                if let Some(dev) = &self.dev {
                    dev.record(&mail.to, &mail.subject, &mail.text, now);
                }
                tracing::info!(
                    target: "mail",
                    id = %mail.id,
                    channel = mail.channel.as_str(),
                    kind = %mail.kind,
                    attempts = mail.attempts + 1,
                    "message sent"
                );
                if let Err(e) = self.store.outbox_sent(&mail.id, now).await {
                    // The lease will end and the mail be sent again: a duplicate, not a loss.
                    let what = "sent mail could not be removed from the outbox";
                    tracing::warn!(error = %e, id = %mail.id, "{what}");
                }
            }
            Err(err) if err.permanent => {
                counter("failed");
                let attempts = mail.attempts.saturating_add(1);
                // Kept for admins: the server's answer, bounded.
                let reason =
                    redact_tokens(&err.reason.chars().take(MAX_REASON).collect::<String>());
                let failed = Event::MailFailed {
                    mail: &mail.id,
                    kind: &mail.kind,
                    to: &mail.to,
                    attempts,
                    error: &reason,
                };
                failed.emit(&Actor::System(None), now);
                if let Err(e) = self.store.outbox_fail(&mail.id, now, &reason).await {
                    // Still waiting in the outbox: it is tried again when its lease ends.
                    let what = "could not mark a refused mail as failed";
                    tracing::warn!(error = %e, id = %mail.id, "{what}");
                }
            }
            Err(err) => {
                counter("retry");
                let attempts = mail.attempts.saturating_add(1);
                let delay = backoff(attempts, self.retry_initial, self.retry_max);
                tracing::warn!(
                    target: "mail",
                    id = %mail.id,
                    channel = mail.channel.as_str(),
                    kind = %mail.kind,
                    attempts,
                    retry_in_ms = delay,
                    error = %err.reason,
                    "message not sent; kept for a retry"
                );
                let next = now.saturating_add(delay);
                if let Err(e) = self.store.outbox_retry(&mail.id, next, &err.reason).await {
                    let what = "could not reschedule a mail; its lease will bring it back";
                    tracing::warn!(error = %e, id = %mail.id, "{what}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_quoted_link_loses_its_token() {
        assert_eq!(
            super::redact_tokens(
                "550 rejected https://x.example/_vigile/password/reset?token=AbC-9_x&lang=en end"
            ),
            "550 rejected https://x.example/_vigile/password/reset?token=…&lang=en end"
        );
        assert_eq!(super::redact_tokens("token=abc"), "token=…");
        assert_eq!(
            super::redact_tokens("550 5.1.1 no such user"),
            "550 5.1.1 no such user"
        );
    }

    use super::backoff;

    #[test]
    fn backoff_doubles_then_caps() {
        let got: Vec<_> = (1..=7).map(|a| backoff(a, 10_000, 60_000)).collect();
        assert_eq!(
            got,
            [10_000, 20_000, 40_000, 60_000, 60_000, 60_000, 60_000]
        );
        assert_eq!(backoff(1000, 10_000, 900_000), 900_000, "no overflow");
        assert_eq!(backoff(0, 200, 2000), 200);
    }
}
