//! The member's own pages: the account page (summary, profile, password, devices) and
//! `api/me` for single-page apps.

use http::StatusCode;
use serde_json::json;

use super::signup::{problems, rules};
use super::{Ctx, PageResult};
use crate::audit::{Actor, Event};
use crate::auth::account::{self, PasswordChange, PasswordChanged, ProfileChanged};
use crate::i18n::Lang;
use crate::pages::render::{self, AccountPage};
use crate::pages::{PageError, Reply};
use crate::routes::Route;

/// What a refused form on the account page shows next to it.
#[derive(Default)]
struct Refused {
    profile: Option<String>,
    password: Vec<String>,
}

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    let notice = if ctx.req.query_param("revoked").is_some() {
        Some("devices-revoked")
    } else if ctx.req.query_param("saved").is_some() {
        Some("account-profile-saved")
    } else if let Some(n) = ctx.req.query_param("password") {
        Some(if n == "kept" {
            "account-password-changed"
        } else {
            "account-password-changed-others"
        })
    } else {
        ctx.req.query_param("welcome").map(|_| "account-welcome")
    };
    page(ctx, StatusCode::OK, notice, Refused::default()).await
}

async fn page(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    notice: Option<&'static str>,
    refused: Refused,
) -> PageResult {
    let id = ctx.member()?;
    let policy =
        crate::auth::devices::policy_for(ctx.app, &id.user_id, id.org.as_ref().map(|m| &m.org))
            .await?;
    let sessions = ctx.app.store.sessions_of(&id.user_id, ctx.now).await?;
    // The saved language is not part of the cached identity: read it here.
    let user = ctx.app.store.user_by_id(&id.user_id).await?;
    let lang = user
        .and_then(|u| u.lang)
        .and_then(|l| Lang::parse(&l))
        .map_or("", Lang::code);
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
        lang,
        profile_error: refused.profile,
        password_problems: refused.password,
        rules: rules(ctx),
    };
    Ok(render::page(status, &page))
}

/// The profile form: display name and preferred language. A new language also becomes
/// this browser's, so the page answers in it at once.
pub async fn profile(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.member()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let (ip, now) = (ctx.req.client_ip, ctx.now);
    let lang = f.get("lang");
    let refusal =
        match account::change_profile(ctx.app, &id.user_id, f.get("name"), lang, ip, now).await? {
            ProfileChanged::Done => {
                let back = Reply::see_other(&format!(
                    "{}#profile",
                    Route::Account.with_query(&[("saved", "1")])
                ));
                return Ok(match Lang::parse(lang) {
                    Some(l) => back.with_cookie(ctx.app.cookies.set_lang(l.code())),
                    None => back,
                });
            }
            ProfileChanged::BadName => "account-name-invalid",
            ProfileChanged::BadLang => "account-lang-invalid",
            ProfileChanged::Gone => return Err(PageError::NotFound),
        };
    let refused = Refused {
        profile: Some(ctx.lang().tr().get(refusal)),
        ..Refused::default()
    };
    page(ctx, StatusCode::BAD_REQUEST, None, refused).await
}

/// The password form: the current password, the new one twice, and whether to sign out
/// the other devices.
pub async fn password(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.member()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let change_ends_others = f.get("end_others") == "1";
    let change = PasswordChange {
        user: &id.user_id,
        session: &id.session_id,
        device: &id.device_id,
        current: f.get("current_password"),
        password: f.get("password"),
        confirm: f.get("confirm"),
        end_others: change_ends_others,
        browser: crate::auth::NewSession {
            device: id.device_id.clone(),
            level: id.level,
            ..ctx.browser()
        },
        ip: ctx.req.client_ip,
        now: ctx.now,
    };
    let t = ctx.lang().tr();
    let (status, problems) = match account::change_password(ctx.app, change).await? {
        PasswordChanged::Done { token, .. } => {
            let which = if change_ends_others { "others" } else { "kept" };
            let url = Route::Account.with_query(&[("password", which)]);
            return Ok(Reply::see_other(&format!("{url}#password"))
                .with_cookie(ctx.session_cookie(&token)));
        }
        PasswordChanged::Invalid(list) => (StatusCode::BAD_REQUEST, problems(ctx, &list)),
        PasswordChanged::WrongCurrent => (
            StatusCode::UNAUTHORIZED,
            vec![t.get("account-password-wrong")],
        ),
        PasswordChanged::Locked => {
            let failed = Event::LoginFailed { email: &id.email };
            failed.emit(&Actor::Visitor(ctx.req.client_ip), ctx.now);
            return Ok(super::account_twofactor::signed_out_locked(ctx));
        }
        PasswordChanged::IpBlocked(until) => return Err(PageError::IpBlocked { until }),
        PasswordChanged::Gone => return Err(PageError::NotFound),
    };
    if status == StatusCode::UNAUTHORIZED {
        let failed = Event::LoginFailed { email: &id.email };
        failed.emit(&Actor::Visitor(ctx.req.client_ip), ctx.now);
    }
    let refused = Refused {
        password: problems,
        ..Refused::default()
    };
    page(ctx, status, None, refused).await
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
