//! Small pages: language switch, static assets, the developer mail outbox.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::i18n::Lang;
use crate::pages::render::{self, DevMailPage, DevSmsPage};
use crate::pages::{rd, Reply};
use crate::routes::Route;

pub fn lang(ctx: &Ctx<'_, '_>, lang: Lang) -> Reply {
    let target = rd::or_home(ctx.req.query_param("rd").as_deref());
    Reply::see_other(&target).with_cookie(ctx.app.cookies.set_lang(lang.code()))
}

const CSS: &str = include_str!("../../../templates/static/vigile.css");

const PASSKEYS_JS: &str = include_str!("../../../templates/static/passkeys.js");

pub fn passkeys_script() -> Reply {
    Reply::new(
        StatusCode::OK,
        "text/javascript; charset=utf-8",
        PASSKEYS_JS,
    )
    .with_header(http::header::CACHE_CONTROL, "public, max-age=3600".into())
}

pub fn stylesheet() -> Reply {
    Reply::new(StatusCode::OK, "text/css; charset=utf-8", CSS)
        .with_header(http::header::CACHE_CONTROL, "public, max-age=3600".into())
}

/// Mails the gateway would have sent, for `vigile demo` and `dev_mode`. Mail sending
/// arrives with signup; until then the outbox is empty and says so.
/// Text messages the gateway sent (demo and `dev_mode`), newest first.
pub fn dev_sms(ctx: &Ctx<'_, '_>) -> PageResult {
    let page = DevSmsPage {
        c: ctx.chrome(Route::DevSms.path()),
        texts: ctx.app.mailer.dev_sms(),
    };
    Ok(render::page(StatusCode::OK, &page))
}

pub fn dev_mail(ctx: &Ctx<'_, '_>) -> PageResult {
    let page = DevMailPage {
        c: ctx.chrome(Route::DevMail.path()),
        mails: ctx.app.mailer.dev_outbox(),
    };
    Ok(render::page(StatusCode::OK, &page))
}
