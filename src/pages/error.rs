//! Why a page could not do what was asked, rendered in one place.
//!
//! Handlers return `Result<Reply, PageError>` and use `?` on guards (`ctx.member()?`,
//! `ctx.check_csrf(..)?`) and flows; [`PageError::into_reply`] is the only place the
//! 503, 403, login redirect, 410 and 429 pages are built, so they look and behave the
//! same on every page.

use http::StatusCode;
use serde_json::json;

use super::{rd, render, Reply};
use crate::auth::limits::RetryAfter;
use crate::auth::password::HashError;
use crate::auth::FlowError;
use crate::config::Config;
use crate::i18n::Lang;
use crate::routes::Route;
use crate::store::{Millis, StoreError};

#[derive(Debug)]
pub enum PageError {
    /// The store or the password hasher could not be used: 503 with `Retry-After`.
    Unavailable(FlowError),
    /// The session could not be looked up (already logged where it failed): 503.
    StoreDown,
    /// No room to check a password now (a login storm): 503 with a short `Retry-After`,
    /// not logged (a storm would flood the log; `vigile_password_hash_shed_total` counts).
    Busy,
    /// The form's CSRF token does not match this browser.
    Csrf,
    /// The page needs a session: browsers go to the login page, then back to `here`.
    LoginRequired {
        here: String,
    },
    /// Signed in with the password alone, on a page `[twofactor] required_for` keeps for
    /// sessions that passed a second factor: to `/2fa`, then back to `here`.
    SecondFactorRequired {
        here: String,
    },
    /// Signed in, but not an administrator.
    Forbidden,
    /// A link or pending step that no longer exists (used, expired, never issued).
    Gone {
        title: &'static str,
        message: &'static str,
        next: (Route, &'static str),
    },
    /// A rate limit: 429 with `Retry-After`, `message` naming what was limited.
    TooMany {
        retry: RetryAfter,
        message: &'static str,
    },
    /// The client address is blocked until then.
    IpBlocked {
        until: Millis,
    },
    NotFound,
    MethodNotAllowed,
}

impl From<FlowError> for PageError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Hash(HashError::Busy) => PageError::Busy,
            e => PageError::Unavailable(e),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::Unavailable(e.into())
    }
}

impl PageError {
    /// A rate limit with the generic message.
    pub fn too_many(retry: RetryAfter) -> Self {
        PageError::TooMany {
            retry,
            message: "too-many-message",
        }
    }

    /// Whether this refusal is a block or a rate limit (`vigile_requests_total{blocked}`).
    pub fn is_block(&self) -> bool {
        matches!(
            self,
            PageError::TooMany { .. } | PageError::IpBlocked { .. }
        )
    }

    /// The reply: a page in `lang`, or JSON for [`Route::ApiMe`]. `now` dates a block.
    /// Every page says where to write for help when `site.support_email` is set.
    pub fn into_reply(
        self,
        route: Option<Route>,
        lang: Lang,
        config: &Config,
        now: Millis,
    ) -> Reply {
        if route == Some(Route::ApiMe) {
            return self.into_json();
        }
        let message = |status, title, message, link| {
            render::error(status, lang, config, title, message, link)
        };
        match self {
            PageError::Unavailable(e) => {
                tracing::error!(error = %e, route = route.map(Route::path), "page could not complete");
                render::unavailable(lang, config)
            }
            PageError::StoreDown => render::unavailable(lang, config),
            PageError::Busy => render::busy(lang, config),
            PageError::Csrf => message(
                StatusCode::FORBIDDEN,
                "csrf-title",
                "csrf-message",
                Some((Route::Login.path(), "csrf-retry")),
            ),
            PageError::LoginRequired { here } => {
                Reply::redirect(StatusCode::FOUND, &rd::login_url(&here))
            }
            PageError::SecondFactorRequired { here } => Reply::redirect(
                StatusCode::FOUND,
                &Route::TwoFactor.with_query(&[("rd", &here)]),
            ),
            PageError::Forbidden => render::forbidden(lang, config),
            PageError::Gone {
                title,
                message: text,
                next: (to, label),
            } => message(StatusCode::GONE, title, text, Some((to.path(), label))),
            PageError::TooMany { retry, message: m } => {
                message(StatusCode::TOO_MANY_REQUESTS, "too-many-title", m, None)
                    .with_header(http::header::RETRY_AFTER, retry.0.to_string())
            }
            PageError::IpBlocked { until } => {
                let secs = ((until - now).max(1000) as u64).div_ceil(1000);
                let text = lang.tr().with(
                    "blocked-message",
                    &[("minutes", secs.div_ceil(60).to_string())],
                );
                render::message_with_support(
                    StatusCode::TOO_MANY_REQUESTS,
                    lang,
                    config,
                    "blocked-title",
                    text,
                    None,
                )
                .with_header(http::header::RETRY_AFTER, secs.to_string())
            }
            PageError::NotFound => message(
                StatusCode::NOT_FOUND,
                "not-found-title",
                "not-found-message",
                Some(("/", "back-home")),
            ),
            PageError::MethodNotAllowed => message(
                StatusCode::METHOD_NOT_ALLOWED,
                "not-found-title",
                "method-message",
                None,
            ),
        }
    }

    /// For API clients: the same refusals as JSON.
    fn into_json(self) -> Reply {
        match self {
            PageError::LoginRequired { .. } => Reply::json(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "unauthenticated", "login_url": Route::Login.path()}),
            ),
            PageError::SecondFactorRequired { .. } => Reply::json(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "second_factor_required", "url": Route::TwoFactor.path()}),
            ),
            PageError::Unavailable(_) | PageError::StoreDown => Reply::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "unavailable"}),
            )
            .with_header(http::header::RETRY_AFTER, "5".into()),
            PageError::Busy => {
                Reply::json(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "busy"}))
                    .with_header(http::header::RETRY_AFTER, render::BUSY_RETRY_AFTER.into())
            }
            other => {
                let status = match other {
                    PageError::Forbidden | PageError::Csrf => StatusCode::FORBIDDEN,
                    PageError::TooMany { .. } | PageError::IpBlocked { .. } => {
                        StatusCode::TOO_MANY_REQUESTS
                    }
                    PageError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                    _ => StatusCode::NOT_FOUND,
                };
                Reply::json(status, &json!({"error": status.canonical_reason()}))
            }
        }
    }
}
