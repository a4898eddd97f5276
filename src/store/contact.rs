//! Contact details (SPEC §6 "Contact confirmation"): each account's mobile number, whether
//! its email and mobile are confirmed (when, and how), the campaign that asked it to
//! confirm them, and the codes waiting to confirm a channel.
//!
//! A code confirms a *value*: the address or number it was sent to. The account takes
//! that value only when the code (or the mailed link) is used, in the same atomic
//! operation that counts the try, so a member who asks for a new address keeps the old
//! one (for signing in and for recovery) until the new one is proved, and two racing tries
//! can never both be compared past `max_tries`.

use serde::{Deserialize, Serialize};

use super::timed_store;
use super::{Millis, StoreResult, TokenHash, User, UserId};

/// A way to reach a member; also which queue of the outbox a message waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Mail, to the account's address.
    Email,
    /// Text messages, to the mobile number.
    Mobile,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Mobile];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Mobile => "mobile",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// How a channel was confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The sign-up activation link.
    Activation,
    /// The company-registration link.
    Registration,
    /// An organisation's invitation link.
    Invitation,
    /// The link of a confirmation mail.
    Link,
    /// A code typed on the contact page.
    Code,
    /// An admin vouched for it (`vigile user add --confirmed`).
    Admin,
    /// The account existed before Vigile recorded confirmations; its address counts as
    /// confirmed (it received activation or was set up by an admin) until a campaign asks.
    Before,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Activation => "activation",
            Via::Registration => "registration",
            Via::Invitation => "invitation",
            Via::Link => "link",
            Via::Code => "code",
            Via::Admin => "admin",
            Via::Before => "before",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed {
    pub at: Millis,
    pub via: Via,
}

/// Which channels a campaign asks to confirm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels {
    pub email: bool,
    pub mobile: bool,
}

impl Channels {
    pub fn has(self, c: Channel) -> bool {
        match c {
            Channel::Email => self.email,
            Channel::Mobile => self.mobile,
        }
    }

    pub fn is_empty(self) -> bool {
        !self.email && !self.mobile
    }

    /// `email,mobile` as in `--channels`.
    pub fn label(self) -> String {
        Channel::ALL
            .into_iter()
            .filter(|c| self.has(*c))
            .map(Channel::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A member's part in a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignMark {
    pub id: String,
    pub channels: Channels,
    pub asked_at: Millis,
    /// When the member first saw the contact page after being asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<Millis>,
}

/// An account's contact state (the address itself is [`User::email`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// E.164, checked at the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_confirmed: Option<Confirmed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_confirmed: Option<Confirmed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignMark>,
}

impl Contact {
    /// The state of an account stored before confirmations were recorded.
    pub fn before() -> Self {
        Contact {
            email_confirmed: Some(Confirmed {
                at: 0,
                via: Via::Before,
            }),
            ..Contact::default()
        }
    }

    /// A new account whose address was just proved (activation-like links).
    pub fn email_proved(at: Millis, via: Via) -> Self {
        Contact {
            email_confirmed: Some(Confirmed { at, via }),
            ..Contact::default()
        }
    }

    pub fn confirmed(&self, c: Channel) -> Option<Confirmed> {
        match c {
            Channel::Email => self.email_confirmed,
            Channel::Mobile => self.mobile_confirmed,
        }
    }
}

/// A code waiting to confirm `value` on `channel`. Only hashes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactCode {
    pub channel: Channel,
    /// The normalised address or the E.164 number the code was sent to.
    pub value: String,
    pub code_hash: TokenHash,
    /// The mailed link's token hash (email only).
    pub link_hash: Option<TokenHash>,
    /// Wrong tries so far.
    pub attempts: u32,
    pub expires_at: Millis,
}

/// How a code is presented.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    /// Typed on the contact page by the signed-in member: counts a try.
    Code(&'a TokenHash),
    /// The mailed link's token hash: no try to count (the token is 128 bits), but it must
    /// be the pending code's own link, compared in the same atomic step, so a link mailed
    /// for one address never confirms a code sent since to another.
    Link(&'a TokenHash),
}

/// What presenting a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactCheck {
    /// The channel is confirmed with the code's value; the code is spent. `user` is the
    /// account after the change; `previous` the value it replaced, if different.
    Confirmed {
        user: Box<User>,
        previous: Option<String>,
    },
    /// Wrong code; this many tries are left.
    Wrong { left: u32 },
    /// That was the last try, or tries were used up: the code is spent.
    Exhausted,
    /// No code pending for that channel (never sent, expired, used) or no such account.
    Missing,
    /// The new address belongs to another account: nothing changed, the code is spent.
    Taken,
}

/// A contact-confirmation campaign, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub started_at: Millis,
    /// Who started it: an admin's address, or "cli".
    pub by: String,
    /// "all", "org:ID" or "members".
    pub scope: String,
    pub channels: Channels,
    /// Members asked at start.
    pub asked: u64,
}

timed_store! {
    pub trait ContactStore: Send + Sync {
        /// Stores the code for `code.channel`, replacing that channel's previous code (and
        /// its link). False (nothing stored) if there is no such account.
        async fn contact_code_put(&self, user: &UserId, code: &ContactCode) -> StoreResult<bool>;
        /// The member's code for a channel, if valid at `now` (to prefill a pending value).
        async fn contact_code_get(&self, user: &UserId, channel: Channel, now: Millis)
            -> StoreResult<Option<ContactCode>>;
        /// Presents a code, atomically: a typed code counts one try (at most `max_tries` are
        /// ever compared); the right one applies the code's value to the account (an email
        /// moves the address index, refused with `Taken` if another account holds it),
        /// marks the channel confirmed `at`, and spends the code.
        async fn contact_confirm(
            &self,
            user: &UserId,
            channel: Channel,
            proof: Proof<'_>,
            max_tries: u32,
            at: Confirmed,
            now: Millis,
        ) -> StoreResult<ContactCheck>;
        /// The account whose pending email code carries this link, if valid at `now`.
        async fn contact_link(&self, link: &TokenHash, now: Millis) -> StoreResult<Option<UserId>>;
        /// Puts the member in a campaign: the mark's channels become unconfirmed (values
        /// kept) and the mark replaces any earlier one. False if there is no such account.
        async fn contact_ask(&self, user: &UserId, mark: &CampaignMark) -> StoreResult<bool>;
        /// Records that the member saw the contact page for campaign `id` (once). Returns
        /// whether this was the first time.
        async fn contact_seen(&self, user: &UserId, id: &str, now: Millis) -> StoreResult<bool>;
        async fn campaign_insert(&self, campaign: &Campaign) -> StoreResult<()>;
        /// Every campaign, newest first.
        async fn campaign_list(&self) -> StoreResult<Vec<Campaign>>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_stored_before_confirmations_counts_as_confirmed() {
        let c = Contact::before();
        assert_eq!(
            c.confirmed(Channel::Email).map(|c| c.via),
            Some(Via::Before)
        );
        assert_eq!(c.confirmed(Channel::Mobile), None);
    }

    #[test]
    fn channels_read_back() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        let both = Channels {
            email: true,
            mobile: true,
        };
        assert_eq!(both.label(), "email,mobile");
        assert!(Channels::default().is_empty());
    }
}
