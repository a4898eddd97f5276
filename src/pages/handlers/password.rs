//! Forgotten password: the request form and the reset form reached by the emailed link.

use http::StatusCode;

use super::signup::{problems, rules};
use super::{Ctx, PageResult};
use crate::auth::reset::{self as flow, ResetOutcome};
use crate::pages::forms::ResetPage;
use crate::pages::{render, PageError, Reply};
use crate::routes::Route;

const BAD_LINK: PageError = PageError::Gone {
    title: "reset-invalid-title",
    message: "reset-invalid-message",
    next: (Route::PasswordForgot, "reset-new-link"),
};

fn reset_form(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    token: String,
    email: String,
    problems: Vec<String>,
) -> Reply {
    let intro = ctx
        .lang()
        .tr()
        .with("reset-intro", &[("email", email.clone())]);
    let page = ResetPage {
        c: ctx
            .chrome(Route::PasswordForgot.path())
            .with_support(&ctx.app.config),
        token,
        email,
        intro,
        problems,
        rules: rules(ctx),
    };
    render::page(status, &page)
}

pub async fn reset_get(ctx: &Ctx<'_, '_>) -> PageResult {
    let token = ctx.req.query_param("token").unwrap_or_default();
    match flow::check_link(ctx.app, &token, ctx.now).await? {
        Some(user) => Ok(reset_form(ctx, StatusCode::OK, token, user.email, vec![])),
        None => Err(BAD_LINK),
    }
}

pub async fn reset_post(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let (token, now) = (f.get("token"), ctx.now);
    let outcome = flow::reset(
        ctx.app,
        token,
        f.get("password"),
        f.get("confirm"),
        ctx.req.client_ip,
        now,
    )
    .await?;
    match outcome {
        ResetOutcome::Done => Ok(
            Reply::see_other(&Route::Login.with_query(&[("reset", "1")]))
                .with_cookie(ctx.app.cookies.clear_session()),
        ),
        ResetOutcome::Invalid(list) => match flow::check_link(ctx.app, token, now).await? {
            Some(user) => Ok(reset_form(
                ctx,
                StatusCode::BAD_REQUEST,
                token.to_string(),
                user.email,
                problems(ctx, &list),
            )),
            None => Err(BAD_LINK),
        },
        ResetOutcome::BadLink => Err(BAD_LINK),
    }
}
