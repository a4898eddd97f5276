//! A small, dedicated, low-priority thread pool for password hashing.
//!
//! Argon2 is pure CPU work: on tokio's shared blocking pool, a login storm would take
//! every core and starve the proxy threads (measured by `bench/login_storm`). Here a fixed
//! number of threads do the hashing, each lowered to nice 10 so the scheduler always runs
//! proxy work first; queued jobs wait in a channel without holding a thread.
//!
//! The queue is bounded ([`QUEUE_PER_THREAD`] waiting jobs per thread): past it a login
//! storm gets "busy" at once (a 503 page with `Retry-After`) instead of every login,
//! legitimate ones included, waiting behind thousands of guesses (measured: 12 s behind
//! a 200/s storm, `bench/compare`). A job whose caller went away is skipped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Jobs allowed to wait per hashing thread: with ~20 ms per hash, a login waits at most
/// about 0.6 s for its turn.
pub const QUEUE_PER_THREAD: usize = 32;

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// The queue is full: try again shortly.
    Busy,
    /// The pool is gone (process shutting down).
    Gone,
}

#[derive(Clone)]
pub struct HashPool {
    jobs: Sender<Job>,
    /// Jobs sent and not yet picked up by a worker.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

impl HashPool {
    /// Starts `threads` workers (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = threads.max(1);
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("vigile-argon2-{i}"))
                .spawn(move || worker(&rx))?;
        }
        Ok(Self {
            jobs: tx,
            waiting: Arc::default(),
            max_waiting: threads * QUEUE_PER_THREAD,
        })
    }

    /// Runs `job` on the pool, unless the queue is full or the pool is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(PoolError::Busy);
        }
        let (done, result) = tokio::sync::oneshot::channel();
        let waiting = self.waiting.clone();
        let job: Job = Box::new(move || {
            waiting.fetch_sub(1, Ordering::AcqRel);
            // The caller gave up (client gone, request cancelled): no one wants the answer.
            if !done.is_closed() {
                let _ = done.send(job());
            }
        });
        if self.jobs.send(job).is_err() {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(PoolError::Gone);
        }
        result.await.map_err(|_| PoolError::Gone)
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

    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_jobs_and_returns_results() {
        let pool = HashPool::start(2).unwrap();
        let mut results = vec![];
        for i in 0..5 {
            results.push(pool.run(move || i * 2).await.unwrap());
        }
        assert_eq!(results, vec![0, 2, 4, 6, 8]);
    }

    /// Holds the pool's only thread until `release` is dropped.
    async fn block(pool: &HashPool) -> std::sync::mpsc::Sender<()> {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, is_started) = tokio::sync::oneshot::channel();
        let p = pool.clone();
        tokio::spawn(async move {
            p.run(move || {
                let _ = started.send(());
                let _ = wait.recv();
            })
            .await
        });
        is_started.await.unwrap();
        release
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_busy_at_once_and_frees_up() {
        let pool = HashPool::start(1).unwrap();
        let release = block(&pool).await;
        let mut queued = Vec::new();
        for i in 0..QUEUE_PER_THREAD {
            let p = pool.clone();
            queued.push(tokio::spawn(async move { p.run(move || i).await }));
        }
        // Let every queued job reach the channel.
        while pool.waiting.load(Ordering::Acquire) < QUEUE_PER_THREAD {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| 0).await, Err(PoolError::Busy));
        drop(release);
        for (i, q) in queued.into_iter().enumerate() {
            assert_eq!(q.await.unwrap(), Ok(i));
        }
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_caller_left_is_skipped() {
        let pool = HashPool::start(1).unwrap();
        let release = block(&pool).await;
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let abandoned = pool.run(move || flag.store(true, Ordering::SeqCst));
        // Queued, then the caller gives up.
        assert!(tokio::time::timeout(Duration::from_millis(20), abandoned)
            .await
            .is_err());
        drop(release);
        assert_eq!(pool.run(|| 1).await, Ok(1));
        assert!(!ran.load(Ordering::SeqCst));
    }
}
