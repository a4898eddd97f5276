//! The SQLite schema and its migrations. A new file gets [`SCHEMA`] whole; a file written
//! by an older Vigile is brought forward one version at a time by [`MIGRATIONS`], in the
//! same `BEGIN IMMEDIATE` transaction that reads its version, so two processes opening an
//! old file together migrate it once. A file from a newer Vigile is refused, never
//! touched. A test checks that a migrated file ends up exactly like a new one.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::map_err;
use crate::store::{StoreError, StoreResult};

/// Bumped whenever the schema below changes (with a step added to [`MIGRATIONS`]).
pub(super) const SCHEMA_VERSION: i64 = 12;

/// What version 2 added besides the `users.expires_at` column: sign-up expiry, single-use
/// links, the mail outbox, rate-limit counters. Shared by [`SCHEMA`] and the v1→v2 step.
macro_rules! since_v2 {
    () => {
        "
CREATE INDEX IF NOT EXISTS users_pending ON users(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS tokens (
    kind       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    bind       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_expires_at ON tokens(expires_at);
CREATE TABLE IF NOT EXISTS outbox (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    text_body    TEXT NOT NULL,
    html_body    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt, id);
CREATE TABLE IF NOT EXISTS counters (
    scope        TEXT NOT NULL,
    subject      TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, subject, window_start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_expires_at ON counters(expires_at);
"
    };
}

/// What version 3 added: brute-force defence state (consecutive failed logins per
/// address and per known device, the devices that signed in to an account, IP windows
/// and blocks).
macro_rules! since_v3 {
    () => {
        "
CREATE TABLE IF NOT EXISTS login_attempts (
    email  TEXT NOT NULL,
    -- '' for the account's own counter, else the device id of a known device.
    device TEXT NOT NULL,
    count  INTEGER NOT NULL,
    -- The last counted attempt: the address's counters go ATTEMPT_MEMORY_MS after.
    last_at INTEGER NOT NULL,
    PRIMARY KEY (email, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS known_devices (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device  TEXT NOT NULL,
    PRIMARY KEY (user_id, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ip_state (
    ip           TEXT PRIMARY KEY,
    -- The current failure window (ended or NULL: none).
    window_end   INTEGER,
    window_count INTEGER NOT NULL DEFAULT 0,
    block_until  INTEGER,
    -- Blocks in a row (each within a day of the previous end); forgotten at level_until.
    level        INTEGER NOT NULL DEFAULT 0,
    level_until  INTEGER
) WITHOUT ROWID;
"
    };
}

/// What version 4 added: the device cap (why a session was ended, logins waiting for
/// the member's code, admin settings, per-member caps).
macro_rules! since_v4 {
    () => {
        "
CREATE TABLE IF NOT EXISTS ended_sessions (
    token_hash TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    -- The ended session's own expiry: after it the cookie was dead anyway.
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ended_sessions_expires_at ON ended_sessions(expires_at);
CREATE TABLE IF NOT EXISTS device_challenges (
    device     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    verified   INTEGER NOT NULL,
    rd         TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS member_caps (
    user_id      TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    max_sessions INTEGER NOT NULL
) WITHOUT ROWID;
"
    };
}

/// What version 5 added: mails the server refused for good, kept for admins (no bodies)
/// until `sweep` purges them.
macro_rules! since_v5 {
    () => {
        "
CREATE TABLE IF NOT EXISTS outbox_failed (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    failed_at  INTEGER NOT NULL,
    last_error TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_failed_at ON outbox_failed(failed_at);
"
    };
}

/// What version 6 added besides the `users.org_id` and `users.org_role` columns:
/// organisations and their pending invitations.
macro_rules! since_v6 {
    () => {
        "
CREATE TABLE IF NOT EXISTS orgs (
    id          TEXT PRIMARY KEY,
    company     TEXT NOT NULL,
    id_type     TEXT NOT NULL,
    id_number   TEXT NOT NULL,
    phone       TEXT NOT NULL,
    address     TEXT NOT NULL,
    super_admin TEXT NOT NULL,
    -- NULL: the site's default (orgs.default_seats, sessions.max_per_member).
    seats       INTEGER,
    plan        TEXT,
    max_devices INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS org_invites (
    org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, email)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS org_invites_expires_at ON org_invites(expires_at);
CREATE INDEX IF NOT EXISTS users_org ON users(org_id) WHERE org_id IS NOT NULL;
"
    };
}

/// What version 7 added: contact confirmation. `users.contact` holds the account's
/// [`crate::store::Contact`] as JSON (NULL: stored before confirmations were recorded), the
/// outbox a channel per message (mail or text message), and the codes waiting to
/// confirm a channel and the campaigns. A new file gets the two columns by the same ALTERs
/// as a migrated one, so both end up alike.
macro_rules! since_v7 {
    () => {
        "
ALTER TABLE users ADD COLUMN contact TEXT;
ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';
DROP INDEX IF EXISTS outbox_due;
CREATE INDEX IF NOT EXISTS outbox_channel_due ON outbox(channel, next_attempt, id);
CREATE TABLE IF NOT EXISTS contact_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel    TEXT NOT NULL,
    value      TEXT NOT NULL,
    code_hash  TEXT NOT NULL,
    link_hash  TEXT UNIQUE,
    attempts   INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, channel)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contact_codes_expires_at ON contact_codes(expires_at);
CREATE TABLE IF NOT EXISTS campaigns (
    id         TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    record     TEXT NOT NULL
) WITHOUT ROWID;
"
    };
}

/// What version 8 added: second factors. Sessions and device challenges record the level
/// the login reached; `kept` holds versioned JSON documents (a member's factors, a login
/// waiting for its second factor) written only when their version is the one read.
macro_rules! since_v8 {
    () => {
        "
ALTER TABLE sessions ADD COLUMN level TEXT NOT NULL DEFAULT 'password';
ALTER TABLE device_challenges ADD COLUMN level TEXT NOT NULL DEFAULT 'password';
CREATE TABLE IF NOT EXISTS kept (
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kept_expires_at ON kept(expires_at) WHERE expires_at IS NOT NULL;
"
    };
}

/// Version 9: the change feed of the session cache (see `store::changes`). Triggers, so
/// every process writing the file (a gateway, the admin CLI) announces what it changed
/// without any code path having to remember to. `at` (SQLite's own clock) only ages rows
/// out; readers go by `seq`, which AUTOINCREMENT never reuses.
macro_rules! since_v9 {
    () => {
        "
CREATE TABLE IF NOT EXISTS changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE TRIGGER IF NOT EXISTS changes_session_ended AFTER DELETE ON sessions
BEGIN INSERT INTO changes (subject) VALUES ('s:' || OLD.token_hash); END;
CREATE TRIGGER IF NOT EXISTS changes_account_written
AFTER UPDATE OF email, name, admin, status, password_hash, org_id, org_role ON users
BEGIN INSERT INTO changes (subject) VALUES ('u:' || OLD.id); END;
CREATE TRIGGER IF NOT EXISTS changes_account_deleted AFTER DELETE ON users
BEGIN INSERT INTO changes (subject) VALUES ('u:' || OLD.id); END;
"
    };
}

/// Version 10: the admin console's list of blocked addresses (when each block started,
/// and an index of the blocks by their end, so the list never reads every address).
macro_rules! since_v10 {
    () => {
        "
ALTER TABLE ip_state ADD COLUMN blocked_at INTEGER;
CREATE INDEX IF NOT EXISTS ip_state_blocks ON ip_state(block_until) WHERE block_until IS NOT NULL;
"
    };
}

/// Version 11: the stored audit trail (the console's Security events) and its hourly
/// counts (the overview's charts). `seq` orders by arrival and is the walk's cursor;
/// `user_id` is the member the event is about, `named_id` the account whose address an
/// event names without being about it (a failed login typed with it, an invitation), so
/// a search by member is two index ranges and nobody can crowd a member's own events out.
macro_rules! since_v11 {
    () => {
        "
CREATE TABLE IF NOT EXISTS audit (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    event    TEXT NOT NULL,
    by_whom  TEXT NOT NULL,
    admin_id TEXT,
    user_id  TEXT,
    named_id TEXT,
    email    TEXT,
    ip       TEXT,
    detail   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_user ON audit(user_id, seq) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_named ON audit(named_id, seq) WHERE named_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_event ON audit(event, seq);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
CREATE TABLE IF NOT EXISTS audit_hours (
    hour  INTEGER NOT NULL,
    event TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, event)
) WITHOUT ROWID;
"
    };
}

/// Version 12: a deleted account's second factors go with it, whichever way it was
/// deleted (an admin, its organisation, the sweep), like its sessions, devices, cap and
/// codes do by their foreign keys (`kept` is keyed by any string, so a trigger); the
/// factors of accounts deleted before are dropped.
macro_rules! since_v12 {
    () => {
        "
CREATE TRIGGER IF NOT EXISTS kept_factors_of_deleted_account AFTER DELETE ON users
BEGIN DELETE FROM kept WHERE kind = 'factors' AND key = OLD.id; END;
DELETE FROM kept WHERE kind = 'factors' AND key NOT IN (SELECT id FROM users);
"
    };
}

/// The whole current schema, for a new file.
const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    admin         INTEGER NOT NULL,
    status        TEXT NOT NULL,
    lang          TEXT,
    created_at    INTEGER NOT NULL,
    -- When a pending account disappears; NULL once active (and for accounts created active).
    expires_at    INTEGER,
    org_id        TEXT REFERENCES orgs(id),
    org_role      TEXT
);
CREATE TABLE IF NOT EXISTS secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users(email);
CREATE TABLE IF NOT EXISTS sessions (
    id              TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    idle_ms         INTEGER NOT NULL,
    absolute_expiry INTEGER NOT NULL,
    ip              TEXT NOT NULL,
    user_agent      TEXT NOT NULL,
    -- Same rule as SessionRecord::expires_at, indexed for sweep and session_count.
    expires_at      INTEGER GENERATED ALWAYS AS (MIN(last_seen + idle_ms, absolute_expiry)) VIRTUAL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id, created_at);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions(expires_at);
",
    since_v2!(),
    since_v3!(),
    since_v4!(),
    since_v5!(),
    since_v6!(),
    since_v7!(),
    since_v8!(),
    since_v9!(),
    since_v10!(),
    since_v11!(),
    since_v12!()
);

/// `MIGRATIONS[i]` brings a file from version `i + 1` to version `i + 2`.
const MIGRATIONS: [&str; 11] = [
    concat!(
        "ALTER TABLE users ADD COLUMN expires_at INTEGER;",
        since_v2!()
    ),
    since_v3!(),
    since_v4!(),
    since_v5!(),
    concat!(
        "ALTER TABLE users ADD COLUMN org_id TEXT REFERENCES orgs(id);
ALTER TABLE users ADD COLUMN org_role TEXT;",
        since_v6!()
    ),
    since_v7!(),
    since_v8!(),
    since_v9!(),
    since_v10!(),
    since_v11!(),
    since_v12!(),
];

const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION - 1);

/// Creates the schema in a new file, migrates an older one, refuses a newer one.
pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    // IMMEDIATE: two processes starting together create or migrate the schema one after
    // the other; the second finds the version already current.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )?;
    let found: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let from = match found {
        // Every version writes its number with its tables: no number, a new file.
        None => {
            tx.execute_batch(SCHEMA)?;
            None
        }
        Some(v) => {
            let v: i64 = v
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("schema_version {v:?}")))?;
            if v > SCHEMA_VERSION {
                return Err(StoreError::Corrupt(format!(
                    "schema version {v} is newer than this Vigile understands ({SCHEMA_VERSION})"
                )));
            }
            let first = usize::try_from(v - 1)
                .map_err(|_| StoreError::Corrupt(format!("schema version {v}")))?;
            for step in &MIGRATIONS[first..] {
                tx.execute_batch(step)?;
            }
            Some(v)
        }
    };
    if from != Some(SCHEMA_VERSION) {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION.to_string()],
        )?;
    }
    tx.commit().map_err(map_err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::{AccountStatus, SqliteStore, Store, User, UserId};

    /// The schema exactly as Vigile 1 created it (schema_version 1).
    const V1_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    admin         INTEGER NOT NULL,
    status        TEXT NOT NULL,
    lang          TEXT,
    created_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users(email);
CREATE TABLE IF NOT EXISTS sessions (
    id              TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    idle_ms         INTEGER NOT NULL,
    absolute_expiry INTEGER NOT NULL,
    ip              TEXT NOT NULL,
    user_agent      TEXT NOT NULL,
    expires_at      INTEGER GENERATED ALWAYS AS (MIN(last_seen + idle_ms, absolute_expiry)) VIRTUAL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id, created_at);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions(expires_at);
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
INSERT INTO users (id, email, name, password_hash, admin, status, lang, created_at)
    VALUES ('u-old', 'old@example.org', 'Old', '$argon2id$x', 1, 'active', 'en', 1000);
INSERT INTO secrets (name, value) VALUES ('gateway', x'0102');
INSERT INTO sessions (id, token_hash, user_id, device_id, created_at, last_seen, idle_ms,
                      absolute_expiry, ip, user_agent)
    VALUES ('s-old', 'ab', 'u-old', 'd', 1000, 1000, 60000, 100000, '192.0.2.1', 'UA');
";

    fn version(path: &Path) -> String {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Every table's columns and every index's definition, for comparing two files.
    fn shape(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut out = Vec::new();
        let mut stmt = conn
            .prepare(
                "SELECT type, name, tbl_name, sql FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .unwrap();
        let objects: Vec<(String, String, String, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (kind, name, table, sql) in objects {
            if kind == "table" {
                // The text of an ALTERed CREATE TABLE differs: compare the columns.
                let mut cols = conn
                    .prepare(&format!("SELECT * FROM pragma_table_xinfo('{name}')"))
                    .unwrap();
                let cols: Vec<String> = cols
                    .query_map([], |r| {
                        Ok(format!(
                            "{}:{}:{}:{}:{:?}:{}:{}",
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, i64>(5)?,
                            r.get::<_, i64>(6)?,
                        ))
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                out.push(format!("table {name}: {}", cols.join(", ")));
            } else {
                out.push(format!("{kind} {name} on {table}: {sql:?}"));
            }
        }
        out
    }

    /// A version 11 file still holds the factors of accounts deleted before version 12;
    /// the migration drops them and keeps those of accounts that exist.
    #[tokio::test]
    async fn version_12_drops_the_factors_of_deleted_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v11.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "DROP TRIGGER kept_factors_of_deleted_account;
                 INSERT INTO users (id, email, name, password_hash, admin, status, created_at)
                     VALUES ('u-here', 'here@example.org', '', 'x', 0, 'active', 1);
                 INSERT INTO kept (kind, key, version, doc) VALUES
                     ('factors', 'u-gone', 1, '{}'), ('factors', 'u-here', 1, '{}');
                 UPDATE meta SET value = '11' WHERE key = 'schema_version';",
            )
            .unwrap();
        drop(SqliteStore::open(&path).unwrap());
        assert_eq!(version(&path), SCHEMA_VERSION.to_string());
        let conn = Connection::open(&path).unwrap();
        let keys = |conn: &Connection| -> Vec<String> {
            let mut stmt = conn
                .prepare("SELECT key FROM kept WHERE kind = 'factors' ORDER BY key")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(keys(&conn), ["u-here"]);
        conn.execute("DELETE FROM users WHERE id = 'u-here'", [])
            .unwrap();
        assert!(keys(&conn).is_empty(), "the trigger is back");
    }

    #[tokio::test]
    async fn version_1_file_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("v1.db");
        Connection::open(&old)
            .unwrap()
            .execute_batch(V1_SCHEMA)
            .unwrap();

        let store = SqliteStore::open(&old).unwrap();
        assert_eq!(version(&old), SCHEMA_VERSION.to_string());
        let kept = store
            .user_by_email("old@example.org")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.id, UserId::from_string("u-old"));
        assert!(kept.admin);
        assert_eq!(kept.status, AccountStatus::Active);
        assert_eq!(store.secret_get_or_init(b"new").await.unwrap(), vec![1, 2]);
        let sessions = store.sessions_of(&kept.id, 2000).await.unwrap();
        assert_eq!(sessions.len(), 1);
        // The account is active, so sign-up expiry never removes it.
        store.sweep(i64::MAX / 2).await.unwrap();
        assert!(store.user_by_id(&kept.id).await.unwrap().is_some());

        // The new parts work on the migrated file.
        let pending = User {
            id: UserId::from_string("u-new"),
            email: "new@example.org".into(),
            name: "New".into(),
            password_hash: "$argon2id$y".into(),
            admin: false,
            status: AccountStatus::Pending,
            lang: None,
            created_at: 5000,
            org: None,
            contact: Default::default(),
        };
        store.user_insert_pending(&pending, 10_000).await.unwrap();
        assert_eq!(store.sweep(10_000).await.unwrap(), 1);
        drop(store);

        // Reopening changes nothing, and the migrated file is shaped like a new one.
        SqliteStore::open(&old).unwrap();
        let new = dir.path().join("new.db");
        drop(SqliteStore::open(&new).unwrap());
        assert_eq!(shape(&old), shape(&new));
        assert_eq!(version(&new), SCHEMA_VERSION.to_string());
    }

    #[test]
    fn file_from_a_newer_vigile_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                [(SCHEMA_VERSION + 1).to_string()],
            )
            .unwrap();
        let err = SqliteStore::open(&path).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert_eq!(version(&path), (SCHEMA_VERSION + 1).to_string());
    }
}
