//! Registering a company in three steps (SPEC §6, Organisations):
//! 1. an address typed twice; a single-use link is mailed to it (`orgs.step_link_ttl`)
//!    and nothing else is stored — abandoned registrations leave only that link, which
//!    expires like any other;
//! 2. the company, checked field by field (the link proves the address);
//! 3. the super-admin's name and password; organisation and account are created in one
//!    store operation that also spends the link, and the browser is signed in.
//!
//! Step 1 answers the same for a taken address, and mails its owner instead.

use std::net::IpAddr;

use super::{check_company, check_person, CompanyForm, PersonForm, Refused};
use crate::audit::{Actor, Event};
use crate::auth::limits::{FormLimits, RetryAfter};
use crate::auth::password::Lane;
use crate::auth::{start_session, Deps, FlowError, NewSession};
use crate::config::OrgRegistration;
use crate::edge::email::{Email, EmailError};
use crate::i18n::Lang;
use crate::store::shard::{self, Shard};
use crate::store::{
    millis, AccountStatus, Contact, Membership, Millis, Org, OrgId, OrgProfile, OrgRole, OrgTerms,
    Registered, SessionRecord, TokenHash, TokenKind, TokenRecord, User, UserId, Via,
};

pub struct LinkRequest<'a> {
    pub email: Result<Email, EmailError>,
    pub confirm: &'a str,
    pub lang: Lang,
    pub ip: IpAddr,
    pub now: Millis,
}

#[derive(Debug)]
pub enum LinkOutcome {
    /// "Check your inbox and spam folder" — whether or not the address was free.
    CheckYourMail,
    Invalid(Vec<Refused>),
    Closed,
    TooMany(RetryAfter),
}

fn closed(deps: &Deps) -> bool {
    deps.config.file.orgs.registration == OrgRegistration::Closed
}

/// Step 1: mails the link to continue, or (address taken) a notice to its owner.
pub async fn request_link(deps: &Deps, input: LinkRequest<'_>) -> Result<LinkOutcome, FlowError> {
    if closed(deps) {
        return Ok(LinkOutcome::Closed);
    }
    let email = match input.email {
        Err(_) => {
            return Ok(LinkOutcome::Invalid(vec![Refused::key(
                "email",
                "signup-bad-email",
            )]))
        }
        Ok(email) => email,
    };
    if Email::parse(input.confirm).ok().as_ref() != Some(&email) {
        return Ok(LinkOutcome::Invalid(vec![Refused::key(
            "email_confirm",
            "org-email-mismatch",
        )]));
    }
    let limits = FormLimits::from_config(&deps.config.file);
    if let Err(retry) = limits.form_from(&deps.store, input.ip, input.now).await? {
        return Ok(LinkOutcome::TooMany(retry));
    }
    deps.metrics
        .org_registrations
        .with_label_values(&["email"])
        .inc();
    if !limits
        .mail_to(&deps.store, email.as_str(), input.now)
        .await?
    {
        return Ok(LinkOutcome::CheckYourMail);
    }
    match deps.store.user_by_email(email.as_str()).await? {
        // A pending sign-up is not an account yet: registering replaces it at step 3.
        Some(owner) if owner.status != AccountStatus::Pending => {
            deps.mailer.org_register_taken(&owner, input.now).await?;
        }
        _ => {
            // Beside the founder-to-be: registering spends it with the new account.
            let token = shard::token_in(Shard::of(email.as_str()), 32);
            let ttl = millis(deps.config.file.orgs.step_link_ttl);
            deps.store
                .token_insert(&TokenRecord {
                    kind: TokenKind::OrgRegistration,
                    hash: TokenHash::of(&token),
                    subject: email.to_string(),
                    bind: String::new(),
                    expires_at: input.now.saturating_add(ttl),
                })
                .await?;
            deps.mailer
                .org_register_link(&email, input.lang, &token, input.now)
                .await?;
        }
    }
    Ok(LinkOutcome::CheckYourMail)
}

/// The address a step link was mailed to, if the link is still valid.
pub async fn link_email(
    deps: &Deps,
    token: &str,
    now: Millis,
) -> Result<Option<String>, FlowError> {
    if token.is_empty() || token.len() > 128 || closed(deps) {
        return Ok(None);
    }
    let link = deps
        .store
        .token_peek(TokenKind::OrgRegistration, &TokenHash::of(token), now)
        .await?;
    Ok(link.map(|l| l.subject))
}

/// Step 2: the company as the store will keep it, or each refused field.
pub fn company(deps: &Deps, form: &CompanyForm<'_>) -> Result<OrgProfile, Vec<Refused>> {
    let checked = check_company(form, deps.config.phone_region);
    if checked.is_ok() {
        deps.metrics
            .org_registrations
            .with_label_values(&["company"])
            .inc();
    }
    checked
}

pub struct Completion<'a> {
    pub token: &'a str,
    pub company: CompanyForm<'a>,
    pub person: PersonForm<'a>,
    pub lang: Lang,
    pub browser: NewSession<'a>,
}

pub enum Completed {
    /// Created and signed in: `token` goes into the session cookie.
    SignedIn {
        token: String,
        session: Box<SessionRecord>,
        org: OrgId,
        /// The super-admin as created.
        user: Box<User>,
    },
    /// The company fields were refused (step 2 again).
    Company(Vec<Refused>),
    /// Names or password refused (step 3 again).
    Person(Vec<Refused>),
    /// The link was used, expired or never existed.
    LinkGone,
    /// The address got an account since step 1 (only the mailbox owner holds the link).
    EmailTaken,
}

/// Step 3: creates organisation and super-admin, signs the browser in.
pub async fn complete(deps: &Deps, input: Completion<'_>) -> Result<Completed, FlowError> {
    let now = input.browser.now;
    let Some(email) = link_email(deps, input.token, now).await? else {
        return Ok(Completed::LinkGone);
    };
    let profile = match check_company(&input.company, deps.config.phone_region) {
        Ok(p) => p,
        Err(refused) => return Ok(Completed::Company(refused)),
    };
    let name = match check_person(deps, &input.person) {
        Ok(name) => name,
        Err(refused) => return Ok(Completed::Person(refused)),
    };
    let password_hash = deps
        .auth
        .hasher
        .hash(input.person.password, Lane::client(input.browser.ip))
        .await?;
    // The organisation, its founder and the address in one shard (`store::shard`).
    let org_id = OrgId::random_in(Shard::of(&email));
    let founder = User {
        id: UserId::for_address(&email),
        email,
        name,
        password_hash,
        admin: false,
        status: AccountStatus::Active,
        lang: Some(input.lang.code().to_string()),
        created_at: now,
        org: Some(Membership {
            org: org_id.clone(),
            role: OrgRole::SuperAdmin,
        }),
        // The step-1 link reached this address.
        contact: Contact::email_proved(now, Via::Registration),
    };
    let org = Org {
        id: org_id.clone(),
        profile,
        terms: OrgTerms::default(),
        super_admin: founder.id.clone(),
        created_at: now,
    };
    let link = TokenHash::of(input.token);
    match deps.store.org_register(&org, &founder, &link, now).await? {
        Registered::Created => {}
        Registered::LinkGone => return Ok(Completed::LinkGone),
        Registered::EmailTaken => return Ok(Completed::EmailTaken),
    }
    deps.metrics
        .org_registrations
        .with_label_values(&["created"])
        .inc();
    let ip = input.browser.ip;
    let registered = Event::OrgRegistered {
        org: &org.id,
        user: &founder.id,
        email: &founder.email,
    };
    registered.emit(&Actor::Visitor(ip), now);
    let (token, session) = start_session(&deps.auth, &founder, input.browser).await?;
    deps.mailer.account_created(&founder, now).await?;
    Ok(Completed::SignedIn {
        token,
        session: Box::new(session),
        org: org_id,
        user: Box::new(founder),
    })
}
