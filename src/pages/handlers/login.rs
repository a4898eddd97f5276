//! Login form, its POST, and logout.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::audit::{Actor, Event};
use crate::auth::limits::RetryAfter;
use crate::auth::{login as run_login, Lock, LoginInput, LoginOutcome};
use crate::edge::email::Email;
use crate::pages::render::{self, LoginPage};
use crate::pages::{rd, PageError, Reply};
use crate::routes::Route;
use crate::store::SignedOut;

/// Longest password we look at; anything longer is a bad credential (the email field has
/// its own bound in [`Email::parse`]).
const MAX_FIELD: usize = 1024;

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    let rd = rd::or_home(ctx.req.query_param("rd").as_deref());
    if ctx.req.visitor.identity().is_some() {
        return Ok(Reply::redirect(StatusCode::FOUND, &rd));
    }
    let signed_out = ctx.req.signed_out.or_else(|| {
        ctx.req
            .query_param("signed_out")
            .and_then(|s| SignedOut::parse(&s))
    });
    let notice = if ctx.req.query_param("reset").is_some() {
        Some("reset-done")
    } else if let Some(why) = signed_out {
        Some(match why {
            SignedOut::Replaced => "signed-out-replaced",
            SignedOut::Revoked => "signed-out-revoked",
        })
    } else {
        ctx.req.query_param("logged_out").map(|_| "logout-done")
    };
    Ok(form(ctx, StatusCode::OK, rd, String::new(), None, notice))
}

/// The form again; a locked account's answer also says where to write for help.
fn form(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    rd: String,
    email: String,
    error: Option<&'static str>,
    notice: Option<&'static str>,
) -> Reply {
    let here = rd::login_url(&rd);
    let resend_url = Route::ActivateResend.with_query(&[("email", &email)]);
    let mut c = ctx.chrome(&here);
    if error.is_some_and(|e| LOCK_MESSAGES.contains(&e)) {
        c = c.with_support(&ctx.app.config);
    }
    let page = LoginPage {
        c,
        rd,
        email,
        error,
        notice,
        resend_url,
        signup_open: ctx.app.config.file.signup.mode != crate::config::SignupMode::Closed,
        register_open: ctx.app.config.file.orgs.registration
            == crate::config::OrgRegistration::Open,
    };
    render::page(status, &page)
}

/// What a lock's page says: only what happened. The address's lock tells of the mail
/// its owner got (in words that also hold for an unknown address, which answers the
/// same); a known device's own lock mailed nobody and says so.
pub(super) fn lock_message(lock: Lock) -> &'static str {
    match lock {
        Lock::Account => "login-locked",
        Lock::Device => "login-locked-device",
    }
}

const LOCK_MESSAGES: [&str; 2] = ["login-locked", "login-locked-device"];

pub async fn post(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    let rd = rd::or_home(Some(f.get("rd")));
    ctx.check_csrf(f.get("csrf"))?;
    let (email, password) = (f.get("email"), f.get("password"));
    let metrics = &ctx.app.metrics;
    if password.len() > MAX_FIELD {
        metrics.logins.with_label_values(&["bad_credentials"]).inc();
        return Ok(form(
            ctx,
            StatusCode::UNAUTHORIZED,
            rd,
            String::new(),
            Some("login-failed"),
            None,
        ));
    }
    // Not an address: the flow still does the same work and gives the same answer.
    let parsed = Email::parse(email).ok();
    // For the audit log: the parsed address, never raw input.
    let who = parsed.as_ref().map_or("-", Email::as_str);
    let input = LoginInput {
        email: parsed.as_ref(),
        password,
        device: ctx.device.clone(),
        ip: ctx.req.client_ip,
        user_agent: ctx.req.user_agent(),
        previous_token: ctx.req.cookies.session.as_deref(),
        rd: &rd,
        now: ctx.now,
    };
    let outcome = run_login(ctx.app, input).await?;
    metrics.logins.with_label_values(&[outcome.label()]).inc();
    answer(ctx, outcome, rd, email, who)
}

/// The page for a login's outcome, and its audit event (the caller counted it).
pub(super) fn answer(
    ctx: &Ctx<'_, '_>,
    outcome: LoginOutcome,
    rd: String,
    email: &str,
    who: &str,
) -> PageResult {
    let visitor = Actor::Visitor(ctx.req.client_ip);
    let overflows = &ctx.app.metrics.device_overflows;
    // Refusals show the form again with the address typed; a locked account answers like
    // a wrong password (same status and page shape), since unknown addresses lock too.
    let again = |status, error| {
        let typed = email.to_string();
        Ok(form(ctx, status, rd.clone(), typed, Some(error), None))
    };
    match outcome {
        LoginOutcome::Success {
            token, user, ended, ..
        } => {
            Event::Login { user: &user.id }.emit(&visitor, ctx.now);
            if !ended.is_empty() {
                overflows.with_label_values(&["evicted"]).inc();
                let evicted = Event::DeviceEvicted {
                    user: &user.id,
                    sessions: &ended,
                };
                evicted.emit(&Actor::System(Some(ctx.req.client_ip)), ctx.now);
            }
            Ok(ctx.signed_in(StatusCode::SEE_OTHER, &user, &rd, &token))
        }
        // No cookie yet: the session opens once the second factor passed.
        LoginOutcome::SecondFactor => Ok(Reply::see_other(Route::TwoFactor.path())),
        LoginOutcome::DeviceCode => {
            Event::DeviceOverflow { email: who }.emit(&visitor, ctx.now);
            Ok(Reply::see_other(Route::Verify.path()))
        }
        LoginOutcome::TooManyCodes => Err(PageError::TooMany {
            retry: RetryAfter(3600),
            message: "verify-too-many",
        }),
        LoginOutcome::DeviceLimit { max } => {
            overflows.with_label_values(&["denied"]).inc();
            Event::DeviceDenied { email: who }.emit(&visitor, ctx.now);
            let text = ctx
                .lang()
                .tr()
                .with("limit-message", &[("max", max.to_string())]);
            Ok(render::message_text(
                StatusCode::FORBIDDEN,
                ctx.lang(),
                &ctx.app.config,
                "limit-title",
                text,
                Some((&format!("{}#devices", Route::Account), "limit-devices")),
            ))
        }
        LoginOutcome::BadCredentials => {
            Event::LoginFailed { email: who }.emit(&visitor, ctx.now);
            again(StatusCode::UNAUTHORIZED, "login-failed")
        }
        LoginOutcome::Locked(lock) => again(StatusCode::UNAUTHORIZED, lock_message(lock)),
        LoginOutcome::IpBlocked { until } => Err(PageError::IpBlocked { until }),
        LoginOutcome::Shed => Err(PageError::Busy),
        LoginOutcome::NotActivated => again(StatusCode::FORBIDDEN, "login-not-activated"),
    }
}

pub async fn logout(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    if let Some(token) = &ctx.req.cookies.session {
        ctx.app.auth.logout(token, ctx.now).await?;
        if let Some(id) = ctx.req.visitor.identity() {
            Event::Logout { user: &id.user_id }.emit(&Actor::Visitor(ctx.req.client_ip), ctx.now);
        }
    }
    Ok(
        Reply::see_other(&Route::Login.with_query(&[("logged_out", "1")]))
            .with_cookie(ctx.app.cookies.clear_session()),
    )
}
