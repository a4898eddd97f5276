//! The site admins' view of organisations: the list on `/_vigile/admin` and one
//! organisation on `/_vigile/admin/org?id=` with its seats, plan and device cap.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::auth::admin::{self as actions, Admin};
use crate::auth::orgs::members::{occupancy, seats};
use crate::pages::org_pages::{AdminOrgPage, OrgRow};
use crate::pages::{render, PageError, Reply};
use crate::routes::Route;
use crate::store::{Org, OrgId, OrgTerms};

/// Every organisation, for the admin page (the caller checked the admin role).
pub(super) async fn rows(ctx: &Ctx<'_, '_>) -> Result<Vec<OrgRow>, PageError> {
    let store = &ctx.app.store;
    let mut rows = vec![];
    for org in store.org_list().await? {
        let seated = occupancy(ctx.app, &org, ctx.now).await?;
        rows.push(OrgRow {
            members: seated.members,
            seats_used: seated.used,
            seats: seats(ctx.app, &org),
            super_admin: super_admin(ctx, &org).await?,
            id: org.id.to_string(),
            company: org.profile.company,
        });
    }
    Ok(rows)
}

async fn super_admin(ctx: &Ctx<'_, '_>, org: &Org) -> Result<String, PageError> {
    let user = ctx.app.store.user_by_id(&org.super_admin).await?;
    Ok(user.map(|u| u.email).unwrap_or_default())
}

fn number(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

async fn page(
    ctx: &Ctx<'_, '_>,
    org: &Org,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&'static str>,
) -> PageResult {
    let t = ctx.lang().tr();
    let seated = occupancy(ctx.app, org, ctx.now).await?;
    let page = AdminOrgPage {
        c: ctx.chrome(Route::AdminOrg.path()),
        nav: crate::pages::console::Nav::new(crate::pages::console::Section::Orgs),
        id: org.id.to_string(),
        company: org.profile.company.clone(),
        super_admin: super_admin(ctx, org).await?,
        members: seated.members,
        seats_text: t.with(
            "org-seats-used",
            &[
                ("used", seated.used.to_string()),
                ("seats", seats(ctx.app, org).to_string()),
            ],
        ),
        seats: number(org.terms.seats),
        default_seats: ctx.app.config.file.orgs.default_seats,
        plan: org.terms.plan.clone().unwrap_or_default(),
        max_devices: number(org.terms.max_devices),
        notice,
        error,
    };
    Ok(render::page(status, &page))
}

async fn find(ctx: &Ctx<'_, '_>, id: &str) -> Result<Org, PageError> {
    if id.is_empty() || id.len() > 64 {
        return Err(PageError::NotFound);
    }
    let org = ctx.app.store.org_get(&OrgId::from_string(id)).await?;
    org.ok_or(PageError::NotFound)
}

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    let org = find(ctx, &ctx.req.query_param("id").unwrap_or_default()).await?;
    let notice = ctx.req.query_param("saved").map(|_| "admin-saved");
    page(ctx, &org, StatusCode::OK, notice, None).await
}

/// An optional number: empty means the site's default.
fn optional(value: &str) -> Result<Option<u32>, ()> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| ())
}

pub async fn post(ctx: &Ctx<'_, '_>) -> PageResult {
    let admin = ctx.admin()?;
    let form = ctx.req.form();
    ctx.check_csrf(form.get("csrf"))?;
    let org = find(ctx, form.get("id")).await?;
    let plan = form.get("plan").trim();
    let plan_ok = plan.chars().count() <= 100 && !plan.chars().any(char::is_control);
    let (Ok(seats), Ok(max_devices), true) = (
        optional(form.get("seats")),
        optional(form.get("max_devices")),
        plan_ok,
    ) else {
        let bad = Some("admin-org-bad");
        return page(ctx, &org, StatusCode::BAD_REQUEST, None, bad).await;
    };
    let terms = OrgTerms {
        seats,
        plan: (!plan.is_empty()).then(|| plan.to_string()),
        max_devices,
    };
    let by = Admin::Page {
        user: &admin.user_id,
        ip: ctx.req.client_ip,
    };
    actions::set_org_terms(&ctx.app.store, by, &org.id, &terms, ctx.now).await?;
    let back = Route::AdminOrg.with_query(&[("id", org.id.as_str()), ("saved", "1")]);
    Ok(Reply::redirect(StatusCode::SEE_OTHER, &back))
}
