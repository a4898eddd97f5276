//! Rate limits of the public forms that make Vigile send mail (sign-up, activation
//! resend, forgot password): per client IP, answered with a 429 page; and per recipient
//! address, enforced silently (the page is the same, the mail is just not sent) so the
//! limit itself reveals nothing about accounts. Counters live in the store, so the
//! limits hold across gateway instances.

use std::net::IpAddr;
use std::time::Duration;

use crate::store::{millis, CounterScope, DynStore, Millis, StoreError, StoreResult};

/// A limit: at most `max` hits per `window` (`max == 0`: unlimited).
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

/// Refused: retry after this many seconds (the end of the current window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl Limit {
    fn window_ms(&self) -> Millis {
        millis(self.window).max(1)
    }

    /// Counts one hit for `subject` and says whether it is within the limit.
    pub async fn hit(
        &self,
        store: &DynStore,
        scope: CounterScope,
        subject: &str,
        now: Millis,
    ) -> StoreResult<Result<(), RetryAfter>> {
        if self.max == 0 {
            return Ok(Ok(()));
        }
        let window = self.window_ms();
        let count = store.counter_hit(scope, subject, window, now).await?;
        if count <= u64::from(self.max) {
            return Ok(Ok(()));
        }
        let window_end = (now.div_euclid(window) + 1).saturating_mul(window);
        let secs = (window_end - now).max(0) as u64;
        Ok(Err(RetryAfter(secs.div_ceil(1000).max(1))))
    }
}

/// The limits of one gateway, from `[signup]` and `[mail]`.
#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    pub per_ip: Limit,
    pub per_address: Limit,
}

impl FormLimits {
    pub fn from_config(file: &crate::config::FileConfig) -> Self {
        Self {
            per_ip: Limit {
                max: file.signup.max_per_ip,
                window: file.signup.ip_window,
            },
            per_address: Limit {
                max: file.mail.max_per_address,
                window: file.mail.address_window,
            },
        }
    }

    /// One public form post from `ip`.
    pub async fn form_from(
        &self,
        store: &DynStore,
        ip: IpAddr,
        now: Millis,
    ) -> StoreResult<Result<(), RetryAfter>> {
        self.per_ip
            .hit(
                store,
                CounterScope::FormsPerIp,
                &super::lockout::client_key(ip),
                now,
            )
            .await
    }

    /// Whether a public form may mail `address` now (counts the mail).
    pub async fn mail_to(&self, store: &DynStore, address: &str, now: Millis) -> StoreResult<bool> {
        Ok(self
            .per_address
            .hit(store, CounterScope::MailsPerAddress, address, now)
            .await?
            .is_ok())
    }
}

/// The shape both "mail me a link" forms share (activation resend, forgot password): the
/// post counts against the per-IP limit, then `work` runs on the parsed address off the
/// request, so the answer is the same, and takes the same time, whatever the address.
/// `what` names the work in the log line if it fails.
pub async fn link_request<F, Fut>(
    deps: &std::sync::Arc<super::Deps>,
    email: &crate::edge::email::Email,
    ip: IpAddr,
    now: Millis,
    what: &'static str,
    work: F,
) -> Result<Result<(), RetryAfter>, super::FlowError>
where
    F: Fn(std::sync::Arc<super::Deps>, crate::edge::email::Email) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), super::FlowError>> + Send + 'static,
{
    let limits = FormLimits::from_config(&deps.config.file);
    if let Err(retry) = limits.form_from(&deps.store, ip, now).await? {
        return Ok(Err(retry));
    }
    let email = email.clone();
    let deps = std::sync::Arc::clone(deps);
    tokio::spawn(async move {
        // The answer has gone: a store that cannot be reached now (a restart, a Redis
        // failover) is waited for, so the mail is queued late rather than never.
        let mut delay = REQUEUE_FIRST;
        let waiting = crate::clock::Stopwatch::start();
        loop {
            match work(deps.clone(), email.clone()).await {
                Ok(()) => return,
                Err(super::FlowError::Store(StoreError::Unavailable(e)))
                    if waiting.elapsed() < REQUEUE_FOR =>
                {
                    // Bounded: a flood of forms during a long outage cannot pile up tasks.
                    let Some(_waiting) = RequeueSlot::take() else {
                        tracing::error!(error = %e, what, "mail could not be queued (too many waiting for the store)");
                        return;
                    };
                    tracing::debug!(error = %e, what, "store unavailable; mail to be queued later");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(REQUEUE_MAX);
                }
                Err(e) => {
                    tracing::error!(error = %e, what, "mail could not be queued");
                    return;
                }
            }
        }
    });
    Ok(Ok(()))
}

/// Link mails waiting for the store at once, at most.
const REQUEUE_WAITING_MAX: usize = 1_000;
static REQUEUE_WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of the [`REQUEUE_WAITING_MAX`] places, given back when dropped.
struct RequeueSlot;

impl RequeueSlot {
    fn take() -> Option<Self> {
        use std::sync::atomic::Ordering::AcqRel;
        let taken = REQUEUE_WAITING.fetch_add(1, AcqRel);
        if taken >= REQUEUE_WAITING_MAX {
            REQUEUE_WAITING.fetch_sub(1, AcqRel);
            return None;
        }
        Some(Self)
    }
}

impl Drop for RequeueSlot {
    fn drop(&mut self) {
        REQUEUE_WAITING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// How long a link mail whose queueing found the store unavailable keeps trying, and
/// how far apart (doubling from the first delay).
const REQUEUE_FOR: Duration = Duration::from_secs(300);
const REQUEUE_FIRST: Duration = Duration::from_millis(200);
const REQUEUE_MAX: Duration = Duration::from_secs(5);
