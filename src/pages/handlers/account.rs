//! The member's own pages: account summary and `api/me` for single-page apps.

use http::StatusCode;
use serde_json::json;

use super::{Ctx, PageResult};
use crate::pages::render::{self, AccountPage};
use crate::pages::Reply;
use crate::routes::Route;

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.member()?;
    let policy =
        crate::auth::devices::policy_for(ctx.app, &id.user_id, id.org.as_ref().map(|m| &m.org))
            .await?;
    let sessions = ctx.app.store.sessions_of(&id.user_id, ctx.now).await?;
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
        c: ctx.chrome(Route::Account.path()),
        name: id.name.clone(),
        email: id.email.clone(),
        groups: id.groups().to_string(),
        session_id: id.session_id.to_string(),
        notice,
        admin: id.admin,
        devices: super::devices::rows(&sessions, Some(&id.session_id), ctx.lang()),
        devices_intro,
    };
    Ok(render::page(StatusCode::OK, &page))
}

pub fn api_me(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.member()?;
    Ok(Reply::json(
        StatusCode::OK,
        &json!({
            "user": id.user_id.as_str(),
            "email": id.email,
            "name": id.name,
            "groups": id.groups().split(',').collect::<Vec<_>>(),
            "org": id.org.as_ref().map(|m| m.org.as_str()),
            "org_role": id.org_role().map(|r| r.as_str()),
            "session": id.session_id.as_str(),
        }),
    ))
}
