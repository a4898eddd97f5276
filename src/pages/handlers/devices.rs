//! The device cap's pages: the code (`verify`), the choice (`devices/choose`), giving up
//! (`devices/cancel`), and the member's own device list on the account page (revoke one,
//! sign out everywhere else).

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::audit::{Actor, Event};
use crate::auth::devices::{self, Chosen, Resent};
use crate::auth::limits::RetryAfter;
use crate::auth::FlowError;
use crate::i18n::Lang;
use crate::pages::forms::{ChoosePage, DeviceRow, VerifyPage};
use crate::pages::{rd, render, PageError, Reply};
use crate::routes::Route;
use crate::store::{CodeCheck, Millis, SessionId, SessionRecord, SignedOut};

/// "2026-12-01 09:14 UTC".
pub(super) fn when(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} UTC", s.get(..16).unwrap_or(&s).replace('T', " "))
}

/// The rows of a device list, in `lang`; `current` marks this browser's session.
pub(super) fn rows(
    sessions: &[SessionRecord],
    current: Option<&SessionId>,
    lang: Lang,
) -> Vec<DeviceRow> {
    sessions
        .iter()
        .map(|s| {
            let kind = crate::auth::device_label::label(&s.user_agent).kind;
            DeviceRow {
                id: s.id.to_string(),
                label: devices::describe(&s.user_agent, lang),
                kind: match kind.as_str() {
                    "phone" => "device-phone",
                    "tablet" => "device-tablet",
                    _ => "device-computer",
                },
                ip: s.ip.clone(),
                since: when(s.created_at),
                last_seen: when(s.last_seen),
                current: Some(&s.id) == current,
            }
        })
        .collect()
}

/// No pending login for this device (expired, finished, or never): 410 and a way back.
const GONE: PageError = PageError::Gone {
    title: "verify-title",
    message: "verify-gone",
    next: (Route::Login, "login-title"),
};

fn verify_form(ctx: &Ctx<'_, '_>, status: StatusCode, error: Option<String>) -> Reply {
    let notice = ctx.req.query_param("resent").map(|_| "verify-resent");
    let page = VerifyPage {
        c: ctx.chrome(Route::Verify.path()),
        error,
        notice,
    };
    render::page(status, &page)
}

pub async fn verify_get(ctx: &Ctx<'_, '_>) -> PageResult {
    match ctx.app.store.challenge_get(&ctx.device, ctx.now).await? {
        None => Err(GONE),
        Some(ch) if ch.verified => Ok(Reply::redirect(
            StatusCode::FOUND,
            Route::DevicesChoose.path(),
        )),
        Some(_) => Ok(verify_form(ctx, StatusCode::OK, None)),
    }
}

pub async fn verify_post(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let code: String = f
        .get("code")
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(16)
        .collect();
    Ok(
        match devices::verify(ctx.app, &ctx.device, &code, ctx.now).await? {
            CodeCheck::Verified(_) => Reply::see_other(Route::DevicesChoose.path()),
            CodeCheck::Wrong { left } => {
                let text = ctx
                    .lang()
                    .tr()
                    .with("verify-wrong", &[("left", left.to_string())]);
                verify_form(ctx, StatusCode::UNAUTHORIZED, Some(text))
            }
            CodeCheck::Exhausted => ctx.message(
                StatusCode::UNAUTHORIZED,
                "verify-title",
                "verify-exhausted",
                Some((Route::Login.path(), "login-title")),
            ),
            CodeCheck::Missing => return Err(GONE),
        },
    )
}

pub async fn resend(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    match devices::resend(ctx.app, &ctx.browser()).await? {
        Resent::Sent => Ok(Reply::see_other(
            &Route::Verify.with_query(&[("resent", "1")]),
        )),
        Resent::TooMany => Err(PageError::TooMany {
            retry: RetryAfter(3600),
            message: "verify-too-many",
        }),
        Resent::Missing => Err(GONE),
    }
}

pub async fn cancel(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    devices::cancel(ctx.app, &ctx.device).await?;
    Ok(ctx.message(
        StatusCode::OK,
        "choose-title",
        "devices-cancelled",
        Some((Route::Login.path(), "login-title")),
    ))
}

/// The choice page for this device's verified login, or why there is none.
async fn choose_page(ctx: &Ctx<'_, '_>, status: StatusCode, error: Option<String>) -> PageResult {
    let now = ctx.now;
    let found = async {
        let Some((_, user)) = devices::verified(ctx.app, &ctx.device, now).await? else {
            return Ok::<_, FlowError>(None);
        };
        let policy = devices::policy_for(ctx.app, &user.id, devices::org_of(&user)).await?;
        let sessions = ctx.app.store.sessions_of(&user.id, now).await?;
        Ok(Some((policy, sessions)))
    };
    let Some((policy, sessions)) = found.await? else {
        return verify_get(ctx).await;
    };
    // This device's own sessions are replaced anyway: they are not offered.
    let others: Vec<SessionRecord> = sessions
        .into_iter()
        .filter(|s| s.device_id != ctx.device)
        .collect();
    let max = usize::try_from(policy.max).unwrap_or(usize::MAX);
    let excess = (others.len() + 1).saturating_sub(max).max(1);
    let intro = ctx.lang().tr().with(
        "choose-intro",
        &[
            ("max", policy.max.to_string()),
            ("count", excess.to_string()),
        ],
    );
    let page = ChoosePage {
        c: ctx.chrome(Route::DevicesChoose.path()),
        intro,
        devices: rows(&others, None, ctx.lang()),
        excess,
        error,
    };
    Ok(render::page(status, &page))
}

pub async fn choose_get(ctx: &Ctx<'_, '_>) -> PageResult {
    choose_page(ctx, StatusCode::OK, None).await
}

pub async fn choose_post(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let victims: Vec<SessionId> = f
        .all("session")
        .into_iter()
        .take(64)
        .map(SessionId::from_string)
        .collect();
    match devices::choose(ctx.app, ctx.browser(), &victims).await? {
        Chosen::Started {
            token,
            user,
            rd,
            ended,
        } => {
            ctx.app.metrics.logins.with_label_values(&["success"]).inc();
            let replaced = Event::DeviceReplaced {
                user: &user.id,
                sessions: &ended,
            };
            replaced.emit(&Actor::Visitor(ctx.req.client_ip), ctx.now);
            let rd = rd::or_home(Some(&rd));
            Ok(ctx.signed_in(StatusCode::SEE_OTHER, &user, &rd, &token))
        }
        Chosen::StillFull => {
            let text = ctx.lang().tr().get("choose-more");
            choose_page(ctx, StatusCode::CONFLICT, Some(text)).await
        }
        Chosen::Missing => Err(GONE),
    }
}

/// "Sign out" on one of the member's other devices.
pub async fn revoke(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.member()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let target = SessionId::from_string(f.get("session"));
    if target == id.session_id {
        return Ok(Reply::see_other(&format!("{}#devices", Route::Account)));
    }
    if devices::end_session(ctx.app, &id.user_id, &target, SignedOut::Revoked, ctx.now).await? {
        let event = Event::DeviceRevoked {
            user: &id.user_id,
            session: &target,
        };
        event.emit(&Actor::Visitor(ctx.req.client_ip), ctx.now);
    }
    Ok(revoked())
}

/// Back to the account's device list, saying it worked.
fn revoked() -> Reply {
    let url = Route::Account.with_query(&[("revoked", "1")]);
    Reply::see_other(&format!("{url}#devices"))
}

/// "Sign out everywhere else".
pub async fn others(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.member()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let n = devices::end_others(ctx.app, &id.user_id, &id.session_id, ctx.now).await?;
    let event = Event::DevicesRevoked {
        user: &id.user_id,
        count: n,
    };
    event.emit(&Actor::Visitor(ctx.req.client_ip), ctx.now);
    Ok(revoked())
}
