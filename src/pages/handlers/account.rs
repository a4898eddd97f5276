//! The member's own pages: account summary and `api/me` for single-page apps.

use http::StatusCode;
use serde_json::json;

use super::Ctx;
use crate::auth::Identity;
use crate::pages::render::{self, AccountPage};
use crate::pages::{rd, Reply};

/// The signed-in identity, or the reply for a visitor without one (login redirect, or 503
/// when the store cannot say).
fn signed_in<'c>(ctx: &'c Ctx<'_, '_>, here: &str) -> Result<&'c Identity, Reply> {
    match &ctx.req.identity {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(Reply::redirect(StatusCode::FOUND, &rd::login_url(here))),
        Err(()) => Err(render::unavailable(ctx.lang())),
    }
}

pub fn get(ctx: &Ctx<'_, '_>) -> Reply {
    let id = match signed_in(ctx, "/_vigile/account") {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let page = AccountPage {
        c: ctx.chrome("/_vigile/account"),
        name: id.name.clone(),
        email: id.email.clone(),
        groups: id.groups().to_string(),
        session_id: id.session_id.to_string(),
        notice: ctx.req.query_param("welcome").map(|_| "account-welcome"),
        admin: id.admin,
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
