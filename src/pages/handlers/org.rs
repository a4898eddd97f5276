//! `/_vigile/org`: a member's organisation (flows in `auth::orgs::members`). Everyone in
//! it sees the profile; the super-admin edits it there, and alone sees billing. Org admins
//! and the super-admin see the members and invitations and act on them. Each action
//! answers 303 back to the page, or 403 when the acting member's role does not allow it.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::auth::orgs::members::{self as flow, Acting, Done, JoinOutcome, Refusal};
use crate::auth::orgs::PersonForm;
use crate::edge::email::Email;
use crate::i18n::Lang;
use crate::pages::fields::Fields;
use crate::pages::org_pages::{
    OrgBillingPage, OrgInviteRow, OrgJoinPage, OrgMemberRow, OrgPage, OrgView,
};
use crate::pages::{render, Form, PageError, Reply};
use crate::routes::Route;
use crate::store::{seats_used, Org, OrgRole, UserId};

/// The signed-in member, as an organisation's member acting now.
async fn acting(ctx: &Ctx<'_, '_>) -> Result<Acting, PageError> {
    let id = ctx.member()?;
    flow::acting(ctx.app, &id.user_id, ctx.req.client_ip, ctx.now)
        .await?
        .ok_or(PageError::Forbidden)
}

fn role_key(role: OrgRole) -> &'static str {
    match role {
        OrgRole::Member => "org-role-member",
        OrgRole::Admin => "org-role-admin",
        OrgRole::SuperAdmin => "org-role-super-admin",
    }
}

fn profile_fields(org: &Org) -> Fields {
    let mut f = Fields::default();
    let p = &org.profile;
    f.set("company", p.company.clone());
    f.set("id_type", p.id_type.clone());
    f.set("id_number", p.id_number.clone());
    f.set("phone", p.phone.clone());
    f.set("address", p.address.clone());
    f
}

/// "3 of 25 seats used" (`key` says how), `used` counting members and pending invitations.
fn seats_text(ctx: &Ctx<'_, '_>, org: &Org, used: u32, key: &str) -> String {
    let seats = flow::seats(ctx.app, org);
    let t = ctx.lang().tr();
    t.with(
        key,
        &[("used", used.to_string()), ("seats", seats.to_string())],
    )
}

/// What the page shows beside the organisation itself: a refused profile or invitation.
#[derive(Default)]
struct Shown {
    f: Option<Fields>,
    invite_form: Fields,
}

async fn page(ctx: &Ctx<'_, '_>, by: &Acting, status: StatusCode, shown: Shown) -> PageResult {
    let org = &by.org;
    let manages = by.role.manages_members();
    let (members, invites) = if manages {
        tokio::try_join!(
            ctx.app.store.org_members(&org.id),
            ctx.app.store.org_invites(&org.id, ctx.now)
        )?
    } else {
        (vec![], vec![])
    };
    // The page lists exactly who holds the seats (shown to those who see the lists).
    let used = seats_used(members.len(), invites.len());
    let members = members
        .into_iter()
        .map(|u| {
            let role = u.org_role().unwrap_or(OrgRole::Member);
            let removable = u.id != by.user.id
                && match by.role {
                    OrgRole::SuperAdmin => true,
                    OrgRole::Admin => role == OrgRole::Member,
                    OrgRole::Member => false,
                };
            OrgMemberRow {
                id: u.id.to_string(),
                email: u.email,
                name: u.name,
                role: role.as_str(),
                role_key: role_key(role),
                removable,
            }
        })
        .collect();
    let invites = invites
        .into_iter()
        .map(|i| OrgInviteRow {
            until: super::devices::when(i.expires_at),
            email: i.email,
        })
        .collect();
    let p = &org.profile;
    let id_type_key = match p.id_type.as_str() {
        "siret" => "org-id-siret",
        "vat" => "org-id-vat",
        _ => "org-id-other",
    };
    let page = OrgPage {
        c: ctx.chrome(Route::Org.path()),
        org: OrgView {
            company: p.company.clone(),
            id_number: p.id_number.clone(),
            phone: p.phone.clone(),
            address: p.address.clone(),
        },
        id_type_key,
        role_key: role_key(by.role),
        is_super: by.role == OrgRole::SuperAdmin,
        manages,
        f: shown.f.unwrap_or_else(|| profile_fields(org)),
        invite_form: shown.invite_form,
        members,
        invites,
        seats_text: seats_text(ctx, org, used, "org-seats-used"),
    };
    Ok(render::page(status, &page))
}

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    let by = acting(ctx).await?;
    page(ctx, &by, StatusCode::OK, Shown::default()).await
}

pub async fn billing(ctx: &Ctx<'_, '_>) -> PageResult {
    let by = acting(ctx).await?;
    if by.role != OrgRole::SuperAdmin {
        return Err(PageError::Forbidden);
    }
    let t = ctx.lang().tr();
    let page = OrgBillingPage {
        c: ctx.chrome(Route::OrgBilling.path()),
        company: by.org.profile.company.clone(),
        plan: by
            .org
            .terms
            .plan
            .clone()
            .unwrap_or_else(|| t.get("org-plan-standard")),
        seats_text: seats_text(
            ctx,
            &by.org,
            flow::occupancy(ctx.app, &by.org, ctx.now).await?.used,
            "org-billing-seats",
        ),
    };
    Ok(render::page(StatusCode::OK, &page))
}

/// Checks the form's CSRF token and finds the acting member.
async fn posted(ctx: &Ctx<'_, '_>) -> Result<(Form, Acting), PageError> {
    let form = ctx.req.form();
    ctx.check_csrf(form.get("csrf"))?;
    let by = acting(ctx).await?;
    Ok((form, by))
}

/// Back to the page (which shows the change), or why not.
fn answer(done: Done) -> PageResult {
    match done {
        Ok(()) => Ok(Reply::redirect(StatusCode::SEE_OTHER, Route::Org.path())),
        Err(Refusal::Forbidden) => Err(PageError::Forbidden),
        // The callers with forms show these themselves.
        Err(Refusal::Invalid(_) | Refusal::NoSeat { .. }) => Err(PageError::Forbidden),
    }
}

pub async fn profile(ctx: &Ctx<'_, '_>) -> PageResult {
    let (form, by) = posted(ctx).await?;
    let company = super::register::company_form(&form);
    match flow::edit_profile(ctx.app, &by, &company).await? {
        Err(Refusal::Invalid(refused)) => {
            let names = ["company", "id_type", "id_number", "phone", "address"];
            let f = Fields::keep(&form, &names).refuse(&refused, &ctx.lang().tr());
            let shown = Shown {
                f: Some(f),
                ..Shown::default()
            };
            page(ctx, &by, StatusCode::BAD_REQUEST, shown).await
        }
        done => answer(done),
    }
}

pub async fn invite(ctx: &Ctx<'_, '_>) -> PageResult {
    let (form, by) = posted(ctx).await?;
    if !by.role.manages_members() {
        return Err(PageError::Forbidden);
    }
    let refuse = |key: &'static str| {
        let f = Fields::keep(&form, &["email"]);
        let refused = [crate::auth::orgs::Refused {
            field: "email",
            why: crate::auth::orgs::Why::Key(key),
        }];
        f.refuse(&refused, &ctx.lang().tr())
    };
    let email = match Email::parse(form.get("email")) {
        Ok(email) => email,
        Err(_) => {
            let shown = Shown {
                invite_form: refuse("signup-bad-email"),
                ..Shown::default()
            };
            return page(ctx, &by, StatusCode::BAD_REQUEST, shown).await;
        }
    };
    match flow::invite(ctx.app, &by, &email, ctx.lang()).await? {
        Err(Refusal::NoSeat { .. }) => {
            let shown = Shown {
                invite_form: refuse("org-no-seat"),
                ..Shown::default()
            };
            page(ctx, &by, StatusCode::CONFLICT, shown).await
        }
        done => answer(done),
    }
}

pub async fn cancel_invite(ctx: &Ctx<'_, '_>) -> PageResult {
    let (form, by) = posted(ctx).await?;
    // The page posts the stored (normalised) address; a typed one is normalised the same way.
    let Ok(email) = Email::parse(form.get("email")) else {
        return answer(Ok(()));
    };
    let done = flow::cancel_invite(ctx.app, &by, &email).await?;
    answer(done)
}

fn target(form: &Form) -> UserId {
    UserId::from_string(form.get("user"))
}

pub async fn remove(ctx: &Ctx<'_, '_>) -> PageResult {
    let (form, by) = posted(ctx).await?;
    let done = flow::remove(ctx.app, &by, &target(&form)).await?;
    answer(done)
}

pub async fn role(ctx: &Ctx<'_, '_>) -> PageResult {
    let (form, by) = posted(ctx).await?;
    let role = match form.get("role") {
        "admin" => OrgRole::Admin,
        "member" => OrgRole::Member,
        _ => return Err(PageError::Forbidden),
    };
    let done = flow::set_role(ctx.app, &by, &target(&form), role).await?;
    answer(done)
}

pub async fn transfer(ctx: &Ctx<'_, '_>) -> PageResult {
    let (form, by) = posted(ctx).await?;
    let done = flow::transfer(ctx.app, &by, &target(&form)).await?;
    answer(done)
}

fn gone() -> PageError {
    PageError::Gone {
        title: "org-join-invalid-title",
        message: "org-join-invalid-message",
        next: (Route::Login, "login-title"),
    }
}

fn join_page(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    invitation: &flow::Invitation,
    token: &str,
    f: Fields,
    lang: Lang,
) -> Reply {
    let t = ctx.lang().tr();
    let page = OrgJoinPage {
        c: ctx.chrome(Route::OrgJoin.path()),
        title: t.with("org-join-title", &[("company", invitation.company.clone())]),
        token: token.to_string(),
        email: invitation.invite.email.clone(),
        lang: lang.code(),
        f,
        rules: super::signup::rules(ctx),
    };
    render::page(status, &page)
}

pub async fn join_get(ctx: &Ctx<'_, '_>) -> PageResult {
    let token = ctx.req.query_param("token").unwrap_or_default();
    let Some(invitation) = flow::invitation(ctx.app, &token, ctx.now).await? else {
        return Err(gone());
    };
    let f = Fields::default();
    Ok(join_page(
        ctx,
        StatusCode::OK,
        &invitation,
        &token,
        f,
        ctx.lang(),
    ))
}

pub async fn join_post(ctx: &Ctx<'_, '_>) -> PageResult {
    let form = ctx.req.form();
    ctx.check_csrf(form.get("csrf"))?;
    let token = form.get("token");
    let lang = Lang::parse(form.get("lang")).unwrap_or(ctx.lang());
    let person = PersonForm {
        first_name: form.get("first_name"),
        last_name: form.get("last_name"),
        password: form.get("password"),
        confirm: form.get("confirm"),
    };
    match flow::join(ctx.app, token, &person, lang, ctx.browser()).await? {
        JoinOutcome::SignedIn { token, user, .. } => {
            ctx.app.metrics.logins.with_label_values(&["success"]).inc();
            let account = Route::Account.with_query(&[("welcome", "1")]);
            Ok(ctx.signed_in(StatusCode::SEE_OTHER, &user, &account, &token))
        }
        JoinOutcome::Invalid(refused) => {
            let Some(invitation) = flow::invitation(ctx.app, token, ctx.now).await? else {
                return Err(gone());
            };
            let f = Fields::keep(&form, &["first_name", "last_name"])
                .refuse(&refused, &ctx.lang().tr());
            Ok(join_page(
                ctx,
                StatusCode::BAD_REQUEST,
                &invitation,
                token,
                f,
                lang,
            ))
        }
        JoinOutcome::Gone => Err(gone()),
        JoinOutcome::EmailTaken => Ok(ctx.message(
            StatusCode::CONFLICT,
            "register-taken-title",
            "register-taken-message",
            Some((Route::Login.path(), "login-title")),
        )),
    }
}
