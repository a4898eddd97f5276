//! Forgotten password: the request form and the reset form reached by the emailed link.

use http::StatusCode;

use super::signup::{email_field, problems, rules};
use super::Ctx;
use crate::auth::reset::{self as flow, ResetOutcome};
use crate::pages::forms::{EmailFormPage, ResetPage};
use crate::pages::{render, Reply};

fn forgot_form(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    email: String,
    error: Option<String>,
) -> Reply {
    let page = EmailFormPage {
        c: ctx.chrome("/_vigile/password/forgot"),
        title: "forgot-title",
        intro: "forgot-intro",
        submit: "forgot-submit",
        action: "/_vigile/password/forgot",
        email,
        error,
    };
    render::page(status, &page)
}

pub fn forgot_get(ctx: &Ctx<'_, '_>) -> Reply {
    let email = ctx.req.query_param("email").unwrap_or_default();
    forgot_form(ctx, StatusCode::OK, email, None)
}

pub async fn forgot_post(ctx: &Ctx<'_, '_>) -> Reply {
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let email = match email_field(ctx, f.get("email"), |status, email, error| {
        forgot_form(ctx, status, email, error)
    }) {
        Ok(email) => email,
        Err(reply) => return reply,
    };
    match flow::forgot(ctx.app, &email, ctx.req.client_ip, ctx.now).await {
        Ok(Ok(())) => ctx.message(
            StatusCode::OK,
            "forgot-sent-title",
            "forgot-sent-message",
            Some(("/_vigile/login", "back-to-login")),
        ),
        Ok(Err(retry)) => ctx.too_many(retry),
        Err(e) => ctx.flow_failed(&e),
    }
}

fn bad_link(ctx: &Ctx<'_, '_>) -> Reply {
    ctx.message(
        StatusCode::GONE,
        "reset-invalid-title",
        "reset-invalid-message",
        Some(("/_vigile/password/forgot", "reset-new-link")),
    )
}

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
        c: ctx.chrome("/_vigile/password/forgot"),
        token,
        email,
        intro,
        problems,
        rules: rules(ctx),
    };
    render::page(status, &page)
}

pub async fn reset_get(ctx: &Ctx<'_, '_>) -> Reply {
    let token = ctx.req.query_param("token").unwrap_or_default();
    match flow::check_link(ctx.app, &token, ctx.now).await {
        Ok(Some(user)) => reset_form(ctx, StatusCode::OK, token, user.email, vec![]),
        Ok(None) => bad_link(ctx),
        Err(e) => ctx.flow_failed(&e),
    }
}

pub async fn reset_post(ctx: &Ctx<'_, '_>) -> Reply {
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let (token, now) = (f.get("token"), ctx.now);
    let outcome = flow::reset(
        ctx.app,
        token,
        f.get("password"),
        f.get("confirm"),
        ctx.req.client_ip,
        now,
    )
    .await;
    match outcome {
        Ok(ResetOutcome::Done) => {
            Reply::see_other("/_vigile/login?reset=1").with_cookie(ctx.app.cookies.clear_session())
        }
        Ok(ResetOutcome::Invalid(list)) => match flow::check_link(ctx.app, token, now).await {
            Ok(Some(user)) => reset_form(
                ctx,
                StatusCode::BAD_REQUEST,
                token.to_string(),
                user.email,
                problems(ctx, &list),
            ),
            Ok(None) => bad_link(ctx),
            Err(e) => ctx.flow_failed(&e),
        },
        Ok(ResetOutcome::BadLink) => bad_link(ctx),
        Err(e) => ctx.flow_failed(&e),
    }
}
