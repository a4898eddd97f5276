//! `/_vigile/register`: a company registers itself in three steps (flows in
//! `auth::orgs::register`). Step 1 mails a link; the link (`?token=`) opens step 2 in any
//! browser; steps 2 and 3 post back here with the token, step 3 carrying step 2's values
//! as hidden fields (checked again before anything is created).

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::auth::orgs::register::{self as flow, Completed, Completion, LinkOutcome, LinkRequest};
use crate::auth::orgs::{CompanyForm, PersonForm, Refused};
use crate::config::OrgRegistration;
use crate::edge::email::Email;
use crate::i18n::Lang;
use crate::pages::fields::Fields;
use crate::pages::org_pages::RegisterPage;
use crate::pages::{render, Form, PageError, Reply};
use crate::routes::Route;

const COMPANY_FIELDS: [&str; 5] = ["company", "id_type", "id_number", "phone", "address"];

/// The page saying registration is closed, when it is.
fn closed(ctx: &Ctx<'_, '_>) -> Option<Reply> {
    (ctx.app.config.file.orgs.registration == OrgRegistration::Closed).then(|| {
        ctx.message(
            StatusCode::FORBIDDEN,
            "register-closed-title",
            "register-closed-message",
            Some((Route::Login.path(), "login-title")),
        )
    })
}

fn gone() -> PageError {
    PageError::Gone {
        title: "register-link-invalid-title",
        message: "register-link-invalid-message",
        next: (Route::Register, "register-again"),
    }
}

struct Step<'a> {
    step: u8,
    f: Fields,
    token: &'a str,
    email: String,
    lang: Lang,
}

fn render_step(ctx: &Ctx<'_, '_>, status: StatusCode, s: Step<'_>) -> Reply {
    let t = ctx.lang().tr();
    let page = RegisterPage {
        c: ctx.chrome(Route::Register.path()),
        step: s.step,
        step_text: t.with("register-step", &[("step", s.step.to_string())]),
        f: s.f,
        token: s.token.to_string(),
        email: s.email,
        lang: s.lang.code(),
        rules: super::signup::rules(ctx),
    };
    render::page(status, &page)
}

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    if let Some(reply) = closed(ctx) {
        return Ok(reply);
    }
    let Some(token) = ctx.req.query_param("token") else {
        let step = Step {
            step: 1,
            f: Fields::default(),
            token: "",
            email: String::new(),
            lang: ctx.lang(),
        };
        return Ok(render_step(ctx, StatusCode::OK, step));
    };
    let Some(email) = flow::link_email(ctx.app, &token, ctx.now).await? else {
        return Err(gone());
    };
    let mut f = Fields::default();
    f.set("id_type", "siret");
    let step = Step {
        step: 2,
        f,
        token: &token,
        email,
        lang: ctx.lang(),
    };
    Ok(render_step(ctx, StatusCode::OK, step))
}

pub async fn post(ctx: &Ctx<'_, '_>) -> PageResult {
    let form = ctx.req.form();
    ctx.check_csrf(form.get("csrf"))?;
    if let Some(reply) = closed(ctx) {
        return Ok(reply);
    }
    match form.get("step") {
        "2" => step2(ctx, &form).await,
        "3" => step3(ctx, &form).await,
        _ => step1(ctx, &form).await,
    }
}

async fn step1(ctx: &Ctx<'_, '_>, form: &Form) -> PageResult {
    let input = LinkRequest {
        email: Email::parse(form.get("email")),
        confirm: form.get("email_confirm"),
        lang: ctx.lang(),
        ip: ctx.req.client_ip,
        now: ctx.now,
    };
    match flow::request_link(ctx.app, input).await? {
        LinkOutcome::CheckYourMail => Ok(ctx.message(
            StatusCode::OK,
            "register-sent-title",
            "register-sent-message",
            None,
        )),
        LinkOutcome::Invalid(refused) => {
            let f = Fields::keep(form, &["email", "email_confirm"]);
            let step = Step {
                step: 1,
                f: f.refuse(&refused, &ctx.lang().tr()),
                token: "",
                email: String::new(),
                lang: ctx.lang(),
            };
            Ok(render_step(ctx, StatusCode::BAD_REQUEST, step))
        }
        // The configuration cannot change within a request: `post` answered already.
        LinkOutcome::Closed => Err(PageError::NotFound),
        LinkOutcome::TooMany(retry) => Err(PageError::too_many(retry)),
    }
}

/// The company fields of step 2 (and of the profile form on the organisation page).
pub(super) fn company_form(form: &Form) -> CompanyForm<'_> {
    CompanyForm {
        company: form.get("company"),
        id_type: form.get("id_type"),
        id_number: form.get("id_number"),
        phone: form.get("phone"),
        address: form.get("address"),
    }
}

async fn step2(ctx: &Ctx<'_, '_>, form: &Form) -> PageResult {
    let token = form.get("token");
    let Some(email) = flow::link_email(ctx.app, token, ctx.now).await? else {
        return Err(gone());
    };
    let f = Fields::keep(form, &COMPANY_FIELDS);
    let (step, status, f) = match flow::company(ctx.app, &company_form(form)) {
        Ok(profile) => {
            // Step 3 carries the values as the store will keep them (E.164 phone...).
            let mut f = f;
            f.set("company", profile.company);
            f.set("id_type", profile.id_type);
            f.set("id_number", profile.id_number);
            f.set("phone", profile.phone);
            f.set("address", profile.address);
            (3, StatusCode::OK, f)
        }
        Err(refused) => (
            2,
            StatusCode::BAD_REQUEST,
            f.refuse(&refused, &ctx.lang().tr()),
        ),
    };
    let step = Step {
        step,
        f,
        token,
        email,
        lang: ctx.lang(),
    };
    Ok(render_step(ctx, status, step))
}

async fn step3(ctx: &Ctx<'_, '_>, form: &Form) -> PageResult {
    let token = form.get("token");
    let lang = Lang::parse(form.get("lang")).unwrap_or(ctx.lang());
    let input = Completion {
        token,
        company: company_form(form),
        person: PersonForm {
            first_name: form.get("first_name"),
            last_name: form.get("last_name"),
            password: form.get("password"),
            confirm: form.get("confirm"),
        },
        lang,
        browser: ctx.browser(),
    };
    let again = |step: u8, refused: &[Refused], email: String| -> PageResult {
        let mut names = COMPANY_FIELDS.to_vec();
        names.extend(["first_name", "last_name"]);
        let f = Fields::keep(form, &names).refuse(refused, &ctx.lang().tr());
        Ok(render_step(
            ctx,
            StatusCode::BAD_REQUEST,
            Step {
                step,
                f,
                token,
                email,
                lang,
            },
        ))
    };
    match flow::complete(ctx.app, input).await? {
        Completed::SignedIn { token, user, .. } => {
            ctx.app.metrics.logins.with_label_values(&["success"]).inc();
            Ok(ctx.signed_in(StatusCode::SEE_OTHER, &user, Route::Org.path(), &token))
        }
        Completed::Company(refused) => again(2, &refused, String::new()),
        Completed::Person(refused) => {
            // The address is shown read-only again: it is the link's.
            let email = flow::link_email(ctx.app, token, ctx.now).await?;
            again(3, &refused, email.unwrap_or_default())
        }
        Completed::LinkGone => Err(gone()),
        Completed::EmailTaken => Ok(ctx.message(
            StatusCode::CONFLICT,
            "register-taken-title",
            "register-taken-message",
            Some((Route::Login.path(), "login-title")),
        )),
    }
}
