//! The `HttpPeer` a forwarded request connects to, for `[upstream]` and for a route with a
//! single server. Pingora wants a new boxed peer per request; one whose address is an IP
//! is made once, options included, and copied (it was parsed from text and filled in on
//! every request). A host name is looked up off the worker threads and its answer kept
//! for [`NAME_TTL_MS`]: a blocking lookup per request held a worker for as long as the
//! resolver took, and a server that moves (a container started again) is still followed.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use pingora::prelude::*;

use crate::config::UpstreamTarget;
use crate::store::Millis;

/// How long (ms) a looked-up address of a host name is used before it is looked up again.
pub const NAME_TTL_MS: Millis = 5_000;

/// The peer options every upstream connection gets (`[upstream]` limits).
fn configure(peer: &mut HttpPeer, connect_timeout: Duration) {
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.total_connection_timeout = Some(connect_timeout + Duration::from_secs(1));
    // No per-read timeout from Pingora: the watch keeps separate first-byte and idle
    // limits (a quiet event stream is not a slow application).
    peer.options.read_timeout = None;
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    // HTTP/1.1 only: the identity headers go out as HTTP/1 wire lines (`headers`), which
    // a request built for HTTP/2 would not carry.
    peer.options.alpn = pingora::protocols::ALPN::H1;
}

/// One server, ready to hand out peers.
pub enum Server {
    /// An IP address: the whole peer, made once.
    Address(Box<HttpPeer>),
    /// A host name, looked up when its last answer is older than [`NAME_TTL_MS`].
    Name {
        target: Box<UpstreamTarget>,
        connect_timeout: Duration,
        /// The last answer, and when (unix ms) it was looked up.
        last: Mutex<Option<(Millis, SocketAddr)>>,
    },
}

impl Server {
    pub fn new(target: &UpstreamTarget, connect_timeout: Duration) -> Self {
        match target.address.parse::<SocketAddr>() {
            Ok(addr) => Self::Address(Box::new(peer(addr, target, connect_timeout))),
            Err(_) => Self::Name {
                target: Box::new(target.clone()),
                connect_timeout,
                last: Mutex::new(None),
            },
        }
    }

    /// A peer for a request made at `now` (an error, not a panic, when the name does not
    /// resolve).
    pub async fn peer(&self, now: Millis) -> Result<Box<HttpPeer>> {
        match self {
            Self::Address(peer) => Ok(peer.clone()),
            Self::Name {
                target,
                connect_timeout,
                last,
            } => {
                let addr = resolved(target, last, now, *connect_timeout).await?;
                Ok(Box::new(peer(addr, target, *connect_timeout)))
            }
        }
    }
}

/// The peer for `target` at `addr`, options set (pooled servers' too).
pub fn peer(addr: SocketAddr, target: &UpstreamTarget, connect_timeout: Duration) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, target.tls, target.sni.clone());
    configure(&mut peer, connect_timeout);
    peer
}

/// The name's address: the kept one while fresh, else a new lookup (on Tokio's blocking
/// threads, given up after `limit`, as a connection would be), kept for the next requests.
async fn resolved(
    target: &UpstreamTarget,
    last: &Mutex<Option<(Millis, SocketAddr)>>,
    now: Millis,
    limit: Duration,
) -> Result<SocketAddr> {
    let kept = *last.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, addr)) = kept {
        // (A clock set back makes the answer look fresh until `at` comes round again;
        // bounded, as NTP steps are.)
        if (0..NAME_TTL_MS).contains(&(now - at)) {
            return Ok(addr);
        }
    }
    let lookup = tokio::net::lookup_host(target.address.as_str());
    let found = tokio::time::timeout(limit, lookup)
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|mut addrs| addrs.next());
    let Some(addr) = found else {
        return Err(Error::create(
            ErrorType::ConnectNoRoute,
            ErrorSource::Upstream,
            Some(format!("cannot resolve {}", target.address).into()),
            None,
        ));
    };
    *last.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, addr));
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(address: &str) -> UpstreamTarget {
        let url = url::Url::parse(&format!("http://{address}/")).unwrap();
        UpstreamTarget {
            address: address.to_owned(),
            tls: false,
            sni: String::new(),
            prefix: String::new(),
            origin: url.origin(),
            label: url.to_string(),
        }
    }

    #[tokio::test]
    async fn an_ip_address_gives_the_same_configured_peer_every_time() {
        let server = Server::new(&target("127.0.0.1:8080"), Duration::from_secs(3));
        assert!(matches!(server, Server::Address(_)));
        let (a, b) = (server.peer(0).await.unwrap(), server.peer(1).await.unwrap());
        assert_eq!(a._address.to_string(), "127.0.0.1:8080");
        assert_eq!(a._address.to_string(), b._address.to_string());
        assert_eq!(a.options.connection_timeout, Some(Duration::from_secs(3)));
        assert_eq!(a.options.read_timeout, None);
        assert_eq!(a.options.alpn, pingora::protocols::ALPN::H1);
    }

    #[tokio::test]
    async fn a_name_is_looked_up_and_kept_for_its_time_then_looked_up_again() {
        let server = Server::new(&target("localhost:8080"), Duration::from_secs(3));
        let Server::Name { last, .. } = &server else {
            panic!("a host name is not an address");
        };
        let t0 = 1_000_000;
        let peer = server.peer(t0).await.unwrap();
        assert_eq!(peer._address.as_inet().unwrap().port(), 8080);
        assert_eq!(
            peer.options.connection_timeout,
            Some(Duration::from_secs(3))
        );
        assert_eq!(last.lock().unwrap().map(|(at, _)| at), Some(t0));
        // A kept answer stands for the name while fresh: pretend it moved.
        let moved: SocketAddr = "127.0.0.9:8080".parse().unwrap();
        *last.lock().unwrap() = Some((t0, moved));
        let kept = server.peer(t0 + NAME_TTL_MS - 1).await.unwrap();
        assert_eq!(kept._address.to_string(), "127.0.0.9:8080");
        // Once it is NAME_TTL_MS old, the name is looked up again.
        let again = server.peer(t0 + NAME_TTL_MS).await.unwrap();
        assert_ne!(again._address.to_string(), "127.0.0.9:8080");
        assert!(again._address.as_inet().unwrap().ip().is_loopback());
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_an_upstream_error() {
        let server = Server::new(&target("no-such-host.invalid:8080"), Duration::from_secs(3));
        let e = server.peer(0).await.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::ConnectNoRoute);
        assert_eq!(e.esource(), &ErrorSource::Upstream);
    }
}
