//! The embedded store: one SQLite file, the default for a single gateway instance.
//!
//! Several processes open the same file at once (the running server and the admin CLI,
//! e.g. `vigile user revoke`), so the file is in WAL mode with a busy timeout and this
//! module must never take an exclusive lock (`locking_mode=EXCLUSIVE`, long write
//! transactions). Every statement runs on the store's own threads (`sqlite/workers.rs`),
//! never on the async executor, and a std mutex guarding the connection pool is never
//! held across an `.await`.
//! Multi-step operations are one `BEGIN IMMEDIATE` transaction.
//!
//! Expired sessions are deleted by `sweep` (called periodically by the server) and, one
//! at a time, by `session_by_token` when it meets one; `sweep` also removes pending
//! accounts past their `expires_at`, expired tokens and counters.
//!
//! The WAL stays bounded (issue 17): each connection cuts it back to
//! [`WAL_KEEP_BYTES`] when it restarts, a call that finds it past
//! [`WAL_CHECKPOINT_BYTES`] checkpoints and truncates it, and so does every `sweep`.
//!
//! Layout: the schema and its migrations in `sqlite/schema.rs`; the token, outbox and
//! counter traits each in their own file beside it.

mod audit;
mod changes;
mod contact;
mod counters;
mod devices;
mod kept;
mod orgs;
mod outbox;
mod schema;
mod throttle;
mod tokens;
mod workers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use schema::migrate;
use tokio::sync::Semaphore;

use super::*;

/// Connections, and so operations running at once (WAL lets their reads overlap; writes
/// are serialised by SQLite anyway). Further callers wait their turn asynchronously
/// instead of filling the blocking thread pool.
const POOL_SIZE: usize = 4;
/// Each connection's page cache, in KiB (SQLite's `cache_size` as a negative number).
const PAGE_CACHE_KIB: i64 = 512;

/// How long a statement waits for another process's write lock before giving up with
/// `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The WAL file is cut back to this size each time it restarts (`journal_size_limit`);
/// without it, it keeps its largest size for good.
const WAL_KEEP_BYTES: i64 = 16 << 20;
/// Past this size a store call checkpoints and truncates the WAL (see [`Pool::bound_wal`]).
const WAL_CHECKPOINT_BYTES: u64 = 32 << 20;
/// After a checkpoint that could not finish, the next is tried once the WAL has grown by
/// this much more (or at the next sweep), so a long reader elsewhere does not make every
/// call wait [`CHECKPOINT_BUSY`].
const WAL_RETRY_BYTES: u64 = 8 << 20;
/// How long such a checkpoint waits for a writer, or for readers that began before it
/// copied the WAL back (later ones read the database file), before giving up. It holds
/// the write lock meanwhile, so writers wait too: short.
const CHECKPOINT_BUSY: Duration = Duration::from_millis(100);

const USER_COLUMNS: &str =
    "id, email, name, password_hash, admin, status, lang, created_at, org_id, org_role, contact";
const SESSION_COLUMNS: &str = "id, token_hash, user_id, device_id, created_at, last_seen, \
                               idle_ms, absolute_expiry, ip, user_agent, level";

/// The SQLite backend. Cheap to share: clone the `Arc` it sits in (or the store: its
/// clones share the pool).
#[derive(Clone)]
pub struct SqliteStore {
    pool: Arc<Pool>,
    permits: Arc<Semaphore>,
    workers: Arc<workers::Workers>,
}

struct Pool {
    path: PathBuf,
    /// The WAL file beside it (`-wal`), whose size [`Pool::bound_wal`] watches.
    wal: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// A checkpoint of [`Pool::bound_wal`] is running: the others skip theirs.
    checkpointing: AtomicBool,
    /// The WAL size past which [`Pool::bound_wal`] checkpoints next.
    checkpoint_at: AtomicU64,
}

impl Pool {
    fn take(&self) -> StoreResult<Connection> {
        // The guard is a temporary of this statement: never held while SQL runs. With a
        // permit held, an empty pool means a connection was never opened yet (or was lost
        // to a panic), so opening one keeps at most POOL_SIZE.
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match reused {
            Some(conn) => Ok(conn),
            None => connect(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    /// Keeps the WAL bounded under constant load. SQLite's automatic checkpoints (every
    /// 1 000 pages) copy the WAL back into the database, but the WAL only restarts from
    /// its beginning when no reader still uses it at the next write; with requests always
    /// in flight that moment may not come, and the file grew to 250 MiB beside a 54 MiB
    /// database under `bench/sessions_memory`. Past [`WAL_CHECKPOINT_BYTES`], the call that
    /// notices runs `wal_checkpoint(TRUNCATE)`, which waits briefly for those readers to
    /// finish and empties the file. One at a time; one that cannot finish (a long read in
    /// another process) is tried again [`WAL_RETRY_BYTES`] later, one that meets another
    /// connection's automatic checkpoint (after every commit while the WAL is long, and
    /// SQLite does not wait for it) by the next call. Transient locks only: the CLI keeps
    /// working on the same file.
    fn bound_wal(&self, conn: &Connection) {
        let Ok(size) = std::fs::metadata(&self.wal).map(|m| m.len()) else {
            return;
        };
        let at = self.checkpoint_at.load(Ordering::Acquire);
        if size <= at {
            // Emptied meanwhile (by a sweep, another process): back to the first size.
            if size < WAL_CHECKPOINT_BYTES && at != WAL_CHECKPOINT_BYTES {
                self.checkpoint_at
                    .store(WAL_CHECKPOINT_BYTES, Ordering::Release);
            }
            return;
        }
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let next = match checkpoint(conn) {
            Ok(Checkpoint::Done) => WAL_CHECKPOINT_BYTES,
            // An automatic checkpoint of another connection held the checkpoint lock (there
            // is no waiting for it): the next call tries again.
            Ok(Checkpoint::Running) => at,
            Ok(Checkpoint::Busy) => {
                tracing::debug!(bytes = size, "sqlite: WAL checkpoint busy, retried later");
                size + WAL_RETRY_BYTES
            }
            Err(e) => {
                tracing::warn!(error = %e, "sqlite: WAL checkpoint failed");
                size + WAL_RETRY_BYTES
            }
        };
        self.checkpoint_at.store(next, Ordering::Release);
        self.checkpointing.store(false, Ordering::Release);
    }
}

/// How a [`checkpoint`] went.
#[derive(Debug, PartialEq, Eq)]
enum Checkpoint {
    /// The WAL was copied back and truncated.
    Done,
    /// Another connection was checkpointing (SQLite's automatic checkpoint after a commit).
    Running,
    /// A writer or readers kept it from finishing within [`CHECKPOINT_BUSY`].
    Busy,
}

/// Copies the whole WAL into the database and truncates it, waiting at most
/// [`CHECKPOINT_BUSY`] for other connections.
fn checkpoint(conn: &Connection) -> rusqlite::Result<Checkpoint> {
    conn.busy_timeout(CHECKPOINT_BUSY)?;
    // (busy, WAL frames, frames checkpointed); -1 frames when the checkpoint lock was
    // taken, which SQLite does not wait for.
    let row = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    });
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(match row? {
        (0, _) => Checkpoint::Done,
        (_, -1) => Checkpoint::Running,
        _ => Checkpoint::Busy,
    })
}

/// Opens one connection with the settings every connection needs (they are per
/// connection in SQLite, except `journal_mode`, which is persistent in the file).
fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{}: cannot switch to WAL mode (got {mode})",
            path.display()
        )));
    }
    // NORMAL is the usual WAL setting: a power cut may lose the last commits (sessions),
    // never corrupt the file.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Each connection keeps a page cache in the process (SQLite's default: 2 MiB, so up
    // to 8 MiB of the gateway's memory for the pool). Sessions in use are served from the
    // session cache, so the store is read about once per session: a smaller cache costs
    // little, and a page it misses comes from the OS's file cache.
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    // Per connection: whichever restarts the WAL cuts the file back (see `Pool::bound_wal`).
    let _: i64 = conn.query_row(
        &format!("PRAGMA journal_size_limit = {WAL_KEEP_BYTES}"),
        [],
        |r| r.get(0),
    )?;
    Ok(conn)
}

/// `vigile.db` → `vigile.db-wal`.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

// Lets `?` turn driver errors into store errors inside this module's closures.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        map_err(e)
    }
}

fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(err, _) => match err.code {
            ErrorCode::ConstraintViolation => StoreError::Conflict,
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::Corrupt(format!("sqlite: {e}"))
            }
            // Busy, locked, I/O, disk full, permissions...: the store cannot serve now.
            _ => StoreError::Unavailable(format!("sqlite: {e}")),
        },
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::Utf8Error(..) => StoreError::Corrupt(format!("sqlite: {e}")),
        _ => StoreError::Unavailable(format!("sqlite: {e}")),
    }
}

/// Column `idx` as text read by `parse` (an enum's spelling); a value it does not know
/// is a conversion error naming `what`.
fn parsed<T>(
    r: &Row<'_>,
    idx: usize,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = r.get(idx)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown {what} {text:?}").into(),
        )
    })
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let status = parsed(r, 5, "account status", AccountStatus::parse)?;
    Ok(User {
        id: UserId::from_string(r.get::<_, String>(0)?),
        email: r.get(1)?,
        name: r.get(2)?,
        password_hash: r.get(3)?,
        admin: r.get(4)?,
        status,
        lang: r.get(6)?,
        created_at: r.get(7)?,
        org: orgs::membership(r.get(8)?, r.get(9)?)?,
        contact: contact::from_column(r.get(10)?)?,
    })
}

/// Inserts an account row (inside the caller's transaction or on its own); a pending one
/// carries the instant it disappears.
fn insert_user(c: &Connection, u: &User, expires_at: Option<Millis>) -> rusqlite::Result<()> {
    c.execute(
        &format!(
            "INSERT INTO users ({USER_COLUMNS}, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ),
        params![
            u.id.as_str(),
            u.email,
            u.name,
            u.password_hash,
            u.admin,
            u.status.as_str(),
            u.lang,
            u.created_at,
            u.org.as_ref().map(|m| m.org.as_str()),
            u.org.as_ref().map(|m| m.role.as_str()),
            contact::to_column(&u.contact),
            expires_at
        ],
    )?;
    Ok(())
}

/// Makes room for a new account at `email`: a pending sign-up holding it goes (with its
/// sessions); an account that is not pending is a `Conflict`.
fn free_email(tx: &rusqlite::Transaction<'_>, email: &str) -> StoreResult<()> {
    let holder: Option<(String, String)> = tx
        .query_row(
            "SELECT id, status FROM users WHERE email = ?1",
            [email],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((old, status)) = holder {
        if status != AccountStatus::Pending.as_str() {
            return Err(StoreError::Conflict);
        }
        // Sessions go by the foreign key's cascade; said here for clarity.
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [&old])?;
        tx.execute("DELETE FROM users WHERE id = ?1", [&old])?;
    }
    Ok(())
}

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId::from_string(r.get::<_, String>(0)?),
        token_hash: TokenHash::from_hex(r.get::<_, String>(1)?),
        user_id: UserId::from_string(r.get::<_, String>(2)?),
        device_id: DeviceId::from_string(r.get::<_, String>(3)?),
        created_at: r.get(4)?,
        last_seen: r.get(5)?,
        idle_ms: r.get(6)?,
        absolute_expiry: r.get(7)?,
        ip: r.get(8)?,
        user_agent: r.get(9)?,
        level: crate::store::AuthLevel::parse(&r.get::<_, String>(10)?),
    })
}

/// Inserts a session row (inside the caller's transaction).
fn insert_session(tx: &rusqlite::Transaction<'_>, s: &SessionRecord) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            s.id.as_str(),
            s.token_hash.as_str(),
            s.user_id.as_str(),
            s.device_id.as_str(),
            s.created_at,
            s.last_seen,
            s.idle_ms,
            s.absolute_expiry,
            s.ip,
            s.user_agent,
            s.level.as_str()
        ],
    )?;
    Ok(())
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its parent directory, and brings
    /// the schema up to date. Blocking: call it at start-up, not from a request.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let mut conn = connect(path)?;
        migrate(&mut conn)?;
        Ok(Self {
            pool: Arc::new(Pool {
                path: path.to_path_buf(),
                wal: wal_path(path),
                idle: Mutex::new(vec![conn]),
                checkpointing: AtomicBool::new(false),
                checkpoint_at: AtomicU64::new(WAL_CHECKPOINT_BYTES),
            }),
            permits: Arc::new(Semaphore::new(POOL_SIZE)),
            workers: workers::Workers::start(POOL_SIZE)?,
        })
    }

    /// Runs `f` with a pooled connection on the store's threads (`sqlite/workers.rs`).
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.pool);
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("sqlite store closed".into()))?;
        self.workers
            .run(move || {
                let _permit = permit;
                let mut conn = pool.take()?;
                let result = f(&mut conn);
                pool.bound_wal(&conn);
                // A failed statement leaves the connection usable (transactions roll back
                // on drop), so it goes back to the pool either way.
                pool.give_back(conn);
                result
            })
            .await?
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn eviction_unsafe(&self) -> bool {
        false
    }

    fn changes(&self) -> crate::store::changes::ChangeFeed {
        let (tx, rx) = crate::store::changes::FeedSender::channel();
        tokio::spawn(changes::follow(self.clone(), tx));
        rx
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(map_err))
            .await
    }

    async fn secret_get_or_init(&self, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        let candidate = candidate.to_vec();
        self.run(move |c| {
            // One statement, so the first writer wins even across processes.
            c.execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES ('gateway', ?1)",
                [candidate],
            )?;
            c.query_row(
                "SELECT value FROM secrets WHERE name = 'gateway'",
                [],
                |r| r.get(0),
            )
            .map_err(map_err)
        })
        .await
    }

    async fn user_insert(&self, user: &User) -> StoreResult<()> {
        let u = user.clone();
        self.run(move |c| insert_user(c, &u, None).map_err(map_err))
            .await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = email.to_string();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
                [email],
                user_from_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let id = id.as_str().to_string();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                [id],
                user_from_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn user_list(&self) -> StoreResult<Vec<User>> {
        self.run(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"))?;
            let rows = stmt.query_map([], user_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn user_counts(&self) -> StoreResult<(u64, u64)> {
        self.run(|c| {
            let (all, pending): (i64, i64) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(status = 'pending'), 0) FROM users",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((
                u64::try_from(all).unwrap_or(0),
                u64::try_from(pending).unwrap_or(0),
            ))
        })
        .await
    }

    async fn user_page(&self, query: &UserQuery) -> StoreResult<UserPage> {
        let q = query.clone();
        self.run(move |c| {
            // The cursor is the last address shown (addresses are unique). SQLite's
            // lower() folds ASCII letters only, as Redis's string.lower does.
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users \
                 WHERE email > ?1 AND (?2 IS NULL OR status = ?2) \
                 AND (?3 = '' OR instr(lower(email), ?3) > 0 OR instr(lower(name), ?3) > 0) \
                 ORDER BY email LIMIT ?4"
            ))?;
            let limit = i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX);
            let rows = stmt.query_map(
                params![
                    q.after.as_deref().unwrap_or(""),
                    q.status.map(AccountStatus::as_str),
                    q.text,
                    limit
                ],
                user_from_row,
            )?;
            let mut users = rows
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            let next = if users.len() > q.limit {
                users.truncate(q.limit);
                users.last().map(|u| u.email.clone())
            } else {
                None
            };
            Ok(UserPage { users, next })
        })
        .await
    }

    async fn user_insert_pending(&self, user: &User, expires_at: Millis) -> StoreResult<()> {
        let u = User {
            status: AccountStatus::Pending,
            ..user.clone()
        };
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            free_email(&tx, &u.email)?;
            // An id already used by another address is a constraint violation: Conflict,
            // and the rollback on drop keeps the replaced account.
            insert_user(&tx, &u, Some(expires_at))?;
            tx.commit().map_err(map_err)
        })
        .await
    }

    async fn user_activate(&self, id: &UserId, now: Millis) -> StoreResult<bool> {
        let id = id.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut user) = contact::user_in(&tx, &id)? else {
                return Ok(false);
            };
            if user.status != AccountStatus::Pending {
                return Ok(false);
            }
            user.contact.email_confirmed = Some(Confirmed {
                at: now,
                via: Via::Activation,
            });
            tx.execute(
                "UPDATE users SET status = ?2, expires_at = NULL, contact = ?3 WHERE id = ?1",
                params![
                    id.as_str(),
                    AccountStatus::Active.as_str(),
                    contact::to_column(&user.contact)
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn user_set_password(&self, id: &UserId, password_hash: &str) -> StoreResult<bool> {
        let id = id.as_str().to_string();
        let hash = password_hash.to_string();
        self.run(move |c| {
            let n = c.execute(
                "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                params![id, hash],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn user_set_profile(
        &self,
        id: &UserId,
        name: &str,
        lang: Option<&str>,
    ) -> StoreResult<bool> {
        let (id, name, lang) = (
            id.as_str().to_string(),
            name.to_string(),
            lang.map(str::to_string),
        );
        self.run(move |c| {
            let n = c.execute(
                "UPDATE users SET name = ?2, lang = ?3 WHERE id = ?1",
                params![id, name, lang],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn user_delete(&self, id: &UserId) -> StoreResult<bool> {
        let id = id.as_str().to_string();
        self.run(move |c| {
            // Its sessions, devices, cap and codes go with it by the foreign keys'
            // cascade; its factors by a trigger (schema version 12).
            let n = c.execute("DELETE FROM users WHERE id = ?1", [&id])?;
            Ok(n > 0)
        })
        .await
    }

    async fn session_insert(
        &self,
        session: &SessionRecord,
        replaces: Option<&SessionId>,
    ) -> StoreResult<()> {
        let s = session.clone();
        let replaces = replaces.map(|r| r.as_str().to_string());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(old) = replaces {
                tx.execute("DELETE FROM sessions WHERE id = ?1", [old])?;
            }
            insert_session(&tx, &s)?;
            tx.commit().map_err(map_err)
        })
        .await
    }

    async fn session_by_token(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<SessionRecord>> {
        let hash = token_hash.as_str().to_string();
        self.run(move |c| {
            // Read first: this runs on every request and must not take the write lock.
            let found = c
                .query_row(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ?1"),
                    [&hash],
                    session_from_row,
                )
                .optional()?;
            match found {
                Some(s) if s.is_valid_at(now) => Ok(Some(s)),
                Some(s) => {
                    // The condition is repeated in SQL so a concurrent touch is not undone.
                    c.execute(
                        "DELETE FROM sessions WHERE id = ?1 AND expires_at <= ?2",
                        params![s.id.as_str(), now],
                    )?;
                    Ok(None)
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn session_touch(&self, id: &SessionId, now: Millis) -> StoreResult<bool> {
        let id = id.as_str().to_string();
        self.run(move |c| {
            // MAX: a late, out-of-order touch from a slower request never moves time back.
            let n = c.execute(
                "UPDATE sessions SET last_seen = MAX(last_seen, ?2) \
                     WHERE id = ?1 AND expires_at > ?2",
                params![id, now],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn session_touch_many(&self, touches: &[(SessionId, Millis)]) -> StoreResult<u64> {
        let touches: Vec<(String, Millis)> = touches
            .iter()
            .map(|(id, at)| (id.as_str().to_string(), *at))
            .collect();
        self.run(move |c| {
            // One transaction: a batch writes each page it touches once to the WAL.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut there = 0u64;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE sessions SET last_seen = MAX(last_seen, ?2) \
                     WHERE id = ?1 AND expires_at > ?2",
                )?;
                for (id, at) in &touches {
                    there += count(stmt.execute(params![id, at])?);
                }
            }
            tx.commit()?;
            Ok(there)
        })
        .await
    }

    async fn session_delete(&self, id: &SessionId) -> StoreResult<bool> {
        let id = id.as_str().to_string();
        self.run(move |c| {
            let n = c.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
            Ok(n > 0)
        })
        .await
    }

    async fn session_delete_all(&self, user: &UserId) -> StoreResult<u64> {
        let user = user.as_str().to_string();
        self.run(move |c| {
            let n = c.execute("DELETE FROM sessions WHERE user_id = ?1", [user])?;
            Ok(count(n))
        })
        .await
    }

    async fn sessions_of(&self, user: &UserId, now: Millis) -> StoreResult<Vec<SessionRecord>> {
        let user = user.as_str().to_string();
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions \
                     WHERE user_id = ?1 AND expires_at > ?2 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map(params![user, now], session_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
        .await
    }

    async fn session_count(&self, now: Millis) -> StoreResult<u64> {
        self.run(move |c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM sessions WHERE expires_at > ?1",
                [now],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn sweep(&self, now: Millis) -> StoreResult<u64> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Sessions of expired sign-ups are deleted explicitly, not by the cascade,
            // so they are counted (as Redis counts them).
            let statements = [
                "DELETE FROM sessions WHERE expires_at <= ?1",
                "DELETE FROM sessions WHERE user_id IN \
                     (SELECT id FROM users WHERE expires_at IS NOT NULL AND expires_at <= ?1)",
                "DELETE FROM users WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                "DELETE FROM tokens WHERE expires_at <= ?1",
                "DELETE FROM counters WHERE expires_at <= ?1",
                "DELETE FROM login_attempts WHERE email IN (SELECT email FROM login_attempts \
                     GROUP BY email HAVING MAX(last_at) <= ?1 - 2592000000)",
                "DELETE FROM ended_sessions WHERE expires_at <= ?1",
                "DELETE FROM org_invites WHERE expires_at <= ?1",
                "DELETE FROM device_challenges WHERE expires_at <= ?1",
                "DELETE FROM contact_codes WHERE expires_at <= ?1",
                "DELETE FROM kept WHERE expires_at <= ?1",
                "DELETE FROM ip_state WHERE COALESCE(window_end, 0) <= ?1 \
                     AND COALESCE(block_until, 0) <= ?1 AND COALESCE(level_until, 0) <= ?1",
            ];
            let mut removed = 0;
            for sql in statements {
                removed += count(tx.execute(sql, [now])?);
            }
            removed += count(tx.execute(
                "DELETE FROM outbox_failed WHERE failed_at <= ?1",
                [now.saturating_sub(crate::store::FAILED_KEEP_MS)],
            )?);
            tx.commit()?;
            // Once a minute, whatever its size: a server that went quiet ends with an
            // empty WAL. Best effort: busy now means done at the next sweep.
            match checkpoint(c) {
                Ok(Checkpoint::Done) => {}
                Ok(other) => tracing::debug!(?other, "sqlite: WAL checkpoint at sweep not done"),
                Err(e) => tracing::debug!(error = %e, "sqlite: WAL checkpoint at sweep failed"),
            }
            Ok(removed)
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wal_len(store: &SqliteStore) -> u64 {
        std::fs::metadata(&store.pool.wal).map_or(0, |m| m.len())
    }

    /// A few hundred KiB of WAL: far from an automatic checkpoint (1 000 pages).
    async fn fill_wal(store: &SqliteStore) {
        let now = 1_800_000_000_000;
        let u = User {
            id: UserId::random(),
            email: format!("{}@example.org", UserId::random()),
            name: "N".into(),
            password_hash: "h".into(),
            admin: false,
            status: AccountStatus::Active,
            lang: None,
            created_at: now,
            org: None,
            contact: Default::default(),
        };
        store.user_insert(&u).await.unwrap();
        assert!(wal_len(store) > 0);
    }

    #[tokio::test]
    async fn a_call_past_the_size_truncates_the_wal_and_a_held_one_is_retried_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigile.db");
        let store = SqliteStore::open(&path).unwrap();
        fill_wal(&store).await;
        store.pool.checkpoint_at.store(0, Ordering::Release);
        store.ping().await.unwrap();
        assert_eq!(wal_len(&store), 0, "truncated");
        assert_eq!(
            store.pool.checkpoint_at.load(Ordering::Acquire),
            WAL_CHECKPOINT_BYTES
        );

        // A reader in another process holds the WAL: one try, then none before it grows.
        fill_wal(&store).await;
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
            .unwrap();
        fill_wal(&store).await;
        store.pool.checkpoint_at.store(0, Ordering::Release);
        let size = wal_len(&store);
        store.ping().await.unwrap();
        assert_eq!(wal_len(&store), size, "held by the reader");
        assert_eq!(
            store.pool.checkpoint_at.load(Ordering::Acquire),
            size + WAL_RETRY_BYTES
        );
    }

    #[test]
    fn open_creates_parent_dir_and_is_reopenable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/vigile.db");
        drop(SqliteStore::open(&path).unwrap());
        SqliteStore::open(&path).unwrap();
    }
}
