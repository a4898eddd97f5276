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
//! In a lane, each key has its own sub-queue; keys take turns (round-robin), and a key may
//! hold only a few places ([`PER_ACCOUNT`], [`PER_CLIENT`]), so one address flooding the
//! gateway gets its share, not the queue. Both lanes are bounded; a check that finds no
//! room is refused at once ("shed": 503 with `Retry-After`) rather than queued behind
//! work it would wait seconds for. The priority lane is bounded per account too: a member
//! scripting logins on their own account (their device is known to it) only competes
//! with themselves.
//!
//! Room is taken ([`Schedule::reserve`]) before the job exists, so a login knows whether
//! it will be checked before it counts anything toward lockouts: a shed attempt changes
//! nothing. What decides the lane must never depend on whether an account exists, only on
//! what the client holds (a known device's cookie, a session).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::lockout;
use crate::store::UserId;

/// Places per hashing thread in each lane: with ~20 ms per hash, a check waits at most
/// about 0.6 s for its turn.
pub const QUEUE_PER_THREAD: usize = 32;
/// Places one client address may hold in the shared lane (a few people behind one NAT
/// signing in at once).
pub const PER_CLIENT: usize = 4;
/// Places one account may hold in the priority lane (a double-clicked form).
pub const PER_ACCOUNT: usize = 2;

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
            priority: FairQueue::new(places, PER_ACCOUNT),
            shared: FairQueue::new(places, PER_CLIENT),
        }
    }

    fn lane<'a>(&'a mut self, lane: &'a Lane) -> (&'a mut FairQueue<J>, &'a str) {
        match lane {
            Lane::Priority(key) => (&mut self.priority, key),
            Lane::Shared(key) => (&mut self.shared, key),
        }
    }

    /// Takes a place for a job of `lane`, if there is room; false: shed it.
    pub fn reserve(&mut self, lane: &Lane) -> bool {
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

/// One lane: a sub-queue per key, keys served in turn, places bounded per key and in all.
struct FairQueue<J> {
    max: usize,
    per_key: usize,
    /// Places held per key: jobs waiting and places reserved for jobs to come.
    held: HashMap<String, usize>,
    total: usize,
    waiting: HashMap<String, VecDeque<J>>,
    /// Keys with jobs waiting, in the order they will be served.
    turns: VecDeque<String>,
}

impl<J: Waiting> FairQueue<J> {
    fn new(max: usize, per_key: usize) -> Self {
        Self {
            max,
            per_key,
            held: HashMap::new(),
            total: 0,
            waiting: HashMap::new(),
            turns: VecDeque::new(),
        }
    }

    fn has_room(&self, key: &str) -> bool {
        self.total < self.max && self.held.get(key).copied().unwrap_or(0) < self.per_key
    }

    fn reserve(&mut self, key: &str) -> bool {
        if !self.has_room(key) {
            // Places held by jobs nobody waits for any more are free.
            self.sweep();
            if !self.has_room(key) {
                return false;
            }
        }
        *self.held.entry(key.to_string()).or_default() += 1;
        self.total += 1;
        true
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
    struct J(&'static str, bool);

    impl Waiting for J {
        fn abandoned(&self) -> bool {
            self.1
        }
    }

    fn shared(key: &str) -> Lane {
        Lane::Shared(key.into())
    }

    fn add(s: &mut Schedule<J>, lane: &Lane, name: &'static str) -> bool {
        let room = s.reserve(lane);
        if room {
            s.push(lane, J(name, false));
        }
        room
    }

    fn drain(s: &mut Schedule<J>) -> Vec<&'static str> {
        std::iter::from_fn(|| s.pop()).map(|j| j.0).collect()
    }

    #[test]
    fn priority_is_served_before_shared_jobs_queued_earlier() {
        let mut s = Schedule::new(1);
        assert!(add(&mut s, &shared("10.0.0.1"), "guess 1"));
        assert!(add(&mut s, &shared("10.0.0.2"), "guess 2"));
        assert!(add(&mut s, &Lane::Priority("ann".into()), "ann"));
        assert_eq!(drain(&mut s), ["ann", "guess 1", "guess 2"]);
    }

    #[test]
    fn addresses_take_turns_and_one_gets_only_its_share() {
        let mut s = Schedule::new(1);
        let flood = shared("10.0.0.1");
        for name in ["f1", "f2", "f3", "f4"] {
            assert!(add(&mut s, &flood, name));
        }
        assert!(!s.reserve(&flood), "a fifth place for one address");
        assert!(add(&mut s, &shared("10.0.0.2"), "other"));
        assert_eq!(drain(&mut s), ["f1", "other", "f2", "f3", "f4"]);
        // Served, its places are free again.
        assert!(add(&mut s, &flood, "f5"));
    }

    #[test]
    fn a_full_lane_sheds_new_addresses_but_not_the_priority_lane() {
        let mut s = Schedule::new(1);
        let addresses = QUEUE_PER_THREAD / PER_CLIENT;
        for a in 0..addresses {
            for _ in 0..PER_CLIENT {
                assert!(add(&mut s, &shared(&format!("10.0.0.{a}")), "guess"));
            }
        }
        assert!(!s.reserve(&shared("10.9.9.9")), "full: shed");
        assert!(add(&mut s, &Lane::Priority("ann".into()), "ann"));
        assert_eq!(s.pop(), Some(J("ann", false)));
        assert_eq!(s.pop(), Some(J("guess", false)));
        assert!(s.reserve(&shared("10.9.9.9")), "one place freed");
    }

    #[test]
    fn the_priority_lane_is_bounded_per_account() {
        let mut s = Schedule::new(1);
        let own = Lane::Priority("mallory".into());
        for _ in 0..PER_ACCOUNT {
            assert!(add(&mut s, &own, "own"));
        }
        assert!(!s.reserve(&own));
        assert!(add(&mut s, &Lane::Priority("ann".into()), "ann"));
        assert_eq!(drain(&mut s), ["own", "ann", "own"]);
    }

    #[test]
    fn a_place_reserved_then_given_back_is_free_again() {
        let mut s: Schedule<J> = Schedule::new(1);
        let a = shared("10.0.0.1");
        for _ in 0..PER_CLIENT {
            assert!(s.reserve(&a));
        }
        assert!(!s.reserve(&a));
        s.release(&a);
        assert!(s.reserve(&a));
        assert_eq!(s.pop(), None, "reserved places are not jobs");
    }

    #[test]
    fn abandoned_jobs_give_their_places_back_when_room_is_short() {
        let mut s = Schedule::new(1);
        let a = shared("10.0.0.1");
        for i in 0..PER_CLIENT {
            assert!(s.reserve(&a));
            s.push(&a, J("gone", i % 2 == 0));
        }
        // Two of the four were abandoned: their places are taken back.
        assert!(add(&mut s, &a, "new 1"));
        assert!(add(&mut s, &a, "new 2"));
        assert!(!s.reserve(&a));
        assert_eq!(drain(&mut s), ["gone", "gone", "new 1", "new 2"]);
    }
}
