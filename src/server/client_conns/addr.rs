//! Open connections counted per client address, so that one host cannot take every
//! connection the gateway can hold. A slot is an RAII guard: the count can only drift if
//! a guard leaks, never through a forgotten decrement on an error path.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// Open connections per address key (see [`key`]), up to a cap.
pub struct OpenPerAddr {
    /// 0 = unlimited.
    max: u32,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl OpenPerAddr {
    pub fn new(max: u32) -> Self {
        Self {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, or `None` if its address is at the cap.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Option<AddrSlot> {
        if self.max == 0 {
            return Some(AddrSlot::unlimited());
        }
        let key = key(ip);
        let mut counts = self.lock();
        let n = counts.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddrSlot(Some((self.clone(), key))))
    }

    /// Connections open from `ip`'s address key now.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> u32 {
        self.lock().get(&key(ip)).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        // The map stays consistent even if a holder panicked (no code path in between).
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, key: IpAddr) {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }
}

/// One open connection; released when dropped.
pub struct AddrSlot(Option<(Arc<OpenPerAddr>, IpAddr)>);

impl AddrSlot {
    /// A connection that is not counted (exempt peer, no cap).
    pub fn unlimited() -> Self {
        Self(None)
    }
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        if let Some((open, key)) = self.0.take() {
            open.close(key);
        }
    }
}

/// What counts as one client: an IPv4 address (also when IPv4-mapped), or an IPv6 /64,
/// since a single host is routinely given a whole /64 and can pick any address in it.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_each_address_and_frees_slots_on_drop() {
        let open = Arc::new(OpenPerAddr::new(2));
        let a = open.try_open(ip("10.0.0.1")).unwrap();
        let _b = open.try_open(ip("10.0.0.1")).unwrap();
        assert!(open.try_open(ip("10.0.0.1")).is_none());
        // Another address is not affected.
        let _c = open.try_open(ip("10.0.0.2")).unwrap();
        drop(a);
        assert_eq!(open.open(ip("10.0.0.1")), 1);
        assert!(open.try_open(ip("10.0.0.1")).is_some());
    }

    #[test]
    fn an_ipv6_slash_64_is_one_client_and_mapped_ipv4_is_ipv4() {
        let open = Arc::new(OpenPerAddr::new(1));
        let _a = open.try_open(ip("2001:db8:1:2::1")).unwrap();
        assert!(open.try_open(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(open.try_open(ip("2001:db8:1:3::1")).is_some());
        let _v4 = open.try_open(ip("192.0.2.7")).unwrap();
        assert!(open.try_open(ip("::ffff:192.0.2.7")).is_none());
    }

    #[test]
    fn zero_means_unlimited_and_counts_nothing() {
        let open = Arc::new(OpenPerAddr::new(0));
        let slots: Vec<_> = (0..1000)
            .map(|_| open.try_open(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(open.open(ip("10.0.0.1")), 0);
        drop(slots);
    }

    #[test]
    fn released_addresses_leave_the_map() {
        let open = Arc::new(OpenPerAddr::new(3));
        for i in 0..100u8 {
            drop(open.try_open(IpAddr::from([10, 0, 1, i])).unwrap());
        }
        assert!(open.lock().is_empty());
    }
}
