//! A small, dedicated, low-priority thread pool for password hashing.
//!
//! Argon2 is pure CPU work: on tokio's shared blocking pool, a login storm would take
//! every core and starve the proxy threads (measured by `bench/login_storm`). Here a fixed
//! number of threads do the hashing, each lowered to nice 10 so the scheduler always runs
//! proxy work first; queued jobs wait in a channel without holding a thread.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Clone)]
pub struct HashPool {
    jobs: Sender<Job>,
}

impl HashPool {
    /// Starts `threads` workers (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("vigile-argon2-{i}"))
                .spawn(move || worker(&rx))?;
        }
        Ok(Self { jobs: tx })
    }

    /// Runs `job` on the pool; `None` if the pool is gone (process shutting down).
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(job());
        });
        self.jobs.send(job).ok()?;
        result.await.ok()
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return, // every sender dropped
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority has no memory-safety preconditions; on Linux, `who = 0` with
    // PRIO_PROCESS names the calling thread only (nice values are per thread).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        tracing::debug!("could not lower the hashing thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_returns_results() {
        let pool = HashPool::start(2).unwrap();
        let mut results = vec![];
        for i in 0..5 {
            results.push(pool.run(move || i * 2).await.unwrap());
        }
        assert_eq!(results, vec![0, 2, 4, 6, 8]);
    }
}
