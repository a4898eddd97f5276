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
    async fn user_insert_pending(&self, user: &User, expires_at: Millis) -> StoreResult<()> {
        self.time(
            "user_insert_pending",
            self.inner.user_insert_pending(user, expires_at),
        )
        .await
    }
    async fn user_activate(&self, id: &UserId) -> StoreResult<bool> {
        self.time("user_activate", self.inner.user_activate(id))
            .await
    }
    async fn user_set_password(&self, id: &UserId, password_hash: &str) -> StoreResult<bool> {
        self.time(
            "user_set_password",
            self.inner.user_set_password(id, password_hash),
        )
        .await
    }
    async fn user_delete(&self, id: &UserId) -> StoreResult<bool> {
        self.time("user_delete", self.inner.user_delete(id)).await
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

#[async_trait]
impl TokenStore for Instrumented {
    async fn token_insert(&self, token: &TokenRecord) -> StoreResult<()> {
        self.time("token_insert", self.inner.token_insert(token))
            .await
    }
    async fn token_peek(
        &self,
        kind: TokenKind,
        hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<TokenRecord>> {
        self.time("token_peek", self.inner.token_peek(kind, hash, now))
            .await
    }
    async fn token_take(
        &self,
        kind: TokenKind,
        hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<TokenRecord>> {
        self.time("token_take", self.inner.token_take(kind, hash, now))
            .await
    }
}

#[async_trait]
impl OutboxStore for Instrumented {
    async fn outbox_push(&self, mail: &OutboxMail) -> StoreResult<()> {
        self.time("outbox_push", self.inner.outbox_push(mail)).await
    }
    async fn outbox_claim(
        &self,
        now: Millis,
        lease_ms: Millis,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        self.time(
            "outbox_claim",
            self.inner.outbox_claim(now, lease_ms, limit),
        )
        .await
    }
    async fn outbox_done(&self, id: &str) -> StoreResult<bool> {
        self.time("outbox_done", self.inner.outbox_done(id)).await
    }
    async fn outbox_retry(&self, id: &str, next_attempt: Millis, error: &str) -> StoreResult<bool> {
        self.time(
            "outbox_retry",
            self.inner.outbox_retry(id, next_attempt, error),
        )
        .await
    }
    async fn outbox_list(&self) -> StoreResult<Vec<OutboxMail>> {
        self.time("outbox_list", self.inner.outbox_list()).await
    }
    async fn outbox_fail(&self, id: &str, failed_at: Millis, error: &str) -> StoreResult<bool> {
        self.time("outbox_fail", self.inner.outbox_fail(id, failed_at, error))
            .await
    }
    async fn outbox_failed(&self, limit: usize) -> StoreResult<Vec<FailedMail>> {
        self.time("outbox_failed", self.inner.outbox_failed(limit))
            .await
    }
}

#[async_trait]
impl CounterStore for Instrumented {
    async fn counter_hit(
        &self,
        scope: CounterScope,
        subject: &str,
        window_ms: Millis,
        now: Millis,
    ) -> StoreResult<u64> {
        self.time(
            "counter_hit",
            self.inner.counter_hit(scope, subject, window_ms, now),
        )
        .await
    }
}

#[async_trait]
impl ThrottleStore for Instrumented {
    async fn attempt_begin(&self, key: AttemptKey<'_>, now: Millis) -> StoreResult<u64> {
        self.time("attempt_begin", self.inner.attempt_begin(key, now))
            .await
    }
    async fn attempts_of(&self, key: AttemptKey<'_>) -> StoreResult<u64> {
        self.time("attempts_of", self.inner.attempts_of(key)).await
    }
    async fn attempts_clear(&self, key: AttemptKey<'_>) -> StoreResult<()> {
        self.time("attempts_clear", self.inner.attempts_clear(key))
            .await
    }
    async fn attempts_clear_all(&self, email: &str) -> StoreResult<u64> {
        self.time("attempts_clear_all", self.inner.attempts_clear_all(email))
            .await
    }
    async fn device_remember(&self, user: &UserId, device: &DeviceId) -> StoreResult<()> {
        self.time("device_remember", self.inner.device_remember(user, device))
            .await
    }
    async fn device_known(&self, user: &UserId, device: &DeviceId) -> StoreResult<bool> {
        self.time("device_known", self.inner.device_known(user, device))
            .await
    }
    async fn ip_attempt(
        &self,
        ip: &str,
        rule: &IpRule,
        now: Millis,
    ) -> StoreResult<Result<u64, Millis>> {
        self.time("ip_attempt", self.inner.ip_attempt(ip, rule, now))
            .await
    }
    async fn ip_refund(&self, ip: &str) -> StoreResult<()> {
        self.time("ip_refund", self.inner.ip_refund(ip)).await
    }
    async fn ip_block(&self, ip: &str, rule: &IpRule, now: Millis) -> StoreResult<Millis> {
        self.time("ip_block", self.inner.ip_block(ip, rule, now))
            .await
    }
    async fn ip_blocked_until(&self, ip: &str, now: Millis) -> StoreResult<Option<Millis>> {
        self.time("ip_blocked_until", self.inner.ip_blocked_until(ip, now))
            .await
    }
    async fn ip_unblock(&self, ip: &str, now: Millis) -> StoreResult<bool> {
        self.time("ip_unblock", self.inner.ip_unblock(ip, now))
            .await
    }
}

#[async_trait]
impl DeviceStore for Instrumented {
    async fn session_open(
        &self,
        session: &SessionRecord,
        replaces: Option<&SessionId>,
        victims: &[SessionId],
        cap: Cap,
        now: Millis,
    ) -> StoreResult<Opened> {
        let fut = self
            .inner
            .session_open(session, replaces, victims, cap, now);
        self.time("session_open", fut).await
    }
    async fn session_end(
        &self,
        user: &UserId,
        id: &SessionId,
        why: SignedOut,
        now: Millis,
    ) -> StoreResult<bool> {
        let fut = self.inner.session_end(user, id, why, now);
        self.time("session_end", fut).await
    }
    async fn signed_out(&self, hash: &TokenHash, now: Millis) -> StoreResult<Option<SignedOut>> {
        self.time("signed_out", self.inner.signed_out(hash, now))
            .await
    }
    async fn challenge_put(&self, device: &DeviceId, ch: &Challenge) -> StoreResult<bool> {
        self.time("challenge_put", self.inner.challenge_put(device, ch))
            .await
    }
    async fn challenge_get(
        &self,
        device: &DeviceId,
        now: Millis,
    ) -> StoreResult<Option<Challenge>> {
        self.time("challenge_get", self.inner.challenge_get(device, now))
            .await
    }
    async fn challenge_check(
        &self,
        device: &DeviceId,
        code_hash: &TokenHash,
        max_tries: u32,
        verified_until: Millis,
        now: Millis,
    ) -> StoreResult<CodeCheck> {
        let fut = self
            .inner
            .challenge_check(device, code_hash, max_tries, verified_until, now);
        self.time("challenge_check", fut).await
    }
    async fn challenge_renew(
        &self,
        device: &DeviceId,
        code_hash: &TokenHash,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<bool> {
        let fut = self
            .inner
            .challenge_renew(device, code_hash, expires_at, now);
        self.time("challenge_renew", fut).await
    }
    async fn challenge_delete(&self, device: &DeviceId) -> StoreResult<bool> {
        self.time("challenge_delete", self.inner.challenge_delete(device))
            .await
    }
    async fn settings_get(&self) -> StoreResult<Settings> {
        self.time("settings_get", self.inner.settings_get()).await
    }
    async fn settings_set(&self, settings: &Settings) -> StoreResult<()> {
        self.time("settings_set", self.inner.settings_set(settings))
            .await
    }
    async fn member_cap(&self, user: &UserId) -> StoreResult<Option<u32>> {
        self.time("member_cap", self.inner.member_cap(user)).await
    }
    async fn member_cap_set(&self, user: &UserId, cap: Option<u32>) -> StoreResult<bool> {
        self.time("member_cap_set", self.inner.member_cap_set(user, cap))
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_new_operation_is_timed_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let inner: DynStore = Arc::new(SqliteStore::open(&dir.path().join("v.db")).unwrap());
        let metrics = Arc::new(Metrics::new().unwrap());
        let store = Instrumented::new(inner, Arc::clone(&metrics));

        let user = User {
            id: UserId::random(),
            email: "a@example.org".into(),
            name: "A".into(),
            password_hash: "h".into(),
            admin: false,
            status: AccountStatus::Pending,
            lang: None,
            created_at: 0,
        };
        store.user_insert_pending(&user, 10).await.unwrap();
        store.user_set_password(&user.id, "h2").await.unwrap();
        store.user_activate(&user.id).await.unwrap();
        store.user_delete(&user.id).await.unwrap();
        let token = TokenRecord {
            kind: TokenKind::Activation,
            hash: TokenHash::of("t"),
            subject: "s".into(),
            bind: String::new(),
            expires_at: 10,
        };
        store.token_insert(&token).await.unwrap();
        store.token_peek(token.kind, &token.hash, 0).await.unwrap();
        store.token_take(token.kind, &token.hash, 0).await.unwrap();
        let mail = OutboxMail {
            id: OutboxMail::new_id(),
            kind: "activation".into(),
            to: "a@example.org".into(),
            subject: String::new(),
            text: String::new(),
            html: String::new(),
            created_at: 0,
            attempts: 0,
            next_attempt: 0,
            last_error: None,
        };
        store.outbox_push(&mail).await.unwrap();
        store.outbox_claim(0, 10, 1).await.unwrap();
        store.outbox_retry(&mail.id, 0, "e").await.unwrap();
        store.outbox_list().await.unwrap();
        store.outbox_done(&mail.id).await.unwrap();
        store.outbox_fail(&mail.id, 0, "e").await.unwrap();
        store.outbox_failed(10).await.unwrap();
        store
            .counter_hit(CounterScope::FormsPerIp, "ip", 10, 0)
            .await
            .unwrap();

        for op in [
            "user_insert_pending",
            "user_set_password",
            "user_activate",
            "user_delete",
            "token_insert",
            "token_peek",
            "token_take",
            "outbox_push",
            "outbox_claim",
            "outbox_retry",
            "outbox_list",
            "outbox_done",
            "outbox_fail",
            "outbox_failed",
            "counter_hit",
        ] {
            let timed = metrics.store_duration.with_label_values(&[op]);
            assert_eq!(timed.get_sample_count(), 1, "{op}");
        }
        assert_eq!(metrics.store_errors.get(), 0);
    }
}
