//! How a rendered mail leaves: SMTP (lettre, pooled; plain, STARTTLS or implicit TLS
//! and AUTH from `mail.smtp_url`), one `.eml` file per mail, or a log line. The log
//! transport never logs the content: mails carry single-use links.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailSection, MailTransport};
use crate::store::OutboxMail;

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
    Log,
}

/// Why a send failed. `permanent`: the server refused the mail itself (5xx: no such
/// mailbox, say) or it cannot be addressed; the sender marks it failed, never retries.
#[derive(Debug)]
pub struct SendError {
    pub permanent: bool,
    pub reason: String,
}

impl SendError {
    pub(super) fn transient(reason: impl std::fmt::Display) -> Self {
        Self {
            permanent: false,
            reason: reason.to_string(),
        }
    }

    fn permanent(reason: impl std::fmt::Display) -> Self {
        Self {
            permanent: true,
            reason: reason.to_string(),
        }
    }
}

impl Transport {
    /// Builds the configured transport (the SMTP URL was validated with the config).
    pub fn from_config(cfg: &MailSection) -> Result<Self, String> {
        Ok(match cfg.transport {
            MailTransport::Smtp => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(cfg.smtp_url.expose())
                    .map_err(|e| format!("mail.smtp_url: {e}"))?;
                Transport::Smtp(builder.timeout(Some(cfg.timeout)).build())
            }
            MailTransport::File => {
                std::fs::create_dir_all(&cfg.file_dir)
                    .map_err(|e| format!("mail.file_dir {}: {e}", cfg.file_dir))?;
                Transport::File(AsyncFileTransport::new(&cfg.file_dir))
            }
            MailTransport::Log => Transport::Log,
        })
    }

    /// Sends one mail, bounded by `timeout` whatever the network does.
    pub async fn send(
        &self,
        from: &Mailbox,
        host: &str,
        mail: &OutboxMail,
        timeout: Duration,
    ) -> Result<(), SendError> {
        let message = build(from, host, mail)?;
        let attempt = async {
            match self {
                Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(classify),
                Transport::File(file) => file
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(SendError::transient),
                Transport::Log => {
                    tracing::info!(target: "mail", id = %mail.id, kind = %mail.kind, to = %mail.to, subject = %mail.subject, "mail (log transport; content not logged)");
                    Ok(())
                }
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::transient(format!(
                    "no answer within {timeout:?}"
                )))
            })
    }
}

/// A 5xx refuses the mail for good, except the authentication ones (530, 534, 535,
/// 538): those say the gateway's own SMTP settings are wrong, and once an operator fixes
/// them every waiting mail must still go, so they stay transient.
fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let auth = matches!(e.status().map(u16::from), Some(530 | 534 | 535 | 538));
    if e.is_permanent() && !auth {
        SendError::permanent(e)
    } else {
        SendError::transient(e)
    }
}

/// The RFC 5322 message: multipart/alternative (text, then HTML), UTF-8, with a
/// Message-ID derived from the outbox id so a retried mail keeps its identity.
fn build(from: &Mailbox, host: &str, mail: &OutboxMail) -> Result<Message, SendError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| SendError::permanent(format!("recipient: {e}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .message_id(Some(format!("<{}@{}>", mail.id, host)))
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| SendError::permanent(format!("message: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mail(to: &str) -> OutboxMail {
        OutboxMail {
            id: "abc".into(),
            channel: crate::store::Channel::Email,
            kind: "activation".into(),
            to: to.into(),
            subject: "Veuillez activer votre compte".into(),
            text: "texte".into(),
            html: "<p>html</p>".into(),
            created_at: 0,
            attempts: 0,
            next_attempt: 0,
            last_error: None,
        }
    }

    #[test]
    fn message_has_both_parts_and_a_stable_id() {
        let from: Mailbox = "Vigile <no-reply@example.com>".parse().unwrap();
        let raw = String::from_utf8(
            build(&from, "courses.example.com", &mail("a@b.example"))
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(
            raw.contains("Message-ID: <abc@courses.example.com>"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
    }

    #[test]
    fn a_bad_recipient_is_permanent() {
        let from: Mailbox = "no-reply@example.com".parse().unwrap();
        assert!(
            build(&from, "h", &mail("not an address"))
                .unwrap_err()
                .permanent
        );
    }
}
