//! Every Prometheus collector Vigile exports, registered once in one registry. Names and
//! labels are part of the public contract (SPEC section 7): change them only with the SPEC.
//!
//! Besides Vigile's own, the registry holds the standard process collector (on Linux:
//! `process_open_fds`, `process_max_fds`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_cpu_seconds_total`,
//! `process_start_time_seconds`, `process_threads`, read from `/proc` at each scrape,
//! under the names every Prometheus client library uses, so stock dashboards and alerts
//! work) and `vigile_build_info{version}`, always 1, to tell which version each instance
//! runs.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// decision: proxied, login_redirect, unauthorized, forbidden, blocked, page
    pub requests: IntCounterVec,
    pub upstream_duration: Histogram,
    /// Upstream failures after the response head went out (the client connection closed).
    pub upstream_aborts: IntCounter,
    /// upstream: a pooled `[[route]]` server's URL; 1 healthy, 0 failing its health check.
    pub upstream_healthy: IntGaugeVec,
    /// phase: connect, first_byte (504 before the head), idle (a started response closed)
    pub upstream_timeouts: IntCounterVec,
    /// Clients that went away mid-request (a video seek, a closed tab).
    pub client_aborts: IntCounter,
    /// Long-lived responses closed because their session ended.
    pub streams_revoked: IntCounter,
    /// result: success, bad_credentials, locked, ip_blocked, overflow, not_activated,
    /// second_factor, shed
    pub logins: IntCounterVec,
    pub sessions_active: IntGauge,
    /// result: hit, miss, invalidated
    pub session_cache: IntCounterVec,
    /// 1 while the store's change feed is live (sessions cached until their end).
    pub session_invalidation_up: IntGauge,
    /// resolution: replaced, evicted, denied, abandoned
    pub device_overflows: IntCounterVec,
    pub account_lockouts: IntCounter,
    pub ip_blocks: IntCounter,
    /// kind, result
    pub mail: IntCounterVec,
    /// result
    pub sms: IntCounterVec,
    /// step: email (link mailed), company (step 2 accepted), created
    pub org_registrations: IntCounterVec,
    pub contact_confirmations: IntCounterVec,
    /// method: totp, webauthn, email, sms, recovery; result: success, failure, replayed,
    /// locked, enrolled
    pub second_factor: IntCounterVec,
    pub eviction_unsafe: IntGauge,
    pub store_full: IntCounter,
    pub store_duration: HistogramVec,
    pub store_errors: IntCounter,
    pub password_hash: Histogram,
    /// lane: priority, shared. Hashes refused at once for want of room (a login storm).
    pub password_hash_shed: IntCounterVec,
    /// result: ok (the file read again is in use), error (invalid; the running one stays)
    pub config_reloads: IntCounterVec,
    /// Client connections open now (proxy listener).
    pub client_connections_open: IntGauge,
    /// Connections closed at once: their address was at `server.max_connections_per_ip`.
    pub client_connections_refused: IntCounter,
    /// phase: header (too slow to send a request header), keepalive (idle between requests)
    pub client_timeouts: IntCounterVec,
    /// reason: path, host, content_length (400 before any rule)
    pub refused: IntCounterVec,
    /// result: stored (in the console's trail), dropped (its queue was full)
    pub audit_events: IntCounterVec,
}

fn fast_buckets() -> Vec<f64> {
    vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ]
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };

        let requests = counter_vec(
            "vigile_requests_total",
            "Requests by gateway decision.",
            &["decision"],
        )?;
        let upstream_duration = histogram(
            "vigile_upstream_duration_seconds",
            "Time from sending a request upstream to its response headers.",
            fast_buckets(),
        )?;
        let logins = counter_vec(
            "vigile_logins_total",
            "Login attempts by result.",
            &["result"],
        )?;
        let sessions_active = IntGauge::new("vigile_sessions_active", "Sessions currently valid.")?;
        registry.register(Box::new(sessions_active.clone()))?;
        let session_cache = counter_vec(
            "vigile_session_cache_total",
            "Session lookups answered from memory (hit) or the store (miss), and cached \
             sessions dropped because the store announced a change (invalidated).",
            &["result"],
        )?;
        for r in ["hit", "miss", "invalidated"] {
            session_cache.with_label_values(&[r]);
        }
        let session_invalidation_up = IntGauge::new(
            "vigile_session_invalidation_up",
            "1 while the store's change feed is live; 0 while it is lost, when sessions are \
             cached for 0.5 s only.",
        )?;
        registry.register(Box::new(session_invalidation_up.clone()))?;
        let eviction_unsafe = IntGauge::new(
            "vigile_store_eviction_policy_unsafe",
            "1 while the store's server may evict keys (Redis maxmemory-policy other than \
             noeviction): Vigile refuses it, or serves anyway if store.allow_eviction is set.",
        )?;
        registry.register(Box::new(eviction_unsafe.clone()))?;
        let store_full = IntCounter::new(
            "vigile_store_full_total",
            "Store writes refused because the store is full (Redis maxmemory under noeviction); \
             each failed closed.",
        )?;
        registry.register(Box::new(store_full.clone()))?;
        let device_overflows = counter_vec(
            "vigile_device_overflows_total",
            "Logins past the device cap, by how they ended.",
            &["resolution"],
        )?;
        let contact_confirmations = counter_vec(
            "vigile_contact_confirmations_total",
            "Email addresses and mobile numbers members confirmed, by channel.",
            &["channel"],
        )?;
        let second_factor = counter_vec(
            "vigile_second_factor_total",
            "Second-factor checks and enrolments, by method and result.",
            &["method", "result"],
        )?;
        let upstream_aborts = counter(
            "vigile_upstream_aborts_total",
            "Upstream failures after the response had started: the client connection was \
             closed (its response truncated), never finished with an error page.",
        )?;
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "vigile_upstream_healthy",
                "1 while a server of a [[route]] pool (upstreams) passes its health check, 0 \
                 while it fails and is skipped.",
            ),
            &["upstream"],
        )?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        let upstream_timeouts = counter_vec(
            "vigile_upstream_timeouts_total",
            "Upstream time limits reached: connect and first_byte (answered 504), idle (a \
             started response or stream closed).",
            &["phase"],
        )?;
        for p in ["connect", "first_byte", "idle"] {
            upstream_timeouts.with_label_values(&[p]);
        }
        let client_aborts = counter(
            "vigile_client_aborts_total",
            "Clients that closed their connection before their response was complete.",
        )?;
        let streams_revoked = counter(
            "vigile_streams_revoked_total",
            "Open responses (WebSockets, event streams, downloads) closed because their \
             session ended.",
        )?;
        let org_registrations = counter_vec(
            "vigile_org_registrations_total",
            "Company registrations, by the step they passed.",
            &["step"],
        )?;
        let account_lockouts = counter(
            "vigile_account_lockouts_total",
            "Accounts locked after repeated failures.",
        )?;
        let ip_blocks = counter("vigile_ip_blocks_total", "Client addresses blocked.")?;
        let mail = counter_vec(
            "vigile_mail_total",
            "Mails by kind and result.",
            &["kind", "result"],
        )?;
        let sms = counter_vec("vigile_sms_total", "Text messages by result.", &["result"])?;
        let store_duration = HistogramVec::new(
            HistogramOpts::new("vigile_store_duration_seconds", "Store operation latency.")
                .buckets(fast_buckets()),
            &["op"],
        )?;
        registry.register(Box::new(store_duration.clone()))?;
        let store_errors = counter("vigile_store_errors_total", "Store operations that failed.")?;
        let password_hash = histogram(
            "vigile_password_hash_seconds",
            "Time to hash or verify one password (argon2id), queueing included.",
            vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
        )?;
        let password_hash_shed = counter_vec(
            "vigile_password_hash_shed_total",
            "Password hashes and checks refused (503 with Retry-After) because their lane of \
             the hashing queue had no room for them, at once or when a fairer claim took \
             their place: priority (known devices, signed-in members), shared (everyone \
             else, fair per client address).",
            &["lane"],
        )?;
        for lane in ["priority", "shared"] {
            password_hash_shed.with_label_values(&[lane]);
        }

        let config_reloads = counter_vec(
            "vigile_config_reloads_total",
            "Configuration reloads (SIGHUP): ok (the file read again serves the next \
             requests), error (it was invalid; the running configuration stays, the log says \
             why).",
            &["result"],
        )?;
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }

        let refused = counter_vec(
            "vigile_requests_refused_total",
            "Requests refused before any rule or forwarding: ambiguous path, invalid Host, \
             disagreeing Content-Length (400); body_too_large (413).",
            &["reason"],
        )?;
        for r in ["path", "host", "content_length", "body_too_large"] {
            refused.with_label_values(&[r]);
        }

        let audit_events = counter_vec(
            "vigile_audit_events_total",
            "Audit events for the console's trail: stored, or dropped because the queue to \
             the store was full (the store down for long; the log still has them).",
            &["result"],
        )?;
        for r in ["stored", "dropped"] {
            audit_events.with_label_values(&[r]);
        }

        let client_connections_open = IntGauge::new(
            "vigile_client_connections_open",
            "Client connections open on the proxy listener.",
        )?;
        registry.register(Box::new(client_connections_open.clone()))?;
        let client_connections_refused = counter(
            "vigile_client_connections_refused_total",
            "Client connections closed at once because their address had too many open.",
        )?;
        let client_timeouts = counter_vec(
            "vigile_client_timeouts_total",
            "Client connections closed for slowness, by phase (header, keepalive).",
            &["phase"],
        )?;
        for p in ["header", "keepalive"] {
            client_timeouts.with_label_values(&[p]);
        }

        let build_info = IntGaugeVec::new(
            Opts::new(
                "vigile_build_info",
                "Always 1; the version label says which release this process runs.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        // Pre-create the documented label values so dashboards see zeros, not gaps.
        for d in [
            "proxied",
            "login_redirect",
            "unauthorized",
            "forbidden",
            "blocked",
            "page",
        ] {
            requests.with_label_values(&[d]);
        }
        for r in [
            "success",
            "bad_credentials",
            "locked",
            "ip_blocked",
            "overflow",
            "not_activated",
            "shed",
        ] {
            logins.with_label_values(&[r]);
        }
        for r in ["replaced", "evicted", "denied", "abandoned"] {
            device_overflows.with_label_values(&[r]);
        }
        for r in ["sent", "retry", "expired"] {
            sms.with_label_values(&[r]);
        }
        for channel in ["email", "mobile"] {
            contact_confirmations.with_label_values(&[channel]);
        }
        for method in ["totp", "webauthn", "email", "sms", "recovery"] {
            for result in ["success", "failure"] {
                second_factor.with_label_values(&[method, result]);
            }
        }
        for step in ["email", "company", "created"] {
            org_registrations.with_label_values(&[step]);
        }
        requests.with_label_values(&["unavailable"]);

        Ok(Self {
            registry,
            requests,
            upstream_duration,
            upstream_aborts,
            upstream_healthy,
            upstream_timeouts,
            client_aborts,
            streams_revoked,
            logins,
            sessions_active,
            session_cache,
            session_invalidation_up,
            device_overflows,
            org_registrations,
            contact_confirmations,
            second_factor,
            eviction_unsafe,
            store_full,
            account_lockouts,
            ip_blocks,
            mail,
            sms,
            store_duration,
            store_errors,
            password_hash,
            password_hash_shed,
            config_reloads,
            audit_events,
            client_connections_open,
            client_connections_refused,
            client_timeouts,
            refused,
        })
    }

    /// Text exposition format for `/metrics`.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = vec![];
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        buf
    }
}
