//! A `Store` decorator that times every operation (`vigile_store_duration_seconds{op}`) and
//! counts failures (`vigile_store_errors_total`), so backends stay free of metrics code.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::*;
use crate::metrics::Metrics;

pub struct Instrumented {
    inner: DynStore,
    metrics: Arc<Metrics>,
}

impl Instrumented {
    pub fn new(inner: DynStore, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn time<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let start = Instant::now();
        let result = fut.await;
        self.metrics
            .store_duration
            .with_label_values(&[op])
            .observe(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            if !matches!(e, StoreError::Conflict) {
                self.metrics.store_errors.inc();
                tracing::warn!(op, backend = self.inner.backend(), error = %e, "store operation failed");
            }
        }
        result
    }
}

#[async_trait]
impl Store for Instrumented {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ping(&self) -> StoreResult<()> {
        self.time("ping", self.inner.ping()).await
    }
    async fn secret_get_or_init(&self, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        self.time("secret", self.inner.secret_get_or_init(candidate))
            .await
    }
    async fn user_insert(&self, user: &User) -> StoreResult<()> {
        self.time("user_insert", self.inner.user_insert(user)).await
    }
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.time("user_by_email", self.inner.user_by_email(email))
            .await
    }
    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.time("user_by_id", self.inner.user_by_id(id)).await
    }
    async fn user_list(&self) -> StoreResult<Vec<User>> {
        self.time("user_list", self.inner.user_list()).await
    }
    async fn session_insert(
        &self,
        session: &SessionRecord,
        replaces: Option<&SessionId>,
    ) -> StoreResult<()> {
        self.time(
            "session_insert",
            self.inner.session_insert(session, replaces),
        )
        .await
    }
    async fn session_by_token(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<SessionRecord>> {
        self.time(
            "session_by_token",
            self.inner.session_by_token(token_hash, now),
        )
        .await
    }
    async fn session_touch(&self, id: &SessionId, now: Millis) -> StoreResult<bool> {
        self.time("session_touch", self.inner.session_touch(id, now))
            .await
    }
    async fn session_delete(&self, id: &SessionId) -> StoreResult<bool> {
        self.time("session_delete", self.inner.session_delete(id))
            .await
    }
    async fn session_delete_all(&self, user: &UserId) -> StoreResult<u64> {
        self.time("session_delete_all", self.inner.session_delete_all(user))
            .await
    }
    async fn sessions_of(&self, user: &UserId, now: Millis) -> StoreResult<Vec<SessionRecord>> {
        self.time("sessions_of", self.inner.sessions_of(user, now))
            .await
    }
    async fn session_count(&self, now: Millis) -> StoreResult<u64> {
        self.time("session_count", self.inner.session_count(now))
            .await
    }
    async fn sweep(&self, now: Millis) -> StoreResult<u64> {
        self.time("sweep", self.inner.sweep(now)).await
    }
}
