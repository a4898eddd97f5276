//! [`KeptStore`] on Redis: one hash per document (`v` version, `d` document) whose TTL is
//! its expiry; a write is one script comparing the version first.

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use super::RedisStore;
use crate::store::keys::Key;
use crate::store::{Kept, KeptStore, Millis, StoreError, StoreResult, Versioned};

// KEYS[1] document; ARGV[1] expected version, ARGV[2] "put" or "del", ARGV[3] document,
// ARGV[4] expires_at or "", ARGV[5] now. Returns 1 if it wrote. A key Redis has not expired yet but
// whose instant passed is as good as absent: the flows pass `now` and read it so too.
static KEPT_PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local f = redis.call('HMGET', KEYS[1], 'v', 'x')
local current = tonumber(f[1]) or 0
if f[2] and f[2] ~= '' and tonumber(f[2]) <= tonumber(ARGV[5]) then current = 0 end
if current ~= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == 'del' then
  redis.call('DEL', KEYS[1])
  return 1
end
-- HSET first: on a full Redis the script stops before changing anything.
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1, 'd', ARGV[3], 'x', ARGV[4])
if ARGV[4] == '' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
end
return 1
"#,
    )
});

#[async_trait]
impl KeptStore for RedisStore {
    async fn kept_get(&self, kind: Kept, key: &str, now: Millis) -> StoreResult<Option<Versioned>> {
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(Key::Kept(kind, key).name_in(self.of(key)))
            .arg("v")
            .arg("d")
            .arg("x");
        let f: Vec<Option<String>> = self.query(&cmd).await?;
        let corrupt = || StoreError::Corrupt(format!("{} document", kind.as_str()));
        let mut f = f.into_iter();
        let (Some(version), Some(doc), expires_at) =
            (f.next().flatten(), f.next().flatten(), f.next().flatten())
        else {
            return Ok(None);
        };
        if let Some(x) = expires_at.filter(|x| !x.is_empty()) {
            if x.parse::<Millis>().map_err(|_| corrupt())? <= now {
                return Ok(None);
            }
        }
        Ok(Some(Versioned {
            version: version.parse().map_err(|_| corrupt())?,
            doc,
        }))
    }

    async fn kept_put(
        &self,
        kind: Kept,
        key: &str,
        expected: u64,
        doc: Option<&str>,
        expires_at: Option<Millis>,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut inv = KEPT_PUT.prepare_invoke();
        inv.key(Key::Kept(kind, key).name_in(self.of(key)))
            .arg(expected)
            .arg(if doc.is_some() { "put" } else { "del" })
            .arg(doc.unwrap_or(""))
            .arg(expires_at.map(|x| x.to_string()).unwrap_or_default())
            .arg(now);
        let wrote: i64 = self.call(&inv).await?;
        Ok(wrote == 1)
    }
}
