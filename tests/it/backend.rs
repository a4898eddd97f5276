//! Runs one behavioural test against both store backends: `both_backends!(name)` expects
//! `async fn name(backend: Backend)` and generates `name::sqlite` and `name::redis`.

use crate::common::gateway::{Gateway, GatewayBuilder};
use crate::common::redis_server::RedisServer;
use crate::common::upstream::Upstream;

pub enum Backend {
    Sqlite,
    Redis,
}

/// A store for a test: SQLite in the gateway's temp dir, or a real redis-server.
pub struct Stack {
    pub upstream: Upstream,
    pub redis: Option<RedisServer>,
    pub gw: Gateway,
}

impl Backend {
    /// Upstream + store + one gateway, with `extra` TOML merged into the config.
    pub async fn stack(self, extra: &str) -> Stack {
        let upstream = Upstream::start().await;
        let redis = match self {
            Backend::Sqlite => None,
            Backend::Redis => Some(RedisServer::start().await),
        };
        let mut builder = GatewayBuilder::new(upstream.url()).extra(extra);
        if let Some(r) = &redis {
            builder = builder.store(r.url());
        }
        let gw = builder.start().await;
        Stack {
            upstream,
            redis,
            gw,
        }
    }
}

impl Stack {
    /// A second gateway instance on the same store.
    pub async fn second_instance(&self, extra: &str) -> Gateway {
        GatewayBuilder::new(self.upstream.url())
            .name("second")
            .share_store_with(&self.gw)
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
