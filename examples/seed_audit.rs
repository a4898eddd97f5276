//! Fills a store's audit trail with typical security events, for measuring what the
//! trail costs in the store (`bench/audit_memory`): a sign-in of one of MEMBERS accounts
//! (by id) from an IPv4 address, as the journal stores it.
//!
//! Usage: `seed_audit STORE_URL EVENTS MEMBERS`.
// A bench tool: dates events by the real clock.
#![allow(clippy::disallowed_methods)]

use std::time::{SystemTime, UNIX_EPOCH};

use vigile::store::{self, AuditKeep, AuditRecord, StoreUrl, UserId};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, events, members] = args.as_slice() else {
        return Err("usage: seed_audit STORE_URL EVENTS MEMBERS".into());
    };
    let (events, members): (usize, usize) = (events.parse()?, members.parse()?);
    let store = store::open(&StoreUrl::parse(url)?, false)?;
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let ids: Vec<UserId> = (0..members.max(1)).map(|_| UserId::random()).collect();
    let keep = AuditKeep {
        keep_ms: 90 * 86_400_000,
        max_events: u64::try_from(events)?,
    };
    let mut batch = Vec::with_capacity(500);
    for i in 0..events {
        batch.push(AuditRecord {
            at: now - i64::try_from(events - i)?,
            event: "login".into(),
            by: "visitor".into(),
            user: Some(ids[i % ids.len()].as_str().to_string()),
            ip: Some(format!("198.51.{}.{}", (i / 256) % 256, i % 256)),
            detail: "{}".into(),
            ..AuditRecord::default()
        });
        if batch.len() == 500 || i + 1 == events {
            store.audit_append(&batch, keep).await?;
            batch.clear();
        }
    }
    println!("{events} events for {members} members appended");
    Ok(())
}
