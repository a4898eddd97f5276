//! Page routing and what every page response shares: the device cookie (issued on first
//! visit, it anchors CSRF tokens and, later, device tracking), security headers, no caching.

mod account;
mod admin;
mod admin_member;
mod devices;
mod login;
mod misc;
mod password;
mod signup;

use http::{Method, StatusCode};

use super::render::{self, Chrome};
use super::{csrf, PageRequest, Reply};
use crate::app::App;
use crate::i18n::Lang;
use crate::store::DeviceId;

/// Per-request page context: the request, its device id and the CSRF key.
pub(super) struct Ctx<'a, 'r> {
    /// Shared so a page can hand work to a task that outlives the request.
    pub app: &'a std::sync::Arc<App>,
    pub req: &'a PageRequest<'r>,
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
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        csrf::check(self.secret, self.req.cookies.device.as_deref(), submitted)
    }

    /// The `Set-Cookie` value for a session just opened (lives as long as it may).
    pub fn session_cookie(&self, token: &str) -> String {
        let lifetime = self.app.config.file.sessions.absolute_timeout;
        self.app.cookies.set_session(token, lifetime)
    }

    pub fn chrome(&self, here: &str) -> Chrome {
        let user = self
            .req
            .identity
            .as_ref()
            .ok()
            .and_then(|i| i.as_ref())
            .map(|i| {
                if i.name.is_empty() {
                    i.email.clone()
                } else {
                    i.name.clone()
                }
            });
        Chrome::new(self.lang(), here, user, self.csrf())
    }

    pub fn message(
        &self,
        status: StatusCode,
        title: &str,
        msg: &str,
        link: Option<(&str, &str)>,
    ) -> Reply {
        render::message(status, self.lang(), title, msg, link)
    }

    /// A rate limit refused the form: 429 with `Retry-After`.
    pub fn too_many(&self, retry: crate::auth::limits::RetryAfter) -> Reply {
        self.message(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-title",
            "too-many-message",
            None,
        )
        .with_header(http::header::RETRY_AFTER, retry.0.to_string())
    }

    /// The client address is blocked until `until`: 429, how long, `Retry-After`.
    pub fn ip_blocked(&self, until: crate::store::Millis) -> Reply {
        let secs = ((until - self.now).max(1000) as u64).div_ceil(1000);
        let t = self.lang().tr();
        let text = t.with(
            "blocked-message",
            &[("minutes", secs.div_ceil(60).to_string())],
        );
        render::message_text(
            StatusCode::TOO_MANY_REQUESTS,
            self.lang(),
            "blocked-title",
            text,
            None,
        )
        .with_header(http::header::RETRY_AFTER, secs.to_string())
    }

    /// A flow could not complete (store or hasher down): logged, 503 page.
    pub fn flow_failed(&self, e: &crate::auth::FlowError) -> Reply {
        tracing::error!(error = %e, path = self.req.path, "page could not complete");
        render::unavailable(self.lang())
    }

    pub fn csrf_failed(&self) -> Reply {
        self.message(
            StatusCode::FORBIDDEN,
            "csrf-title",
            "csrf-message",
            Some(("/_vigile/login", "csrf-retry")),
        )
    }
}

/// Pages closed to a blocked IP address (the ones that take credentials or send mail).
const GUARDED: [&str; 8] = [
    "/login",
    "/signup",
    "/activate",
    "/activate/resend",
    "/password/forgot",
    "/password/reset",
    "/verify",
    "/verify/resend",
];

/// A device id from the cookie is only trusted if it looks like one we issued.
fn valid_device(value: &str) -> bool {
    (16..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn dispatch(app: &std::sync::Arc<App>, req: PageRequest<'_>) -> Reply {
    let route = req.path.strip_prefix("/_vigile").unwrap_or("/");
    // Static files and the language switch need neither the store nor a CSRF token.
    if let Some(name) = route.strip_prefix("/static/") {
        return finish(misc::static_file(name, req.lang), None);
    }
    let existing = req.cookies.device.as_deref().filter(|d| valid_device(d));
    let new_device = existing.is_none().then(DeviceId::random);
    let device = new_device
        .clone()
        .unwrap_or_else(|| DeviceId::from_string(existing.unwrap_or_default()));

    let secret = match app.secret().await {
        Ok(s) => s,
        Err(_) => {
            return finish(render::unavailable(req.lang), None);
        }
    };
    let ctx = Ctx {
        app,
        req: &req,
        device,
        secret,
        now: req.now,
    };
    if GUARDED.contains(&route) {
        let ip = req.client_ip.to_string();
        match app.store.ip_blocked_until(&ip, ctx.now).await {
            Ok(None) => {}
            Ok(Some(until)) => {
                // A sign-in refused here is a login attempt like any other.
                if route == "/login" && *req.method == Method::POST {
                    app.metrics.logins.with_label_values(&["ip_blocked"]).inc();
                }
                return finish(ctx.ip_blocked(until), None);
            }
            Err(_) => return finish(render::unavailable(req.lang), None),
        }
    }
    let is_get = matches!(*req.method, Method::GET | Method::HEAD);
    let reply = match (is_get, *req.method == Method::POST, route) {
        (true, _, "/login") => login::get(&ctx).await,
        (_, true, "/login") => login::post(&ctx).await,
        (_, true, "/logout") => login::logout(&ctx).await,
        (true, _, "/signup") => signup::get(&ctx),
        (_, true, "/signup") => signup::post(&ctx).await,
        (true, _, "/activate") => signup::activate(&ctx).await,
        (true, _, "/activate/resend") => signup::resend_get(&ctx),
        (_, true, "/activate/resend") => signup::resend_post(&ctx).await,
        (true, _, "/password/forgot") => password::forgot_get(&ctx),
        (_, true, "/password/forgot") => password::forgot_post(&ctx).await,
        (true, _, "/password/reset") => password::reset_get(&ctx).await,
        (_, true, "/password/reset") => password::reset_post(&ctx).await,
        (true, _, "/account") => account::get(&ctx).await,
        (_, true, "/account/devices/revoke") => devices::revoke(&ctx).await,
        (_, true, "/account/devices/others") => devices::others(&ctx).await,
        (true, _, "/verify") => devices::verify_get(&ctx).await,
        (_, true, "/verify") => devices::verify_post(&ctx).await,
        (_, true, "/verify/resend") => devices::resend(&ctx).await,
        (true, _, "/devices/choose") => devices::choose_get(&ctx).await,
        (_, true, "/devices/choose") => devices::choose_post(&ctx).await,
        (_, true, "/devices/cancel") => devices::cancel(&ctx).await,
        (true, _, "/admin") => admin::get(&ctx).await,
        (_, true, "/admin/unlock") => admin::unlock(&ctx).await,
        (_, true, "/admin/settings") => admin::settings(&ctx).await,
        (true, _, "/admin/member") => admin_member::get(&ctx).await,
        (_, true, "/admin/member/cap") => admin_member::cap(&ctx).await,
        (_, true, "/admin/member/revoke") => admin_member::revoke(&ctx).await,
        (true, _, "/api/me") => account::api_me(&ctx),
        (true, _, "/dev/mail") if app.config.file.server.dev_mode => misc::dev_mail(&ctx),
        (true, _, r) if r.starts_with("/lang/") => misc::lang(&ctx, &r["/lang/".len()..]),
        (false, false, _) => ctx.message(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-found-title",
            "method-message",
            None,
        ),
        _ => ctx.message(
            StatusCode::NOT_FOUND,
            "not-found-title",
            "not-found-message",
            Some(("/", "back-home")),
        ),
    };
    finish(
        reply,
        new_device.map(|d| app.cookies.set_device(d.as_str())),
    )
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
        (http::header::REFERRER_POLICY, "same-origin".to_string()),
        (
            http::header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
                .to_string(),
        ),
    ]);
    reply.headers.extend(extra);
    reply
}
