//! The `Expiring` index: names of token and counter keys scored by their expiry. Redis
//! drops those keys by TTL on its own clock; `sweep` also drops them at the `now` it is
//! given (ahead of that clock in tests), so both backends agree on what is left.

use std::sync::LazyLock;

use ::redis::Script;

use super::RedisStore;
use crate::store::keys::{Key, Namespace};
use crate::store::{Millis, StoreResult};

// KEYS[1] expiring index; ARGV[1] now, ARGV[2] batch size. The members are key names
// that keys.rs spelled when they were added. Returns how many entries it removed.
static SWEEP_EXPIRING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local names = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #names == 0 then return 0 end
redis.call('DEL', unpack(names))
redis.call('ZREM', KEYS[1], unpack(names))
return #names
"#,
    )
});

impl RedisStore {
    /// Removes the tokens and counters expired at `now`, `batch` per script run. Every
    /// index entry counts as one record, even if Redis had already dropped its key.
    pub(super) async fn sweep_expiring(
        &self,
        ns: Namespace,
        now: Millis,
        batch: u64,
    ) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let mut inv = SWEEP_EXPIRING.prepare_invoke();
            inv.key(Key::Expiring.name_in(ns)).arg(now).arg(batch);
            let removed: u64 = self.call(&inv).await?;
            total += removed;
            if removed < batch {
                return Ok(total);
            }
        }
    }
}
