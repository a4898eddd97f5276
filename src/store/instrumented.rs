//! The timed `Store` decorator: [`Instrumented`] times every store operation
//! (`vigile_store_duration_seconds{op}`) and counts failures (`vigile_store_errors_total`),
//! so backends stay free of metrics code.
//!
//! Its trait impls are not written by hand: each store trait is declared through
//! [`timed_store!`], which emits, from the one list of methods, the trait and its impl for
//! `Instrumented`. A method added to a store trait is timed without anyone remembering to,
//! and the test below checks that every operation the macro knows of gets a sample.

use std::sync::Arc;

use super::{DynStore, StoreError, StoreResult};
use crate::clock::Stopwatch;
use crate::metrics::Metrics;

/// Declares a store trait and its timed implementation for [`Instrumented`]:
///
/// ```text
/// timed_store! {
///     pub trait Store: TokenStore + Send + Sync + 'static {
///         untimed {
///             fn backend(&self) -> &'static str;
///         }
///         async fn user_insert(&self, user: &User) -> StoreResult<()>;
///         async fn secret_get_or_init(&self, candidate: &[u8]) -> StoreResult<Vec<u8>> as "secret";
///     }
/// }
/// ```
///
/// Each `async fn` is timed under its own name, or the `as "label"` given (kept where
/// dashboards already know the older label). The syntax allows no default bodies, so every
/// backend implements every method and the decorator cannot fall back to an untimed one.
/// `untimed` holds the plain `fn`s that are not store operations; they are forwarded.
/// Also emits `TIMED_OPS`, the labels of the trait's timed methods, for the test.
macro_rules! timed_store {
    (@op $method:ident) => { stringify!($method) };
    (@op $method:ident $label:literal) => { $label };
    (
        $(#[$attr:meta])*
        $vis:vis trait $name:ident: $first:ident $(+ $bound:ident)* $(+ $lifetime:lifetime)? {
            $(untimed {
                $(
                    $(#[$uattr:meta])*
                    fn $umethod:ident(&self) -> $uret:ty;
                )*
            })?
            $(
                $(#[$mattr:meta])*
                async fn $method:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty
                    $(as $label:literal)?;
            )*
        }
    ) => {
        $(#[$attr])*
        #[::async_trait::async_trait]
        $vis trait $name: $first $(+ $bound)* $(+ $lifetime)? {
            $($(
                $(#[$uattr])*
                fn $umethod(&self) -> $uret;
            )*)?
            $(
                $(#[$mattr])*
                async fn $method(&self $(, $arg: $ty)*) -> $ret;
            )*
        }

        #[::async_trait::async_trait]
        impl $name for $crate::store::Instrumented {
            $($(
                fn $umethod(&self) -> $uret {
                    self.inner.$umethod()
                }
            )*)?
            $(
                async fn $method(&self $(, $arg: $ty)*) -> $ret {
                    let op = $crate::store::timed_store!(@op $method $($label)?);
                    self.time(op, self.inner.$method($($arg),*)).await
                }
            )*
        }

        /// The `op` labels of this module's store trait, for the test that each is timed.
        #[cfg(test)]
        pub(in $crate::store) const TIMED_OPS: &[&str] =
            &[$($crate::store::timed_store!(@op $method $($label)?)),*];
    };
}
pub(super) use timed_store;

pub struct Instrumented {
    pub(super) inner: DynStore,
    metrics: Arc<Metrics>,
}

impl Instrumented {
    pub fn new(inner: DynStore, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    pub(super) async fn time<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let start = Stopwatch::start();
        let result = fut.await;
        self.metrics
            .store_duration
            .with_label_values(&[op])
            .observe(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            if !matches!(e, StoreError::Conflict) {
                self.metrics.store_errors.inc();
                if matches!(e, StoreError::Full(_)) {
                    self.metrics.store_full.inc();
                }
                tracing::warn!(op, backend = self.inner.backend(), error = %e, "store operation failed");
            }
        }
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use prometheus::core::Collector;

    use super::*;
    use crate::store::*;

    /// Every timed operation, from the declarations themselves: a store trait added to
    /// `Store` has its list added here.
    fn all_ops() -> Vec<&'static str> {
        [
            crate::store::TIMED_OPS,
            crate::store::tokens::TIMED_OPS,
            crate::store::outbox::TIMED_OPS,
            crate::store::counters::TIMED_OPS,
            crate::store::throttle::TIMED_OPS,
            crate::store::devices::TIMED_OPS,
            crate::store::orgs::TIMED_OPS,
            crate::store::contact::TIMED_OPS,
            crate::store::kept::TIMED_OPS,
            crate::store::audit::TIMED_OPS,
        ]
        .concat()
    }

    fn user(email: &str, status: AccountStatus) -> User {
        User {
            id: UserId::random(),
            email: email.into(),
            name: "A".into(),
            password_hash: "h".into(),
            admin: false,
            status,
            lang: None,
            created_at: 0,
            org: None,
            contact: Default::default(),
        }
    }

    fn session(user: &UserId, token: &str) -> SessionRecord {
        SessionRecord {
            id: SessionId::random(),
            token_hash: TokenHash::of(token),
            user_id: user.clone(),
            device_id: DeviceId::random(),
            created_at: 0,
            last_seen: 0,
            idle_ms: 60_000,
            absolute_expiry: 60_000,
            ip: "192.0.2.1".into(),
            level: Default::default(),
            user_agent: "test".into(),
        }
    }

    /// Calls every store method once, on SQLite, and expects one sample under each label
    /// the declarations give, and no other label: an operation cannot go untimed, nor be
    /// timed under a name the macro does not know.
    #[tokio::test]
    async fn every_operation_is_timed_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let inner: DynStore = Arc::new(SqliteStore::open(&dir.path().join("v.db")).unwrap());
        let metrics = Arc::new(Metrics::new().unwrap());
        let store = Instrumented::new(inner, Arc::clone(&metrics));
        let now = 1_000;

        // Store
        assert_eq!(store.backend(), "sqlite");
        store.ping().await.unwrap();
        store.secret_get_or_init(b"secret").await.unwrap();
        let member = user("a@example.org", AccountStatus::Active);
        store.user_insert(&member).await.unwrap();
        store.user_by_email(&member.email).await.unwrap();
        store.user_by_id(&member.id).await.unwrap();
        store.user_list().await.unwrap();
        let pending = user("p@example.org", AccountStatus::Pending);
        store.user_insert_pending(&pending, 10_000).await.unwrap();
        store.user_activate(&pending.id, now).await.unwrap();
        store.user_set_password(&pending.id, "h2").await.unwrap();
        store
            .user_set_profile(&pending.id, "P", Some("en"))
            .await
            .unwrap();
        store
            .user_page(&crate::store::UserQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let s1 = session(&member.id, "s1");
        store.session_insert(&s1, None).await.unwrap();
        store.session_by_token(&s1.token_hash, now).await.unwrap();
        store.session_touch(&s1.id, now).await.unwrap();
        store
            .session_touch_many(&[(s1.id.clone(), now)])
            .await
            .unwrap();
        store.sessions_of(&member.id, now).await.unwrap();
        store.session_count(now).await.unwrap();
        store.session_delete(&s1.id).await.unwrap();
        store.session_delete_all(&member.id).await.unwrap();
        store.sweep(now).await.unwrap();
        store.user_delete(&pending.id).await.unwrap();

        // TokenStore (a registration link, used again below)
        let token = TokenRecord {
            kind: TokenKind::OrgRegistration,
            hash: TokenHash::of("link"),
            subject: "boss@example.org".into(),
            bind: String::new(),
            expires_at: 10_000,
        };
        store.token_insert(&token).await.unwrap();
        store
            .token_peek(token.kind, &token.hash, now)
            .await
            .unwrap();

        // OutboxStore
        let mail = OutboxMail {
            id: OutboxMail::new_id(),
            channel: Channel::Email,
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
        store
            .outbox_claim(Channel::Email, now, 10, 1)
            .await
            .unwrap();
        store.outbox_retry(&mail.id, 0, "e").await.unwrap();
        store.outbox_list().await.unwrap();
        let page = WaitingQuery {
            due: Due::Later,
            now,
            after: None,
            limit: 10,
        };
        store.outbox_page(&page).await.unwrap();
        store.outbox_get(&mail.id).await.unwrap();
        store.outbox_waiting().await.unwrap();
        store.user_counts().await.unwrap();
        store.outbox_due_now(&mail.id, now).await.unwrap();
        store.outbox_done(&mail.id).await.unwrap();
        store.outbox_sent(&mail.id, now).await.unwrap();
        store.outbox_sent_count(Channel::Email, now).await.unwrap();
        store.outbox_fail(&mail.id, 0, "e").await.unwrap();
        store.outbox_failed(10).await.unwrap();
        store.outbox_failed_count(now).await.unwrap();

        // CounterStore
        store
            .counter_hit(CounterScope::FormsPerIp, "ip", 10, now)
            .await
            .unwrap();

        // ThrottleStore
        let device = DeviceId::random();
        let key = AttemptKey::Device(&member.email, &device);
        store.attempt_begin(key, now).await.unwrap();
        store.attempts_of(key).await.unwrap();
        store.attempts_clear(key).await.unwrap();
        store.attempt_refund(key).await.unwrap();
        store.attempts_clear_all(&member.email).await.unwrap();
        store.device_remember(&member.id, &device).await.unwrap();
        store.device_known(&member.id, &device).await.unwrap();
        let rule = IpRule {
            max: 3,
            window_ms: 60_000,
            block_ms: 60_000,
            max_block_ms: 600_000,
        };
        let ip = "192.0.2.1";
        store.ip_attempt(ip, &rule, now).await.unwrap().unwrap();
        store.ip_refund(ip).await.unwrap();
        store.ip_block(ip, &rule, now).await.unwrap();
        store.ip_blocked_until(ip, now).await.unwrap();
        store.ip_unblock(ip, now).await.unwrap();
        store.ip_blocks(now, 10).await.unwrap();

        // DeviceStore
        let s2 = session(&member.id, "s2");
        store
            .session_open(&s2, None, &[], Cap::UNLIMITED, now)
            .await
            .unwrap();
        store
            .session_end(&member.id, &s2.id, SignedOut::Revoked, now)
            .await
            .unwrap();
        store.signed_out(&s2.token_hash, now).await.unwrap();
        let challenge = Challenge {
            user_id: member.id.clone(),
            code_hash: TokenHash::of("code"),
            attempts: 0,
            verified: false,
            rd: "/".into(),
            expires_at: 10_000,
            level: Default::default(),
        };
        store.challenge_put(&device, &challenge).await.unwrap();
        store.challenge_get(&device, now).await.unwrap();
        let other_code = TokenHash::of("other");
        store
            .challenge_renew(&device, &other_code, 10_000, now)
            .await
            .unwrap();
        store
            .challenge_check(&device, &other_code, 3, 10_000, now)
            .await
            .unwrap();
        store.challenge_delete(&device).await.unwrap();
        let settings = store.settings_get().await.unwrap();
        store.settings_set(&settings).await.unwrap();
        store.member_cap(&member.id).await.unwrap();
        store.member_cap_set(&member.id, Some(3)).await.unwrap();

        // KeptStore
        store
            .kept_put(crate::store::Kept::Factors, "k", 0, Some("{}"), None, now)
            .await
            .unwrap();
        store
            .kept_get(crate::store::Kept::Factors, "k", now)
            .await
            .unwrap();

        // AuditStore
        let keep = crate::store::AuditKeep {
            keep_ms: 1000,
            max_events: 10,
        };
        let record = crate::store::AuditRecord {
            at: now,
            event: "login".into(),
            ..Default::default()
        };
        store.audit_append(&[record], keep).await.unwrap();
        store
            .audit_page(&crate::store::AuditQuery::default())
            .await
            .unwrap();
        store.audit_counts(now, now + 1).await.unwrap();
        store.audit_prune(keep, now).await.unwrap();

        // ContactStore
        let code = ContactCode {
            channel: Channel::Email,
            value: "new@example.org".into(),
            code_hash: TokenHash::of("123456"),
            link_hash: Some(TokenHash::of("link")),
            attempts: 0,
            expires_at: 10_000,
        };
        store.contact_code_put(&member.id, &code).await.unwrap();
        store
            .contact_code_get(&member.id, Channel::Email, now)
            .await
            .unwrap();
        store
            .contact_link(&TokenHash::of("link"), now)
            .await
            .unwrap();
        let at = Confirmed {
            at: now,
            via: Via::Code,
        };
        store
            .contact_confirm(
                &member.id,
                Channel::Email,
                Proof::Link(&TokenHash::of("link")),
                5,
                at,
                now,
            )
            .await
            .unwrap();
        let mark = CampaignMark {
            id: "c1".into(),
            channels: Channels {
                email: true,
                mobile: false,
            },
            asked_at: now,
            seen_at: None,
        };
        store.contact_ask(&member.id, &mark).await.unwrap();
        store.contact_seen(&member.id, "c1", now).await.unwrap();
        let campaign = Campaign {
            id: "c1".into(),
            started_at: now,
            by: "cli".into(),
            scope: "all".into(),
            channels: mark.channels,
            asked: 1,
        };
        store.campaign_insert(&campaign).await.unwrap();
        store.campaign_list().await.unwrap();

        // OrgStore
        let org_id = OrgId::random();
        let mut founder = user("boss@example.org", AccountStatus::Active);
        founder.org = Some(Membership {
            org: org_id.clone(),
            role: OrgRole::SuperAdmin,
        });
        let profile = OrgProfile {
            company: "Acme".into(),
            id_type: "other".into(),
            id_number: "x".into(),
            phone: "+33612345678".into(),
            address: "1 rue".into(),
        };
        let org = Org {
            id: org_id.clone(),
            profile: profile.clone(),
            terms: OrgTerms::default(),
            super_admin: founder.id.clone(),
            created_at: now,
        };
        let registered = store
            .org_register(&org, &founder, &token.hash, now)
            .await
            .unwrap();
        assert_eq!(registered, Registered::Created);
        store.org_get(&org_id).await.unwrap();
        store.org_list().await.unwrap();
        store.org_members(&org_id).await.unwrap();
        store.org_member_count(&org_id).await.unwrap();
        store.org_set_profile(&org_id, &profile).await.unwrap();
        store
            .org_set_terms(&org_id, &OrgTerms::default())
            .await
            .unwrap();
        let invite = OrgInvite {
            org: org_id.clone(),
            email: "new@example.org".into(),
            token_hash: TokenHash::of("invite"),
            invited_by: founder.id.clone(),
            created_at: now,
            expires_at: 10_000,
        };
        store.org_invite(&invite, 5, now).await.unwrap();
        store.org_invites(&org_id, now).await.unwrap();
        store
            .org_invite_by_token(&invite.token_hash, now)
            .await
            .unwrap();
        let mut joiner = user("new@example.org", AccountStatus::Active);
        joiner.org = Some(Membership {
            org: org_id.clone(),
            role: OrgRole::Member,
        });
        store
            .org_join(&invite.token_hash, &joiner, now)
            .await
            .unwrap();
        store
            .org_invite_cancel(&org_id, "x@example.org")
            .await
            .unwrap();
        store
            .org_set_role(&org_id, &joiner.id, OrgRole::Admin)
            .await
            .unwrap();
        store
            .org_transfer(&org_id, &founder.id, &joiner.id)
            .await
            .unwrap();
        store.org_remove(&org_id, &founder.id).await.unwrap();
        store
            .token_take(token.kind, &token.hash, now)
            .await
            .unwrap();

        let ops = all_ops();
        for op in &ops {
            let timed = metrics.store_duration.with_label_values(&[op]);
            assert_eq!(timed.get_sample_count(), 1, "{op}");
        }
        let labels: BTreeSet<String> = Collector::collect(&metrics.store_duration)
            .iter()
            .flat_map(|family| family.get_metric())
            .flat_map(|metric| metric.get_label())
            .map(|label| label.value().to_string())
            .collect();
        let declared: BTreeSet<String> = ops.iter().map(|op| op.to_string()).collect();
        assert_eq!(labels, declared);
        assert_eq!(ops.len(), declared.len(), "two operations share a label");
        assert_eq!(metrics.store_errors.get(), 0);
    }
}
