//! Sign-up form, activation link, activation resend.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::auth::policy;
use crate::auth::signup::{
    self as flow, ActivateInput, ActivateOutcome, Problem, SignupInput, SignupOutcome,
};
use crate::config::SignupMode;
use crate::edge::email::Email;
use crate::i18n::Lang;
use crate::pages::forms::SignupPage;
use crate::pages::{render, PageError, Reply};
use crate::routes::Route;

/// The configured password rules, in the reader's language.
pub(super) fn rules(ctx: &Ctx<'_, '_>) -> Vec<String> {
    let t = ctx.lang().tr();
    policy::requirements(&ctx.app.config.file.password)
        .into_iter()
        .map(|u| u.text(&t))
        .collect()
}

pub(super) fn problems(ctx: &Ctx<'_, '_>, problems: &[Problem]) -> Vec<String> {
    let t = ctx.lang().tr();
    problems.iter().map(|p| p.text(&t)).collect()
}

fn closed(ctx: &Ctx<'_, '_>) -> Reply {
    ctx.message(
        StatusCode::FORBIDDEN,
        "signup-closed-title",
        "signup-closed-message",
        Some((Route::Login.path(), "login-title")),
    )
}

fn form(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    email: String,
    lang: Lang,
    problems: Vec<String>,
) -> Reply {
    let page = SignupPage {
        c: ctx.chrome(Route::Signup.path()),
        email,
        lang: lang.code(),
        problems,
        rules: rules(ctx),
        invite_only: ctx.app.config.file.signup.mode == SignupMode::Invite,
    };
    render::page(status, &page)
}

pub fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    if ctx.req.visitor.identity().is_some() {
        return Ok(Reply::redirect(StatusCode::FOUND, Route::Account.path()));
    }
    if ctx.app.config.file.signup.mode == SignupMode::Closed {
        return Ok(closed(ctx));
    }
    let email = ctx.req.query_param("email").unwrap_or_default();
    Ok(form(ctx, StatusCode::OK, email, ctx.lang(), vec![]))
}

pub async fn post(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let lang = Lang::parse(f.get("lang")).unwrap_or(ctx.lang());
    let input = SignupInput {
        email: Email::parse(f.get("email")),
        password: f.get("password"),
        confirm: f.get("confirm"),
        lang,
        ip: ctx.req.client_ip,
        now: ctx.now,
    };
    Ok(match flow::signup(ctx.app, input).await? {
        SignupOutcome::CheckYourMail => ctx.message(
            StatusCode::OK,
            "signup-sent-title",
            "signup-sent-message",
            Some((Route::ActivateResend.path(), "activate-resend-link")),
        ),
        SignupOutcome::Invalid(list) => {
            let email = f.get("email").chars().take(254).collect();
            form(
                ctx,
                StatusCode::BAD_REQUEST,
                email,
                lang,
                problems(ctx, &list),
            )
        }
        SignupOutcome::NotInvited => ctx.message(
            StatusCode::FORBIDDEN,
            "signup-not-invited-title",
            "signup-not-invited-message",
            Some(("/", "back-home")),
        ),
        SignupOutcome::Closed => closed(ctx),
        SignupOutcome::TooMany(retry) => return Err(PageError::too_many(retry)),
    })
}

pub async fn activate(ctx: &Ctx<'_, '_>) -> PageResult {
    let token = ctx.req.query_param("token").unwrap_or_default();
    let input = ActivateInput {
        token: &token,
        browser: ctx.browser(),
    };
    match flow::activate(ctx.app, input).await? {
        ActivateOutcome::SignedIn { token, user, .. } => {
            ctx.app.metrics.logins.with_label_values(&["success"]).inc();
            let account = Route::Account.with_query(&[("welcome", "1")]);
            // The link is a GET: 302, as before the contact step existed.
            Ok(ctx.signed_in(StatusCode::FOUND, &user, &account, &token))
        }
        ActivateOutcome::Invalid => Err(PageError::Gone {
            title: "activate-invalid-title",
            message: "activate-invalid-message",
            next: (Route::ActivateResend, "activate-resend-link"),
        }),
    }
}
