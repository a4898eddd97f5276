//! Small pages: language switch, static assets, the developer mail outbox.

use http::StatusCode;

use super::Ctx;
use crate::i18n::Lang;
use crate::pages::render::{self, DevMailPage};
use crate::pages::{rd, Reply};

pub fn lang(ctx: &Ctx<'_, '_>, code: &str) -> Reply {
    let Some(lang) = Lang::parse(code) else {
        return ctx.message(
            StatusCode::NOT_FOUND,
            "not-found-title",
            "not-found-message",
            Some(("/", "back-home")),
        );
    };
    let target = rd::or_home(ctx.req.query_param("rd").as_deref());
    Reply::see_other(&target).with_cookie(ctx.app.cookies.set_lang(lang.code()))
}

const CSS: &str = include_str!("../../../templates/static/vigile.css");

pub fn static_file(name: &str, lang: Lang) -> Reply {
    match name {
        "vigile.css" => Reply::new(StatusCode::OK, "text/css; charset=utf-8", CSS)
            .with_header(http::header::CACHE_CONTROL, "public, max-age=3600".into()),
        _ => render::message(
            StatusCode::NOT_FOUND,
            lang,
            "not-found-title",
            "not-found-message",
            None,
        ),
    }
}

/// Mails the gateway would have sent, for `vigile demo` and `dev_mode`. Mail sending
/// arrives with signup; until then the outbox is empty and says so.
pub fn dev_mail(ctx: &Ctx<'_, '_>) -> Reply {
    let page = DevMailPage {
        c: ctx.chrome("/_vigile/dev/mail"),
        mails: ctx.app.mailer.dev_outbox(),
    };
    render::page(StatusCode::OK, &page)
}
