//! The two store backends every behaviour is tested on, and the one macro that runs a test
//! on both: `both_backends!(a, b)` expects `async fn a(backend: Backend)` or
//! `async fn a(b: StoreBackend)` and generates the tests `a::sqlite` and `a::redis` (and the
//! same for `b`). The parameter's type says what the test gets: a [`Backend`] to start a
//! whole [`Stack`] from, or a [`StoreBackend`] to open stores on directly.
//! `every_store!` does the same and adds `a::cluster`, on a three-master Redis Cluster:
//! the store behaviour suite (`store_*.rs`) runs on all three.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tempfile::TempDir;
use vigile::store::{self, DynStore, RedisStore, SqliteStore, StoreUrl};

use super::cluster::ClusterSet;
use super::cluster_pool::{self, Cluster};
use super::gateway::{Gateway, GatewayBuilder};
use super::redis_server::RedisServer;
use super::smtp::{ReceivedMail, SmtpSink};
use super::upstream::Upstream;

/// One test module per name, one `#[tokio::test]` per `fn => Backend variant` pair (the
/// shared body of [`both_backends!`] and [`every_store!`]).
#[macro_export]
macro_rules! backend_tests {
    ($name:ident: $($test:ident => $variant:ident),+) => {
        mod $name {
            use $crate::common::backend::{run_on, Backend};

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    run_on(Backend::$variant, super::$name).await
                }
            )+
        }
    };
}

/// Runs each named test on SQLite and on a real redis-server, as `name::sqlite` and
/// `name::redis`. The test's parameter is a [`Backend`] or a [`StoreBackend`].
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        $crate::backend_tests!($name: sqlite => Sqlite, redis => Redis);
    )+};
}

/// [`both_backends!`], plus `name::cluster` on a Redis Cluster.
#[macro_export]
macro_rules! every_store {
    ($($name:ident),+ $(,)?) => {$(
        $crate::backend_tests!($name: sqlite => Sqlite, redis => Redis, cluster => Cluster);
    )+};
}

pub enum Backend {
    Sqlite,
    Redis,
    /// A three-master Redis Cluster ([`ClusterSet`]).
    Cluster,
}

/// What a test of [`both_backends!`] is given, made from the backend it runs on.
pub trait OnBackend: Sized {
    fn start(backend: Backend) -> impl Future<Output = Self>;
}

/// Runs `test` with what it asks for (its parameter's type), made from `backend`.
pub async fn run_on<T: OnBackend, F: Future<Output = ()>>(backend: Backend, test: fn(T) -> F) {
    test(T::start(backend).await).await
}

impl OnBackend for Backend {
    async fn start(backend: Backend) -> Self {
        backend
    }
}

/// What a test runs against: the upstream, the store (SQLite in the gateway's temp dir,
/// or a real redis-server), a real SMTP server the gateway mails through, the gateway.
pub struct Stack {
    pub upstream: Upstream,
    pub redis: Option<RedisServer>,
    pub cluster: Option<ClusterSet>,
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
            Backend::Redis => Some(RedisServer::start().await),
            Backend::Sqlite | Backend::Cluster => None,
        };
        let cluster = match self {
            Backend::Cluster => Some(ClusterSet::start().await),
            Backend::Sqlite | Backend::Redis => None,
        };
        let smtp = SmtpSink::start().await;
        let mut builder = GatewayBuilder::new(upstream.url())
            .extra(&mail_config(&smtp))
            .extra(extra);
        if let Some(r) = &redis {
            builder = builder.store(r.url());
        }
        if let Some(c) = &cluster {
            builder = builder.store(c.url());
        }
        let gw = builder.start().await;
        Stack {
            upstream,
            redis,
            cluster,
            smtp,
            gw,
        }
    }
}

impl Stack {
    /// Waits (up to 20 s) until the outbox holds no mail waiting to be sent: every mail
    /// queued so far has been taken by the SMTP server (or failed for good). Count the
    /// mails received only after this, or a "no mail" / "exactly one mail" check races
    /// the sender. Mails queued by work the gateway does off the request (the "mail me a
    /// link" forms) must be waited for first: this sees only what is queued.
    pub async fn outbox_drained(&self) {
        let store = open_store(self);
        super::poll_for("the outbox to drain", 400, || async {
            let waiting = store.outbox_list().await.unwrap();
            waiting.is_empty().then_some(())
        })
        .await
    }

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

/// A store object on the gateway's data, as the admin CLI would open it.
pub fn open_store(s: &Stack) -> DynStore {
    store::open(&StoreUrl::parse(s.gw.store_url()).unwrap(), false).unwrap()
}

/// The activation mail for `email` and the link in it (made absolute on the gateway).
pub async fn activation_mail(s: &Stack, email: &str, subject: &str) -> (ReceivedMail, String) {
    let mail = s.smtp.wait_for_to(email, subject).await;
    let link = mail.link_containing("/_vigile/activate?token=");
    (mail, link)
}

/// Store data without a gateway, for the store contract tests: a temporary SQLite file or
/// a real redis-server. "Two instances" are two store objects opened on it.
pub enum StoreBackend {
    Sqlite {
        _dir: TempDir,
        path: PathBuf,
    },
    Redis(RedisServer),
    /// Leased from [`cluster_pool`] by the behaviour suite; a test's own otherwise.
    Cluster(Cluster),
}

impl StoreBackend {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/vigile.db");
        StoreBackend::Sqlite { _dir: dir, path }
    }

    pub async fn redis() -> Self {
        StoreBackend::Redis(RedisServer::start().await)
    }

    /// A new store object on the same data: another gateway instance, or the admin CLI.
    pub fn open(&self) -> DynStore {
        match self {
            StoreBackend::Sqlite { path, .. } => Arc::new(SqliteStore::open(path).unwrap()),
            StoreBackend::Redis(server) => {
                Arc::new(RedisStore::connect_lazy(&server.url(), false).unwrap())
            }
            StoreBackend::Cluster(set) => {
                Arc::new(RedisStore::connect_lazy(&set.url(), false).unwrap())
            }
        }
    }
}

impl OnBackend for StoreBackend {
    async fn start(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => StoreBackend::sqlite().await,
            Backend::Redis => StoreBackend::redis().await,
            Backend::Cluster => StoreBackend::Cluster(cluster_pool::lease().await),
        }
    }
}
