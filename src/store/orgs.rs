//! Organisations (SPEC §6): a company registered by its super-admin, its members (each an
//! account whose [`User::org`] names it) and its pending invitations, which count against
//! its seats.
//!
//! Every change that must hold under concurrency is one atomic store operation: a
//! registration takes its emailed link and creates organisation and super-admin together
//! (two racing completions create one); an invitation counts seats and records itself in
//! the same step (two racing invitations never exceed them); a transfer moves the
//! super-admin role in one step (there is always exactly one).

use serde::{Deserialize, Serialize};

use super::timed_store;
use super::{Millis, OrgId, StoreResult, TokenHash, User, UserId};

/// A member's place in their organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrgRole {
    #[serde(rename = "member")]
    Member,
    /// Invites and removes members.
    #[serde(rename = "org-admin")]
    Admin,
    /// The one who registered the company (or was handed the role): also edits the profile,
    /// sees billing, promotes org admins. Exactly one per organisation.
    #[serde(rename = "org-super-admin")]
    SuperAdmin,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Member => "member",
            OrgRole::Admin => "org-admin",
            OrgRole::SuperAdmin => "org-super-admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [OrgRole::Member, OrgRole::Admin, OrgRole::SuperAdmin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// Invites, cancels invitations, removes members, sees the members list.
    pub fn manages_members(self) -> bool {
        self != OrgRole::Member
    }
}

/// Which organisation an account belongs to, and as what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub org: OrgId,
    pub role: OrgRole,
}

/// What the company says about itself; the super-admin edits it. Values were checked at
/// the edge (identification by its key or shape, phone as E.164).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgProfile {
    pub company: String,
    /// "siret", "vat" or "other".
    pub id_type: String,
    pub id_number: String,
    /// E.164.
    pub phone: String,
    pub address: String,
}

/// What the site's admins set for an organisation; `None` falls back to the site's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgTerms {
    /// Members plus pending invitations allowed (`orgs.default_seats` when unset).
    pub seats: Option<u32>,
    pub plan: Option<String>,
    /// Device cap of its members, between a member's own and the site's.
    pub max_devices: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub id: OrgId,
    pub profile: OrgProfile,
    pub terms: OrgTerms,
    pub super_admin: UserId,
    pub created_at: Millis,
}

/// An address an org admin invited; it holds a seat until it is accepted, cancelled or
/// expires. Only the SHA-256 of the mailed link's token is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgInvite {
    pub org: OrgId,
    /// Normalised address.
    pub email: String,
    pub token_hash: TokenHash,
    pub invited_by: UserId,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// What [`OrgStore::org_register`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    /// The step link was used already, expired, or never existed: nothing changed.
    LinkGone,
    /// The address belongs to an account that is not pending: nothing changed (the link
    /// is left, so its owner can still read why).
    EmailTaken,
}

/// What [`OrgStore::org_invite`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invited {
    /// Stored (replacing an earlier invitation of the same address to this organisation).
    Invited,
    /// Members and other pending invitations already fill the seats: nothing changed.
    NoSeat,
    /// The address is already a member of this organisation: nothing changed.
    AlreadyMember,
}

/// What [`OrgStore::org_join`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// The account exists, in the organisation; the invitation is spent.
    Joined,
    /// No valid invitation behind this link for that organisation and address.
    Gone,
    /// The address has an account already: nothing created, the invitation is spent.
    EmailTaken,
}

/// Seats in use: members and invitations still pending.
pub fn seats_used(members: usize, invites: usize) -> u32 {
    u32::try_from(members.saturating_add(invites)).unwrap_or(u32::MAX)
}

timed_store! {
    pub trait OrgStore: Send + Sync {
        /// Creates `org` and its super-admin `founder` (active, `founder.org` naming `org`
        /// as super-admin) in one atomic operation that also takes the registration link
        /// `link` (a [`super::TokenKind::OrgRegistration`] token valid at `now`). A pending
        /// sign-up holding the address is replaced, as by `user_insert_pending`.
        async fn org_register(
            &self,
            org: &Org,
            founder: &User,
            link: &TokenHash,
            now: Millis,
        ) -> StoreResult<Registered>;
        async fn org_get(&self, id: &OrgId) -> StoreResult<Option<Org>>;
        /// Every organisation, by company name.
        async fn org_list(&self) -> StoreResult<Vec<Org>>;
        /// The organisation's accounts, by email.
        async fn org_members(&self, id: &OrgId) -> StoreResult<Vec<User>>;
        /// How many accounts belong to the organisation.
        async fn org_member_count(&self, id: &OrgId) -> StoreResult<u64>;
        /// Replaces the profile. False if there is no such organisation.
        async fn org_set_profile(&self, id: &OrgId, profile: &OrgProfile) -> StoreResult<bool>;
        /// Replaces the site-set terms. False if there is no such organisation.
        async fn org_set_terms(&self, id: &OrgId, terms: &OrgTerms) -> StoreResult<bool>;
        /// Makes a member an org admin or a plain member. False (nothing changed) if `user`
        /// is not in the organisation, is its super-admin, or `role` is `SuperAdmin`.
        async fn org_set_role(&self, id: &OrgId, user: &UserId, role: OrgRole) -> StoreResult<bool>;
        /// Hands the super-admin role from `from` to `to` (another member, who becomes
        /// super-admin; `from` becomes an org admin), atomically. False (nothing changed)
        /// if `from` is not the super-admin or `to` not a member.
        async fn org_transfer(&self, id: &OrgId, from: &UserId, to: &UserId) -> StoreResult<bool>;
        /// Records an invitation if members plus invitations pending at `now` (an earlier
        /// one of the same address not counted) stay within `seats`.
        async fn org_invite(&self, invite: &OrgInvite, seats: u32, now: Millis) -> StoreResult<Invited>;
        /// The organisation's invitations still pending at `now`, oldest first.
        async fn org_invites(&self, id: &OrgId, now: Millis) -> StoreResult<Vec<OrgInvite>>;
        /// Withdraws an invitation. Returns whether one was pending.
        async fn org_invite_cancel(&self, id: &OrgId, email: &str) -> StoreResult<bool>;
        /// The invitation behind a link's token hash, if pending at `now`.
        async fn org_invite_by_token(&self, token: &TokenHash, now: Millis)
            -> StoreResult<Option<OrgInvite>>;
        /// Accepts an invitation: creates `user` (active, `user.org` naming the inviting
        /// organisation, `user.email` the invited address) and spends the invitation, in one
        /// atomic operation. A pending sign-up holding the address is replaced.
        async fn org_join(&self, token: &TokenHash, user: &User, now: Millis) -> StoreResult<Joined>;
        /// Deletes a member's account and its sessions. False (nothing changed) if `user` is
        /// not in the organisation or is its super-admin.
        async fn org_remove(&self, id: &OrgId, user: &UserId) -> StoreResult<bool>;
    }
}
