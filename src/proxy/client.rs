//! Who the client is: the socket peer, unless that peer is a trusted reverse proxy, in
//! which case the right-most `X-Forwarded-For` entry that is not itself trusted. A header
//! from an untrusted peer is ignored entirely, so it cannot be used to spoof an address.

use std::net::IpAddr;

use ipnet::IpNet;

pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// `xff`: every `X-Forwarded-For` header value, in order, as bytes (a value that is not
/// ASCII must not hide the addresses the trusted proxies appended after it).
pub fn client_ip(peer: IpAddr, xff: &[&[u8]], trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops = xff.iter().flat_map(|v| v.split(|&b| b == b','));
    let mut nearest_trusted = None;
    for raw in hops.collect::<Vec<_>>().into_iter().rev() {
        let parsed = std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.trim().parse::<IpAddr>().ok());
        let Some(ip) = parsed else {
            // Not an address: only the client writes that, and whatever lies left of it
            // was the client's to write too. The last proxy that vouched is the answer.
            return nearest_trusted.unwrap_or(peer);
        };
        if !is_trusted(ip, trusted) {
            return ip;
        }
        nearest_trusted = Some(ip);
    }
    nearest_trusted.unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(ip("203.0.113.9"), &[b"1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn rightmost_untrusted_from_trusted_peer() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // Client forged "6.6.6.6"; the real client seen by our proxy is 198.51.100.7.
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                &[b"6.6.6.6, 198.51.100.7", b"10.0.0.5"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.0.0.2"), &[], &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), &[b"10.1.1.1"], &trusted),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn bytes_that_are_not_an_address_never_hide_or_forge_one() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // A client's non-ASCII junk before the address the proxy appended.
        let chain: &[u8] = b"\xe9, 203.0.113.9";
        assert_eq!(
            client_ip(ip("10.0.0.2"), &[chain], &trusted),
            ip("203.0.113.9")
        );
        // Junk right of a forged address, behind a trusted hop: not skipped over.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &[b"6.6.6.6, junk, 10.0.0.7"], &trusted),
            ip("10.0.0.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &[b"6.6.6.6,,"], &trusted),
            ip("10.0.0.2")
        );
    }
}
