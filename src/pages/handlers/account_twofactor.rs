//! `/_vigile/account/2fa`: the member's second factors. Everything here needs the
//! password typed again (valid [`UNLOCK_MS`] for this session): a session alone (a stolen
//! cookie) must not be able to add its own factor or remove the member's.

use http::StatusCode;

use super::twofactor::{enrol_view, run_enrol, EnrolResult};
use super::{Ctx, PageResult};
use crate::audit::{Actor, Event};
use crate::auth::reauth::{self, Reauth};
use crate::auth::twofactor::enrol::{self, Removed};
use crate::auth::twofactor::load;
use crate::auth::twofactor::step::{self, Purpose, SecondStep};
use crate::pages::render;
use crate::pages::twofactor_page::{AccountTwoFactorPage, FactorRow};
use crate::pages::PageError;
use crate::routes::Route;
use crate::store::User;

/// How long a typed password opens the page.
const UNLOCK_MS: i64 = 10 * 60_000;

/// The member, and this session's step (created when missing).
async fn member(ctx: &Ctx<'_, '_>) -> Result<(String, u64, SecondStep, User), PageError> {
    let id = ctx.member()?;
    let Some(user) = ctx.app.store.user_by_id(&id.user_id).await? else {
        return Err(PageError::LoginRequired {
            here: Route::AccountTwoFactor.path().into(),
        });
    };
    let key = step::key_for_session(&id.session_id);
    if let Some((version, s)) = step::get(ctx.app, &key, ctx.now).await? {
        return Ok((key, version, s, user));
    }
    let purpose = Purpose::Account {
        session: id.session_id.clone(),
    };
    let rd = Route::AccountTwoFactor.path();
    let s = SecondStep::new(&user.id, purpose, rd, ctx.now);
    let version = step::start(ctx.app, &key, &s, ctx.now).await?;
    Ok((key, version, s, user))
}

/// Whether opening the page also needs a second factor: the member has one and this
/// session never passed it.
async fn needs_factor(ctx: &Ctx<'_, '_>, user: &User) -> Result<bool, PageError> {
    let level = ctx.member()?.level;
    if level >= crate::store::AuthLevel::SecondFactor {
        return Ok(false);
    }
    let (_, factors) = load(ctx.app, &user.id, ctx.now).await?;
    Ok(factors.any())
}

/// The second factor was passed to open the security page of `session`.
pub(super) async fn unlocked_by_second_factor(
    ctx: &Ctx<'_, '_>,
    session: &crate::store::SessionId,
) -> Result<(), PageError> {
    let key = step::key_for_session(session);
    if let Some((version, mut s)) = step::get(ctx.app, &key, ctx.now).await? {
        s.unlocked_until = Some(ctx.now + UNLOCK_MS);
        step::put(ctx.app, &key, version, &s, ctx.now).await?;
    }
    Ok(())
}

fn unlocked(s: &SecondStep, now: i64) -> bool {
    s.unlocked_until.is_some_and(|until| now < until)
}

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    let (key, _, s, user) = member(ctx).await?;
    render_page(ctx, &key, &s, &user, None, None, Vec::new(), StatusCode::OK).await
}

#[allow(clippy::too_many_arguments)]
async fn render_page(
    ctx: &Ctx<'_, '_>,
    key: &str,
    s: &SecondStep,
    user: &User,
    notice: Option<String>,
    error: Option<String>,
    recovery_codes: Vec<String>,
    status: StatusCode,
) -> PageResult {
    let t = ctx.lang().tr();
    let locked = !unlocked(s, ctx.now);
    let (_, factors) = load(ctx.app, &user.id, ctx.now).await?;
    let factors_rows = factors
        .list
        .iter()
        .map(|f| {
            let m = crate::config::FactorMethod::as_str(f.method());
            FactorRow {
                id: f.id.clone(),
                method: m,
                label: t.get(&format!("twofa-method-{m}")),
                name: f.name.clone(),
                added: super::devices::when(f.added_at),
                last_used: f.last_used.map(super::devices::when).unwrap_or_default(),
            }
        })
        .collect();
    let page = AccountTwoFactorPage {
        c: ctx.chrome(Route::AccountTwoFactor.path()),
        notice,
        error,
        locked,
        factors: factors_rows,
        recovery_left: t.with(
            "twofa-recovery-left",
            &[("count", factors.recovery.len().to_string())],
        ),
        recovery_codes,
        trusted: factors.trusted.iter().filter(|x| ctx.now < x.until).count(),
        enrol: enrol_view(ctx, key, s, user, Route::AccountTwoFactor).await?,
    };
    Ok(render::page(status, &page))
}

pub async fn post(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let (key, version, mut s, user) = member(ctx).await?;
    let t = ctx.lang().tr();
    let action = f.get("action");
    if action == "unlock" {
        return unlock(ctx, &key, version, s, user, f.get("password")).await;
    }
    if !unlocked(&s, ctx.now) {
        let error = Some(t.get("twofa-unlock-first"));
        return render_page(
            ctx,
            &key,
            &s,
            &user,
            None,
            error,
            Vec::new(),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let (app, now) = (ctx.app, ctx.now);
    let (notice, error, codes, status) = match action {
        "remove" => match enrol::remove(app, &user, f.get("id"), now).await? {
            Removed::Removed(_) => (Some(t.get("twofa-removed")), None, vec![], StatusCode::OK),
            Removed::LastRequired => (
                None,
                Some(t.get("twofa-last-required")),
                vec![],
                StatusCode::CONFLICT,
            ),
            Removed::Missing => (None, None, vec![], StatusCode::OK),
        },
        "rename" => {
            enrol::rename(app, &user, f.get("id"), f.get("name"), now).await?;
            (Some(t.get("twofa-renamed")), None, vec![], StatusCode::OK)
        }
        "recovery" => {
            let keys = app.twofactor_keys().await?;
            match enrol::regenerate(app, keys, &user, now).await? {
                Some(codes) => (None, None, codes, StatusCode::OK),
                None => (
                    None,
                    Some(t.get("twofa-unavailable")),
                    vec![],
                    StatusCode::CONFLICT,
                ),
            }
        }
        "untrust" => {
            crate::auth::twofactor::untrust(app, &user.id, None, now).await?;
            (Some(t.get("twofa-untrusted")), None, vec![], StatusCode::OK)
        }
        a if a.starts_with("enrol-") || a.starts_with("confirm-") => {
            match run_enrol(ctx, &key, &user, a, &f).await? {
                EnrolResult::Added(codes) => {
                    (Some(t.get("twofa-added")), None, codes, StatusCode::OK)
                }
                EnrolResult::Shown => (None, None, vec![], StatusCode::OK),
                EnrolResult::Webauthn(options) => {
                    let (_, s) = step::get(app, &key, now).await?.unwrap_or((0, s.clone()));
                    let mut page_s = s;
                    page_s.enrolling = None;
                    return webauthn_page(ctx, &key, &page_s, &user, options).await;
                }
                EnrolResult::Message(text, status) => (None, Some(text), vec![], status),
            }
        }
        _ => return Err(PageError::NotFound),
    };
    if let Some((_, fresh)) = step::get(app, &key, now).await? {
        s = fresh;
    }
    render_page(ctx, &key, &s, &user, notice, error, codes, status).await
}

/// The page with the passkey registration ceremony on it.
async fn webauthn_page(
    ctx: &Ctx<'_, '_>,
    key: &str,
    s: &SecondStep,
    user: &User,
    options: String,
) -> PageResult {
    let t = ctx.lang().tr();
    let (_, factors) = load(ctx.app, &user.id, ctx.now).await?;
    let mut enrol = enrol_view(ctx, key, s, user, Route::AccountTwoFactor).await?;
    enrol.webauthn = Some(options);
    enrol.choices.clear();
    let page = AccountTwoFactorPage {
        c: ctx.chrome(Route::AccountTwoFactor.path()),
        notice: None,
        error: None,
        locked: false,
        factors: Vec::new(),
        recovery_left: t.with(
            "twofa-recovery-left",
            &[("count", factors.recovery.len().to_string())],
        ),
        recovery_codes: Vec::new(),
        trusted: 0,
        enrol,
    };
    Ok(render::page(StatusCode::OK, &page))
}

/// Too many wrong passwords typed in this session: it was ended and its device locked
/// (see [`reauth`]); the browser forgets the session.
pub(super) fn signed_out_locked(ctx: &Ctx<'_, '_>) -> crate::pages::Reply {
    let link = Some((Route::PasswordForgot.path(), "login-forgot"));
    ctx.message(
        StatusCode::UNAUTHORIZED,
        "reauth-locked-title",
        "reauth-locked",
        link,
    )
    .with_cookie(ctx.app.cookies.clear_session())
}

/// The password typed again (counted like a login attempt, see [`reauth`]).
async fn unlock(
    ctx: &Ctx<'_, '_>,
    key: &str,
    version: u64,
    mut s: SecondStep,
    user: User,
    password: &str,
) -> PageResult {
    let t = ctx.lang().tr();
    let id = ctx.member()?;
    let ip = ctx.req.client_ip;
    let session = (&id.session_id, &id.device_id);
    let error = match reauth::password_again(ctx.app, &user, session, ip, password, ctx.now).await?
    {
        Reauth::Right if needs_factor(ctx, &user).await? => {
            // The password is right; the factor this session never proved comes next.
            let id = ctx.member()?;
            let purpose = Purpose::Unlock {
                session: id.session_id.clone(),
            };
            let here = Route::AccountTwoFactor.path();
            let unlock = SecondStep::new(&user.id, purpose, here, ctx.now);
            let device_key = step::key_for_device(&ctx.device);
            step::start(ctx.app, &device_key, &unlock, ctx.now).await?;
            return Ok(crate::pages::Reply::see_other(Route::TwoFactor.path()));
        }
        Reauth::Right => {
            s.unlocked_until = Some(ctx.now + UNLOCK_MS);
            step::put(ctx.app, key, version, &s, ctx.now).await?;
            let ok = StatusCode::OK;
            return render_page(ctx, key, &s, &user, None, None, Vec::new(), ok).await;
        }
        Reauth::IpBlocked(until) => return Err(PageError::IpBlocked { until }),
        Reauth::Wrong => t.get("twofa-bad-password"),
        Reauth::Locked => return Ok(signed_out_locked(ctx)),
    };
    let failed = Event::LoginFailed { email: &user.email };
    failed.emit(&Actor::Visitor(ip), ctx.now);
    let status = StatusCode::UNAUTHORIZED;
    render_page(ctx, key, &s, &user, None, Some(error), Vec::new(), status).await
}
