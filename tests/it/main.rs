//! The integration test binary: every test talks to real processes through real sockets
//! (the `vigile` binary, redis-server, a recording upstream). See `common/` for fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Real processes run on the real clock: deadlines, polling and latency are measured on it.
#![allow(clippy::disallowed_methods)]

mod account_settings;
mod admin_actions;
mod apps;
mod audit;
mod body_limit;
mod browser;
mod browser_contact;
mod browser_orgs;
mod browser_twofactor;
mod client_conns;
mod common;
mod console;
mod contact;
mod demo;
mod deploy;
mod devices;
mod email_addresses;
mod eviction_guard;
mod fixtures_smoke;
mod lockout;
mod login_priority;
mod mail_outbox;
mod metrics;
mod ops;
mod orgs;
mod pages;
mod password_reset;
mod path_differential;
mod proxy_rules;
mod reload;
mod request_hardening;
mod rewrite;
mod routes;
mod sentinel;
mod session_cache;
mod sessions;
mod shutdown;
mod signup;
mod store_changes;
mod store_contact;
mod store_devices;
mod store_kept;
mod store_orgs;
mod store_redis_layout;
mod store_sqlite_wal;
mod store_suite;
mod streams;
mod streams_review;
mod support_contact;
mod twofactor;
mod upstream_failures;
mod user_import;
