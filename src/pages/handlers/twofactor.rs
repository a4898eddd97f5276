//! `/_vigile/2fa`: the second step of a login (after the password, before the device cap
//! and before any session opens) and of a step-up (a signed-in member reaching a path that
//! needs the second factor). A member who must have a factor and has none enrols here.

use http::StatusCode;

use super::{Ctx, PageResult};
use crate::auth::twofactor::enrol::{self, Answer, Enrolled};
use crate::auth::twofactor::step::{self, Passed, Purpose, SecondStep};
use crate::auth::twofactor::verify::{self, Attempt, Checked, Presented, Sent};
use crate::auth::twofactor::{channel_ready, load};
use crate::auth::{open_for, LoginOutcome};
use crate::config::FactorMethod;
use crate::pages::render;
use crate::pages::twofactor_page::{EnrolView, TwoFactorPage};
use crate::pages::{rd, PageError, Reply};
use crate::routes::Route;
use crate::store::{AuthLevel, User};

/// Longest code looked at (passkey responses: the passkeys module's own bound).
const MAX_CODE: usize = 64;
const MAX_RESPONSE: usize = crate::auth::passkeys::MAX_RESPONSE_BYTES;

/// The step this browser has waiting, and its member; a signed-in member reaching here
/// with `rd` starts a step-up.
async fn current(ctx: &Ctx<'_, '_>) -> Result<Option<(String, u64, SecondStep, User)>, PageError> {
    let key = step::key_for_device(&ctx.device);
    let mut found = verify_step(ctx, &key).await?;
    if found.is_none() {
        if let Ok(id) = ctx.member() {
            let wanted = rd::or_home(ctx.req.query_param("rd").as_deref());
            let purpose = Purpose::StepUp {
                session: id.session_id.clone(),
            };
            let s = SecondStep::new(&id.user_id, purpose, &wanted, ctx.now);
            step::start(ctx.app, &key, &s, ctx.now).await?;
            found = verify_step(ctx, &key).await?;
        }
    }
    let Some((mut version, mut s)) = found else {
        return Ok(None);
    };
    // A later step-up asks for another page: the latest one is where the member goes.
    if let (Purpose::StepUp { .. }, Some(wanted)) = (&s.purpose, ctx.req.query_param("rd")) {
        let wanted = rd::or_home(Some(&wanted));
        if wanted != s.rd && *ctx.req.method == http::Method::GET {
            s.rd = wanted;
            if step::put(ctx.app, &key, version, &s, ctx.now).await? {
                version += 1;
            }
        }
    }
    let Some(user) = ctx.app.store.user_by_id(&s.user_id).await? else {
        return Ok(None);
    };
    Ok(Some((key, version, s, user)))
}

/// The step under `key`, if it belongs to this browser's state: a step-up only while its
/// session is the one signed in here.
async fn verify_step(ctx: &Ctx<'_, '_>, key: &str) -> Result<Option<(u64, SecondStep)>, PageError> {
    let Some((version, s)) = step::get(ctx.app, key, ctx.now).await? else {
        return Ok(None);
    };
    let signed_in = ctx.req.visitor.identity().map(|i| &i.session_id);
    let valid = match &s.purpose {
        Purpose::Login { .. } => true,
        Purpose::StepUp { session } | Purpose::Unlock { session } => signed_in == Some(session),
        Purpose::Account { .. } => false,
    };
    Ok(valid.then_some((version, s)))
}

/// Whether `/2fa` may enrol a first factor: only in a login (the password was just typed)
/// of a member who has none.
fn may_enrol_here(s: &SecondStep, has_factor: bool) -> bool {
    matches!(s.purpose, Purpose::Login { .. }) && !has_factor
}

fn to_login() -> Reply {
    Reply::see_other(Route::Login.path())
}

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    if let Some(id) = ctx.req.visitor.identity() {
        if id.level == AuthLevel::SecondFactor {
            let rd = rd::or_home(ctx.req.query_param("rd").as_deref());
            return Ok(Reply::redirect(StatusCode::FOUND, &rd));
        }
    }
    let Some((key, _, s, user)) = current(ctx).await? else {
        return Ok(to_login());
    };
    let wanted = ctx.req.query_param("method");
    show(
        ctx,
        &key,
        &s,
        &user,
        wanted.as_deref(),
        None,
        None,
        StatusCode::OK,
    )
    .await
}

/// The page for the step: passed (continue), enrolment, or the chosen method's form.
#[allow(clippy::too_many_arguments)]
async fn show(
    ctx: &Ctx<'_, '_>,
    key: &str,
    s: &SecondStep,
    user: &User,
    wanted: Option<&str>,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> PageResult {
    let t = ctx.lang().tr();
    let file = &ctx.app.config.file;
    let (_, factors) = load(ctx.app, &user.id, ctx.now).await?;
    let usable = factors.usable(file, user);
    let trust_days = file.twofactor.trusted_device.as_secs() / 86_400;
    let mut page = TwoFactorPage {
        c: ctx.chrome(Route::TwoFactor.path()),
        notice,
        error,
        passed: s.passed.is_some(),
        recovery_codes: Vec::new(),
        enrol: None,
        method: "totp",
        code_label: String::new(),
        code_sent: false,
        passkey_options: None,
        others: Vec::new(),
        trust_days,
        trust_label: t.with("twofa-trust", &[("days", trust_days.to_string())]),
    };
    if page.passed {
        return Ok(render::page(status, &page));
    }
    let recovery = !factors.recovery.is_empty();
    if usable.is_empty() {
        if may_enrol_here(s, factors.any()) {
            page.enrol = Some(enrol_view(ctx, key, s, user, Route::TwoFactor).await?);
            return Ok(render::page(status, &page));
        }
        if !factors.any() {
            // A signed-in member without a factor adds one on the security page, which
            // asks for the password again.
            return Ok(ctx.message(
                StatusCode::FORBIDDEN,
                "twofa-title",
                "twofa-stepup-enrol",
                Some((Route::AccountTwoFactor.path(), "twofa-account-title")),
            ));
        }
        if !recovery {
            // Factors this member cannot use now (a channel no longer confirmed, a method
            // the site stopped offering) and no recovery code: an admin resets them.
            return Ok(ctx.message(
                StatusCode::CONFLICT,
                "twofa-title",
                "twofa-stuck",
                Some((Route::AccountTwoFactor.path(), "twofa-account-title")),
            ));
        }
    }
    let method = match wanted {
        Some("recovery") if recovery => "recovery",
        Some(w) => FactorMethod::parse(w)
            .filter(|m| usable.contains(m))
            .map_or(
                usable
                    .first()
                    .map_or("recovery", |m| FactorMethod::as_str(*m)),
                FactorMethod::as_str,
            ),
        None => usable
            .first()
            .map_or("recovery", |m| FactorMethod::as_str(*m)),
    };
    page.method = method;
    page.code_label = t.get(match method {
        "recovery" => "twofa-recovery-code",
        "totp" => "twofa-totp-code",
        _ => "twofa-code",
    });
    page.code_sent = s
        .code
        .as_ref()
        .is_some_and(|c| FactorMethod::as_str(c.method) == method && ctx.now < c.expires_at);
    if method == "webauthn" {
        page.passkey_options = verify::passkey_options(ctx.app, key, user, ctx.now).await?;
    }
    page.others = usable
        .iter()
        .map(|m| FactorMethod::as_str(*m))
        .chain(recovery.then_some("recovery"))
        .filter(|m| *m != method)
        .map(|m| (m, t.get(&format!("twofa-use-{m}"))))
        .collect();
    Ok(render::page(status, &page))
}

/// The enrolment forms: what is in progress, and the methods this member may add.
pub async fn enrol_view(
    ctx: &Ctx<'_, '_>,
    key: &str,
    s: &SecondStep,
    user: &User,
    action: Route,
) -> Result<EnrolView, PageError> {
    use crate::auth::twofactor::step::Enrolling;
    let t = ctx.lang().tr();
    let file = &ctx.app.config.file;
    let keys = ctx.app.twofactor_keys().await?;
    let mut view = EnrolView {
        action,
        choices: Vec::new(),
        totp: None,
        webauthn: None,
        code_method: None,
    };
    match &s.enrolling {
        Some(Enrolling::Totp { .. }) => {
            view.totp = enrol::shown_totp(ctx.app, keys, key, user, ctx.now).await?;
        }
        Some(Enrolling::Email) if s.code.is_some() => view.code_method = Some("email"),
        Some(Enrolling::Sms) if s.code.is_some() => view.code_method = Some("sms"),
        _ => {}
    }
    for m in FactorMethod::ALL {
        let possible = match m {
            FactorMethod::Webauthn => ctx.app.passkeys.is_some(),
            FactorMethod::Email | FactorMethod::Sms => {
                verify::target_of(ctx.app, user, m).is_some()
            }
            FactorMethod::Totp => true,
        };
        if possible && channel_ready(file, user, m) {
            let name = FactorMethod::as_str(m);
            let action = match m {
                FactorMethod::Totp => "enrol-totp",
                FactorMethod::Webauthn => "enrol-webauthn",
                FactorMethod::Email => "enrol-email",
                FactorMethod::Sms => "enrol-sms",
            };
            view.choices
                .push((action, t.get(&format!("twofa-enrol-{name}"))));
        }
    }
    Ok(view)
}

pub async fn post(ctx: &Ctx<'_, '_>) -> PageResult {
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let Some((key, version, s, user)) = current(ctx).await? else {
        return Ok(to_login());
    };
    let t = ctx.lang().tr();
    let method = f.get("method");
    match f.get("action") {
        "continue" if s.passed.is_some() => finish(ctx, &key, version, s, user).await,
        "verify" => {
            let presented = match (method, FactorMethod::parse(method)) {
                ("recovery", _) => Presented::Recovery(f.get("code")),
                (_, Some(FactorMethod::Webauthn)) => Presented::Passkey(f.get("response")),
                (_, Some(m)) => Presented::Code(m, f.get("code")),
                (_, None) => return Err(PageError::NotFound),
            };
            let too_long = match presented {
                Presented::Passkey(r) => r.len() > MAX_RESPONSE,
                Presented::Code(_, c) | Presented::Recovery(c) => c.len() > MAX_CODE,
            };
            let attempt = Attempt {
                key: &key,
                device: &ctx.device,
                ip: ctx.req.client_ip,
                trust: f.get("trust") == "1",
                now: ctx.now,
            };
            let keys = ctx.app.twofactor_keys().await?;
            let checked = if too_long {
                Checked::Wrong
            } else {
                verify::check(ctx.app, keys, attempt, presented).await?
            };
            match checked {
                Checked::Passed {
                    step,
                    version,
                    user,
                    ..
                } => finish(ctx, &key, version, *step, *user).await,
                Checked::Wrong | Checked::Replayed => {
                    let error = t.get(if matches!(checked, Checked::Replayed) {
                        "twofa-replayed"
                    } else {
                        "twofa-wrong"
                    });
                    let (s, user) = refreshed(ctx, &key, s, user).await?;
                    let wanted = Some(method);
                    show(
                        ctx,
                        &key,
                        &s,
                        &user,
                        wanted,
                        None,
                        Some(error),
                        StatusCode::UNAUTHORIZED,
                    )
                    .await
                }
                Checked::Locked(lock) => Ok(render::error(
                    StatusCode::UNAUTHORIZED,
                    ctx.lang(),
                    &ctx.app.config,
                    "twofa-title",
                    super::login::lock_message(lock),
                    Some((Route::Login.path(), "twofa-cancel")),
                )),
                Checked::IpBlocked { until } => Err(PageError::IpBlocked { until }),
                Checked::Gone => Ok(to_login()),
            }
        }
        "send" => {
            let Some(m) = FactorMethod::parse(method)
                .filter(|m| matches!(m, FactorMethod::Email | FactorMethod::Sms))
            else {
                return Err(PageError::NotFound);
            };
            let (_, factors) = load(ctx.app, &user.id, ctx.now).await?;
            let notice = if factors.usable(&ctx.app.config.file, &user).contains(&m) {
                match verify::send(ctx.app, &key, &user, m, ctx.lang(), ctx.now).await? {
                    Sent::Sent => t.get("twofa-code-sent"),
                    Sent::TooMany(retry) => {
                        return Err(PageError::TooMany {
                            retry,
                            message: "twofa-too-many",
                        })
                    }
                    Sent::Unavailable | Sent::Gone => t.get("twofa-unavailable"),
                }
            } else {
                t.get("twofa-unavailable")
            };
            let (s, user) = refreshed(ctx, &key, s, user).await?;
            show(
                ctx,
                &key,
                &s,
                &user,
                Some(method),
                Some(notice),
                None,
                StatusCode::OK,
            )
            .await
        }
        action if action.starts_with("enrol-") || action.starts_with("confirm-") => {
            // Enrolling here is for a login whose member has no factor at all: with one
            // (even one unusable now), the password alone must never add another, and a
            // session alone (step-up) never: that goes through the security page, which
            // asks the password again.
            let (_, factors) = load(ctx.app, &user.id, ctx.now).await?;
            if !may_enrol_here(&s, factors.any()) || s.passed.is_some() {
                return Err(PageError::Forbidden);
            }
            enrol_action(ctx, &key, s, user, action, &f).await
        }
        _ => Err(PageError::NotFound),
    }
}

/// The step and member read again after a change.
async fn refreshed(
    ctx: &Ctx<'_, '_>,
    key: &str,
    s: SecondStep,
    user: User,
) -> Result<(SecondStep, User), PageError> {
    let now = step::get(ctx.app, key, ctx.now).await?.map(|(_, s)| s);
    Ok((now.unwrap_or(s), user))
}

/// An enrolment action on `/2fa` or `/account/2fa`; `Ok(Some(codes))` when a factor was
/// added (the recovery codes to show, empty if not the first).
pub async fn run_enrol(
    ctx: &Ctx<'_, '_>,
    key: &str,
    user: &User,
    action: &str,
    f: &crate::pages::Form,
) -> Result<EnrolResult, PageError> {
    let t = ctx.lang().tr();
    let keys = ctx.app.twofactor_keys().await?;
    let (app, now) = (ctx.app, ctx.now);
    let unavailable = || EnrolResult::Message(t.get("twofa-unavailable"), StatusCode::CONFLICT);
    Ok(match action {
        "enrol-totp" => match enrol::start_totp(app, keys, key, user, now).await? {
            Some(_) => EnrolResult::Shown,
            None => unavailable(),
        },
        "enrol-webauthn" => match enrol::start_webauthn(app, key, user, now).await? {
            Some(options) => EnrolResult::Webauthn(options),
            None => unavailable(),
        },
        "enrol-email" | "enrol-sms" => {
            let m = if action == "enrol-sms" {
                FactorMethod::Sms
            } else {
                FactorMethod::Email
            };
            match enrol::start_code(app, key, user, m, ctx.lang(), now).await? {
                Sent::Sent => EnrolResult::Shown,
                Sent::TooMany(retry) => {
                    return Err(PageError::TooMany {
                        retry,
                        message: "twofa-too-many",
                    })
                }
                Sent::Unavailable | Sent::Gone => unavailable(),
            }
        }
        "confirm-totp" | "confirm-code" | "confirm-webauthn" => {
            let passkey = action == "confirm-webauthn";
            let (value, max) = if passkey {
                (f.get("response"), MAX_RESPONSE)
            } else {
                (f.get("code"), MAX_CODE)
            };
            if value.len() > max {
                let wrong = t.get("twofa-wrong");
                return Ok(EnrolResult::Message(wrong, StatusCode::BAD_REQUEST));
            }
            let answer = if passkey {
                Answer::Passkey(value)
            } else {
                Answer::Code(value)
            };
            match enrol::confirm(app, keys, key, user, answer, f.get("name"), now).await? {
                Enrolled::Added { recovery, .. } => {
                    EnrolResult::Added(recovery.unwrap_or_default())
                }
                Enrolled::Wrong => {
                    EnrolResult::Message(t.get("twofa-wrong"), StatusCode::UNAUTHORIZED)
                }
                Enrolled::Gone => {
                    EnrolResult::Message(t.get("twofa-expired"), StatusCode::CONFLICT)
                }
            }
        }
        _ => return Err(PageError::NotFound),
    })
}

pub enum EnrolResult {
    /// The enrolment in progress is on the page now (seed, code form).
    Shown,
    /// Passkey registration options to render.
    Webauthn(String),
    /// Added; the recovery codes to show once (empty: not the first factor).
    Added(Vec<String>),
    /// Refused or failed, with the status to answer.
    Message(String, StatusCode),
}

async fn enrol_action(
    ctx: &Ctx<'_, '_>,
    key: &str,
    s: SecondStep,
    user: User,
    action: &str,
    f: &crate::pages::Form,
) -> PageResult {
    let result = run_enrol(ctx, key, &user, action, f).await?;
    let (mut s, user) = refreshed(ctx, key, s, user).await?;
    match result {
        EnrolResult::Added(codes) => {
            // Enrolled at login: that is the second factor proven; recovery codes are
            // shown once, then "Continue" opens the session.
            let Some((version, _)) = step::get(ctx.app, key, ctx.now).await? else {
                return Ok(to_login());
            };
            s.passed = Some(Passed { trust: false });
            if !step::put(ctx.app, key, version, &s, ctx.now).await? {
                return Ok(to_login());
            }
            let mut page = passed_page(ctx);
            page.recovery_codes = codes;
            Ok(render::page(StatusCode::OK, &page))
        }
        EnrolResult::Shown => show(ctx, key, &s, &user, None, None, None, StatusCode::OK).await,
        EnrolResult::Webauthn(options) => {
            let mut view = enrol_view(ctx, key, &s, &user, Route::TwoFactor).await?;
            view.webauthn = Some(options);
            let mut page = passed_page(ctx);
            page.passed = false;
            page.enrol = Some(view);
            Ok(render::page(StatusCode::OK, &page))
        }
        EnrolResult::Message(text, status) => {
            show(ctx, key, &s, &user, None, None, Some(text), status).await
        }
    }
}

fn passed_page(ctx: &Ctx<'_, '_>) -> TwoFactorPage {
    TwoFactorPage {
        c: ctx.chrome(Route::TwoFactor.path()),
        notice: None,
        error: None,
        passed: true,
        recovery_codes: Vec::new(),
        enrol: None,
        method: "totp",
        code_label: String::new(),
        code_sent: false,
        passkey_options: None,
        others: Vec::new(),
        trust_days: 0,
        trust_label: String::new(),
    }
}

/// The step passed: it ends (once: a racing request finds it gone), the device is
/// trusted if asked, then the login goes on (device cap, session) or the step-up's
/// session is replaced by one at the second-factor level.
async fn finish(
    ctx: &Ctx<'_, '_>,
    key: &str,
    version: u64,
    s: SecondStep,
    user: User,
) -> PageResult {
    if !step::finish(ctx.app, key, version, ctx.now).await? {
        return Ok(to_login());
    }
    if s.passed.is_some_and(|p| p.trust) {
        verify::trust_device(ctx.app, &user, &ctx.device, ctx.now).await?;
    }
    if let Purpose::Unlock { session } = &s.purpose {
        super::account_twofactor::unlocked_by_second_factor(ctx, session).await?;
        return Ok(Reply::see_other(Route::AccountTwoFactor.path()));
    }
    let browser = crate::auth::NewSession {
        level: AuthLevel::SecondFactor,
        ..ctx.browser()
    };
    let known_device = match s.purpose {
        Purpose::Login { known_device } => known_device,
        // A signed-in device is known; its session is the one replaced.
        Purpose::StepUp { .. } | Purpose::Account { .. } | Purpose::Unlock { .. } => true,
    };
    let email = user.email.clone();
    let outcome = open_for(ctx.app, user, browser, &s.rd, known_device).await?;
    let metrics = &ctx.app.metrics;
    if let Purpose::Login { .. } = s.purpose {
        metrics.logins.with_label_values(&[outcome.label()]).inc();
    }
    if let LoginOutcome::Success { token, user, .. } = &outcome {
        if !matches!(s.purpose, Purpose::Login { .. }) {
            return Ok(ctx.signed_in(StatusCode::SEE_OTHER, user, &s.rd, token));
        }
    }
    super::login::answer(ctx, outcome, s.rd.clone(), &email, &email)
}
