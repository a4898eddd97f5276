//! The two "mail me a link" forms, forgot password and resend activation: one address
//! field, the same answer whether or not the address has an account (the per-address work
//! runs after the answer), and a rate limit.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::auth::signup::Problem;
use crate::auth::{reset, signup};
use crate::edge::email::Email;
use crate::pages::forms::EmailFormPage;
use crate::pages::{render, PageError, Reply};
use crate::routes::Route;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LinkForm {
    /// `password/forgot`: mails a reset link.
    Forgot,
    /// `activate/resend`: mails a new activation link.
    Resend,
}

/// A form's route and catalog keys: title, intro, button, then the "sent" page.
struct Texts {
    route: Route,
    title: &'static str,
    intro: &'static str,
    submit: &'static str,
    sent_title: &'static str,
    sent_message: &'static str,
}

impl LinkForm {
    fn texts(self) -> Texts {
        match self {
            LinkForm::Forgot => Texts {
                route: Route::PasswordForgot,
                title: "forgot-title",
                intro: "forgot-intro",
                submit: "forgot-submit",
                sent_title: "forgot-sent-title",
                sent_message: "forgot-sent-message",
            },
            LinkForm::Resend => Texts {
                route: Route::ActivateResend,
                title: "resend-title",
                intro: "resend-intro",
                submit: "resend-submit",
                sent_title: "resend-sent-title",
                sent_message: "resend-sent-message",
            },
        }
    }

    fn form(
        self,
        ctx: &Ctx<'_, '_>,
        status: StatusCode,
        email: String,
        error: Option<String>,
    ) -> Reply {
        let t = self.texts();
        let mut c = ctx.chrome(t.route.path());
        if self == LinkForm::Forgot {
            c = c.with_support(&ctx.app.config);
        }
        let page = EmailFormPage {
            c,
            title: t.title,
            intro: t.intro,
            submit: t.submit,
            action: t.route.path(),
            email,
            error,
            note: self.note(ctx),
        };
        render::page(status, &page)
    }

    /// Recovery links go to confirmed addresses only: the forgot form says so (its
    /// "Contact us" line says where to write without one).
    fn note(self, ctx: &Ctx<'_, '_>) -> Option<String> {
        (self == LinkForm::Forgot).then(|| ctx.lang().tr().get("contact-recovery"))
    }

    /// The empty form, or prefilled from `?email=`.
    pub fn get(self, ctx: &Ctx<'_, '_>) -> PageResult {
        let email = ctx.req.query_param("email").unwrap_or_default();
        Ok(self.form(ctx, StatusCode::OK, email, None))
    }

    /// Queues the mail (or nothing, for an address without an account) and says it was
    /// sent; a string that is not an address gets the form again saying why (such a
    /// string can have no account: the page reveals nothing).
    pub async fn post(self, ctx: &Ctx<'_, '_>) -> PageResult {
        let f = ctx.req.form();
        ctx.check_csrf(f.get("csrf"))?;
        let raw = f.get("email");
        let email = match Email::parse(raw) {
            Ok(email) => email,
            Err(e) => {
                let problem = Problem::BadEmail(e).text(&ctx.lang().tr());
                let typed = raw.chars().take(254).collect();
                return Ok(self.form(ctx, StatusCode::BAD_REQUEST, typed, Some(problem)));
            }
        };
        let (deps, ip, now) = (&ctx.app.deps, ctx.req.client_ip, ctx.now);
        match self {
            LinkForm::Forgot => reset::forgot(deps, &email, ip, now).await?,
            LinkForm::Resend => signup::resend_activation(deps, &email, ip, now).await?,
        }
        .map_err(PageError::too_many)?;
        let t = self.texts();
        let mut text = ctx.lang().tr().get(t.sent_message);
        if let Some(note) = self.note(ctx) {
            text.push(' ');
            text.push_str(&note);
        }
        let page = match self {
            LinkForm::Forgot => render::message_with_support,
            LinkForm::Resend => render::message_text,
        };
        Ok(page(
            StatusCode::OK,
            ctx.lang(),
            &ctx.app.config,
            t.sent_title,
            text,
            Some((Route::Login.path(), "back-to-login")),
        ))
    }
}
