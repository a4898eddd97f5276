//! `/_vigile/admin`: the administrators' page. For now the member list with each
//! account's state and lock, and the unlock action; settings arrive with the device cap.
//! Admins only: anyone else gets the login redirect or a 403 page.

use http::StatusCode;

use super::Ctx;
use crate::auth::lockout;
use crate::auth::Identity;
use crate::pages::forms::{AdminPage, MemberRow};
use crate::pages::{rd, render, Reply};
use crate::store::AttemptKey;

fn admin<'c>(ctx: &'c Ctx<'_, '_>) -> Result<&'c Identity, Reply> {
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
    if let Err(reply) = admin(ctx) {
        return reply;
    }
    let store = &ctx.app.store;
    let max = ctx.app.config.file.lockout.account_max_failures;
    let users = match store.user_list().await {
        Ok(u) => u,
        Err(e) => return ctx.flow_failed(&e.into()),
    };
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
        unlocked: ctx.req.query_param("unlocked"),
    };
    render::page(StatusCode::OK, &page)
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
    let email = crate::auth::normalize_email(f.get("email"));
    if let Err(e) = ctx.app.store.attempts_clear_all(&email).await {
        return ctx.flow_failed(&e.into());
    }
    tracing::info!(target: "audit", event = "unlock", admin = %id.user_id, email = %email, "admin lifted a lockout");
    let encoded: String = form_urlencoded::byte_serialize(email.as_bytes()).collect();
    Reply::see_other(&format!("/_vigile/admin?unlocked={encoded}"))
}
