//! The dev outbox (`/_vigile/dev/mail`, demo and `dev_mode` only): the last mails handed
//! to the transport, kept in memory so a developer can click their links.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::store::Millis;

const KEEP: usize = 50;

#[derive(Debug, Clone)]
pub struct SentMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The http(s) URLs of the text part, in order.
    pub links: Vec<String>,
    pub at: Millis,
}

#[derive(Default)]
pub struct DevOutbox {
    mails: Mutex<VecDeque<SentMail>>,
}

impl DevOutbox {
    pub fn record(&self, to: &str, subject: &str, text: &str, at: Millis) {
        let mail = SentMail {
            to: to.to_string(),
            subject: subject.to_string(),
            text: text.to_string(),
            links: links_in(text),
            at,
        };
        if let Ok(mut mails) = self.mails.lock() {
            mails.push_front(mail);
            mails.truncate(KEEP);
        }
    }

    /// Newest first.
    pub fn list(&self) -> Vec<SentMail> {
        self.mails
            .lock()
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// URLs in a text part: each starts with http(s):// and runs to the next whitespace.
pub fn links_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.trim_end_matches(['.', ',', ')', ';']).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_their_links() {
        let dev = DevOutbox::default();
        for i in 0..60 {
            dev.record("a@b.c", &format!("s{i}"), "go http://x.test/a?token=1.", i);
        }
        let list = dev.list();
        assert_eq!(list.len(), KEEP);
        assert_eq!(list[0].subject, "s59");
        assert_eq!(list[0].links, ["http://x.test/a?token=1"]);
    }
}
