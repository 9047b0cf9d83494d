//! Skein's relational storage: one connection pool over SQLite or PostgreSQL, portable SQL,
//! and per-service migrations.
//!
//! Every service writes the same SQL for both databases (`$1` placeholders, `BIGINT`
//! milliseconds for time, `TEXT` ids, `0/1` integers for flags); only migrations differ per
//! database. See ARCHITECTURE.md, "Storage", for why.

use std::sync::Arc;
use std::time::Duration;

use skein_core::ApiError;
use skein_core::service::ServiceName;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Transaction};

pub mod bus;
pub mod settings;

pub use sqlx;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (WAL mode), the zero-configuration default.
    Sqlite,
    /// PostgreSQL, for scaling out.
    Postgres,
}

impl Backend {
    /// The placeholders of a multi-row `VALUES` list: `rows` tuples of `cols`, bound in
    /// order. SQLite gets plain `?` — sqlx asks SQLite the name of every parameter, and SQLite
    /// finds a numbered one (`$7`) by a linear scan, so a statement of n numbered parameters
    /// costs O(n²) before it runs; PostgreSQL needs `$1`, `$2`, …
    pub fn value_rows(self, rows: usize, cols: usize) -> String {
        let mut sql = String::with_capacity(rows * cols * 5);
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ",(" });
            for col in 0..cols {
                if col > 0 {
                    sql.push_str(", ");
                }
                match self {
                    Backend::Sqlite => sql.push('?'),
                    Backend::Postgres => {
                        sql.push('$');
                        sql.push_str(&(row * cols + col + 1).to_string());
                    }
                }
            }
            sql.push(')');
        }
        sql
    }

    /// Splits a batch of rows into the multi-row statements that write it, each with whether
    /// it is kept prepared on its connection.
    ///
    /// SQLite takes a few fixed row counts ([`SQLITE_STATEMENT_ROWS`]), all kept prepared: a
    /// statement per distinct batch size was parsed afresh on every write (a fifth of the
    /// SQLite thread's time at thousands of settles a second), and keeping one per size
    /// would keep hundreds (issue #22); a few sizes are parsed once per connection. On
    /// PostgreSQL each statement is a round trip, so it takes up to `postgres_rows` rows at a
    /// time (parsing there is cheap beside the trip), and only the one-row form is kept.
    pub fn statements<T>(
        self,
        items: &[T],
        postgres_rows: usize,
    ) -> impl Iterator<Item = (&[T], bool)> {
        let mut rest = items;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let rows = match self {
                Backend::Sqlite => SQLITE_STATEMENT_ROWS
                    .iter()
                    .copied()
                    .find(|&n| n <= rest.len())
                    .unwrap_or(1),
                Backend::Postgres => rest.len().min(postgres_rows.max(1)),
            };
            let (head, tail) = rest.split_at(rows);
            rest = tail;
            Some((head, self == Backend::Sqlite || rows == 1))
        })
    }
}

/// The row counts of SQLite's multi-row inserts, largest first (see [`Backend::statements`]):
/// a batch of n rows takes at most n / 32 + 6 statements, each prepared once per connection.
pub const SQLITE_STATEMENT_ROWS: [usize; 4] = [32, 8, 2, 1];

/// A pool of connections to Skein's database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// On SQLite, stops the background checkpointer when the last clone goes.
    _checkpointer: Option<Arc<Checkpointer>>,
}

/// How often SQLite's write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Frames in the write-ahead log past which a checkpoint also restarts the log (SQLite's own
/// automatic checkpoint size). Under a steady stream of commits a `PASSIVE` checkpoint never
/// catches the last frame before the next commit, so SQLite never goes back to the log's
/// start: the log grew by 24–29 MB/s at the relay's saturation (357–439 MiB in 15 s), every
/// frame a write past the end of the file that the kernel must allocate and zero.
const RESTART_AFTER_FRAMES: i64 = 1_000;

/// How many times, a millisecond apart, a restarting checkpoint tries within a tick, and for
/// how long at most. Each try gives up at once when a writer holds the lock or a reader still
/// reads the log, so it never holds writers off while waiting for a reader (an export's long
/// read), and it does not depend on SQLite's busy handler, whose few widening sleeps a writer
/// that commits back to back outran in tests. A try that gives up still copies, as `PASSIVE`,
/// what was committed since the last one (and syncs), hence few tries and a time bound.
const RESTART_TRIES: u32 = 20;
/// See [`RESTART_TRIES`].
const RESTART_WITHIN: Duration = Duration::from_millis(50);

/// Every connection's wait for a lock (`PRAGMA busy_timeout`), ms.
const BUSY_TIMEOUT_MS: u32 = 10_000;

/// SQLite's checkpoints, moved off the commit path: with `wal_autocheckpoint` off, the commit
/// that crosses 1,000 log pages no longer copies the log back and syncs the file while its
/// caller waits (milliseconds on a slow disk, paid by whichever request came then); a task
/// does it every [`CHECKPOINT_EVERY`], `PASSIVE` so it never blocks a reader or a writer, and
/// `RESTART` once the log is past [`RESTART_AFTER_FRAMES`] so that it stays bounded.
#[derive(Debug)]
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Checkpointer {
    fn start(pool: AnyPool, restart_after: i64) -> Checkpointer {
        Checkpointer(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_frames = -1;
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    return;
                }
                if let Err(e) = checkpoint(&pool, restart_after, &mut last_frames).await {
                    tracing::debug!(error = %e, "a WAL checkpoint did not run; the next tick tries again");
                }
            }
        }))
    }
}

/// One tick of the checkpointer: copy what the log holds back into the database without
/// blocking anyone, and when the log has grown past `restart_after` frames, copy the rest
/// with writers held off for that moment so that the next commit starts the log from its
/// beginning again (overwriting pages the kernel already has, instead of growing the file).
async fn checkpoint(
    pool: &AnyPool,
    restart_after: i64,
    last_frames: &mut i64,
) -> Result<(), sqlx::Error> {
    // (busy, frames in the log, frames copied back)
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    // Nothing committed since the last tick: the log is idle (and, once restarted, stays at
    // its length until the next commit, which starts it from its beginning by itself).
    let idle = frames == std::mem::replace(last_frames, frames);
    if frames <= restart_after || idle {
        return Ok(());
    }
    let mut conn = ShortWait(Some(pool.acquire().await?));
    let Some(db) = conn.0.as_mut() else {
        return Ok(());
    };
    sqlx::query("PRAGMA busy_timeout = 0")
        .execute(&mut **db)
        .await?;
    let mut restarted = Ok(());
    let started = std::time::Instant::now();
    for _ in 0..RESTART_TRIES {
        if started.elapsed() > RESTART_WITHIN {
            break;
        }
        // (busy, …): busy is 1 when a writer or a reader was in the way; nothing was lost.
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)")
            .fetch_one(&mut **db)
            .await
        {
            Ok((0, _, _)) => break,
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => {
                restarted = Err(e);
                break;
            }
        }
    }
    sqlx::query(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"))
        .execute(&mut **db)
        .await?;
    // Waits for locks again: back to the pool like any other.
    conn.0.take();
    restarted
}

/// A pooled connection whose lock wait was shortened: unless taken back out once the wait is
/// restored, it is closed rather than returned to the pool, on an error and when the
/// checkpointer is cancelled between two statements alike.
struct ShortWait(Option<sqlx::pool::PoolConnection<sqlx::Any>>);

impl Drop for ShortWait {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// How the pool is sized and how much memory SQLite may keep.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connections at most.
    pub max_connections: u32,
    /// A connection idle this long is closed (SQLite keeps one).
    pub idle_timeout: Duration,
    /// SQLite: each connection's page cache, KiB (`PRAGMA cache_size = -N`).
    pub sqlite_cache_kib: u32,
    /// SQLite: soft limit on SQLite's whole heap, bytes (`PRAGMA soft_heap_limit`; 0 = none).
    pub sqlite_heap_limit_bytes: u64,
    /// SQLite: frames in the write-ahead log past which the background checkpoint restarts
    /// the log (see [`RESTART_AFTER_FRAMES`]).
    pub wal_restart_frames: i64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            idle_timeout: Duration::from_secs(600),
            sqlite_cache_kib: 2_000,
            sqlite_heap_limit_bytes: 0,
            wal_restart_frames: RESTART_AFTER_FRAMES,
        }
    }
}

/// Bytes SQLite has allocated for itself right now, all connections together (its page
/// caches, schemas and prepared statements). SQLite allocates with the C library's `malloc`,
/// outside Rust's allocator, so the allocator's statistics do not show it (issue #22).
#[allow(unsafe_code)]
pub fn sqlite_memory_used() -> u64 {
    // SAFETY: `sqlite3_memory_used` takes no arguments, only reads SQLite's global memory
    // counter (under SQLite's own mutex) and may be called from any thread at any time,
    // before or after initialisation.
    let used = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    u64::try_from(used).unwrap_or(0)
}

/// The most SQLite has had allocated at once since the process started.
#[allow(unsafe_code)]
pub fn sqlite_memory_highwater() -> u64 {
    // SAFETY: as in `sqlite_memory_used`; the argument 0 asks not to reset the mark.
    let high = unsafe { libsqlite3_sys::sqlite3_memory_highwater(0) };
    u64::try_from(high).unwrap_or(0)
}

/// A service's migrations for each database.
pub struct ServiceMigrations {
    /// The owning service, for logs.
    pub service: ServiceName,
    /// Migrations for SQLite (`|| sqlx::migrate!("migrations/sqlite")`).
    pub sqlite: fn() -> Migrator,
    /// Migrations for PostgreSQL.
    pub postgres: fn() -> Migrator,
}

/// Storage failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database answered with an error or could not be reached.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration of {service} failed: {source}")]
    Migrate {
        /// The service whose migration failed.
        service: ServiceName,
        /// Why.
        source: sqlx::migrate::MigrateError,
    },
    /// The URL names a database Skein does not support.
    #[error("unsupported database url (use sqlite: or postgres://)")]
    UnsupportedUrl,
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match &e {
            DbError::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::unavailable("database")
            }
            _ => ApiError::internal(e),
        }
    }
}

/// Shorthand for results of storage calls.
pub type DbResult<T> = Result<T, DbError>;

impl Db {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://...`), closing connections
    /// idle for ten minutes.
    pub async fn connect(url: &str, max_connections: u32) -> DbResult<Db> {
        Db::connect_pooled(url, max_connections, Duration::from_secs(600)).await
    }

    /// Connects like [`Db::connect`], closing connections idle for `idle_timeout`: each open
    /// SQLite connection keeps its own page and statement caches and a thread, so a pool a
    /// burst grew should shrink back once the burst is over (issue #22).
    pub async fn connect_pooled(
        url: &str,
        max_connections: u32,
        idle_timeout: Duration,
    ) -> DbResult<Db> {
        Db::connect_with(
            url,
            &PoolSettings {
                max_connections,
                idle_timeout,
                ..PoolSettings::default()
            },
        )
        .await
    }

    /// Connects to `url` with the pool sized and SQLite's memory bounded by `settings`.
    pub async fn connect_with(url: &str, settings: &PoolSettings) -> DbResult<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl);
        };
        let options: AnyConnectOptions = url.parse()?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(if backend == Backend::Sqlite { 1 } else { 0 })
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(settings.idle_timeout);
        if backend == Backend::Sqlite {
            // WAL lets readers proceed while one writer commits; NORMAL sync is safe with WAL
            // (a power cut may lose the last commits, never corrupt). The cache size bounds
            // each connection's page cache; the heap limit is process-wide (SQLite keeps one).
            // Temporary storage in memory: a multi-row insert inside a batch's transaction
            // keeps a statement journal (to undo just that statement), which past 64 KiB
            // spilled to a temporary file, a write per page on every settle batch (an eighth
            // of the SQLite thread's time under load). Sorts that spill and temporary tables
            // stay in memory too, counted against the heap limit.
            let pragmas = format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; \
                 PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864; \
                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; \
                 PRAGMA cache_size = -{}; PRAGMA soft_heap_limit = {};",
                settings.sqlite_cache_kib.max(64),
                settings.sqlite_heap_limit_bytes
            );
            pool = pool.after_connect(move |conn, _meta| {
                let pragmas = pragmas.clone();
                Box::pin(async move {
                    conn.execute(pragmas.as_str()).await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        let checkpointer = (backend == Backend::Sqlite).then(|| {
            Arc::new(Checkpointer::start(
                pool.clone(),
                settings.wal_restart_frames,
            ))
        });
        Ok(Db {
            pool,
            backend,
            _checkpointer: checkpointer,
        })
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of one failing
    /// when it upgrades from reading to writing.
    pub async fn begin_write(&self) -> DbResult<Transaction<'static, sqlx::Any>> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    /// Applies every pending migration of the given services; safe to run again.
    /// Answers how many migrations were applied.
    pub async fn migrate(&self, services: &[&ServiceMigrations]) -> DbResult<usize> {
        let mut applied = 0;
        for service in services {
            let mut migrator = match self.backend {
                Backend::Sqlite => (service.sqlite)(),
                Backend::Postgres => (service.postgres)(),
            };
            let before = self.applied_versions().await?;
            // Services share one migrations table; each migrator knows only its own versions.
            migrator.set_ignore_missing(true);
            migrator
                .run(&self.pool)
                .await
                .map_err(|source| DbError::Migrate {
                    service: service.service,
                    source,
                })?;
            let after = self.applied_versions().await?;
            let new = after.saturating_sub(before);
            if new > 0 {
                tracing::info!(
                    service = service.service.as_str(),
                    applied = new,
                    "migrations applied"
                );
            }
            applied += new;
        }
        Ok(applied)
    }

    async fn applied_versions(&self) -> DbResult<usize> {
        let exists: Option<(String,)> = match self.backend {
            Backend::Sqlite => {
                sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                    .fetch_optional(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::query_as("SELECT CAST(to_regclass('_sqlx_migrations') AS TEXT) WHERE to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        if exists.is_none() {
            return Ok(0);
        }
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// One cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> DbResult<()> {
        let _: (i64,) = sqlx::query_as("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// What a float that may be NULL is bound as; SQL turns it back into NULL with
/// `NULLIF($n, -1.0)`. sqlx 0.8.6's Any driver binds a NULL `f64` as a PostgreSQL `real`
/// (its Real/Double NULL mapping is swapped), so one statement run first with NULL and then
/// with a value on the same pooled connection fails ("incorrect binary data format in bind
/// parameter"): an intermittent 500. Bound as a value, the parameter is always `float8`. Every
/// nullable float column this is used for (thresholds, temperature, top_p) is never negative.
pub const NULL_FLOAT: f64 = -1.0;

/// `value`, or [`NULL_FLOAT`] for NULL (see there).
pub fn float_or_null(value: Option<f64>) -> f64 {
    value.unwrap_or(NULL_FLOAT)
}

/// Whether a storage error is a unique-constraint violation (a taken name, a used token).
pub fn is_unique_violation(e: &DbError) -> bool {
    match e {
        DbError::Sqlx(sqlx::Error::Database(db)) => db.is_unique_violation(),
        _ => false,
    }
}

#[cfg(test)]
mod value_rows_tests {
    use super::Backend;

    #[test]
    fn placeholders_are_plain_on_sqlite_and_numbered_on_postgres() {
        assert_eq!(Backend::Sqlite.value_rows(2, 3), "(?, ?, ?),(?, ?, ?)");
        assert_eq!(Backend::Postgres.value_rows(2, 2), "($1, $2),($3, $4)");
        assert_eq!(Backend::Postgres.value_rows(1, 1), "($1)");
        assert_eq!(Backend::Sqlite.value_rows(0, 3), "");
    }

    #[test]
    fn a_batch_is_written_by_statements_of_a_few_sizes_on_sqlite() {
        let rows: Vec<usize> = (0..77).collect();
        let sqlite: Vec<(usize, bool)> = Backend::Sqlite
            .statements(&rows, 500)
            .map(|(chunk, keep)| (chunk.len(), keep))
            .collect();
        // 77 = 32 + 32 + 8 + 2 + 2 + 1, every one kept prepared.
        let sizes: Vec<usize> = sqlite.iter().map(|s| s.0).collect();
        assert_eq!(sizes, [32, 32, 8, 2, 2, 1]);
        assert!(sqlite.iter().all(|s| s.1));
        // Every row once, in order.
        let joined: Vec<usize> = Backend::Sqlite
            .statements(&rows, 500)
            .flat_map(|(chunk, _)| chunk.iter().copied())
            .collect();
        assert_eq!(joined, rows);
        // Any batch of up to 1,000 rows uses only the fixed sizes.
        for n in 0..1000 {
            let rows = vec![(); n];
            let mut total = 0;
            for (chunk, _) in Backend::Sqlite.statements(&rows, 500) {
                assert!(super::SQLITE_STATEMENT_ROWS.contains(&chunk.len()));
                total += chunk.len();
            }
            assert_eq!(total, n);
        }
    }

    #[test]
    fn a_batch_is_written_by_large_statements_on_postgres() {
        let rows: Vec<usize> = (0..1203).collect();
        let pg: Vec<(usize, bool)> = Backend::Postgres
            .statements(&rows, 500)
            .map(|(chunk, keep)| (chunk.len(), keep))
            .collect();
        assert_eq!(pg, [(500, false), (500, false), (203, false)]);
        let one: Vec<(usize, bool)> = Backend::Postgres
            .statements(&rows[..1], 500)
            .map(|(chunk, keep)| (chunk.len(), keep))
            .collect();
        assert_eq!(one, [(1, true)]);
        assert_eq!(Backend::Postgres.statements(&rows[..0], 500).count(), 0);
    }
}

#[cfg(test)]
mod null_float_tests {
    use super::*;

    /// Why [`NULL_FLOAT`] exists, on a real PostgreSQL: one connection, one statement, a NULL
    /// float and then a value.
    #[tokio::test]
    async fn a_null_float_then_a_value_bind_on_one_postgres_connection() {
        let url = std::env::var("SKEIN_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let db = Db::connect(&url, 1).await.unwrap();
        let mut conn = db.pool().acquire().await.unwrap();
        sqlx::query("CREATE TEMPORARY TABLE null_float (n INTEGER, v DOUBLE PRECISION)")
            .execute(&mut *conn)
            .await
            .unwrap();
        let insert = "INSERT INTO null_float (n, v) VALUES ($1, NULLIF($2, -1.0))";
        let values = [None, Some(2.5), None, Some(0.0)];
        for (n, v) in values.iter().enumerate() {
            sqlx::query(insert)
                .bind(n as i32)
                .bind(float_or_null(*v))
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let stored: Vec<Option<f64>> = sqlx::query_scalar("SELECT v FROM null_float ORDER BY n")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert_eq!(stored, values);
        // What it works around: bound as `Option<f64>`, the value after a NULL is refused.
        let plain = "INSERT INTO null_float (n, v) VALUES (9, $1)";
        sqlx::query(plain)
            .bind(None::<f64>)
            .execute(&mut *conn)
            .await
            .unwrap();
        let after_null = sqlx::query(plain)
            .bind(Some(2.5f64))
            .execute(&mut *conn)
            .await;
        assert!(
            after_null.is_err(),
            "sqlx now binds a NULL f64 as float8: NULL_FLOAT and its NULLIFs can go"
        );
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;

    /// A SQLite database file `name` in `dir`, opened with `settings`, holding an empty
    /// `blobs (b TEXT)` table.
    async fn blob_db(dir: &std::path::Path, name: &str, settings: &PoolSettings) -> Db {
        let path = dir.join(name);
        let db = Db::connect_with(&format!("sqlite://{}?mode=rwc", path.display()), settings)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE blobs (b TEXT)")
            .execute(db.pool())
            .await
            .unwrap();
        db
    }

    /// Under commits that never pause, a `PASSIVE` checkpoint never catches the log's last
    /// frame, so SQLite never goes back to the log's start; the checkpointer's restart keeps
    /// the log near its bound instead of growing with everything written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_ahead_log_stays_bounded_under_steady_commits() {
        let dir = tempfile::tempdir().unwrap();
        let settings = PoolSettings {
            max_connections: 4,
            wal_restart_frames: 200,
            ..PoolSettings::default()
        };
        let db = blob_db(dir.path(), "steady.db", &settings).await;
        let wal = dir.path().join("steady.db-wal");
        let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        // A fixed amount, not a fixed time, so a slow machine only takes longer. The log file
        // keeps its largest size: without the restart it ends about twice what was written
        // (89 MB here); with it, at what a few ticks' commits add (12-16 MB here).
        const TO_WRITE: u64 = 40 << 20;
        let (mut written, mut largest) = (0u64, 0u64);
        let give_up = std::time::Instant::now() + Duration::from_secs(120);
        while written < TO_WRITE && std::time::Instant::now() < give_up {
            let mut tx = db.begin_write().await.unwrap();
            for _ in 0..4 {
                sqlx::query("INSERT INTO blobs (b) VALUES ($1)")
                    .bind("x".repeat(3_000))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            written += 12_000;
            largest = largest.max(wal_size());
        }
        assert!(
            written >= TO_WRITE,
            "only {written} bytes committed in 120 s"
        );
        assert!(
            largest < written,
            "the log grew to {largest} bytes with {written} written: it never restarted"
        );
        // The restart shortens its connection's lock wait; no connection keeps the short one.
        let mut held = Vec::new();
        for _ in 0..settings.max_connections {
            let mut conn = db.pool().acquire().await.unwrap();
            let wait: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(wait, i64::from(BUSY_TIMEOUT_MS), "a connection's lock wait");
            held.push(conn);
        }
    }

    /// With SQLite's own checkpoints off, the data reaches the database file only through
    /// the background checkpointer: the file grows while the pool stays open.
    #[tokio::test]
    async fn the_write_ahead_log_is_copied_back_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.db");
        let settings = PoolSettings {
            max_connections: 2,
            ..PoolSettings::default()
        };
        let db = blob_db(dir.path(), "ckpt.db", &settings).await;
        let mut tx = db.begin_write().await.unwrap();
        for _ in 0..64 {
            sqlx::query("INSERT INTO blobs (b) VALUES ($1)")
                .bind("x".repeat(32 * 1024))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        for _ in 0..100 {
            if size() >= 2 * 1024 * 1024 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            size() >= 2 * 1024 * 1024,
            "2 MiB written, {} bytes in the database file after 5 s",
            size()
        );
        let autocheckpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(autocheckpoint, 0, "commits never checkpoint themselves");
        // 2 = MEMORY: a statement journal never spills to a temporary file.
        let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(temp_store, 2, "temporary storage is in memory");
    }
}
