//! Page routing and what every page response shares: the device cookie (issued on first
//! visit, it anchors CSRF tokens and, later, device tracking), security headers, no caching.

mod account;
mod account_twofactor;
mod admin;
mod admin_events;
mod admin_import;
mod admin_member;
mod admin_ops;
mod admin_org;
mod contact;
mod devices;
mod link_form;
mod login;
mod misc;
mod org;
mod password;
mod register;
mod signup;
mod twofactor;

use http::{Method, StatusCode};

use super::error::PageError;
use super::render::{self, Chrome};
use super::{csrf, PageRequest, Reply};
use crate::app::App;
use crate::auth::Identity;
use crate::i18n::Lang;
use crate::routes::Route;
use crate::store::DeviceId;
use link_form::LinkForm;

/// What a handler returns: the page, or why it could not be shown.
pub(super) type PageResult = Result<Reply, PageError>;

/// Per-request page context: the request, its route, device id, CSRF key and time.
pub(super) struct Ctx<'a, 'r> {
    /// Shared so a page can hand work to a task that outlives the request.
    pub app: &'a std::sync::Arc<App>,
    pub req: &'a PageRequest<'r>,
    pub route: Route,
    pub device: DeviceId,
    pub secret: &'a [u8],
    /// The request's time, read once: flows take it as a parameter.
    pub now: crate::store::Millis,
}

impl Ctx<'_, '_> {
    pub fn lang(&self) -> Lang {
        self.req.lang
    }

    pub fn csrf(&self) -> String {
        csrf::token(self.secret, self.device.as_str())
    }

    /// The submitted form's CSRF field matches this browser's token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), PageError> {
        if csrf::check(self.secret, self.req.cookies.device.as_deref(), submitted) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }

    /// The signed-in member; a visitor without a session is sent to log in and back here.
    pub fn member(&self) -> Result<&Identity, PageError> {
        match &self.req.visitor {
            crate::auth::Visitor::Member(id) => Ok(id),
            crate::auth::Visitor::Anonymous => Err(PageError::LoginRequired {
                here: self.route.path().to_string(),
            }),
            crate::auth::Visitor::StoreDown => Err(PageError::StoreDown),
        }
    }

    /// The signed-in administrator; with `[twofactor] required_for` naming admins, one
    /// whose session passed a second factor (a session from before the setting is sent
    /// to `/2fa` first, as on the proxied paths).
    pub fn admin(&self) -> Result<&Identity, PageError> {
        let id = self.member()?;
        if !id.admin {
            return Err(PageError::Forbidden);
        }
        let file = &self.app.config.file;
        if id.level < crate::store::AuthLevel::SecondFactor
            && crate::auth::twofactor::required_for_roles(file, true, id.org_role())
        {
            return Err(PageError::SecondFactorRequired {
                here: self.route.path().to_string(),
            });
        }
        Ok(id)
    }

    /// This browser, for a session opened from a page.
    pub fn browser(&self) -> crate::auth::NewSession<'_> {
        crate::auth::NewSession {
            device: self.device.clone(),
            ip: self.req.client_ip,
            user_agent: self.req.user_agent(),
            previous_token: self.req.cookies.session.as_deref(),
            level: crate::store::AuthLevel::Password,
            now: self.now,
        }
    }

    /// The `Set-Cookie` value for a session just opened (lives as long as it may).
    pub fn session_cookie(&self, token: &str) -> String {
        let lifetime = self.app.config.file.sessions.absolute_timeout;
        self.app.cookies.set_session(token, lifetime)
    }

    /// The answer to a sign-in that opened a session in this browser: its cookie, and a
    /// redirect to `rd`, or first to the contact page when something is asked of the
    /// member ("Later" goes on to `rd`).
    pub fn signed_in(
        &self,
        status: StatusCode,
        user: &crate::store::User,
        rd: &str,
        token: &str,
    ) -> Reply {
        let next = crate::auth::contact::after_sign_in(&self.app.config.file, user, rd);
        Reply::redirect(status, &next).with_cookie(self.session_cookie(token))
    }

    /// "Recovery needs a confirmed address", and where to write without one
    /// (`site.support_email`, when set): the contact page says it. (The forgot page says
    /// the first half; its "Contact us" line gives the address.)
    pub fn recovery_note(&self) -> String {
        let t = self.lang().tr();
        let mut note = t.get("contact-recovery");
        if let Some(support) = &self.app.config.support_email {
            note.push(' ');
            note.push_str(&t.with("support-write", &[("email", support.to_string())]));
        }
        note
    }

    pub fn chrome(&self, here: &str) -> Chrome {
        let user = self.req.visitor.identity().map(|i| {
            if i.name.is_empty() {
                i.email.clone()
            } else {
                i.name.clone()
            }
        });
        Chrome::new(self.lang(), &self.app.config, here, user, self.csrf())
    }

    pub fn message(
        &self,
        status: StatusCode,
        title: &str,
        msg: &str,
        link: Option<(&str, &str)>,
    ) -> Reply {
        render::message(status, self.lang(), &self.app.config, title, msg, link)
    }
}

/// A device id from the cookie is only trusted if it looks like one we issued.
fn valid_device(value: &str) -> bool {
    (16..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The page's reply, and whether it refused a blocked or rate-limited client.
pub struct Answered {
    pub reply: Reply,
    pub blocked: bool,
}

pub async fn dispatch(app: &std::sync::Arc<App>, req: PageRequest<'_>) -> Answered {
    let now = req.now;
    let route = Route::parse(req.path);
    let (result, device_cookie) = match route {
        None => (Err(PageError::NotFound), None),
        // Static files need neither the store nor a device.
        Some(Route::Stylesheet) => (Ok(misc::stylesheet()), None),
        Some(Route::PasskeysScript) => (Ok(misc::passkeys_script()), None),
        Some(route) => {
            let existing = req.cookies.device.as_deref().filter(|d| valid_device(d));
            let new_device = existing.is_none().then(DeviceId::random);
            let device = new_device
                .clone()
                .unwrap_or_else(|| DeviceId::from_string(existing.unwrap_or_default()));
            let result = match app.secret().await {
                Ok(secret) => {
                    let ctx = Ctx {
                        app,
                        req: &req,
                        route,
                        device,
                        secret,
                        now,
                    };
                    page(&ctx).await
                }
                Err(e) => Err(e.into()),
            };
            (
                result,
                new_device.map(|d| app.cookies.set_device(d.as_str())),
            )
        }
    };
    let blocked = result.as_ref().is_err_and(PageError::is_block);
    let reply = result.unwrap_or_else(|e| e.into_reply(route, req.lang, &app.config, now));
    Answered {
        reply: finish(reply, device_cookie),
        blocked,
    }
}

/// Runs the page for `ctx.route` and the request's method.
async fn page(ctx: &Ctx<'_, '_>) -> PageResult {
    let req = ctx.req;
    if ctx.route.guarded() {
        let ip = crate::auth::lockout::client_key(req.client_ip);
        if let Some(until) = ctx.app.store.ip_blocked_until(&ip, ctx.now).await? {
            // A sign-in refused here is a login attempt like any other.
            if ctx.route == Route::Login && *req.method == Method::POST {
                ctx.app
                    .metrics
                    .logins
                    .with_label_values(&["ip_blocked"])
                    .inc();
            }
            return Err(PageError::IpBlocked { until });
        }
    }
    let get = matches!(*req.method, Method::GET | Method::HEAD);
    let post = *req.method == Method::POST;
    match (ctx.route, get, post) {
        (Route::Login, true, _) => login::get(ctx).await,
        (Route::Login, _, true) => login::post(ctx).await,
        (Route::Logout, _, true) => login::logout(ctx).await,
        (Route::Signup, true, _) => signup::get(ctx),
        (Route::Signup, _, true) => signup::post(ctx).await,
        (Route::Activate, true, _) => signup::activate(ctx).await,
        (Route::ActivateResend, true, _) => LinkForm::Resend.get(ctx),
        (Route::ActivateResend, _, true) => LinkForm::Resend.post(ctx).await,
        (Route::PasswordForgot, true, _) => LinkForm::Forgot.get(ctx),
        (Route::PasswordForgot, _, true) => LinkForm::Forgot.post(ctx).await,
        (Route::PasswordReset, true, _) => password::reset_get(ctx).await,
        (Route::PasswordReset, _, true) => password::reset_post(ctx).await,
        (Route::Account, true, _) => account::get(ctx).await,
        (Route::AccountTwoFactor, true, _) => account_twofactor::get(ctx).await,
        (Route::AccountTwoFactor, _, true) => account_twofactor::post(ctx).await,
        (Route::TwoFactor, true, _) => twofactor::get(ctx).await,
        (Route::TwoFactor, _, true) => twofactor::post(ctx).await,
        (Route::AdminMemberTwoFactorReset, _, true) => admin_member::twofactor_reset(ctx).await,
        (Route::AccountDevicesRevoke, _, true) => devices::revoke(ctx).await,
        (Route::AccountDevicesOthers, _, true) => devices::others(ctx).await,
        (Route::AccountProfile, _, true) => account::profile(ctx).await,
        (Route::AccountPassword, _, true) => account::password(ctx).await,
        (Route::Verify, true, _) => devices::verify_get(ctx).await,
        (Route::Verify, _, true) => devices::verify_post(ctx).await,
        (Route::VerifyResend, _, true) => devices::resend(ctx).await,
        (Route::DevicesChoose, true, _) => devices::choose_get(ctx).await,
        (Route::DevicesChoose, _, true) => devices::choose_post(ctx).await,
        (Route::DevicesCancel, _, true) => devices::cancel(ctx).await,
        (Route::Admin, true, _) => admin::get(ctx).await,
        (Route::AdminMembers, true, _) => admin::members(ctx).await,
        (Route::AdminOrgs, true, _) => admin::orgs(ctx).await,
        (Route::AdminCampaigns, true, _) => admin::campaigns(ctx).await,
        (Route::AdminSettings, true, _) => admin::settings_get(ctx).await,
        (Route::AdminUnlock, _, true) => admin::unlock(ctx).await,
        (Route::AdminSettings, _, true) => admin::settings(ctx).await,
        (Route::AdminCampaign, _, true) => admin::start_campaign(ctx).await,
        (Route::AdminBlocked, true, _) => admin_ops::blocked(ctx).await,
        (Route::AdminBlocked, _, true) => admin_ops::unblock(ctx).await,
        (Route::AdminOutbox, true, _) => admin_ops::outbox(ctx).await,
        (Route::AdminEvents, true, _) => admin_events::list(ctx).await,
        (Route::AdminEventsCsv, true, _) => admin_events::csv(ctx).await,
        (Route::AdminOutbox, _, true) => admin_ops::retry(ctx).await,
        (Route::AdminImport, true, _) => admin_import::get(ctx).await,
        (Route::AdminImport, _, true) => admin_import::preview(ctx).await,
        (Route::AdminImportConfirm, true, _) => admin_import::confirm_get(ctx).await,
        (Route::AdminImportConfirm, _, true) => admin_import::confirm(ctx).await,
        (Route::AdminMember, true, _) => admin_member::get(ctx).await,
        (Route::AdminMemberCap, _, true) => admin_member::cap(ctx).await,
        (Route::AdminMemberRevoke, _, true) => admin_member::revoke(ctx).await,
        (Route::AdminOrg, true, _) => admin_org::get(ctx).await,
        (Route::AdminOrg, _, true) => admin_org::post(ctx).await,
        (Route::Register, true, _) => register::get(ctx).await,
        (Route::Register, _, true) => register::post(ctx).await,
        (Route::Org, true, _) => org::get(ctx).await,
        (Route::OrgBilling, true, _) => org::billing(ctx).await,
        (Route::OrgProfile, _, true) => org::profile(ctx).await,
        (Route::OrgInvite, _, true) => org::invite(ctx).await,
        (Route::OrgInviteCancel, _, true) => org::cancel_invite(ctx).await,
        (Route::OrgRemove, _, true) => org::remove(ctx).await,
        (Route::OrgRole, _, true) => org::role(ctx).await,
        (Route::OrgTransfer, _, true) => org::transfer(ctx).await,
        (Route::OrgJoin, true, _) => org::join_get(ctx).await,
        (Route::OrgJoin, _, true) => org::join_post(ctx).await,
        (Route::Contact, true, _) => contact::get(ctx).await,
        (Route::ContactSend, _, true) => contact::send(ctx).await,
        (Route::ContactConfirm, _, true) => contact::confirm(ctx).await,
        (Route::ApiMe, true, _) => account::api_me(ctx),
        (Route::DevMail, true, _) if ctx.app.config.file.server.dev_mode => misc::dev_mail(ctx),
        (Route::DevMail, _, _) => Err(PageError::NotFound),
        (Route::DevSms, true, _) if ctx.app.config.file.server.dev_mode => misc::dev_sms(ctx),
        (Route::DevSms, _, _) => Err(PageError::NotFound),
        (Route::Lang(lang), true, _) => Ok(misc::lang(ctx, lang)),
        (_, false, false) => Err(PageError::MethodNotAllowed),
        _ => Err(PageError::NotFound),
    }
}

fn finish(mut reply: Reply, device_cookie: Option<String>) -> Reply {
    if let Some(c) = device_cookie {
        reply.headers.push((http::header::SET_COOKIE, c));
    }
    let has = |name: &http::HeaderName| reply.headers.iter().any(|(n, _)| n == name);
    let mut extra = vec![];
    if !has(&http::header::CACHE_CONTROL) {
        extra.push((http::header::CACHE_CONTROL, "no-store".to_string()));
    }
    extra.extend([
        (http::header::X_FRAME_OPTIONS, "DENY".to_string()),
        (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        // Vigile's URLs can carry single-use tokens (links from mails, a login's `rd`
        // back to one): never sent on, not even to the site behind.
        (http::header::REFERRER_POLICY, "no-referrer".to_string()),
        (
            http::header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
                .to_string(),
        ),
    ]);
    reply.headers.extend(extra);
    reply
}
