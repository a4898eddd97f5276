//! `/_vigile/contact`: a member confirms their email and mobile (flows in
//! `auth::contact`). Offered after a sign-in when something is asked of them; never
//! blocking ("Later" goes on). Also the mailed link (`?token=`), which confirms without a
//! session, in whatever browser the mail app opens.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::auth::contact::{self as flow, Checked, Sent, Target};
use crate::edge::code::Code;
use crate::edge::email::Email;
use crate::edge::phone::Phone;
use crate::pages::contact_page::{ChannelView, ContactLinkPage, ContactPage};
use crate::pages::{rd, render, PageError, Reply};
use crate::routes::Route;
use crate::store::{Channel, User, UserId};

/// What a refused post shows again on the page.
#[derive(Default)]
struct Shown {
    /// The typed value of the refused field, kept.
    typed: Option<(Channel, String)>,
    /// A refusal beside the address or number field.
    error: Option<(Channel, String)>,
    /// A refusal beside a code field.
    code_error: Option<(Channel, String)>,
    /// A refusal beside the password (changing the login address).
    password_error: Option<String>,
}

impl Shown {
    fn code(channel: Channel, why: String) -> Self {
        Shown {
            code_error: Some((channel, why)),
            ..Shown::default()
        }
    }

    fn field(channel: Channel, why: String) -> Self {
        Shown {
            error: Some((channel, why)),
            ..Shown::default()
        }
    }
}

async fn account(ctx: &Ctx<'_, '_>, id: &UserId) -> Result<User, PageError> {
    // Signed in, but the account is gone (removed a moment ago): sign in again.
    ctx.app
        .store
        .user_by_id(id)
        .await?
        .ok_or(PageError::LoginRequired {
            here: Route::Contact.path().to_string(),
        })
}

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    if let Some(token) = ctx.req.query_param("token") {
        return link(ctx, &token).await;
    }
    let id = ctx.member()?;
    let user = account(ctx, &id.user_id).await?;
    flow::seen(ctx.app, &user, ctx.now).await?;
    let rd = rd::or_home(ctx.req.query_param("rd").as_deref());
    let t = ctx.lang().tr();
    let notice = match (
        ctx.req.query_param("sent").as_deref(),
        ctx.req.query_param("confirmed").as_deref(),
    ) {
        (_, Some("email")) => Some(t.get("contact-email-confirmed")),
        (_, Some("mobile")) => Some(t.get("contact-mobile-confirmed")),
        _ => None,
    };
    page(ctx, &user, StatusCode::OK, rd, Shown::default(), notice).await
}

/// The mailed link: confirms that address, whoever opens it.
async fn link(ctx: &Ctx<'_, '_>, token: &str) -> PageResult {
    let visitor = ctx.req.visitor.identity().map(|id| &id.user_id);
    match flow::confirm_link(ctx.app, token, visitor, ctx.req.client_ip, ctx.now).await? {
        Checked::Confirmed { user, .. } => {
            let page = ContactLinkPage {
                c: ctx.chrome(Route::Contact.path()),
                done: ctx
                    .lang()
                    .tr()
                    .with("contact-link-done", &[("email", user.email.clone())]),
            };
            Ok(render::page(StatusCode::OK, &page))
        }
        Checked::Taken => Ok(ctx.message(
            StatusCode::CONFLICT,
            "contact-link-title",
            "contact-email-taken",
            Some((Route::Contact.path(), "contact-back")),
        )),
        Checked::SignIn => Err(PageError::LoginRequired {
            here: Route::Contact.with_query(&[("token", token)]),
        }),
        Checked::OtherAccount => Ok(ctx.message(
            StatusCode::FORBIDDEN,
            "contact-link-title",
            "contact-link-other",
            None,
        )),
        Checked::Wrong { .. } | Checked::Gone => Err(PageError::Gone {
            title: "contact-link-title",
            message: "contact-link-gone",
            next: (Route::Contact, "contact-back"),
        }),
    }
}

pub async fn send(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.member()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let rd = rd::or_home(Some(f.get("rd")));
    let user = account(ctx, &id.user_id).await?;
    let t = ctx.lang().tr();
    let channel = Channel::parse(f.get("channel")).ok_or(PageError::NotFound)?;
    let raw = f.get(channel.as_str());
    let target = match channel {
        Channel::Email => Email::parse(raw)
            .map(Target::Email)
            .map_err(|e| t.get(e.key())),
        Channel::Mobile => Phone::parse_mobile(raw, ctx.app.config.phone_region)
            .map(Target::Mobile)
            .map_err(|e| t.get(e.key())),
    };
    let target = match target {
        Ok(target) => target,
        Err(why) => {
            let shown = Shown {
                typed: Some((channel, raw.chars().take(254).collect())),
                ..Shown::field(channel, why)
            };
            return page(ctx, &user, StatusCode::BAD_REQUEST, rd, shown, None).await;
        }
    };
    let password = f.get("password");
    let sent = flow::send_code(ctx.app, &user, &target, password, ctx.lang(), ctx.now).await?;
    let kept = |why: String| Shown {
        typed: Some((channel, raw.chars().take(254).collect())),
        ..Shown::field(channel, why)
    };
    match sent {
        Sent::Sent => Ok(Reply::see_other(
            &Route::Contact.with_query(&[("rd", &rd), ("sent", channel.as_str())]),
        )),
        Sent::TooMany(retry) => Err(PageError::TooMany {
            retry,
            message: "contact-too-many",
        }),
        Sent::NoSms => {
            let shown = kept(t.get("contact-no-sms"));
            page(ctx, &user, StatusCode::SERVICE_UNAVAILABLE, rd, shown, None).await
        }
        Sent::Country => {
            let shown = kept(t.get("contact-country"));
            page(ctx, &user, StatusCode::BAD_REQUEST, rd, shown, None).await
        }
        Sent::BadPassword => {
            let shown = Shown {
                typed: Some((channel, raw.chars().take(254).collect())),
                password_error: Some(t.get("contact-password-wrong")),
                ..Shown::default()
            };
            page(ctx, &user, StatusCode::BAD_REQUEST, rd, shown, None).await
        }
    }
}

pub async fn confirm(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.member()?;
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let rd = rd::or_home(Some(f.get("rd")));
    let channel = Channel::parse(f.get("channel")).ok_or(PageError::NotFound)?;
    let t = ctx.lang().tr();
    let user = account(ctx, &id.user_id).await?;
    let Some(code) = Code::parse(f.get("code")) else {
        // Not a code at all: no try is counted.
        let shown = Shown::code(channel, t.get("code-format"));
        return page(ctx, &user, StatusCode::BAD_REQUEST, rd, shown, None).await;
    };
    let checked = flow::confirm_code(
        ctx.app,
        &id.user_id,
        channel,
        &code,
        ctx.req.client_ip,
        ctx.now,
    )
    .await?;
    let (status, shown) = match checked {
        Checked::Confirmed { .. } => {
            return Ok(Reply::see_other(
                &Route::Contact.with_query(&[("rd", &rd), ("confirmed", channel.as_str())]),
            ))
        }
        Checked::Wrong { left: 0 } => (
            StatusCode::BAD_REQUEST,
            Shown::code(channel, t.get("contact-code-spent")),
        ),
        Checked::Wrong { left } => {
            let text = t.with("contact-code-wrong", &[("left", left.to_string())]);
            (StatusCode::BAD_REQUEST, Shown::code(channel, text))
        }
        // Only the mailed link answers these.
        Checked::Gone | Checked::SignIn | Checked::OtherAccount => (
            StatusCode::GONE,
            Shown::field(channel, t.get("contact-code-gone")),
        ),
        Checked::Taken => (
            StatusCode::CONFLICT,
            Shown::field(channel, t.get("contact-email-taken")),
        ),
    };
    page(ctx, &user, status, rd, shown, None).await
}

async fn page(
    ctx: &Ctx<'_, '_>,
    user: &User,
    status: StatusCode,
    rd: String,
    shown: Shown,
    notice: Option<String>,
) -> PageResult {
    let file = &ctx.app.config.file;
    let t = ctx.lang().tr();
    let wanted = flow::wanted(file, user);
    let asked = flow::asked(file, user);
    let store = &ctx.app.store;
    let minutes = file.contact.code_ttl.as_secs().div_ceil(60).to_string();
    let view = |channel: Channel, current: String, pending: Option<String>| {
        let pick = |o: &Option<(Channel, String)>| {
            o.as_ref()
                .filter(|(c, _)| *c == channel)
                .map(|(_, s)| s.clone())
        };
        let value = pick(&shown.typed)
            .or_else(|| pending.clone())
            .unwrap_or(current);
        ChannelView {
            value,
            confirmed: user.contact.confirmed(channel).is_some(),
            pending: pending.map(|to| {
                t.with(
                    "contact-code-sent",
                    &[("to", to), ("minutes", minutes.clone())],
                )
            }),
            asked: wanted.has(channel),
            error: pick(&shown.error),
            code_error: pick(&shown.code_error),
        }
    };
    let pending_email = store
        .contact_code_get(&user.id, Channel::Email, ctx.now)
        .await?
        .map(|c| c.value);
    let email = view(Channel::Email, user.email.clone(), pending_email);
    let show_mobile = wanted.mobile
        || user.contact.mobile.is_some()
        || (file.contact.ask_mobile && ctx.app.config.sms_delivers);
    let mobile = if show_mobile {
        let pending = store
            .contact_code_get(&user.id, Channel::Mobile, ctx.now)
            .await?
            .map(|c| c.value);
        let current = user.contact.mobile.clone().unwrap_or_default();
        Some(view(Channel::Mobile, current, pending))
    } else {
        None
    };
    let recovery = ctx.recovery_note();
    let here = Route::Contact.with_query(&[("rd", &rd)]);
    let page = ContactPage {
        c: ctx.chrome(&here),
        rd,
        password_error: shown.password_error.clone(),
        email,
        mobile,
        notice,
        done: asked.is_empty() && (!wanted.is_empty() || user.contact.email_confirmed.is_some()),
        recovery,
    };
    Ok(render::page(status, &page))
}
