//! The eviction guard. A Redis whose `maxmemory-policy` evicts keys drops whatever it
//! likes when memory runs short: a member's session (signed out), or the failed-attempt
//! counter that was about to lock an account (the lockout counts from zero again). Every
//! Vigile record carries a TTL, so `volatile-*` policies reach them all, and `allkeys-*`
//! anything. So Vigile serves only on `noeviction` (a full Redis then refuses writes, and
//! the gateway fails closed with 503s), unless the operator sets `store.allow_eviction`.
//!
//! The policy is read from `INFO memory` (works where `CONFIG` is renamed or disabled, as
//! on managed services) before the first call on a new connection (at start, and after
//! any connection failure: the server answering next may be another one), and again at
//! every readiness check, which the server runs every 10 s, so a policy changed at run
//! time is noticed within that period. While the policy is unsafe and not allowed, or not
//! read yet, every store call fails as if Redis were down.

use std::sync::atomic::{AtomicU8, Ordering};

/// What the last check found.
#[derive(Debug, Default)]
pub(super) struct Guard {
    state: AtomicU8,
    /// `store.allow_eviction`.
    pub allowed: bool,
}

const UNKNOWN: u8 = 0;
const SAFE: u8 = 1;
const UNSAFE: u8 = 2;

/// The policy named in an `INFO memory` reply, if any.
pub(super) fn policy_in(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
        .map(str::trim)
}

/// The policy in an `INFO memory` answer: one server's text, or a Cluster's map from
/// each master to its text, where the first master that may evict names the policy (the
/// store may live on any of them after a failover).
pub(super) fn policy_of(info: &::redis::Value) -> Option<String> {
    let mut texts = Vec::new();
    texts_in(info, &mut texts);
    let policies: Vec<String> = texts
        .iter()
        .map(|t| {
            policy_in(t)
                .unwrap_or("unknown (not in INFO memory)")
                .to_string()
        })
        .collect();
    policies
        .iter()
        .find(|p| p.as_str() != "noeviction")
        .or(policies.first())
        .cloned()
}

fn texts_in(value: &::redis::Value, out: &mut Vec<String>) {
    use ::redis::Value;
    match value {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => out.push(text.clone()),
        Value::VerbatimString { text, .. } => out.push(text.clone()),
        Value::Map(pairs) => pairs.iter().for_each(|(_, v)| texts_in(v, out)),
        Value::Array(items) => items.iter().for_each(|v| texts_in(v, out)),
        _ => {}
    }
}

/// Why a policy is refused, for the log, `/readyz` and the error at start.
pub(super) fn refusal(policy: &str) -> String {
    format!(
        "Redis maxmemory-policy is {policy}: Redis may evict Vigile's keys (sessions, \
         lockout counters, the mail outbox) when memory runs short, which signs members out \
         and resets lockouts. Set `maxmemory-policy noeviction` on the Redis server (or \
         `store.allow_eviction = true` to run anyway, unsafe)"
    )
}

impl Guard {
    pub fn new(allowed: bool) -> Self {
        Self {
            state: AtomicU8::new(UNKNOWN),
            allowed,
        }
    }

    /// Records the policy read; `Err` (why) when it evicts.
    pub fn record(&self, policy: &str) -> Result<(), String> {
        if policy == "noeviction" {
            self.state.store(SAFE, Ordering::Relaxed);
            Ok(())
        } else {
            self.state.store(UNSAFE, Ordering::Relaxed);
            Err(refusal(policy))
        }
    }

    /// The last check found an evicting policy.
    pub fn is_unsafe(&self) -> bool {
        self.state.load(Ordering::Relaxed) == UNSAFE
    }

    /// Whether store calls must be refused now.
    pub fn blocks(&self) -> bool {
        self.is_unsafe() && !self.allowed
    }

    /// No check since the connection was (re)established: the next call checks first.
    pub fn unchecked(&self) -> bool {
        self.state.load(Ordering::Relaxed) == UNKNOWN
    }

    /// The connection failed: whatever answers next may be another server (a restarted
    /// or failed-over one), so its policy is read again before it is used.
    pub fn forget(&self) {
        self.state.store(UNKNOWN, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_safe_only_when_every_master_is() {
        use ::redis::Value;
        let text = |p: &str| {
            Value::BulkString(format!("# Memory\r\nmaxmemory_policy:{p}\r\n").into_bytes())
        };
        let one = text("noeviction");
        assert_eq!(policy_of(&one).as_deref(), Some("noeviction"));
        let node = |n: &str| Value::SimpleString(n.into());
        let all_safe = Value::Map(vec![
            (node("a"), text("noeviction")),
            (node("b"), text("noeviction")),
        ]);
        assert_eq!(policy_of(&all_safe).as_deref(), Some("noeviction"));
        let one_evicts = Value::Map(vec![
            (node("a"), text("noeviction")),
            (node("b"), text("allkeys-lru")),
        ]);
        assert_eq!(policy_of(&one_evicts).as_deref(), Some("allkeys-lru"));
        assert_eq!(policy_of(&Value::Nil), None);
    }

    #[test]
    fn only_noeviction_is_safe() {
        let info = "# Memory\r\nused_memory:1000\r\nmaxmemory_policy:volatile-lru\r\n";
        assert_eq!(policy_in(info), Some("volatile-lru"));
        let g = Guard::new(false);
        assert!(!g.blocks(), "unknown until checked");
        assert!(g.record("volatile-lru").is_err());
        assert!(g.blocks());
        assert!(g.record("noeviction").is_ok());
        assert!(!g.blocks() && !g.is_unsafe());
        let allowed = Guard::new(true);
        assert!(allowed.record("allkeys-lru").is_err());
        assert!(allowed.is_unsafe() && !allowed.blocks());
    }
}
