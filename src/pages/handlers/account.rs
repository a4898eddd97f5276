//! The member's own pages: account summary and `api/me` for single-page apps.

use http::StatusCode;
use serde_json::json;

use super::Ctx;
use crate::auth::Identity;
use crate::pages::render::{self, AccountPage};
use crate::pages::{rd, Reply};

/// The signed-in identity, or the reply for a visitor without one (login redirect, or 503
/// when the store cannot say).
pub(super) fn signed_in<'c>(ctx: &'c Ctx<'_, '_>, here: &str) -> Result<&'c Identity, Reply> {
    match &ctx.req.identity {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(Reply::redirect(StatusCode::FOUND, &rd::login_url(here))),
        Err(()) => Err(render::unavailable(ctx.lang())),
    }
}

pub async fn get(ctx: &Ctx<'_, '_>) -> Reply {
    let id = match signed_in(ctx, "/_vigile/account") {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let now = ctx.now;
    let found = async {
        let policy = crate::auth::devices::policy_for(ctx.app, &id.user_id).await?;
        let sessions = ctx.app.store.sessions_of(&id.user_id, now).await?;
        Ok::<_, crate::store::StoreError>((policy, sessions))
    };
    let (policy, sessions) = match found.await {
        Ok(found) => found,
        Err(e) => return ctx.flow_failed(&e.into()),
    };
    let t = ctx.lang().tr();
    let devices_intro = if policy.max == 0 {
        t.with(
            "devices-intro-unlimited",
            &[("count", sessions.len().to_string())],
        )
    } else {
        t.with(
            "devices-intro",
            &[
                ("count", sessions.len().to_string()),
                ("max", policy.max.to_string()),
            ],
        )
    };
    let notice = if ctx.req.query_param("revoked").is_some() {
        Some("devices-revoked")
    } else {
        ctx.req.query_param("welcome").map(|_| "account-welcome")
    };
    let page = AccountPage {
        c: ctx.chrome("/_vigile/account"),
        name: id.name.clone(),
        email: id.email.clone(),
        groups: id.groups().to_string(),
        session_id: id.session_id.to_string(),
        notice,
        admin: id.admin,
        devices: super::devices::rows(&sessions, Some(&id.session_id), ctx.lang()),
        devices_intro,
    };
    render::page(StatusCode::OK, &page)
}

pub fn api_me(ctx: &Ctx<'_, '_>) -> Reply {
    match &ctx.req.identity {
        Ok(Some(id)) => Reply::json(
            StatusCode::OK,
            &json!({
                "user": id.user_id.as_str(),
                "email": id.email,
                "name": id.name,
                "groups": id.groups().split(',').collect::<Vec<_>>(),
                "org": id.org,
                "session": id.session_id.as_str(),
            }),
        ),
        Ok(None) => Reply::json(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "unauthenticated", "login_url": "/_vigile/login"}),
        ),
        Err(()) => Reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "unavailable"}),
        )
        .with_header(http::header::RETRY_AFTER, "5".into()),
    }
}
