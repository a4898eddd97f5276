//! What an organisation's people do on its page: the super-admin edits the profile,
//! promotes and demotes org admins and hands the role over; org admins (and the
//! super-admin) invite addresses within the seats, withdraw invitations and remove
//! members; an invited address sets its password and joins.
//!
//! Every action first reads the acting account from the store ([`acting`]) and decides
//! on that, so a role taken away a moment ago is already gone.

use std::net::IpAddr;

use super::{check_company, check_person, CompanyForm, PersonForm, Refused};
use crate::audit::{Actor, Event};
use crate::auth::limits::{FormLimits, Limit};
use crate::auth::password::Lane;
use crate::auth::{start_session, Deps, FlowError, NewSession};
use crate::edge::email::Email;
use crate::i18n::Lang;
use crate::store::shard::{self, Shard};
use crate::store::{
    millis, seats_used, AccountStatus, Contact, CounterScope, Invited, Joined, Membership, Millis,
    Org, OrgInvite, OrgRole, SessionRecord, TokenHash, User, UserId, Via,
};

/// An organisation's member acting on its page, as the store has them now.
pub struct Acting {
    pub user: User,
    pub role: OrgRole,
    pub org: Org,
    pub ip: IpAddr,
    pub now: Millis,
}

impl Acting {
    fn actor(&self) -> Actor<'_> {
        Actor::OrgAdmin {
            user: &self.user.id,
            ip: self.ip,
        }
    }

    fn is_super(&self) -> bool {
        self.role == OrgRole::SuperAdmin
    }
}

/// The acting member and their organisation; `None` if the account is gone or belongs
/// to no organisation.
pub async fn acting(
    deps: &Deps,
    user: &UserId,
    ip: IpAddr,
    now: Millis,
) -> Result<Option<Acting>, FlowError> {
    let Some(user) = deps.store.user_by_id(user).await? else {
        return Ok(None);
    };
    let Some(Membership { org, role }) = user.org.clone() else {
        return Ok(None);
    };
    let Some(org) = deps.store.org_get(&org).await? else {
        return Ok(None);
    };
    Ok(Some(Acting {
        user,
        role,
        org,
        ip,
        now,
    }))
}

/// Invitation mails one organisation may send per hour: enough to invite a class, not
/// enough to make the site a mail relay for whoever registers a company.
pub const INVITE_MAILS_PER_HOUR: u32 = 100;

/// Whether an invitation mail may go to `email` now: the address's own limit
/// (`mail.max_per_address`, as for the public forms) and the organisation's.
async fn may_mail(deps: &Deps, by: &Acting, email: &Email) -> Result<bool, FlowError> {
    let limits = FormLimits::from_config(&deps.config.file);
    if !limits.mail_to(&deps.store, email.as_str(), by.now).await? {
        return Ok(false);
    }
    let per_org = Limit {
        max: INVITE_MAILS_PER_HOUR,
        window: std::time::Duration::from_secs(3600),
    };
    let hit = per_org
        .hit(
            &deps.store,
            CounterScope::OrgInvites,
            by.org.id.as_str(),
            by.now,
        )
        .await?;
    Ok(hit.is_ok())
}

/// Seats the organisation may fill (members plus pending invitations).
pub fn seats(deps: &Deps, org: &Org) -> u32 {
    org.terms
        .seats
        .unwrap_or(deps.config.file.orgs.default_seats)
}

/// An organisation's members, and the seats they and the pending invitations use.
#[derive(Debug, Clone, Copy)]
pub struct Occupancy {
    pub members: u64,
    pub used: u32,
}

/// Who holds the organisation's seats now: members and invitations still pending.
pub async fn occupancy(deps: &Deps, org: &Org, now: Millis) -> Result<Occupancy, FlowError> {
    let members = deps.store.org_member_count(&org.id).await?;
    let invites = deps.store.org_invites(&org.id, now).await?.len();
    let used = seats_used(usize::try_from(members).unwrap_or(usize::MAX), invites);
    Ok(Occupancy { members, used })
}

/// Why an action was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The acting member's role does not allow it (or the target is out of reach).
    Forbidden,
    /// Form fields refused.
    Invalid(Vec<Refused>),
    /// Members and pending invitations fill the seats.
    NoSeat { seats: u32 },
}

pub type Done = Result<(), Refusal>;

/// The super-admin replaces the company profile.
pub async fn edit_profile(
    deps: &Deps,
    by: &Acting,
    form: &CompanyForm<'_>,
) -> Result<Done, FlowError> {
    if !by.is_super() {
        return Ok(Err(Refusal::Forbidden));
    }
    let profile = match check_company(form, deps.config.phone_region) {
        Ok(p) => p,
        Err(refused) => return Ok(Err(Refusal::Invalid(refused))),
    };
    deps.store.org_set_profile(&by.org.id, &profile).await?;
    Event::OrgProfileUpdated { org: &by.org.id }.emit(&by.actor(), by.now);
    Ok(Ok(()))
}

/// An org admin invites an address; the invitation mail (or, for an address that has an
/// account, a notice to its owner) goes out. The inviter sees the same either way.
pub async fn invite(
    deps: &Deps,
    by: &Acting,
    email: &Email,
    lang: Lang,
) -> Result<Done, FlowError> {
    if !by.role.manages_members() {
        return Ok(Err(Refusal::Forbidden));
    }
    // Beside the organisation, which the link is spent with.
    let token = shard::token_in(Shard::of(by.org.id.as_str()), 32);
    let ttl = millis(deps.config.file.signup.invite_ttl);
    let invite = OrgInvite {
        org: by.org.id.clone(),
        email: email.to_string(),
        token_hash: TokenHash::of(&token),
        invited_by: by.user.id.clone(),
        created_at: by.now,
        expires_at: by.now.saturating_add(ttl),
    };
    let seats = seats(deps, &by.org);
    match deps.store.org_invite(&invite, seats, by.now).await? {
        // Already one of us: nothing to send, nothing to tell.
        Invited::AlreadyMember => return Ok(Ok(())),
        Invited::NoSeat => return Ok(Err(Refusal::NoSeat { seats })),
        Invited::Invited => {}
    }
    let company = &by.org.profile.company;
    // Past a limit the invitation stands (and shows) but no mail goes: re-inviting or
    // cancelling and inviting again cannot turn the form into a mail relay.
    if !may_mail(deps, by, email).await? {
        tracing::warn!(org = %by.org.id, "invitation mail limit reached; invitation kept, not mailed");
    } else {
        match deps.store.user_by_email(email.as_str()).await? {
            Some(owner) if owner.status != AccountStatus::Pending => {
                deps.mailer
                    .org_invite_taken(&owner, company, by.now)
                    .await?;
            }
            _ => {
                deps.mailer
                    .org_invitation(email, lang, company, &token, by.now)
                    .await?;
            }
        }
    }
    let invited = Event::OrgInvited {
        org: &by.org.id,
        email: email.as_str(),
    };
    invited.emit(&by.actor(), by.now);
    Ok(Ok(()))
}

pub async fn cancel_invite(deps: &Deps, by: &Acting, email: &Email) -> Result<Done, FlowError> {
    if !by.role.manages_members() {
        return Ok(Err(Refusal::Forbidden));
    }
    if deps
        .store
        .org_invite_cancel(&by.org.id, email.as_str())
        .await?
    {
        let cancelled = Event::OrgInviteCancelled {
            org: &by.org.id,
            email: email.as_str(),
        };
        cancelled.emit(&by.actor(), by.now);
    }
    Ok(Ok(()))
}

/// The member `target` of the acting member's organisation, if there is one.
async fn member(deps: &Deps, by: &Acting, target: &UserId) -> Result<Option<User>, FlowError> {
    let user = deps.store.user_by_id(target).await?;
    Ok(user.filter(|u| u.org.as_ref().is_some_and(|m| m.org == by.org.id)))
}

/// Removes a member: their account and sessions are deleted. Org admins remove plain
/// members; the super-admin anyone but themselves.
pub async fn remove(deps: &Deps, by: &Acting, target: &UserId) -> Result<Done, FlowError> {
    let Some(user) = member(deps, by, target).await? else {
        return Ok(Err(Refusal::Forbidden));
    };
    let their_role = user.org_role().unwrap_or(OrgRole::Member);
    let allowed = match by.role {
        OrgRole::SuperAdmin => their_role != OrgRole::SuperAdmin,
        OrgRole::Admin => their_role == OrgRole::Member,
        OrgRole::Member => false,
    };
    if !allowed {
        return Ok(Err(Refusal::Forbidden));
    }
    // Read first so this instance's cache forgets them at once; other instances' caches
    // hold a removed session for at most `CACHE_TTL`.
    let sessions = deps.store.sessions_of(&user.id, by.now).await?;
    if !deps.store.org_remove(&by.org.id, &user.id).await? {
        return Ok(Err(Refusal::Forbidden));
    }
    for s in &sessions {
        deps.auth.cache.forget(&s.token_hash);
    }
    let removed = Event::OrgMemberRemoved {
        org: &by.org.id,
        user: &user.id,
        email: &user.email,
    };
    removed.emit(&by.actor(), by.now);
    Ok(Ok(()))
}

/// The super-admin makes a member an org admin, or an org admin a plain member.
pub async fn set_role(
    deps: &Deps,
    by: &Acting,
    target: &UserId,
    role: OrgRole,
) -> Result<Done, FlowError> {
    if !by.is_super() || role == OrgRole::SuperAdmin {
        return Ok(Err(Refusal::Forbidden));
    }
    if !deps.store.org_set_role(&by.org.id, target, role).await? {
        return Ok(Err(Refusal::Forbidden));
    }
    // The role change shows in the member's identity at their next request here.
    deps.auth.forget_user(target);
    let changed = Event::OrgRoleChanged {
        org: &by.org.id,
        user: target,
        role: role.as_str(),
    };
    changed.emit(&by.actor(), by.now);
    Ok(Ok(()))
}

/// The super-admin hands the role to another member and becomes an org admin.
pub async fn transfer(deps: &Deps, by: &Acting, target: &UserId) -> Result<Done, FlowError> {
    if !by.is_super() {
        return Ok(Err(Refusal::Forbidden));
    }
    if !deps
        .store
        .org_transfer(&by.org.id, &by.user.id, target)
        .await?
    {
        return Ok(Err(Refusal::Forbidden));
    }
    // The role change shows in both identities at their next request here.
    deps.auth.forget_user(target);
    deps.auth.forget_user(&by.user.id);
    let transferred = Event::OrgTransferred {
        org: &by.org.id,
        user: target,
    };
    transferred.emit(&by.actor(), by.now);
    Ok(Ok(()))
}

/// An invitation as its link shows it: the address and the company.
pub struct Invitation {
    pub invite: OrgInvite,
    pub company: String,
}

pub async fn invitation(
    deps: &Deps,
    token: &str,
    now: Millis,
) -> Result<Option<Invitation>, FlowError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let Some(invite) = deps
        .store
        .org_invite_by_token(&TokenHash::of(token), now)
        .await?
    else {
        return Ok(None);
    };
    let Some(org) = deps.store.org_get(&invite.org).await? else {
        return Ok(None);
    };
    Ok(Some(Invitation {
        invite,
        company: org.profile.company,
    }))
}

pub enum JoinOutcome {
    SignedIn {
        token: String,
        session: Box<SessionRecord>,
        /// The account as created.
        user: Box<User>,
    },
    Invalid(Vec<Refused>),
    /// Used, withdrawn or expired invitation.
    Gone,
    /// The address has an account already (only its owner holds the link).
    EmailTaken,
}

/// The invited address sets its name and password: the account is created in the
/// organisation and the browser signed in.
pub async fn join(
    deps: &Deps,
    token: &str,
    person: &PersonForm<'_>,
    lang: Lang,
    browser: NewSession<'_>,
) -> Result<JoinOutcome, FlowError> {
    let now = browser.now;
    let Some(Invitation { invite, .. }) = invitation(deps, token, now).await? else {
        return Ok(JoinOutcome::Gone);
    };
    let name = match check_person(deps, person) {
        Ok(name) => name,
        Err(refused) => return Ok(JoinOutcome::Invalid(refused)),
    };
    let password_hash = deps
        .auth
        .hasher
        .hash(person.password, Lane::client(browser.ip))
        .await?;
    let user = User {
        // Beside the organisation: joining, roles and removal are one script each.
        id: UserId::random_in(Shard::of(invite.org.as_str())),
        email: invite.email.clone(),
        name,
        password_hash,
        admin: false,
        status: AccountStatus::Active,
        lang: Some(lang.code().to_string()),
        created_at: now,
        org: Some(Membership {
            org: invite.org.clone(),
            role: OrgRole::Member,
        }),
        // The invitation link reached this address.
        contact: Contact::email_proved(now, Via::Invitation),
    };
    match deps
        .store
        .org_join(&TokenHash::of(token), &user, now)
        .await?
    {
        Joined::Joined => {}
        Joined::Gone => return Ok(JoinOutcome::Gone),
        Joined::EmailTaken => return Ok(JoinOutcome::EmailTaken),
    }
    let joined = Event::OrgJoined {
        org: &invite.org,
        user: &user.id,
        email: &user.email,
    };
    joined.emit(&Actor::Visitor(browser.ip), now);
    let (token, session) = start_session(&deps.auth, &user, browser).await?;
    deps.mailer.account_created(&user, now).await?;
    Ok(JoinOutcome::SignedIn {
        token,
        session: Box::new(session),
        user: Box::new(user),
    })
}
