//! The console's operations sections: the client addresses blocked after repeated
//! failed logins (`/_vigile/admin/blocked`) and the mail outbox (`/_vigile/admin/outbox`).
//! Their rows carry what an admin needs to act, never a message's content: a mail's
//! bodies hold single-use links, so only its kind, recipient, subject and the server's
//! last answer are shown.

use askama::Template;

use super::console::Nav;
use super::render::Chrome;
use crate::i18n::Lang;
use crate::routes::Route;

/// One block in force.
pub struct BlockRow {
    /// The client key (an IPv4 address or an IPv6 /64), as the unblock form posts it.
    pub ip: String,
    /// When the block ends (UTC) and how long until then.
    pub until: String,
    pub left: String,
}

#[derive(Template)]
#[template(path = "pages/admin_blocked.html")]
pub struct BlockedPage {
    pub c: Chrome,
    pub nav: Nav,
    pub blocks: Vec<BlockRow>,
    /// More blocks are in force than listed.
    pub more: bool,
    /// What was just done (in the reader's language).
    pub notice: Option<String>,
    pub error: Option<&'static str>,
}

/// One message waiting in the outbox.
pub struct WaitingRow {
    pub id: String,
    /// Catalog key of its channel.
    pub channel: &'static str,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub created: String,
    pub next: String,
    pub attempts: u32,
    pub error: String,
}

/// One message refused for good.
pub struct RefusedRow {
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub failed: String,
    pub attempts: u32,
    pub error: String,
}

/// One list of waiting messages: a page of it, how many it holds in all, and the links to
/// its next and first pages.
pub struct WaitingList {
    /// The table's id, and catalog keys of its title, of "none" and of its help.
    pub id: &'static str,
    pub title: &'static str,
    pub none: &'static str,
    pub help: Option<&'static str>,
    pub rows: Vec<WaitingRow>,
    /// Every page together (exact, counted by the store).
    pub total: u64,
    /// "50 of 120 shown, soonest due first", in the reader's language.
    pub shown: String,
    pub next: Option<String>,
    pub first: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/admin_outbox.html")]
pub struct OutboxPage {
    pub c: Chrome,
    pub nav: Nav,
    /// Messages sent in the last 24 hours: mails, and text messages when the site sends
    /// them.
    pub sent_mail: u64,
    pub sent_sms: Option<u64>,
    /// Due now: waiting for a sender to take them (never tried yet, mostly).
    pub queued: WaitingList,
    /// Due later: refused for now and waiting for their next attempt.
    pub retrying: WaitingList,
    /// Refused for good, most recent first (at most a page of them).
    pub failed: Vec<RefusedRow>,
    /// How many are refused for good in all.
    pub failed_total: u64,
    pub notice: Option<String>,
    pub error: Option<&'static str>,
}

impl OutboxPage {
    /// The lists of waiting messages, in the page's order.
    pub fn lists(&self) -> [&WaitingList; 2] {
        [&self.retrying, &self.queued]
    }
}

/// A time left, in units French and English readers write the same: `1 h 05 min`,
/// `14 min 59 s`, `8 s`.
pub fn left(ms: i64) -> String {
    let secs = (ms.max(0).saturating_add(999)) / 1000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_at_a_glance() {
        assert_eq!(left(0), "0 s");
        assert_eq!(left(1), "1 s");
        assert_eq!(left(899_500), "15 min 00 s");
        assert_eq!(left(3_900_000), "1 h 05 min");
        assert_eq!(left(-5), "0 s");
    }
}
