//! Fixed-window counters for rate limits on the public forms (per IP, per address).
//! Shared by every instance on the same store, so a limit holds across a cluster.

use super::timed_store;

use super::{Millis, StoreResult};

/// What is being counted; with the subject (an IP, an address) it names one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterScope {
    /// Public form posts (sign-up, resend, forgot password) from one IP address.
    FormsPerIp,
    /// Mails the public forms sent to one address.
    MailsPerAddress,
    /// Device-cap codes mailed to one member (new challenges and resends), per hour...
    DeviceCodes,
    /// ...and per day.
    DeviceCodesDaily,
    /// "A member went over the device cap" mails to the admins, per member.
    AdminNotices,
    /// Invitation mails one organisation sent.
    OrgInvites,
    /// Contact-confirmation codes sent to one member on one channel, per hour...
    ContactCodes,
    /// ...and per day.
    ContactCodesDaily,
    /// Contact codes mailed to one address, whoever asked (apart from the public forms'
    /// `MailsPerAddress`, so neither can be used to read the other's count).
    ContactMailsTo,
    /// Texts sent to one number, whoever asked.
    TextsPerNumber,
    /// Texts the whole site sent (subject: empty).
    TextsSite,
    /// Messages the outbox sent, per channel (subject: `email` or `mobile`); counted by
    /// `outbox_sent`, read by `outbox_sent_count`, kept a day past their window.
    MessagesSent,
}

impl CounterScope {
    pub fn as_str(self) -> &'static str {
        match self {
            CounterScope::FormsPerIp => "forms_ip",
            CounterScope::MailsPerAddress => "mails_to",
            CounterScope::DeviceCodes => "device_codes",
            CounterScope::DeviceCodesDaily => "device_codes_day",
            CounterScope::AdminNotices => "admin_notices",
            CounterScope::OrgInvites => "org_invites",
            CounterScope::ContactCodes => "contact_codes",
            CounterScope::ContactCodesDaily => "contact_codes_day",
            CounterScope::ContactMailsTo => "contact_mails_to",
            CounterScope::TextsPerNumber => "texts_to",
            CounterScope::TextsSite => "texts_site",
            CounterScope::MessagesSent => "sent",
        }
    }
}

timed_store! {
    pub trait CounterStore: Send + Sync {
        /// Adds one hit to the counter `(scope, subject)` for the window holding `now`
        /// (windows are `window_ms` long, aligned on multiples of `window_ms` since the
        /// epoch) and returns the window's count including this hit. A counter lives no
        /// longer than its window.
        async fn counter_hit(
            &self,
            scope: CounterScope,
            subject: &str,
            window_ms: Millis,
            now: Millis,
        ) -> StoreResult<u64>;
    }
}

/// The window holding `now`, as `(start, end)`: what both backends count in. A
/// non-positive `window_ms` counts as 1 ms.
pub(super) fn window(now: Millis, window_ms: Millis) -> (Millis, Millis) {
    let len = window_ms.max(1);
    let start = now - now.rem_euclid(len);
    (start, start.saturating_add(len))
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn windows_are_aligned_on_the_epoch() {
        assert_eq!(window(0, 60), (0, 60));
        assert_eq!(window(59, 60), (0, 60));
        assert_eq!(window(60, 60), (60, 120));
        assert_eq!(window(-1, 60), (-60, 0));
        assert_eq!(window(5, 0), (5, 6));
    }
}
