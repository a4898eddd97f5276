//! `/_vigile/admin/member?email=`: one member as admins see it: their contact state
//! (address and mobile, confirmed or not, when and how), their signed-in devices (each
//! can be signed out) and their own device cap, which overrides the site's.

use http::StatusCode;

use super::admin::parse_cap;
use super::{Ctx, PageResult};
use crate::auth::admin::{self as actions, Admin, Sessions};
use crate::edge::email::Email;
use crate::i18n::Tr;
use crate::pages::forms::{AdminMemberPage, ContactView};
use crate::pages::{render, Reply};
use crate::routes::Route;
use crate::store::{Confirmed, Contact, SessionId, StoreError, Via};

/// Whether and when a channel was confirmed, and how, in the reader's language.
fn confirmation(t: Tr, confirmed: Option<Confirmed>) -> String {
    let Some(c) = confirmed else {
        return t.get("member-unconfirmed");
    };
    let how = match c.via {
        // Recorded before confirmations were: no date to give.
        Via::Before => return t.get("member-confirmed-before"),
        Via::Activation => "member-via-activation",
        Via::Registration => "member-via-registration",
        Via::Invitation => "member-via-invitation",
        Via::Link => "member-via-link",
        Via::Code => "member-via-code",
        Via::Admin => "member-via-admin",
    };
    let args = [("when", super::devices::when(c.at)), ("via", t.get(how))];
    t.with("member-confirmed-on", &args)
}

fn contact_view(t: Tr, contact: &Contact) -> ContactView {
    ContactView {
        email_state: confirmation(t, contact.email_confirmed),
        email_confirmed: contact.email_confirmed.is_some(),
        mobile: contact.mobile.clone(),
        mobile_state: confirmation(t, contact.mobile_confirmed),
        mobile_confirmed: contact.mobile.is_some() && contact.mobile_confirmed.is_some(),
    }
}

/// Security events shown on a member's page (the rest: Security events, filtered).
const RECENT_EVENTS: usize = 10;

/// The member's page, or "no such member" (also for a string that is not an address).
async fn page(
    ctx: &Ctx<'_, '_>,
    email: Option<&Email>,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&'static str>,
) -> PageResult {
    let store = &ctx.app.store;
    let now = ctx.now;
    let found = async {
        let Some(email) = email else {
            return Ok(None);
        };
        let Some(user) = store.user_by_email(email.as_str()).await? else {
            return Ok::<_, StoreError>(None);
        };
        let own = store.member_cap(&user.id).await?;
        let settings = store.settings_get().await?;
        let sessions = store.sessions_of(&user.id, now).await?;
        Ok(Some((user, own, settings, sessions)))
    };
    let Some((user, own, settings, sessions)) = found.await? else {
        return Ok(ctx.message(
            StatusCode::NOT_FOUND,
            "admin-member-title",
            "admin-no-member",
            Some((Route::AdminMembers.path(), "console-members")),
        ));
    };
    let (_, factors) = crate::auth::twofactor::load(ctx.app, &user.id, now).await?;
    let failures = store
        .attempts_of(crate::store::AttemptKey::Account(&user.email))
        .await?;
    let max = ctx.app.config.file.lockout.account_max_failures;
    let recent = crate::auth::events::recent(ctx.app, &user.id, RECENT_EVENTS).await?;
    let t = ctx.lang().tr();
    let names: Vec<String> = factors
        .list
        .iter()
        .map(|f| {
            t.get(&format!(
                "twofa-method-{}",
                crate::config::FactorMethod::as_str(f.method())
            ))
        })
        .collect();
    let page = AdminMemberPage {
        nav: crate::pages::console::Nav::new(crate::pages::console::Section::Members),
        factors: if names.is_empty() {
            t.get("twofa-none-short")
        } else {
            names.join(", ")
        },
        has_factors: factors.any() || !factors.recovery.is_empty(),
        c: ctx.chrome(&Route::AdminMember.with_query(&[("email", &user.email)])),
        own_cap: own.map(|c| c.to_string()).unwrap_or_default(),
        site_cap: crate::auth::devices::site_policy(&settings, &ctx.app.config.file.sessions).max,
        devices: super::devices::rows(&sessions, None, ctx.lang()),
        failures,
        locked: crate::auth::lockout::is_locked(failures, max),
        events: crate::pages::console_events::rows(recent),
        contact: contact_view(t, &user.contact),
        email: user.email,
        notice,
        error,
    };
    Ok(render::page(status, &page))
}

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    let email = Email::parse(&ctx.req.query_param("email").unwrap_or_default()).ok();
    let notice = match ctx.req.query_param("done").as_deref() {
        Some("cap") => Some("admin-saved"),
        Some("revoked") => Some("admin-device-revoked"),
        Some("2fa") => Some("admin-2fa-reset-done"),
        _ => None,
    };
    page(ctx, email.as_ref(), StatusCode::OK, notice, None).await
}

fn back(email: &Email, done: &str) -> PageResult {
    Ok(Reply::see_other(
        &Route::AdminMember.with_query(&[("email", email.as_str()), ("done", done)]),
    ))
}

/// Sets (or, empty, removes) the member's own cap.
pub async fn cap(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.admin()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let email = Email::parse(f.get("email")).ok();
    let raw = f.get("cap").trim();
    let cap = if raw.is_empty() {
        None
    } else {
        match parse_cap(raw) {
            Some(n) => Some(n),
            None => {
                return page(
                    ctx,
                    email.as_ref(),
                    StatusCode::BAD_REQUEST,
                    None,
                    Some("admin-bad-number"),
                )
                .await
            }
        }
    };
    let Some(email) = email else {
        return page(ctx, None, StatusCode::NOT_FOUND, None, None).await;
    };
    let by = Admin::Page {
        user: &id.user_id,
        ip: ctx.req.client_ip,
    };
    match actions::set_member_cap(&ctx.app.store, by, &email, cap, ctx.now).await? {
        Some(_) => back(&email, "cap"),
        None => page(ctx, Some(&email), StatusCode::NOT_FOUND, None, None).await,
    }
}

/// Signs one of the member's devices out.
pub async fn revoke(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.admin()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let Ok(email) = Email::parse(f.get("email")) else {
        return page(ctx, None, StatusCode::NOT_FOUND, None, None).await;
    };
    let session = SessionId::from_string(f.get("session"));
    let by = Admin::Page {
        user: &id.user_id,
        ip: ctx.req.client_ip,
    };
    // Already gone, or no such member: either way the member's page shows what is left.
    let which = Sessions::One(&session);
    actions::revoke(ctx.app, by, &email, which, ctx.now).await?;
    back(&email, "revoked")
}

/// Removes the member's second factors (they lost their phone); they are mailed.
pub async fn twofactor_reset(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.admin()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let Ok(email) = Email::parse(f.get("email")) else {
        return page(ctx, None, StatusCode::NOT_FOUND, None, None).await;
    };
    let by = Admin::Page {
        user: &id.user_id,
        ip: ctx.req.client_ip,
    };
    match actions::twofactor_reset(ctx.app, by, &email, ctx.now).await? {
        Some(_) => back(&email, "2fa"),
        None => page(ctx, Some(&email), StatusCode::NOT_FOUND, None, None).await,
    }
}
