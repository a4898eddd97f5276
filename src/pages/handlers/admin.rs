//! `/_vigile/admin`: the administrators' page: the device-cap settings (saved in the
//! store, so every instance applies them at the next login) and the member list with each
//! account's state and lock, and the unlock action; and the mails the mail server refused
//! for good, and contact-confirmation campaigns with their progress. One member's page is in `admin_member.rs`. Admins only: anyone else gets the login redirect or a 403 page.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::audit::Actor;
use crate::auth::admin::{self as actions, Admin, SitePolicy};
use crate::auth::campaign::{self, Refused, Scope};
use crate::auth::lockout;
use crate::pages::forms::{AdminPage, CampaignRow, FailedRow, MemberRow};
use crate::pages::{render, Reply};
use crate::routes::Route;
use crate::store::{overflow_parse, overflow_str, AttemptKey, OrgId};

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    let notice = ctx.req.query_param("saved").map(|_| "admin-saved");
    page(ctx, StatusCode::OK, notice, None).await
}

async fn page(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&'static str>,
) -> PageResult {
    ctx.admin()?;
    let store = &ctx.app.store;
    let max = ctx.app.config.file.lockout.account_max_failures;
    let (users, settings, failed) = tokio::try_join!(
        store.user_list(),
        store.settings_get(),
        store.outbox_failed(FAILED_SHOWN)
    )?;
    let failed = failed
        .into_iter()
        .map(|m| FailedRow {
            when: super::devices::when(m.failed_at),
            to: m.to,
            kind: m.kind,
            error: m.last_error,
        })
        .collect();
    let file = &ctx.app.config.file.sessions;
    let site = crate::auth::devices::site_policy(&settings, file);
    let mut members = Vec::with_capacity(users.len());
    for u in users {
        let failures = store.attempts_of(AttemptKey::Account(&u.email)).await?;
        members.push(MemberRow {
            locked: lockout::is_locked(failures, max),
            failures,
            roles: u.roles(),
            status: u.status.as_str(),
            email: u.email,
        });
    }
    let orgs = super::admin_org::rows(ctx).await?;
    let campaigns = campaign::progress(ctx.app)
        .await?
        .into_iter()
        .map(|(c, progress)| CampaignRow {
            started: super::devices::when(c.started_at),
            channels: c.channels.label(),
            id: c.id,
            by: c.by,
            scope: c.scope,
            progress,
        })
        .collect();
    let page = AdminPage {
        c: ctx.chrome(Route::Admin.path()),
        members,
        orgs,
        campaigns,
        sms: ctx.app.config.sms_delivers,
        failed,
        unlocked: ctx.req.query_param("unlocked"),
        max_per_member: site.max,
        on_overflow: overflow_str(site.on_overflow),
        file_max: file.max_per_member,
        file_overflow: overflow_str(file.on_overflow),
        notice,
        error,
    };
    Ok(render::page(status, &page))
}

/// Failed mails listed, most recent first (the CLI's `user show` looks further).
const FAILED_SHOWN: usize = 50;

/// Largest device cap the forms accept (anything above is surely a typo).
pub(super) const MAX_CAP: u32 = 1000;

pub(super) fn parse_cap(s: &str) -> Option<u32> {
    s.trim().parse().ok().filter(|n| *n <= MAX_CAP)
}

/// Saves the device-cap settings for every instance.
pub async fn settings(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.admin()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let Some(max) = parse_cap(f.get("max_per_member")) else {
        return page(ctx, StatusCode::BAD_REQUEST, None, Some("admin-bad-number")).await;
    };
    let Some(policy) = overflow_parse(f.get("on_overflow")) else {
        return page(ctx, StatusCode::BAD_REQUEST, None, Some("admin-bad-policy")).await;
    };
    let change = SitePolicy {
        max_per_member: Some(max),
        on_overflow: Some(policy),
        reset: false,
    };
    let by = Admin::Page {
        user: &id.user_id,
        ip: ctx.req.client_ip,
    };
    actions::set_site_policy(&ctx.app.store, by, change, ctx.now).await?;
    Ok(Reply::see_other(
        &Route::Admin.with_query(&[("saved", "1")]),
    ))
}

/// Starts a contact-confirmation campaign: the members in the textarea when it is filled,
/// else everyone or one organisation.
pub async fn start_campaign(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.admin()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let t = ctx.lang().tr();
    let refuse = |text: String| {
        Ok(render::message_text(
            StatusCode::BAD_REQUEST,
            ctx.lang(),
            &ctx.app.config,
            "admin-campaigns",
            text,
            Some((Route::Admin.path(), "admin-back")),
        ))
    };
    let Some(channels) = campaign::parse_channels(f.all("channels")) else {
        return refuse(t.get("admin-campaign-channels"));
    };
    let members = f.get("members");
    let scope = if !members.trim().is_empty() {
        match campaign::parse_members(members) {
            Ok(lines) => Scope::Members(lines),
            Err(bad) => return refuse(lines_text(&t, "admin-campaign-bad-lines", &bad)),
        }
    } else if f.get("scope") == "org" {
        Scope::Org(OrgId::from_string(f.get("org")))
    } else {
        Scope::All
    };
    let by = Actor::Admin {
        user: &id.user_id,
        ip: ctx.req.client_ip,
    };
    match campaign::start(ctx.app, &by, &id.email, &scope, channels, ctx.now).await? {
        Ok(_) => Ok(Reply::see_other(&format!("{}#campaigns", Route::Admin))),
        Err(refused) => refuse(match refused {
            Refused::NoChannel => t.get("admin-campaign-channels"),
            Refused::NoSms => t.get("admin-campaign-no-sms"),
            Refused::UnknownOrg => t.get("admin-campaign-no-org"),
            Refused::Nobody => t.get("admin-campaign-nobody"),
            Refused::UnknownMembers(bad) => lines_text(&t, "admin-campaign-unknown", &bad),
        }),
    }
}

fn lines_text(t: &crate::i18n::Tr, key: &str, lines: &[usize]) -> String {
    t.with(key, &[("lines", campaign::line_list(lines))])
}

pub async fn unlock(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.admin()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let Ok(email) = crate::edge::email::Email::parse(f.get("email")) else {
        return page(ctx, StatusCode::BAD_REQUEST, None, Some("signup-bad-email")).await;
    };
    let by = Admin::Page {
        user: &id.user_id,
        ip: ctx.req.client_ip,
    };
    actions::unlock(&ctx.app.store, by, &email, ctx.now).await?;
    Ok(Reply::see_other(
        &Route::Admin.with_query(&[("unlocked", email.as_str())]),
    ))
}
