//! `/_vigile/admin/member?email=`: one member as admins see it: their signed-in devices
//! (each can be signed out) and their own device cap, which overrides the site's.

use http::StatusCode;

use super::admin::{admin, parse_cap};
use super::Ctx;
use crate::app::now_ms;
use crate::auth::normalize_email;
use crate::pages::forms::AdminMemberPage;
use crate::pages::{render, Reply};
use crate::store::{SessionId, SignedOut, StoreError};

async fn page(
    ctx: &Ctx<'_, '_>,
    email: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&'static str>,
) -> Reply {
    let store = &ctx.app.store;
    let now = now_ms();
    let found = async {
        let Some(user) = store.user_by_email(email).await? else {
            return Ok::<_, StoreError>(None);
        };
        let own = store.member_cap(&user.id).await?;
        let settings = store.settings_get().await?;
        let sessions = store.sessions_of(&user.id, now).await?;
        Ok(Some((user, own, settings, sessions)))
    };
    let (user, own, settings, sessions) = match found.await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return ctx.message(
                StatusCode::NOT_FOUND,
                "admin-member-title",
                "admin-no-member",
                Some(("/_vigile/admin", "admin-title")),
            )
        }
        Err(e) => return ctx.flow_failed(&e.into()),
    };
    let encoded: String = form_urlencoded::byte_serialize(user.email.as_bytes()).collect();
    let page = AdminMemberPage {
        c: ctx.chrome(&format!("/_vigile/admin/member?email={encoded}")),
        own_cap: own.map(|c| c.to_string()).unwrap_or_default(),
        site_cap: crate::auth::devices::site_policy(&settings, &ctx.app.config.file.sessions).max,
        devices: super::devices::rows(&sessions, None, ctx.lang()),
        email: user.email,
        notice,
        error,
    };
    render::page(status, &page)
}

pub async fn get(ctx: &Ctx<'_, '_>) -> Reply {
    if let Err(reply) = admin(ctx) {
        return reply;
    }
    let email = normalize_email(&ctx.req.query_param("email").unwrap_or_default());
    let notice = match ctx.req.query_param("done").as_deref() {
        Some("cap") => Some("admin-saved"),
        Some("revoked") => Some("admin-device-revoked"),
        _ => None,
    };
    page(ctx, &email, StatusCode::OK, notice, None).await
}

fn back(email: &str, done: &str) -> Reply {
    let encoded: String = form_urlencoded::byte_serialize(email.as_bytes()).collect();
    Reply::see_other(&format!(
        "/_vigile/admin/member?email={encoded}&done={done}"
    ))
}

/// Sets (or, empty, removes) the member's own cap.
pub async fn cap(ctx: &Ctx<'_, '_>) -> Reply {
    let id = match admin(ctx) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let email = normalize_email(f.get("email"));
    let raw = f.get("cap").trim();
    let cap = if raw.is_empty() {
        None
    } else {
        match parse_cap(raw) {
            Some(n) => Some(n),
            None => {
                return page(
                    ctx,
                    &email,
                    StatusCode::BAD_REQUEST,
                    None,
                    Some("admin-bad-number"),
                )
                .await
            }
        }
    };
    let store = &ctx.app.store;
    let result = async {
        match store.user_by_email(&email).await? {
            Some(user) => store.member_cap_set(&user.id, cap).await,
            None => Ok(false),
        }
    };
    match result.await {
        Ok(true) => {
            tracing::info!(target: "audit", event = "member_cap_changed", admin = %id.user_id, ip = %ctx.req.client_ip, email = %email, cap = ?cap, "admin changed a member's device cap");
            back(&email, "cap")
        }
        Ok(false) => page(ctx, &email, StatusCode::NOT_FOUND, None, None).await,
        Err(e) => ctx.flow_failed(&e.into()),
    }
}

/// Signs one of the member's devices out.
pub async fn revoke(ctx: &Ctx<'_, '_>) -> Reply {
    let id = match admin(ctx) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let email = normalize_email(f.get("email"));
    let session = SessionId::from_string(f.get("session"));
    let store = &ctx.app.store;
    let result = async {
        match store.user_by_email(&email).await? {
            Some(user) => {
                crate::auth::devices::end_session(
                    ctx.app,
                    &user.id,
                    &session,
                    SignedOut::Revoked,
                    now_ms(),
                )
                .await
            }
            None => Ok(false),
        }
    };
    match result.await {
        Ok(ended) => {
            if ended {
                tracing::info!(target: "audit", event = "session_revoked", admin = %id.user_id, ip = %ctx.req.client_ip, email = %email, session = %session, "admin signed a member's device out");
            }
            back(&email, "revoked")
        }
        Err(e) => ctx.flow_failed(&e.into()),
    }
}
