//! SQLite only: the WAL stays bounded (issue 17). Readers in flight keep SQLite's own
//! checkpoints from restarting the WAL, so under constant load it used to grow for good
//! (250 MiB beside a 54 MiB database in `bench/sessions_memory`); the store now truncates
//! it once it passes 32 MiB, as soon as those readers are gone, cuts it back to 16 MiB
//! when it restarts, and truncates it at every sweep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use vigile::store::{DynStore, Millis, SqliteStore, UserId};

use crate::common::records::{real_now, session, user};

fn wal_bytes(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Writes 50 sessions with a long user agent (rows a few pages each); returns 50.
async fn write(store: &DynStore, user: &UserId, now: Millis) -> u64 {
    for _ in 0..50 {
        let (mut s, _) = session(user, now);
        s.user_agent = "x".repeat(400);
        store.session_insert(&s, None).await.unwrap();
    }
    50
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_is_truncated_once_the_readers_holding_it_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigile.db");
    let store: DynStore = Arc::new(SqliteStore::open(&path).unwrap());
    let now = real_now();
    let u = user("ann@example.org", now);
    store.user_insert(&u).await.unwrap();

    // Another process's long read (the CLI listing members, say): its snapshot pins the
    // WAL, which can neither be copied back past it nor restart.
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    let mut written = 0;
    while wal_bytes(&path) <= 33 << 20 {
        written += write(&store, &u.id, now).await;
        assert!(written < 200_000, "the WAL did not grow");
    }
    // Calls past 32 MiB tried to truncate it, in vain: the reader still holds it.
    assert!(wal_bytes(&path) > 32 << 20);

    reader.execute_batch("COMMIT").unwrap();
    // Once it has gone, the WAL restarts and is cut back to 16 MiB, or is truncated by
    // the next try, 8 MiB later (not at every call while the reader held it).
    while wal_bytes(&path) > 16 << 20 {
        written += write(&store, &u.id, now).await;
        assert!(
            wal_bytes(&path) < 48 << 20,
            "not truncated once the reader left"
        );
    }
    // And every sweep does, whatever its size.
    written += write(&store, &u.id, now).await;
    assert!(wal_bytes(&path) > 0);
    store.sweep(now).await.unwrap();
    assert_eq!(wal_bytes(&path), 0);
    assert_eq!(store.session_count(now).await.unwrap(), written);
    assert_eq!(
        store.sessions_of(&u.id, now).await.unwrap().len() as u64,
        written
    );
}
