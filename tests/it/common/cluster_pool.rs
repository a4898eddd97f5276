//! Three-master Clusters kept from one store behaviour test to the next. A Cluster master
//! turns writable only 2 s after it starts (Redis's `CLUSTER_WRITABLE_DELAY`, not
//! configurable), which each of the ~80 `store_*::…::cluster` tests would otherwise wait.
//! A test [`lease`]s one, emptied (`FLUSHALL` on every master) and whole again; it goes
//! back to the pool when the test ends, unless the test panicked (its state is then
//! unknown, so it is killed). What is still pooled when the test binary exits is killed
//! then (`atexit`), so no `redis-server` outlives the run.
//!
//! Only tests that drive stores directly lease: a gateway process may still write for a
//! moment after its test ends, into a Cluster another test would already be using.

use std::ops::Deref;
use std::sync::{Mutex, Once};

use super::cluster::ClusterSet;

static POOL: Mutex<Vec<ClusterSet>> = Mutex::new(Vec::new());
static KILL_AT_EXIT: Once = Once::new();

/// A Cluster a test owns ([`ClusterSet::start`]), or one it leased from the pool.
pub struct Cluster {
    set: Option<ClusterSet>,
    pooled: bool,
}

impl From<ClusterSet> for Cluster {
    fn from(set: ClusterSet) -> Self {
        Cluster {
            set: Some(set),
            pooled: false,
        }
    }
}

impl Deref for Cluster {
    type Target = ClusterSet;

    fn deref(&self) -> &ClusterSet {
        self.set.as_ref().expect("a Cluster until dropped")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(set) = self.set.take() {
            if self.pooled && !std::thread::panicking() {
                POOL.lock().unwrap_or_else(|e| e.into_inner()).push(set);
            }
        }
    }
}

extern "C" fn kill_pooled() {
    // Dropping a ClusterSet kills its nodes and removes their directory.
    let pooled = std::mem::take(&mut *POOL.lock().unwrap_or_else(|e| e.into_inner()));
    drop(pooled);
}

/// An empty, whole three-master Cluster: a pooled one when there is one, else a new one.
pub async fn lease() -> Cluster {
    KILL_AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function with no arguments, as atexit(3) expects.
        let registered = unsafe { libc::atexit(kill_pooled) };
        assert_eq!(registered, 0, "atexit");
    });
    loop {
        let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some(set) = pooled else {
            return Cluster {
                set: Some(ClusterSet::start().await),
                pooled: true,
            };
        };
        // A pooled Cluster that cannot be emptied is dropped (killed) for the next one.
        if set.empty().await {
            return Cluster {
                set: Some(set),
                pooled: true,
            };
        }
    }
}
