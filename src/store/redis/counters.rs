//! [`CounterStore`] on Redis: one integer key per `(scope, subject, window start)`,
//! incremented and given the window's end as TTL in one script; the key also enters the
//! `Expiring` index (on its first hit) so `sweep` agrees with SQLite. A new window is a
//! new key, so it starts from zero. The window is computed in Rust: Lua formats no number.

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use super::RedisStore;
use crate::store::counters::window;
use crate::store::keys::Key;
use crate::store::{CounterScope, CounterStore, Millis, StoreResult};

// KEYS[1] counter, KEYS[2] expiring index; ARGV[1] end of the window. Returns the count.
static COUNTER_HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
if n == 1 then redis.call('ZADD', KEYS[2], ARGV[1], KEYS[1]) end
return n
"#,
    )
});

#[async_trait]
impl CounterStore for RedisStore {
    async fn counter_hit(
        &self,
        scope: CounterScope,
        subject: &str,
        window_ms: Millis,
        now: Millis,
    ) -> StoreResult<u64> {
        let (start, end) = window(now, window_ms);
        // Beside their subject, except the site's own (the outbox counts those).
        let ns = match scope {
            CounterScope::MessagesSent | CounterScope::TextsSite => self.global(),
            _ => self.of(subject),
        };
        let mut inv = COUNTER_HIT.prepare_invoke();
        inv.key(Key::Counter(scope, subject, start).name_in(ns))
            .key(Key::Expiring.name_in(ns))
            .arg(end);
        self.call(&inv).await
    }
}
