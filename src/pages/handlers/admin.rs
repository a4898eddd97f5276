//! `/_vigile/admin`: the administrators' page: the device-cap settings (saved in the
//! store, so every instance applies them at the next login) and the member list with each
//! account's state and lock, and the unlock action; and the mails the mail server refused
//! for good. One member's page is in `admin_member.rs`. Admins only: anyone else gets the login redirect or a 403 page.

use http::StatusCode;

use super::Ctx;
use crate::auth::lockout;
use crate::auth::Identity;
use crate::pages::forms::{AdminPage, FailedRow, MemberRow};
use crate::pages::{rd, render, Reply};
use crate::store::{overflow_parse, overflow_str, AttemptKey, Settings};

pub(super) fn admin<'c>(ctx: &'c Ctx<'_, '_>) -> Result<&'c Identity, Reply> {
    match &ctx.req.identity {
        Ok(Some(id)) if id.admin => Ok(id),
        Ok(Some(_)) => Err(ctx.message(
            StatusCode::FORBIDDEN,
            "forbidden-title",
            "forbidden-message",
            Some(("/", "back-home")),
        )),
        Ok(None) => Err(Reply::redirect(
            StatusCode::FOUND,
            &rd::login_url("/_vigile/admin"),
        )),
        Err(()) => Err(render::unavailable(ctx.lang())),
    }
}

pub async fn get(ctx: &Ctx<'_, '_>) -> Reply {
    let notice = ctx.req.query_param("saved").map(|_| "admin-saved");
    page(ctx, StatusCode::OK, notice, None).await
}

async fn page(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&'static str>,
) -> Reply {
    if let Err(reply) = admin(ctx) {
        return reply;
    }
    let store = &ctx.app.store;
    let max = ctx.app.config.file.lockout.account_max_failures;
    let (users, settings, failed) = match tokio::try_join!(
        store.user_list(),
        store.settings_get(),
        store.outbox_failed(FAILED_SHOWN)
    ) {
        Ok(found) => found,
        Err(e) => return ctx.flow_failed(&e.into()),
    };
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
        let failures = match store.attempts_of(AttemptKey::Account(&u.email)).await {
            Ok(n) => n,
            Err(e) => return ctx.flow_failed(&e.into()),
        };
        members.push(MemberRow {
            locked: lockout::is_locked(failures, max),
            failures,
            roles: u.roles(),
            status: u.status.as_str(),
            email: u.email,
        });
    }
    let page = AdminPage {
        c: ctx.chrome("/_vigile/admin"),
        members,
        failed,
        unlocked: ctx.req.query_param("unlocked"),
        max_per_member: site.max,
        on_overflow: overflow_str(site.on_overflow),
        file_max: file.max_per_member,
        file_overflow: overflow_str(file.on_overflow),
        notice,
        error,
    };
    render::page(status, &page)
}

/// Failed mails listed, most recent first (the CLI's `user show` looks further).
const FAILED_SHOWN: usize = 50;

/// Largest device cap the forms accept (anything above is surely a typo).
pub(super) const MAX_CAP: u32 = 1000;

pub(super) fn parse_cap(s: &str) -> Option<u32> {
    s.trim().parse().ok().filter(|n| *n <= MAX_CAP)
}

/// Saves the device-cap settings for every instance.
pub async fn settings(ctx: &Ctx<'_, '_>) -> Reply {
    let id = match admin(ctx) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let Some(max) = parse_cap(f.get("max_per_member")) else {
        return page(ctx, StatusCode::BAD_REQUEST, None, Some("admin-bad-number")).await;
    };
    let Some(policy) = overflow_parse(f.get("on_overflow")) else {
        return page(ctx, StatusCode::BAD_REQUEST, None, Some("admin-bad-policy")).await;
    };
    let settings = Settings {
        max_per_member: Some(max),
        on_overflow: Some(policy),
    };
    if let Err(e) = ctx.app.store.settings_set(&settings).await {
        return ctx.flow_failed(&e.into());
    }
    tracing::info!(target: "audit", event = "settings_changed", admin = %id.user_id, ip = %ctx.req.client_ip, max_per_member = max, on_overflow = overflow_str(policy), "admin changed the device cap");
    Reply::see_other("/_vigile/admin?saved=1")
}

pub async fn unlock(ctx: &Ctx<'_, '_>) -> Reply {
    let id = match admin(ctx) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let Ok(email) = crate::edge::email::Email::parse(f.get("email")) else {
        return page(ctx, StatusCode::BAD_REQUEST, None, Some("signup-bad-email")).await;
    };
    if let Err(e) = ctx.app.store.attempts_clear_all(email.as_str()).await {
        return ctx.flow_failed(&e.into());
    }
    tracing::info!(target: "audit", event = "unlock", admin = %id.user_id, ip = %ctx.req.client_ip, email = %email, "admin lifted a lockout");
    let encoded: String = form_urlencoded::byte_serialize(email.as_str().as_bytes()).collect();
    Reply::see_other(&format!("/_vigile/admin?unlocked={encoded}"))
}
