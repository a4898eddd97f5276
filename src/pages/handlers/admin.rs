//! The admin console's sections (`pages::console`): the overview (what the site holds, the
//! mails the mail server refused for good), members with their state and lock (and the
//! unlock action), organisations, contact-confirmation campaigns with their progress, and
//! the device-cap settings. One member's page is in `admin_member.rs`, one
//! organisation's in `admin_org.rs`. Admins only: anyone else gets the login redirect or
//! a 403 page.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::audit::Actor;
use crate::auth::admin::{self as actions, Admin, SitePolicy};
use crate::auth::campaign::{self, Refused, Scope};
use crate::auth::member_search;
use crate::pages::console::{Nav, Section};
use crate::pages::console_pages::{
    CampaignsPage, MembersPage, OrgsPage, OverviewPage, SettingsPage, Stat,
};
use crate::pages::forms::{CampaignRow, MemberRow};
use crate::pages::{render, Reply};
use crate::routes::Route;
use crate::store::{overflow_parse, overflow_str, OrgId};

/// The overview: what the site holds now, and what needs an admin's attention.
pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    let store = &ctx.app.store;
    // Counts only: the overview reads no account and no message.
    let ((accounts, pending), sessions, orgs, waiting, failed) = tokio::try_join!(
        store.user_counts(),
        store.session_count(ctx.now),
        store.org_list(),
        store.outbox_waiting(),
        store.outbox_failed(FAILED_SHOWN)
    )?;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let stats = vec![
        Stat {
            key: "console-stat-members",
            value: accounts.saturating_sub(pending),
            href: Route::AdminMembers.path(),
        },
        Stat {
            key: "console-stat-pending",
            value: pending,
            href: Route::AdminMembers.path(),
        },
        Stat {
            key: "console-stat-sessions",
            value: sessions,
            href: Route::AdminMembers.path(),
        },
        Stat {
            key: "console-stat-orgs",
            value: count(orgs.len()),
            href: Route::AdminOrgs.path(),
        },
        Stat {
            key: "console-stat-waiting",
            value: waiting,
            href: Route::AdminOutbox.path(),
        },
    ];
    let counts = crate::auth::events::counts(ctx.app, ctx.now).await?;
    let page = OverviewPage {
        c: ctx.chrome(Route::Admin.path()),
        nav: Nav::new(Section::Overview),
        stats,
        refused: failed.len(),
        charts: crate::pages::console_events::charts(&counts, ctx.lang()),
        chart_height: crate::pages::console_events::CHART_HEIGHT,
    };
    Ok(render::page(StatusCode::OK, &page))
}

/// The members: searched by address or name, filtered by state, fifty a page, each with
/// their state and lock (and the unlock action).
pub async fn members(ctx: &Ctx<'_, '_>) -> PageResult {
    members_page(ctx, StatusCode::OK, None).await
}

async fn members_page(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    error: Option<&'static str>,
) -> PageResult {
    ctx.admin()?;
    let text = ctx.req.query_param("q").unwrap_or_default();
    let state_raw = ctx.req.query_param("state").unwrap_or_default();
    // An unknown state (a hand-edited link) shows every member rather than an error.
    let state = member_search::State::parse(&state_raw).unwrap_or(member_search::State::Any);
    let after = ctx.req.query_param("after").filter(|a| !a.is_empty());
    let first = after.is_none();
    let found = member_search::search(ctx.app, &text, state, after, ctx.now).await?;
    let members = found
        .found
        .into_iter()
        .map(|f| MemberRow {
            locked: f.locked,
            failures: f.failures,
            roles: f.user.roles(),
            status: f.user.status.as_str(),
            name: f.user.name,
            email: f.user.email,
        })
        .collect();
    let link = |after: &str| {
        Route::AdminMembers.with_query(&[("q", &text), ("state", state.as_str()), ("after", after)])
    };
    let page = MembersPage {
        c: ctx.chrome(Route::AdminMembers.path()),
        nav: Nav::new(Section::Members),
        members,
        unlocked: ctx.req.query_param("unlocked"),
        error,
        text: text.clone(),
        state: state.as_str(),
        states: member_search::State::ALL
            .iter()
            .map(|s| (s.as_str(), s.key()))
            .collect(),
        next: found.next.as_deref().map(link),
        first: (!first).then(|| link("")),
    };
    Ok(render::page(status, &page))
}

/// Every organisation with its super-admin, members and seats.
pub async fn orgs(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    let page = OrgsPage {
        c: ctx.chrome(Route::AdminOrgs.path()),
        nav: Nav::new(Section::Orgs),
        orgs: super::admin_org::rows(ctx).await?,
    };
    Ok(render::page(StatusCode::OK, &page))
}

/// Contact-confirmation campaigns: the form to start one, and their progress.
pub async fn campaigns(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
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
    let page = CampaignsPage {
        c: ctx.chrome(Route::AdminCampaigns.path()),
        nav: Nav::new(Section::Campaigns),
        orgs: super::admin_org::rows(ctx).await?,
        campaigns,
        sms: ctx.app.config.sms_delivers,
        started: ctx.req.query_param("started").is_some(),
    };
    Ok(render::page(StatusCode::OK, &page))
}

/// The device-cap settings (saved in the store, so every instance applies them at the
/// next login).
pub async fn settings_get(ctx: &Ctx<'_, '_>) -> PageResult {
    let notice = ctx.req.query_param("saved").map(|_| "admin-saved");
    settings_page(ctx, StatusCode::OK, notice, None).await
}

async fn settings_page(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&'static str>,
) -> PageResult {
    ctx.admin()?;
    let settings = ctx.app.store.settings_get().await?;
    let file = &ctx.app.config.file.sessions;
    let site = crate::auth::devices::site_policy(&settings, file);
    let page = SettingsPage {
        c: ctx.chrome(Route::AdminSettings.path()),
        nav: Nav::new(Section::Settings),
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
        return settings_page(ctx, StatusCode::BAD_REQUEST, None, Some("admin-bad-number")).await;
    };
    let Some(policy) = overflow_parse(f.get("on_overflow")) else {
        return settings_page(ctx, StatusCode::BAD_REQUEST, None, Some("admin-bad-policy")).await;
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
        &Route::AdminSettings.with_query(&[("saved", "1")]),
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
            Some((Route::AdminCampaigns.path(), "admin-back")),
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
        Ok(_) => Ok(Reply::see_other(
            &Route::AdminCampaigns.with_query(&[("started", "1")]),
        )),
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
        return members_page(ctx, StatusCode::BAD_REQUEST, Some("signup-bad-email")).await;
    };
    let by = Admin::Page {
        user: &id.user_id,
        ip: ctx.req.client_ip,
    };
    actions::unlock(&ctx.app.store, by, &email, ctx.now).await?;
    Ok(Reply::see_other(
        &Route::AdminMembers.with_query(&[("unlocked", email.as_str())]),
    ))
}
