//! A small, dedicated, low-priority thread pool for password hashing.
//!
//! Argon2 is pure CPU work: on tokio's shared blocking pool, a login storm would take
//! every core and starve the proxy threads (measured by `bench/login_storm`). Here a fixed
//! number of threads do the hashing, each lowered to nice 10 so the scheduler always runs
//! proxy work first; queued jobs wait without holding a thread.
//!
//! Which job runs next, and which is refused at once, is [`super::hash_queue`]'s business:
//! a priority lane for known devices and signed-in members, a shared lane fair per client
//! address, both bounded. A caller first takes a place ([`HashPool::admit`], which answers
//! "busy" at once when it is owed none), then runs its job with the [`Ticket`]; a ticket
//! dropped unused gives its place back. A job pushed out of its place by a fairer claim
//! answers "busy" too; a job whose caller went away is skipped.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::hash_queue::{Admission, Lane, Schedule, Waiting};

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// No room in the job's lane, or its place was given to a fairer claim: try again
    /// shortly.
    Busy,
    /// The pool is gone (process shutting down).
    Gone,
}

/// A job and the channel its caller waits on.
trait Task: Send {
    fn run(self: Box<Self>);
    /// Tells the caller its job was pushed out of the queue.
    fn refuse(self: Box<Self>);
    fn abandoned(&self) -> bool;
}

struct Call<F, T> {
    work: F,
    done: oneshot::Sender<Result<T, PoolError>>,
}

impl<F: FnOnce() -> T + Send, T: Send> Task for Call<F, T> {
    fn run(self: Box<Self>) {
        // The caller gave up (client gone, request cancelled): no one wants the answer.
        if !self.done.is_closed() {
            let _ = self.done.send(Ok((self.work)()));
        }
    }

    fn refuse(self: Box<Self>) {
        let _ = self.done.send(Err(PoolError::Busy));
    }

    fn abandoned(&self) -> bool {
        self.done.is_closed()
    }
}

type Job = Box<dyn Task>;

impl Waiting for Job {
    fn abandoned(&self) -> bool {
        self.as_ref().abandoned()
    }
}

struct State {
    schedule: Schedule<Job>,
    /// Every [`HashPool`] handle is gone: workers stop once the queue is empty.
    closed: bool,
}

/// What the workers and the tickets share.
struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued or the pool closes.
    ready: Condvar,
}

impl Shared {
    // The lock is never held while hashing or awaiting, and nothing in the schedule
    // panics, so a poisoned lock still holds a consistent state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes the pool when the last [`HashPool`] clone is dropped.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

#[derive(Clone)]
pub struct HashPool {
    handle: Arc<Handle>,
}

impl HashPool {
    /// Starts `threads` workers (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                schedule: Schedule::new(threads),
                closed: false,
            }),
            ready: Condvar::new(),
        });
        for i in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("vigile-argon2-{i}"))
                .spawn(move || worker(&shared))?;
        }
        Ok(Self {
            handle: Arc::new(Handle(shared)),
        })
    }

    /// A place in `lane` for one job, or `Busy` at once if the lane is full and this key
    /// holds its share of it already.
    pub fn admit(&self, lane: Lane) -> Result<Ticket, PoolError> {
        let shared = &self.handle.0;
        let mut state = shared.lock();
        if state.closed {
            return Err(PoolError::Gone);
        }
        let displaced = match state.schedule.reserve(&lane) {
            Admission::Refused => return Err(PoolError::Busy),
            Admission::Admitted => None,
            Admission::Displacing(job) => Some(job),
        };
        drop(state);
        if let Some(job) = displaced {
            job.refuse();
        }
        Ok(Ticket {
            shared: shared.clone(),
            lane: Some(lane),
        })
    }
}

/// A place reserved in a lane; given back if dropped unused.
pub struct Ticket {
    shared: Arc<Shared>,
    /// Taken when the job is queued.
    lane: Option<Lane>,
}

impl Ticket {
    /// Queues `job` in the reserved place and waits for its result.
    pub async fn run<T: Send + 'static>(
        self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        self.submit(job).await.unwrap_or(Err(PoolError::Gone))
    }

    /// Queues `job`; the receiver gets its result, or `Busy` if it was pushed out (closed
    /// if the pool closed first).
    fn submit<T: Send + 'static>(
        mut self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<Result<T, PoolError>> {
        let (done, result) = oneshot::channel();
        if let Some(lane) = self.lane.take() {
            let mut state = self.shared.lock();
            if state.closed {
                // Workers may have stopped: dropping `done` tells the caller.
                state.schedule.release(&lane);
                return result;
            }
            state
                .schedule
                .push(&lane, Box::new(Call { work: job, done }));
            drop(state);
            self.shared.ready.notify_one();
        }
        result
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(lane) = self.lane.take() {
            self.shared.lock().schedule.release(&lane);
        }
    }
}

fn worker(shared: &Shared) {
    lower_priority();
    loop {
        let job = {
            let mut state = shared.lock();
            loop {
                if let Some(job) = state.schedule.pop() {
                    break job;
                }
                if state.closed {
                    return;
                }
                state = shared
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        job.run();
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

    use crate::auth::hash_queue::QUEUE_PER_THREAD;

    type Log = Arc<Mutex<Vec<String>>>;
    type Done = oneshot::Receiver<Result<(), PoolError>>;

    fn client(n: usize) -> Lane {
        Lane::Shared(format!("127.0.0.{n}"))
    }

    async fn run<T: Send + 'static>(
        pool: &HashPool,
        lane: Lane,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        pool.admit(lane)?.run(job).await
    }

    fn known_device() -> Lane {
        Lane::Priority("user:ann".into())
    }

    /// Holds the pool's only thread until the returned pair is dropped.
    async fn block(pool: &HashPool) -> (std::sync::mpsc::Sender<()>, Done) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, is_started) = oneshot::channel();
        let ticket = pool.admit(Lane::operator()).unwrap();
        // Kept, or the job would be skipped as abandoned.
        let done = ticket.submit(move || {
            let _ = started.send(());
            let _ = wait.recv();
        });
        is_started.await.unwrap();
        (release, done)
    }

    /// Queues a job that notes `name` in `log` when it runs (no await: queued in order).
    fn note(pool: &HashPool, lane: Lane, name: &str, log: &Log) -> Done {
        let (name, log) = (name.to_string(), log.clone());
        let ticket = pool.admit(lane).unwrap();
        ticket.submit(move || log.lock().unwrap().push(name))
    }

    /// Waits for `jobs` (each must have run), then returns the order they ran in.
    async fn ran(log: &Log, jobs: Vec<Done>) -> Vec<String> {
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        log.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn runs_jobs_and_returns_results() {
        let pool = HashPool::start(2).unwrap();
        let mut results = vec![];
        for i in 0..5 {
            results.push(run(&pool, client(1), move || i * 2).await.unwrap());
        }
        assert_eq!(results, vec![0, 2, 4, 6, 8]);
    }

    #[tokio::test]
    async fn a_known_device_is_served_before_the_guesses_queued_earlier() {
        let pool = HashPool::start(1).unwrap();
        let blocked = block(&pool).await;
        let log = Log::default();
        let jobs = vec![
            note(&pool, client(2), "guess a", &log),
            note(&pool, client(3), "guess b", &log),
            note(&pool, known_device(), "ann", &log),
        ];
        drop(blocked);
        assert_eq!(ran(&log, jobs).await, ["ann", "guess a", "guess b"]);
    }

    #[tokio::test]
    async fn one_address_flooding_cannot_starve_another() {
        let pool = HashPool::start(1).unwrap();
        let blocked = block(&pool).await;
        let log = Log::default();
        let mut flood: Vec<_> = (0..QUEUE_PER_THREAD)
            .map(|i| note(&pool, client(2), &format!("flood {i}"), &log))
            .collect();
        assert!(matches!(pool.admit(client(2)), Err(PoolError::Busy)));
        // Another address gets in, in the place of the flood's newest job, which is shed.
        let other = note(&pool, client(3), "other", &log);
        let newest = flood.pop().unwrap();
        assert_eq!(newest.await.unwrap(), Err(PoolError::Busy));
        drop(blocked);
        flood.push(other);
        let order = ran(&log, flood).await;
        assert_eq!(order[..2], ["flood 0", "other"]);
        assert_eq!(order.len(), QUEUE_PER_THREAD);
    }

    #[tokio::test]
    async fn the_login_priority_admits_a_known_device_while_unknown_ones_are_shed() {
        let pool = HashPool::start(1).unwrap();
        let blocked = block(&pool).await;
        let log = Log::default();
        // A storm from as many addresses as there are places: each holds its share.
        let mut jobs: Vec<_> = (0..QUEUE_PER_THREAD)
            .map(|a| note(&pool, client(10 + a), "guess", &log))
            .collect();
        // Full: a new address, and one of the storm's, are shed at once...
        assert!(matches!(pool.admit(client(9)), Err(PoolError::Busy)));
        assert!(matches!(pool.admit(client(10)), Err(PoolError::Busy)));
        // ...but the known device is queued, first.
        jobs.push(note(&pool, known_device(), "ann", &log));
        drop(blocked);
        let order = ran(&log, jobs).await;
        assert_eq!(order.first().map(String::as_str), Some("ann"));
        assert_eq!(order.len(), QUEUE_PER_THREAD + 1);
        // Drained: room again.
        assert_eq!(run(&pool, client(9), || 7).await, Ok(7));
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_is_skipped_and_frees_its_place() {
        let pool = HashPool::start(1).unwrap();
        let blocked = block(&pool).await;
        let log = Log::default();
        let mut jobs = Vec::new();
        for i in 0..QUEUE_PER_THREAD {
            let job = note(&pool, client(2), &format!("job {i}"), &log);
            if i == 0 {
                drop(job); // the caller gave up
            } else {
                jobs.push(job);
            }
        }
        // The abandoned job's place is given to a new one.
        jobs.push(note(&pool, client(2), "new", &log));
        drop(blocked);
        let order = ran(&log, jobs).await;
        assert_eq!(order.len(), QUEUE_PER_THREAD);
        assert_eq!(order.first().map(String::as_str), Some("job 1"));
        assert_eq!(order.last().map(String::as_str), Some("new"));
    }

    #[tokio::test]
    async fn an_unused_ticket_gives_its_place_back() {
        let pool = HashPool::start(1).unwrap();
        let tickets: Vec<_> = (0..QUEUE_PER_THREAD)
            .map(|_| pool.admit(client(2)).unwrap())
            .collect();
        assert!(matches!(pool.admit(client(2)), Err(PoolError::Busy)));
        drop(tickets);
        assert_eq!(run(&pool, client(2), || 1).await, Ok(1));
    }
}
