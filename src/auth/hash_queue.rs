//! The hashing pool's waiting room: which password check runs next, and which one is
//! refused at once. Plain data, no threads and no clock, so every rule is unit tested.
//!
//! One FIFO made a member's correct login wait behind a whole storm of guesses (11 to 14 s,
//! issue 17), then refused it like any guess once the queue was full. So there are two
//! lanes, each a fair queue:
//!
//! - **priority**: a device already known to the account signing in (its `vigile_device`
//!   cookie is a random secret only that device holds), a signed-in member typing their
//!   password again, the operator's commands. Always served first; keyed by account.
//! - **shared**: everyone else (unknown devices, sign-ups, resets), keyed by client
//!   address ([`lockout::client_key`]: an IPv4 address or an IPv6 /64).
//!
//! In a lane, each key has its own sub-queue and keys take turns (round-robin), so a key
//! with many jobs waiting delays the others by one job per turn, not by all of them. Each
//! lane is bounded ([`QUEUE_PER_THREAD`] places per hashing thread) and each key may hold
//! at most its fair share of it: the places divided by the keys holding some, so one
//! address alone may use the whole lane (a burst of sign-ins behind one NAT is never
//! refused while there is room), and when the lane is full, a key under its share takes
//! the place of the newest job of the key most over its share, which is shed. A check
//! that gets no place is refused at once ("shed": 503 with `Retry-After`) rather than
//! queued behind work it would wait seconds for. A storm from more addresses than there
//! are places leaves no one over their share: newcomers are then shed until it ends;
//! only the priority lane gets through it.
//!
//! Room is taken ([`Schedule::reserve`]) before the job exists, so a login knows whether
//! it will be checked before it counts anything toward lockouts: a refused attempt
//! changes nothing (one pushed out later was counted, and takes it back). What decides
//! the lane must never depend on whether an account exists, only on what the client
//! holds (a known device's cookie, a session).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::lockout;
use crate::store::UserId;

/// Places per hashing thread in each lane: with ~20 ms per hash, a check waits at most
/// about 0.6 s for its turn.
pub const QUEUE_PER_THREAD: usize = 32;

/// Who a password check is for, which decides where it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lane {
    /// Served first, fair per account.
    Priority(String),
    /// Served when the priority lane is empty, fair per client address.
    Shared(String),
}

impl Lane {
    /// A device already known to this account, or a member signed in to it.
    pub fn member(user: &UserId) -> Self {
        Lane::Priority(format!("user:{}", user.as_str()))
    }

    /// Anyone else, from this client address.
    pub fn client(ip: IpAddr) -> Self {
        Lane::Shared(lockout::client_key(ip))
    }

    /// The command line (`vigile user add`, imports, the demo): no client to be fair to,
    /// and one at a time.
    pub fn operator() -> Self {
        Lane::Priority("operator".into())
    }

    /// Its `lane` label in `vigile_password_hash_shed_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Lane::Priority(_) => "priority",
            Lane::Shared(_) => "shared",
        }
    }
}

/// A waiting job that may have lost its caller (the client went away).
pub trait Waiting {
    fn abandoned(&self) -> bool;
}

/// What became of a request for a place.
#[derive(Debug, PartialEq)]
pub enum Admission<J> {
    Admitted,
    /// Admitted in the place of this job, which is shed (its caller must be told).
    Displacing(J),
    Refused,
}

/// Both lanes.
pub struct Schedule<J> {
    priority: FairQueue<J>,
    shared: FairQueue<J>,
}

impl<J: Waiting> Schedule<J> {
    /// The waiting room of a pool of `threads` hashing threads.
    pub fn new(threads: usize) -> Self {
        let places = threads.max(1) * QUEUE_PER_THREAD;
        Self {
            priority: FairQueue::new(places),
            shared: FairQueue::new(places),
        }
    }

    fn lane<'a>(&'a mut self, lane: &'a Lane) -> (&'a mut FairQueue<J>, &'a str) {
        match lane {
            Lane::Priority(key) => (&mut self.priority, key),
            Lane::Shared(key) => (&mut self.shared, key),
        }
    }

    /// Takes a place for a job of `lane`, if it is owed one.
    pub fn reserve(&mut self, lane: &Lane) -> Admission<J> {
        let (queue, key) = self.lane(lane);
        queue.reserve(key)
    }

    /// Gives back a place reserved and not used.
    pub fn release(&mut self, lane: &Lane) {
        let (queue, key) = self.lane(lane);
        queue.release(key);
    }

    /// Puts `job` in the place reserved for it.
    pub fn push(&mut self, lane: &Lane, job: J) {
        let (queue, key) = self.lane(lane);
        queue.push(key, job);
    }

    /// The next job to run: the priority lane's first.
    pub fn pop(&mut self) -> Option<J> {
        self.priority.pop().or_else(|| self.shared.pop())
    }
}

/// One lane: a sub-queue per key, keys served in turn, places bounded in all and, when
/// they run out, per key.
struct FairQueue<J> {
    max: usize,
    /// Places held per key: jobs waiting and places reserved for jobs to come.
    held: HashMap<String, usize>,
    total: usize,
    waiting: HashMap<String, VecDeque<J>>,
    /// Keys with jobs waiting, in the order they will be served.
    turns: VecDeque<String>,
}

impl<J: Waiting> FairQueue<J> {
    fn new(max: usize) -> Self {
        Self {
            max,
            held: HashMap::new(),
            total: 0,
            waiting: HashMap::new(),
            turns: VecDeque::new(),
        }
    }

    fn reserve(&mut self, key: &str) -> Admission<J> {
        match self.try_reserve(key) {
            // Places held by jobs nobody waits for any more are free: look again.
            Admission::Refused => {
                self.sweep();
                self.try_reserve(key)
            }
            admitted => admitted,
        }
    }

    fn try_reserve(&mut self, key: &str) -> Admission<J> {
        let held = self.held.get(key).copied().unwrap_or(0);
        let keys = self.held.len() + usize::from(held == 0);
        let share = (self.max / keys).max(1);
        if held >= share {
            return Admission::Refused;
        }
        let admission = if self.total < self.max {
            Admission::Admitted
        } else {
            match self.displace(share) {
                Some(job) => Admission::Displacing(job),
                None => return Admission::Refused,
            }
        };
        *self.held.entry(key.to_string()).or_default() += 1;
        self.total += 1;
        admission
    }

    /// Takes out the newest job of the key holding the most places, if that is more than
    /// `share` (so it is left with its share at least).
    fn displace(&mut self, share: usize) -> Option<J> {
        let (key, _) = self
            .waiting
            .keys()
            .map(|k| (k, self.held.get(k).copied().unwrap_or(0)))
            .filter(|(_, held)| *held > share)
            .max_by_key(|(_, held)| *held)?;
        let key = key.clone();
        let queue = self.waiting.get_mut(&key)?;
        let job = queue.pop_back();
        if queue.is_empty() {
            self.waiting.remove(&key);
            self.turns.retain(|k| *k != key);
        }
        self.release(&key);
        job
    }

    fn release(&mut self, key: &str) {
        if let Some(n) = self.held.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(key);
            }
            self.total -= 1;
        }
    }

    fn push(&mut self, key: &str, job: J) {
        let queue = self.waiting.entry(key.to_string()).or_default();
        if queue.is_empty() {
            self.turns.push_back(key.to_string());
        }
        queue.push_back(job);
    }

    fn pop(&mut self) -> Option<J> {
        let key = self.turns.pop_front()?;
        let queue = self.waiting.get_mut(&key)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(&key);
        } else {
            // Its next job waits for every other key's turn.
            self.turns.push_back(key.clone());
        }
        self.release(&key);
        job
    }

    /// Drops the jobs whose caller left, freeing their places.
    fn sweep(&mut self) {
        let mut freed = Vec::new();
        for (key, queue) in &mut self.waiting {
            let before = queue.len();
            queue.retain(|job| !job.abandoned());
            freed.extend(std::iter::repeat_n(key.clone(), before - queue.len()));
        }
        for key in freed {
            self.release(&key);
        }
        self.waiting.retain(|_, queue| !queue.is_empty());
        self.turns.retain(|key| self.waiting.contains_key(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job named for the test, abandoned or not.
    #[derive(Debug, PartialEq)]
    struct J(String, bool);

    impl Waiting for J {
        fn abandoned(&self) -> bool {
            self.1
        }
    }

    fn shared(key: &str) -> Lane {
        Lane::Shared(key.into())
    }

    /// Reserves and queues a job named `name`; what the reservation got.
    fn add(s: &mut Schedule<J>, lane: &Lane, name: &str) -> Admission<J> {
        let admission = s.reserve(lane);
        if admission != Admission::Refused {
            s.push(lane, J(name.into(), false));
        }
        admission
    }

    fn drain(s: &mut Schedule<J>) -> Vec<String> {
        std::iter::from_fn(|| s.pop()).map(|j| j.0).collect()
    }

    #[test]
    fn priority_is_served_before_shared_jobs_queued_earlier() {
        let mut s = Schedule::new(1);
        add(&mut s, &shared("10.0.0.1"), "guess 1");
        add(&mut s, &shared("10.0.0.2"), "guess 2");
        add(&mut s, &Lane::Priority("ann".into()), "ann");
        assert_eq!(drain(&mut s), ["ann", "guess 1", "guess 2"]);
    }

    #[test]
    fn one_address_alone_may_use_the_whole_lane() {
        let mut s = Schedule::new(1);
        let nat = shared("10.0.0.1");
        for i in 0..QUEUE_PER_THREAD {
            assert_eq!(add(&mut s, &nat, &format!("{i}")), Admission::Admitted);
        }
        assert_eq!(s.reserve(&nat), Admission::Refused);
    }

    #[test]
    fn a_newcomer_takes_the_place_of_the_newest_job_of_an_address_over_its_share() {
        let mut s = Schedule::new(1);
        let flood = shared("10.0.0.1");
        for i in 0..QUEUE_PER_THREAD {
            add(&mut s, &flood, &format!("flood {i}"));
        }
        let newest = format!("flood {}", QUEUE_PER_THREAD - 1);
        assert_eq!(
            add(&mut s, &shared("10.0.0.2"), "other 1"),
            Admission::Displacing(J(newest, false))
        );
        // The flood is over its share (half the lane) as long as the other wants more.
        assert!(matches!(
            add(&mut s, &shared("10.0.0.2"), "other 2"),
            Admission::Displacing(_)
        ));
        assert_eq!(s.reserve(&flood), Admission::Refused);
        // The two take turns.
        assert_eq!(
            drain(&mut s)[..4],
            ["flood 0", "other 1", "flood 1", "other 2"]
        );
    }

    #[test]
    fn a_lane_full_of_addresses_at_their_share_sheds_newcomers_but_not_the_priority_lane() {
        let mut s = Schedule::new(1);
        for a in 0..QUEUE_PER_THREAD {
            add(&mut s, &shared(&format!("10.0.0.{a}")), "guess");
        }
        assert_eq!(s.reserve(&shared("10.9.9.9")), Admission::Refused);
        assert_eq!(s.reserve(&shared("10.0.0.0")), Admission::Refused);
        assert_eq!(
            add(&mut s, &Lane::Priority("ann".into()), "ann"),
            Admission::Admitted
        );
        assert_eq!(s.pop().map(|j| j.0), Some("ann".into()));
        assert_eq!(s.pop().map(|j| j.0), Some("guess".into()));
        assert_eq!(s.reserve(&shared("10.9.9.9")), Admission::Admitted);
    }

    #[test]
    fn the_priority_lane_is_shared_per_account() {
        let mut s = Schedule::new(1);
        let own = Lane::Priority("mallory".into());
        for _ in 0..QUEUE_PER_THREAD {
            add(&mut s, &own, "own");
        }
        assert!(matches!(
            add(&mut s, &Lane::Priority("ann".into()), "ann"),
            Admission::Displacing(_)
        ));
        assert_eq!(drain(&mut s)[..3], ["own", "ann", "own"]);
    }

    #[test]
    fn a_place_reserved_then_given_back_is_free_again() {
        let mut s: Schedule<J> = Schedule::new(1);
        let a = shared("10.0.0.1");
        for _ in 0..QUEUE_PER_THREAD {
            assert_eq!(s.reserve(&a), Admission::Admitted);
        }
        assert_eq!(s.reserve(&a), Admission::Refused);
        s.release(&a);
        assert_eq!(s.reserve(&a), Admission::Admitted);
        assert_eq!(s.pop(), None, "reserved places are not jobs");
        // Places only reserved are never taken away: nothing waits to be displaced.
        assert_eq!(s.reserve(&shared("10.0.0.2")), Admission::Refused);
    }

    #[test]
    fn abandoned_jobs_give_their_places_back_when_room_is_short() {
        let mut s = Schedule::new(1);
        let a = shared("10.0.0.1");
        for i in 0..QUEUE_PER_THREAD {
            s.reserve(&a);
            s.push(&a, J(format!("{i}"), i < 2));
        }
        // The first two were abandoned: their places are taken back.
        assert_eq!(add(&mut s, &a, "new 1"), Admission::Admitted);
        assert_eq!(add(&mut s, &a, "new 2"), Admission::Admitted);
        assert_eq!(s.reserve(&a), Admission::Refused);
        let order = drain(&mut s);
        assert_eq!(order.len(), QUEUE_PER_THREAD);
        assert_eq!(order[..2], ["2", "3"]);
        assert_eq!(order[QUEUE_PER_THREAD - 2..], ["new 1", "new 2"]);
    }
}
