//! Password hashing with argon2id, off the async executor and bounded.
//!
//! Each hash costs ~19 MiB and tens of milliseconds by default; a burst of logins run on
//! the proxy threads (or unbounded on the blocking pool) would stall proxied traffic and
//! exhaust memory. So every hash runs on a fixed, low-priority [`HashPool`], in a [`Lane`]
//! the caller names: a known device or a signed-in member first, everyone else fairly per
//! client address. A dummy hash with the same parameters lets an unknown account cost
//! exactly as much as a wrong password.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::hash_pool::{HashPool, PoolError, Ticket};
pub use super::hash_queue::Lane;

use crate::clock::Stopwatch;
use crate::config::PasswordSection;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("hashing task failed")]
    Task,
    /// No room in the caller's lane, or its place given to a fairer claim (a login
    /// storm): try again shortly. Counted in `vigile_password_hash_shed_total{lane}`.
    #[error("password hashing is busy")]
    Busy,
}

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    pool: HashPool,
    dummy: Arc<String>,
    metrics: Option<Arc<Metrics>>,
}

impl Hasher {
    pub fn new(cfg: &PasswordSection, metrics: Option<Arc<Metrics>>) -> Result<Self, HashError> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        // Default: leave at least one core to proxying.
        let concurrency = match cfg.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        };
        let pool = HashPool::start(concurrency).map_err(|e| HashError::Hash(e.to_string()))?;
        let dummy = hash_blocking(&params, "vigile dummy password for timing equality")?;
        Ok(Self {
            params,
            pool,
            dummy: Arc::new(dummy),
            metrics,
        })
    }

    /// A place in `lane` for one hash or check, taken before the caller counts anything
    /// (a login counts its attempt only once it knows it will be checked); `Busy` at once
    /// if the lane has no room for it.
    pub fn admit(&self, lane: Lane) -> Result<Slot, HashError> {
        let label = lane.label();
        match self.pool.admit(lane) {
            Ok(ticket) => Ok(Slot { ticket, label }),
            Err(e) => Err(self.refused(e, label)),
        }
    }

    /// The error for `e`, a shed counted.
    fn refused(&self, e: PoolError, lane: &str) -> HashError {
        if let (PoolError::Busy, Some(m)) = (e, &self.metrics) {
            m.password_hash_shed.with_label_values(&[lane]).inc();
        }
        match e {
            PoolError::Busy => HashError::Busy,
            PoolError::Gone => HashError::Task,
        }
    }

    /// PHC string of `password` with a fresh random salt.
    pub async fn hash(&self, password: &str, lane: Lane) -> Result<String, HashError> {
        let params = self.params.clone();
        let password = password.to_string();
        let slot = self.admit(lane)?;
        self.run(slot, move || hash_blocking(&params, &password))
            .await?
    }

    /// Checks `password` against `phc`; with `None` (unknown account) it checks against
    /// the dummy hash and returns false, taking the same time as a real check.
    pub async fn verify(
        &self,
        password: &str,
        phc: Option<&str>,
        lane: Lane,
    ) -> Result<bool, HashError> {
        let slot = self.admit(lane)?;
        self.verify_in(slot, password, phc).await
    }

    /// [`verify`](Self::verify) in a place taken earlier with [`admit`](Self::admit). `Busy`
    /// if the place was given to a fairer claim before the check ran.
    pub async fn verify_in(
        &self,
        slot: Slot,
        password: &str,
        phc: Option<&str>,
    ) -> Result<bool, HashError> {
        let known = phc.is_some();
        let phc = phc.map_or_else(|| self.dummy.as_str().to_string(), str::to_string);
        let password = password.to_string();
        let ok = self
            .run(slot, move || {
                PasswordHash::new(&phc)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && known)
    }

    async fn run<T: Send + 'static>(
        &self,
        slot: Slot,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let start = Stopwatch::start();
        let label = slot.label;
        let out = slot
            .ticket
            .run(job)
            .await
            .map_err(|e| self.refused(e, label))?;
        if let Some(m) = &self.metrics {
            m.password_hash.observe(start.elapsed().as_secs_f64());
        }
        Ok(out)
    }
}

/// A place reserved in the hashing pool for one job ([`Hasher::admit`]); dropped unused,
/// it is given back.
pub struct Slot {
    ticket: Ticket,
    label: &'static str,
}

fn hash_blocking(params: &Params, password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    crate::crypto::fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordSection {
        PasswordSection {
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..PasswordSection::default()
        }
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = Hasher::new(&cheap(), None).unwrap();
        let lane = Lane::operator;
        let phc = h.hash("Correct horse 1!", lane()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(h
            .verify("Correct horse 1!", Some(&phc), lane())
            .await
            .unwrap());
        assert!(!h.verify("wrong", Some(&phc), lane()).await.unwrap());
        // Unknown account: never true, even with the dummy's own password.
        assert!(!h
            .verify("vigile dummy password for timing equality", None, lane())
            .await
            .unwrap());
    }
}
