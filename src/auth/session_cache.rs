//! Validated sessions kept in memory, for as long as they are valid.
//!
//! A hit costs a read lock on one of [`SHARDS`] maps and a reference count: no store
//! round trip. What keeps it right:
//! - the store's change feed ([`crate::store::changes`]) drops a session the moment its
//!   end is announced (`s:`), and retires the shared [`Member`] of an account that changed
//!   (`u:`), so all of that member's sessions read the store again;
//! - while the feed is lost, entries are trusted for [`SHORT_TTL`] only, and the cache is
//!   flushed when the feed is lost and again when it is back (announcements in between
//!   were missed). A flush is O(1): entries carry the generation (`epoch`) they were
//!   read in;
//! - a read that overlapped an announcement is not kept (it may predate the change): a
//!   [`Mark`] taken before reading says whether any announcement arrived since;
//! - each entry knows its own expiry (idle and absolute), so a hit never outlives the
//!   session, and activity is written behind in batches: at the request's own instant,
//!   at most once per [`TOUCH_EVERY_MS`] per session, so it can never push an expiry
//!   past what the requests themselves justify.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus::IntCounter;

use super::sessions::{Identity, Member};
use crate::metrics::Metrics;
use crate::store::changes::Change;
use crate::store::{Millis, SessionId, SessionRecord, TokenHash, UserId};

/// How long an entry is trusted while the change feed is lost (revocation delay then).
pub const SHORT_TTL: Duration = Duration::from_millis(500);
const SHORT_TTL_MS: Millis = SHORT_TTL.as_millis() as Millis;
/// Activity is written to the store at most this often per session.
pub const TOUCH_EVERY_MS: Millis = 60_000;
/// Independent locks; a power of two.
const SHARDS: usize = 64;

/// The SHA-256 of a session token (the raw bytes behind [`TokenHash`]).
pub type Digest = [u8; 32];

/// The digest behind a token hash (its hex form decoded).
pub fn digest(hash: &TokenHash) -> Digest {
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hash.as_str().as_bytes().chunks_exact(2)) {
        *byte = (nibble(pair[0]) << 4) | nibble(pair[1]);
    }
    out
}

fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// The map key: the digest's first half (uniformly random already); the whole digest is
/// compared on a hit, so a collision can never hand one member's identity to another.
fn key_of(d: &Digest) -> u128 {
    let mut half = [0u8; 16];
    half.copy_from_slice(&d[..16]);
    u128::from_le_bytes(half)
}

/// The cache's bookkeeping for one session, kept inside its [`Identity`] (one
/// allocation per cached session).
#[derive(Debug, Default)]
pub struct Seen {
    digest: Digest,
    epoch: u64,
    validated_at: Millis,
    idle_ms: Millis,
    absolute_expiry: Millis,
    /// Latest activity seen here.
    last_seen: AtomicI64,
    /// Latest activity the store has (read from it, or queued to be written).
    written: AtomicI64,
}

impl Seen {
    /// What the store said of the session.
    pub fn of(session: &SessionRecord) -> Self {
        Self {
            idle_ms: session.idle_ms,
            absolute_expiry: session.absolute_expiry,
            last_seen: AtomicI64::new(session.last_seen),
            written: AtomicI64::new(session.last_seen),
            ..Self::default()
        }
    }

    fn expires_at(&self) -> Millis {
        (self.last_seen.load(Ordering::Relaxed) + self.idle_ms).min(self.absolute_expiry)
    }
}

/// One lock's share of the sessions, by [`key_of`].
type Shard = HashMap<u128, Arc<Identity>, BuildHasherDefault<DigestHasher>>;

/// Hashes a [`key_of`] key to its high half: a digest is uniformly random already (SipHash
/// over it was a fifth of a hit's cost), and its low bits pick the shard, so every key in
/// one map shares them. Only sessions read from the store are inserted, so a client
/// cannot choose the keys to crowd one bucket.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used (the key's `Hash`); any other input is still hashed.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, key: u128) {
        self.0 = (key >> 64) as u64;
    }
}

/// Taken before a read from the store; see the module doc.
pub struct Mark {
    changes: u64,
    epoch: u64,
}

struct Counters {
    hit: IntCounter,
    miss: IntCounter,
    invalidated: IntCounter,
}

pub struct SessionCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    /// The current member of each account with cached sessions, by a hash of its id
    /// (the id itself is in the member; a collision only costs a re-read).
    members: Mutex<HashMap<u64, Arc<Member>>>,
    hasher: std::collections::hash_map::RandomState,
    epoch: AtomicU64,
    /// Announcements applied so far (and flushes).
    changes: AtomicU64,
    /// Whether the change feed is complete (false until its first `Live`).
    live: AtomicBool,
    touches: Mutex<Vec<(SessionId, Millis)>>,
    counters: Option<Counters>,
}

impl SessionCache {
    /// A cache of at most `capacity` sessions.
    pub fn new(capacity: usize, metrics: Option<&Metrics>) -> Self {
        let shards = (0..SHARDS).map(|_| RwLock::default()).collect();
        Self {
            shards,
            per_shard: capacity.div_ceil(SHARDS).max(1),
            members: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            epoch: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            live: AtomicBool::new(false),
            touches: Mutex::default(),
            counters: metrics.map(|m| Counters {
                hit: m.session_cache.with_label_values(&["hit"]),
                miss: m.session_cache.with_label_values(&["miss"]),
                invalidated: m.session_cache.with_label_values(&["invalidated"]),
            }),
        }
    }

    fn member_key(&self, user: &UserId) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(user.as_str())
    }

    fn shard(&self, key: u128) -> &RwLock<Shard> {
        &self.shards[(key as usize) & (SHARDS - 1)]
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// The identity cached for `digest`, if it may still be trusted at `now`; `touch`
    /// records the request as activity.
    pub fn lookup(&self, digest: &Digest, now: Millis, touch: bool) -> Option<Arc<Identity>> {
        let key = key_of(digest);
        let identity = read(self.shard(key)).get(&key).cloned()?;
        let seen = &identity.cached;
        if seen.digest != *digest {
            return None;
        }
        let trusted = seen.epoch == self.epoch.load(Ordering::Acquire)
            && identity.member.is_current()
            && now < seen.expires_at()
            && (self.is_live() || now - seen.validated_at < SHORT_TTL_MS);
        if !trusted {
            self.remove_entry(key, &identity);
            return None;
        }
        if touch {
            self.activity(&identity, now);
        }
        Some(identity)
    }

    /// Before reading the store for a miss.
    pub fn mark(&self) -> Mark {
        Mark {
            changes: self.changes.load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    fn unchanged_since(&self, mark: &Mark) -> bool {
        self.changes.load(Ordering::Acquire) == mark.changes
    }

    /// The member already read for `user`, when it may be shared (feed live, nothing
    /// announced about it since).
    pub fn member(&self, user: &UserId, mark: &Mark) -> Option<Arc<Member>> {
        if !self.is_live() {
            return None;
        }
        let key = self.member_key(user);
        let members = lock(&self.members);
        let m = members.get(&key)?;
        (m.user_id == *user && m.is_current() && m.epoch == mark.epoch).then(|| m.clone())
    }

    /// Registers a member just read from the store, or returns the one another request
    /// registered meanwhile, so each account has one shared member.
    pub fn adopt(&self, member: Member, mark: &Mark) -> Arc<Member> {
        let member = Arc::new(member.in_epoch(mark.epoch));
        let key = self.member_key(&member.user_id);
        let mut members = lock(&self.members);
        if let Some(m) = members.get(&key) {
            if self.is_live()
                && m.user_id == member.user_id
                && m.is_current()
                && m.epoch == mark.epoch
            {
                return m.clone();
            }
            // Replaced (stale, or another account on the same hash): its sessions re-read.
            m.retire();
        }
        members.insert(key, member.clone());
        member
    }

    /// Keeps a session just read from the store (valid at `now`), and returns it shared.
    pub fn insert(
        &self,
        digest: Digest,
        mut identity: Identity,
        now: Millis,
        mark: &Mark,
    ) -> Arc<Identity> {
        let seen = &mut identity.cached;
        seen.digest = digest;
        seen.epoch = mark.epoch;
        seen.validated_at = now;
        seen.last_seen.fetch_max(now, Ordering::Relaxed);
        let identity = Arc::new(identity);
        self.activity(&identity, now);
        let key = key_of(&digest);
        {
            let mut shard = write(self.shard(key));
            if shard.len() >= self.per_shard && !shard.contains_key(&key) {
                evict(&mut shard, now);
            }
            shard.insert(key, identity.clone());
        }
        // An announcement arrived while the store was read: what was read may predate it.
        if !self.unchanged_since(mark) {
            self.remove_entry(key, &identity);
            let member = &identity.member;
            let mut members = lock(&self.members);
            let mkey = self.member_key(&member.user_id);
            if members.get(&mkey).is_some_and(|m| Arc::ptr_eq(m, member)) {
                members.remove(&mkey);
            }
            // Other sessions may already share it: retired, they read the store again
            // (unregistered, a later `u:` could no longer find it to retire it).
            member.retire();
        }
        identity
    }

    fn remove_entry(&self, key: u128, entry: &Arc<Identity>) {
        let mut shard = write(self.shard(key));
        if shard.get(&key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            shard.remove(&key);
        }
    }

    /// Drops the session of `hash` here at once (this instance ended it).
    pub fn forget(&self, hash: &TokenHash) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        let key = key_of(&digest(hash));
        write(self.shard(key)).remove(&key);
    }

    /// Retires `user`'s member here at once (this instance changed the account).
    pub fn forget_user(&self, user: &UserId) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        let key = self.member_key(user);
        if let Some(m) = lock(&self.members).remove(&key) {
            m.retire();
        }
    }

    /// Applies one change from the store's feed.
    pub fn apply(&self, change: Change) {
        // Counted first, so a read in progress sees it (see `insert`).
        self.changes.fetch_add(1, Ordering::AcqRel);
        let dropped = match change {
            Change::Session(hash) => {
                let key = key_of(&digest(&hash));
                u64::from(write(self.shard(key)).remove(&key).is_some())
            }
            Change::User(user) => match lock(&self.members).remove(&self.member_key(&user)) {
                Some(m) => {
                    m.retire();
                    1
                }
                None => 0,
            },
            Change::Lost => {
                self.live.store(false, Ordering::Release);
                self.flush()
            }
            Change::Live => {
                let dropped = self.flush();
                self.live.store(true, Ordering::Release);
                dropped
            }
        };
        if let Some(c) = &self.counters {
            c.invalidated.inc_by(dropped);
        }
    }

    /// Trusts nothing cached before now; returns how many entries that concerned.
    fn flush(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        lock(&self.members).clear();
        self.shards.iter().map(|s| read(s).len() as u64).sum()
    }

    /// Drops what can no longer be used (expired, flushed, retired), and members no
    /// cached session shares. Run now and then by a background task.
    pub fn sweep(&self, now: Millis) {
        let epoch = self.epoch.load(Ordering::Acquire);
        for shard in self.shards.iter() {
            write(shard).retain(|_, i| {
                i.cached.epoch == epoch && i.member.is_current() && now < i.cached.expires_at()
            });
        }
        lock(&self.members).retain(|_, m| Arc::strong_count(m) > 1);
    }

    /// Sessions cached now (for tests and the benchmark).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn activity(&self, identity: &Identity, now: Millis) {
        let seen = &identity.cached;
        // Read first: within one millisecond every request of a session would otherwise
        // write the same line from each worker thread.
        if seen.last_seen.load(Ordering::Relaxed) < now {
            seen.last_seen.fetch_max(now, Ordering::Relaxed);
        }
        let written = seen.written.load(Ordering::Relaxed);
        let every = TOUCH_EVERY_MS.min(seen.idle_ms / 4).max(1);
        if now - written >= every
            && seen
                .written
                .compare_exchange(written, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            lock(&self.touches).push((identity.session_id.clone(), now));
        }
    }

    /// The activity to write since the last call, each session at its own instant.
    pub fn take_touches(&self) -> Vec<(SessionId, Millis)> {
        std::mem::take(&mut *lock(&self.touches))
    }

    pub fn count_hit(&self) {
        if let Some(c) = &self.counters {
            c.hit.inc();
        }
    }

    pub fn count_miss(&self) {
        if let Some(c) = &self.counters {
            c.miss.inc();
        }
    }
}

/// Makes room in a full shard: what has expired goes, else a few entries (the map's order
/// is random, so this is random eviction: cheap, and fair enough for a cache sized above
/// the sessions in use).
fn evict(shard: &mut Shard, now: Millis) {
    let before = shard.len();
    shard.retain(|_, i| now < i.cached.expires_at());
    if shard.len() == before {
        // A sixteenth at once, so a full cache scans a shard once per many inserts.
        let doomed: Vec<u128> = shard.keys().take(before / 16 + 1).copied().collect();
        for k in doomed {
            shard.remove(&k);
        }
    }
}

// A poisoned lock means a panic while a map was changed; the maps stay consistent (each
// change is one call), so carry on with them.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
