//! The watch's own handle on each upstream connection (see `watch`): a duplicate of the
//! socket's descriptor, so that a shutdown always reaches the socket it was meant for,
//! even after Pingora has closed its own descriptor and the number names another socket.
//!
//! Pingora keeps upstream connections alive and lends one to request after request. The
//! duplicate is made on a connection's first exchange and kept for the next ones, found
//! again through the connection's socket digest (one per connection, shared by every
//! exchange on it): two system calls a connection rather than two a request (issue 17's
//! hot path). Once Pingora lets the connection go, its digest goes with it, and the next
//! sweep closes the duplicate, so that the socket is not held open after Pingora closed it.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use pingora::protocols::SocketDigest;

use super::watch::IdHasher;

/// Lookups are spread over this many locks, so the worker threads seldom meet.
const SHARDS: usize = 16;

/// A duplicate, and the connection it belongs to (by its digest, held weakly: the
/// allocation, and so its address, stays while the entry does).
struct Entry {
    connection: Weak<SocketDigest>,
    socket: Arc<OwnedFd>,
}

/// Keyed by the digest's address (spread by a multiplication, as the watch's ids are).
type Shard = HashMap<u64, Entry, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub struct UpstreamSockets {
    shards: [Mutex<Shard>; SHARDS],
}

impl UpstreamSockets {
    /// The duplicate of `fd`, the descriptor of the connection `connection` describes
    /// (borrowed from Pingora for the length of this call): the one made on an earlier
    /// exchange of the same connection, or a new one. `None` when the descriptor cannot
    /// be duplicated (out of descriptors). Without a digest nothing is kept.
    pub fn get(&self, fd: RawFd, connection: Option<&Arc<SocketDigest>>) -> Option<Arc<OwnedFd>> {
        let Some(connection) = connection else {
            return duplicate(fd).map(Arc::new);
        };
        let key = Arc::as_ptr(connection) as usize as u64;
        let mut shard = self.shard(key);
        // An entry's weak reference keeps its digest's allocation, so no other digest can
        // sit at that address while the entry exists: found means this connection.
        if let Some(entry) = shard.get(&key) {
            return Some(entry.socket.clone());
        }
        let socket = Arc::new(duplicate(fd)?);
        shard.insert(
            key,
            Entry {
                connection: Arc::downgrade(connection),
                socket: socket.clone(),
            },
        );
        Some(socket)
    }

    /// Closes the duplicates of connections Pingora has let go (an exchange still under
    /// way keeps its own reference until it ends).
    pub fn sweep(&self) {
        for shard in &self.shards {
            lock(shard).retain(|_, e| e.connection.strong_count() > 0);
        }
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, Shard> {
        // Allocations are 16-byte aligned at least: the low bits say nothing.
        lock(&self.shards[(key >> 4) as usize % SHARDS])
    }

    /// Duplicates kept (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

fn duplicate(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: Pingora hands `fd` to `connected_to_upstream` while the connection is open
    // and owned by this request; it is only borrowed here to duplicate it.
    unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn digest(stream: &TcpStream) -> Arc<SocketDigest> {
        Arc::new(SocketDigest::from_raw_fd(stream.as_raw_fd()))
    }

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        (ours, peer)
    }

    #[test]
    fn exchanges_on_one_connection_share_one_duplicate_and_others_get_their_own() {
        let sockets = UpstreamSockets::default();
        let (a, _pa) = pair();
        let (b, _pb) = pair();
        let (da, db) = (digest(&a), digest(&b));
        let first = sockets.get(a.as_raw_fd(), Some(&da)).unwrap();
        let again = sockets.get(a.as_raw_fd(), Some(&da)).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "no second duplicate");
        let other = sockets.get(b.as_raw_fd(), Some(&db)).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(sockets.len(), 2);
        // Without a digest: a duplicate of its own, not kept.
        let loose = sockets.get(a.as_raw_fd(), None).unwrap();
        assert!(!Arc::ptr_eq(&first, &loose));
        assert_eq!(sockets.len(), 2);
    }

    #[test]
    fn a_connection_let_go_is_closed_at_the_next_sweep_not_before() {
        let sockets = UpstreamSockets::default();
        let (ours, mut peer) = pair();
        let connection = digest(&ours);
        drop(sockets.get(ours.as_raw_fd(), Some(&connection)).unwrap());
        // Pingora closes the connection: its descriptor and its digest go.
        drop(ours);
        drop(connection);
        peer.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert!(
            peer.read(&mut [0u8; 1]).is_err(),
            "the duplicate still holds the socket"
        );
        sockets.sweep();
        assert_eq!(sockets.len(), 0);
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(
            matches!(peer.read(&mut [0u8; 1]), Ok(0)),
            "closed once swept: the upstream sees the connection end"
        );
    }

    /// The socket a duplicate names, by its peer.
    fn peer_of(socket: &OwnedFd) -> std::net::SocketAddr {
        TcpStream::from(socket.try_clone().unwrap())
            .peer_addr()
            .unwrap()
    }

    #[test]
    fn a_new_connection_on_a_reused_descriptor_number_gets_its_own_duplicate() {
        let sockets = UpstreamSockets::default();
        let (a, _pa) = pair();
        let da = digest(&a);
        let number = a.as_raw_fd();
        drop(sockets.get(number, Some(&da)).unwrap());
        // The first connection ends and its number comes to name another connection's
        // socket (dup2 onto a number this test owns: no other test's descriptor moves).
        drop(da);
        let (b, _pb) = pair();
        // SAFETY: both descriptors belong to this test.
        assert_eq!(unsafe { libc::dup2(b.as_raw_fd(), number) }, number);
        let db = digest(&b);
        let dup = sockets.get(number, Some(&db)).unwrap();
        assert_eq!(peer_of(&dup), b.peer_addr().unwrap(), "b's socket, not a's");
    }
}
