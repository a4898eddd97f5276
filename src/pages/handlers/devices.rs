//! The device cap's pages: the code (`verify`), the choice (`devices/choose`), giving up
//! (`devices/cancel`), and the member's own device list on the account page (revoke one,
//! sign out everywhere else).

use http::StatusCode;

use super::account::signed_in;
use super::Ctx;
use crate::auth::devices::{self, Chosen, Resent};
use crate::auth::{FlowError, NewSession};
use crate::i18n::Lang;
use crate::pages::forms::{ChoosePage, DeviceRow, VerifyPage};
use crate::pages::{rd, render, Reply};
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

/// This browser, for a session opened from a page.
fn browser<'a>(ctx: &'a Ctx<'_, '_>) -> NewSession<'a> {
    NewSession {
        device: ctx.device.clone(),
        ip: ctx.req.client_ip.to_string(),
        user_agent: ctx.req.user_agent(),
        previous_token: ctx.req.cookies.session.as_deref(),
        now: ctx.now,
    }
}

/// No pending login for this device (expired, finished, or never): 410 and a way back.
fn gone(ctx: &Ctx<'_, '_>) -> Reply {
    ctx.message(
        StatusCode::GONE,
        "verify-title",
        "verify-gone",
        Some(("/_vigile/login", "login-title")),
    )
}

fn verify_form(ctx: &Ctx<'_, '_>, status: StatusCode, error: Option<String>) -> Reply {
    let notice = ctx.req.query_param("resent").map(|_| "verify-resent");
    let page = VerifyPage {
        c: ctx.chrome("/_vigile/verify"),
        error,
        notice,
    };
    render::page(status, &page)
}

pub async fn verify_get(ctx: &Ctx<'_, '_>) -> Reply {
    match ctx.app.store.challenge_get(&ctx.device, ctx.now).await {
        Ok(None) => gone(ctx),
        Ok(Some(ch)) if ch.verified => {
            Reply::redirect(StatusCode::FOUND, "/_vigile/devices/choose")
        }
        Ok(Some(_)) => verify_form(ctx, StatusCode::OK, None),
        Err(e) => ctx.flow_failed(&e.into()),
    }
}

pub async fn verify_post(ctx: &Ctx<'_, '_>) -> Reply {
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let code: String = f
        .get("code")
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(16)
        .collect();
    match devices::verify(ctx.app, &ctx.device, &code, ctx.now).await {
        Ok(CodeCheck::Verified(_)) => Reply::see_other("/_vigile/devices/choose"),
        Ok(CodeCheck::Wrong { left }) => {
            let text = ctx
                .lang()
                .tr()
                .with("verify-wrong", &[("left", left.to_string())]);
            verify_form(ctx, StatusCode::UNAUTHORIZED, Some(text))
        }
        Ok(CodeCheck::Exhausted) => ctx.message(
            StatusCode::UNAUTHORIZED,
            "verify-title",
            "verify-exhausted",
            Some(("/_vigile/login", "login-title")),
        ),
        Ok(CodeCheck::Missing) => gone(ctx),
        Err(e) => ctx.flow_failed(&e),
    }
}

pub async fn resend(ctx: &Ctx<'_, '_>) -> Reply {
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    match devices::resend(ctx.app, &browser(ctx)).await {
        Ok(Resent::Sent) => Reply::see_other("/_vigile/verify?resent=1"),
        Ok(Resent::TooMany) => ctx
            .message(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-title",
                "verify-too-many",
                None,
            )
            .with_header(http::header::RETRY_AFTER, "3600".into()),
        Ok(Resent::Missing) => gone(ctx),
        Err(e) => ctx.flow_failed(&e),
    }
}

pub async fn cancel(ctx: &Ctx<'_, '_>) -> Reply {
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    match devices::cancel(ctx.app, &ctx.device).await {
        Ok(()) => ctx.message(
            StatusCode::OK,
            "choose-title",
            "devices-cancelled",
            Some(("/_vigile/login", "login-title")),
        ),
        Err(e) => ctx.flow_failed(&e),
    }
}

/// The choice page for this device's verified login, or why there is none.
async fn choose_page(ctx: &Ctx<'_, '_>, status: StatusCode, error: Option<String>) -> Reply {
    let now = ctx.now;
    let found = async {
        let Some((_, user)) = devices::verified(ctx.app, &ctx.device, now).await? else {
            return Ok::<_, FlowError>(None);
        };
        let policy = devices::policy_for(ctx.app, &user.id).await?;
        let sessions = ctx.app.store.sessions_of(&user.id, now).await?;
        Ok(Some((policy, sessions)))
    };
    let (policy, sessions) = match found.await {
        Ok(Some(found)) => found,
        Ok(None) => return verify_get(ctx).await,
        Err(e) => return ctx.flow_failed(&e),
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
        c: ctx.chrome("/_vigile/devices/choose"),
        intro,
        devices: rows(&others, None, ctx.lang()),
        excess,
        error,
    };
    render::page(status, &page)
}

pub async fn choose_get(ctx: &Ctx<'_, '_>) -> Reply {
    choose_page(ctx, StatusCode::OK, None).await
}

pub async fn choose_post(ctx: &Ctx<'_, '_>) -> Reply {
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let victims: Vec<SessionId> = f
        .all("session")
        .into_iter()
        .take(64)
        .map(SessionId::from_string)
        .collect();
    match devices::choose(ctx.app, browser(ctx), &victims).await {
        Ok(Chosen::Started {
            token,
            user,
            rd,
            ended,
        }) => {
            ctx.app.metrics.logins.with_label_values(&["success"]).inc();
            tracing::info!(target: "audit", event = "device_replaced", user = %user.id, ip = %ctx.req.client_ip, sessions = ?ended, "member replaced a device");
            Reply::see_other(&rd::or_home(Some(&rd))).with_cookie(ctx.session_cookie(&token))
        }
        Ok(Chosen::StillFull) => {
            let text = ctx.lang().tr().get("choose-more");
            choose_page(ctx, StatusCode::CONFLICT, Some(text)).await
        }
        Ok(Chosen::Missing) => gone(ctx),
        Err(e) => ctx.flow_failed(&e),
    }
}

/// "Sign out" on one of the member's other devices.
pub async fn revoke(ctx: &Ctx<'_, '_>) -> Reply {
    let id = match signed_in(ctx, "/_vigile/account") {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let target = SessionId::from_string(f.get("session"));
    if target == id.session_id {
        return Reply::see_other("/_vigile/account#devices");
    }
    match devices::end_session(ctx.app, &id.user_id, &target, SignedOut::Revoked, ctx.now).await {
        Ok(ended) => {
            if ended {
                tracing::info!(target: "audit", event = "device_revoked", user = %id.user_id, ip = %ctx.req.client_ip, session = %target, "member signed out one of their devices");
            }
            Reply::see_other("/_vigile/account?revoked=1#devices")
        }
        Err(e) => ctx.flow_failed(&e.into()),
    }
}

/// "Sign out everywhere else".
pub async fn others(ctx: &Ctx<'_, '_>) -> Reply {
    let id = match signed_in(ctx, "/_vigile/account") {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let f = ctx.req.form();
    if !ctx.csrf_ok(f.get("csrf")) {
        return ctx.csrf_failed();
    }
    let now = ctx.now;
    let store = &ctx.app.store;
    let result = async {
        let mut n = 0;
        for s in store.sessions_of(&id.user_id, now).await? {
            if s.id != id.session_id
                && devices::end_session(ctx.app, &id.user_id, &s.id, SignedOut::Revoked, now)
                    .await?
            {
                n += 1;
            }
        }
        Ok::<_, crate::store::StoreError>(n)
    };
    match result.await {
        Ok(n) => {
            tracing::info!(target: "audit", event = "devices_revoked", user = %id.user_id, ip = %ctx.req.client_ip, count = n, "member signed out every other device");
            Reply::see_other("/_vigile/account?revoked=1#devices")
        }
        Err(e) => ctx.flow_failed(&e.into()),
    }
}
