//! The store's own threads: a few long-lived OS threads run every statement. Tokio's
//! `spawn_blocking` would run them on the blocking pool of whichever runtime the caller
//! is on (Pingora gives each service thread a runtime of its own, each pool keeping idle
//! threads for 10 s), so a busy gateway ended up with many more threads than
//! connections, each holding allocator heaps of its own (issue 17, memory).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::store::{StoreError, StoreResult};

type Job = Box<dyn FnOnce() + Send>;

pub(super) struct Workers {
    jobs: Sender<Job>,
}

impl Workers {
    /// Starts `n` threads; they end once the last clone of the store is gone.
    pub fn start(n: usize) -> StoreResult<Arc<Self>> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..n {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("vigile-sqlite-{i}"))
                .spawn(move || serve(&queue))
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot start a store thread: {e}"))
                })?;
        }
        Ok(Arc::new(Self { jobs }))
    }

    /// Runs `f` on one of the threads and waits for its result without blocking the
    /// caller's executor.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> StoreResult<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(f());
            }))
            .map_err(|_| StoreError::Unavailable("sqlite store closed".into()))?;
        result
            .await
            .map_err(|_| StoreError::Unavailable("sqlite task failed".into()))
    }
}

fn serve(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => match queue.recv() {
                Ok(job) => job,
                Err(_) => return, // the store is gone
            },
            Err(_) => return,
        };
        // A panicking statement fails its own call (its reply is dropped), not the thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_off_the_caller_and_survives_a_panic() {
        let workers = Workers::start(2).unwrap();
        let name = workers
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("vigile-sqlite-")));
        assert!(workers.run(|| -> u8 { panic!("a bug") }).await.is_err());
        for _ in 0..4 {
            assert_eq!(workers.run(|| 7).await.unwrap(), 7);
        }
    }
}
