//! Runs one behavioural test against both store backends: `both_backends!(name)` expects
//! `async fn name(backend: Backend)` and generates `name::sqlite` and `name::redis`.

use crate::common::gateway::{Gateway, GatewayBuilder};
use crate::common::redis_server::RedisServer;
use crate::common::smtp::SmtpSink;
use crate::common::upstream::Upstream;

pub enum Backend {
    Sqlite,
    Redis,
}

/// What a test runs against: the upstream, the store (SQLite in the gateway's temp dir,
/// or a real redis-server), a real SMTP server the gateway mails through, the gateway.
pub struct Stack {
    pub upstream: Upstream,
    pub redis: Option<RedisServer>,
    pub smtp: SmtpSink,
    pub gw: Gateway,
}

/// Mail through `smtp`, retried quickly so an outage test does not wait for long (and a
/// short SMTP timeout, which bounds the lease of a mail whose sender was killed); merged
/// before the test's own `extra`, which can override any of it.
fn mail_config(smtp: &SmtpSink) -> String {
    format!(
        "[mail]\ntransport = \"smtp\"\nsmtp_url = \"{}\"\n\
         retry_initial = \"200ms\"\nretry_max = \"2s\"\ntimeout = \"2s\"\n",
        smtp.url()
    )
}

impl Backend {
    /// Upstream + store + SMTP server + one gateway, with `extra` TOML merged into the
    /// config (after the `[mail]` settings pointing at the SMTP server).
    pub async fn stack(self, extra: &str) -> Stack {
        let upstream = Upstream::start().await;
        let redis = match self {
            Backend::Sqlite => None,
            Backend::Redis => Some(RedisServer::start().await),
        };
        let smtp = SmtpSink::start().await;
        let mut builder = GatewayBuilder::new(upstream.url())
            .extra(&mail_config(&smtp))
            .extra(extra);
        if let Some(r) = &redis {
            builder = builder.store(r.url());
        }
        let gw = builder.start().await;
        Stack {
            upstream,
            redis,
            smtp,
            gw,
        }
    }
}

impl Stack {
    /// A second gateway instance on the same store and the same SMTP server.
    pub async fn second_instance(&self, extra: &str) -> Gateway {
        GatewayBuilder::new(self.upstream.url())
            .name("second")
            .share_store_with(&self.gw)
            .extra(&mail_config(&self.smtp))
            .extra(extra)
            .start()
            .await
    }
}

#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::backend::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name($crate::backend::Backend::Redis).await
            }
        }
    };
}
