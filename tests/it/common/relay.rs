//! A TCP relay in front of a real server (a redis-server, say) that can hold a client's
//! bytes: once [`HoldingRelay::hold_at`] is armed, the first chunk a client sends that
//! contains the pattern (a Redis key, for instance) is kept back, with everything that
//! client sends after it, until [`HoldingRelay::release`]. Replies are never held.
//!
//! It lets a test stop a process at one precise step of its work (the store lookup of one
//! address) and check what it has already answered meanwhile, without sleeping and
//! without a test-only branch in the process. Dropped: stops accepting; open connections
//! end with the test's runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct HoldingRelay {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    target: u16,
    /// The bytes that start a hold, while armed.
    pattern: Mutex<Option<Vec<u8>>>,
    /// How many chunks are being held right now.
    held: watch::Sender<usize>,
    /// Bumped by `release`: holders wait for it to change.
    releases: watch::Sender<u64>,
}

impl HoldingRelay {
    /// Listens on a free port of 127.0.0.1 and relays every connection to
    /// `127.0.0.1:target`.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            target,
            pattern: Mutex::new(None),
            held: watch::channel(0).0,
            releases: watch::channel(0).0,
        });
        let accept = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(("127.0.0.1", shared.target)).await {
                            relay(client, server, shared).await;
                        }
                    });
                }
            })
        };
        HoldingRelay {
            port,
            shared,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on, the first client chunk containing `pattern` is held (one hold: later
    /// chunks of other connections pass).
    pub fn hold_at(&self, pattern: &str) {
        *self.shared.pattern.lock().unwrap() = Some(pattern.as_bytes().to_vec());
    }

    /// Whether a chunk is being held right now.
    pub fn holding(&self) -> bool {
        *self.shared.held.borrow() > 0
    }

    /// Waits (polling, up to 20 s) until a chunk is held; panics otherwise.
    pub async fn wait_holding(&self, what: &str) {
        super::poll_until(what, 400, || async { self.holding() }).await;
    }

    /// Lets the held bytes (and everything after them) through, and disarms.
    pub fn release(&self) {
        *self.shared.pattern.lock().unwrap() = None;
        self.shared.releases.send_modify(|n| *n += 1);
    }
}

impl Drop for HoldingRelay {
    fn drop(&mut self) {
        self.release();
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    let replies = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_rd, &mut client_wr).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so a pattern split across two reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match client_rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let hold = {
            let mut pattern = shared.pattern.lock().unwrap();
            let found = pattern.as_ref().is_some_and(|p| {
                let mut seen = tail.clone();
                seen.extend_from_slice(chunk);
                seen.windows(p.len()).any(|w| w == p.as_slice())
            });
            if found {
                *pattern = None;
            }
            found
        };
        if hold {
            let mut releases = shared.releases.subscribe();
            releases.borrow_and_update();
            shared.held.send_modify(|n| *n += 1);
            let _ = releases.changed().await;
            shared.held.send_modify(|n| *n -= 1);
        }
        if server_wr.write_all(chunk).await.is_err() {
            break;
        }
        let keep = chunk.len().min(256);
        tail = chunk[chunk.len() - keep..].to_vec();
    }
    let _ = server_wr.shutdown().await;
    let _ = replies.await;
}
