//! The node's embedded store: one SQLite database in the data directory.
//!
//! - **Crash safety.** WAL journal with `synchronous=FULL`: a transaction that returned is on
//!   disk, and a crash at any point leaves the last committed state.
//! - **One writer.** A lock file in the data directory is held (advisory `flock`) for the life of
//!   the process, so a second process on the same store refuses to start; inside the process, one
//!   thread owns the only writing connection.
//! - **Group commit.** The writer thread takes every write waiting in its queue and commits them
//!   in one transaction, each in its own savepoint (a failing write rolls back alone). Concurrent
//!   publishers and fetchers thus share one `fsync` instead of paying one each.
//! - **Checkpoints** (copying the WAL into the database file) run on a thread of their own with
//!   its own connection, so a commit does not wait for the copy of the commits before it; the
//!   writer checkpoints itself only when the WAL passes [`WRITER_CHECKPOINT_PAGES`], which lets
//!   the WAL start over from its beginning under continuous load.
//! - **Readers** use their own connections (WAL lets them read while the writer writes), on the
//!   blocking thread pool, never on the async runtime's threads.
//! - **Migrations** are numbered by `PRAGMA user_version`; a store written by a newer hub is
//!   refused rather than misread.
//! - **A damaged store** is refused at open (`PRAGMA quick_check`, see [`Store::open`]), before
//!   anything reads or writes it, with the file, the check's findings and what to do.
//! - **A full disk** (SQLITE_FULL, ENOSPC) is [`StorageError::Full`], RESOURCE_EXHAUSTED to the
//!   caller: nothing of the failed transaction was written, and the same call succeeds once
//!   space is freed.
//! - **Scratch files** that a process killed mid-export or mid-import left beside the store are
//!   removed at open, once the lock is held.

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot, watch};

/// The database file inside the data directory.
pub const DB_FILE: &str = "hub.db";
/// The lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// The schema, one entry per version; entry `i` takes the store from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    CREATE TABLE members (
        credit_code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        joined_at INTEGER NOT NULL
    ) STRICT;
    -- One row per resource and the way it reached this node: origin '' for resources registered
    -- here, else the child node that forwarded it (replaced whole on each of its syncs).
    CREATE TABLE resources (
        code TEXT NOT NULL,
        origin TEXT NOT NULL,
        provider TEXT NOT NULL,
        node TEXT NOT NULL,
        share_type INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        record_count INTEGER NOT NULL DEFAULT 0,
        records_served INTEGER NOT NULL DEFAULT 0,
        -- The Resource message (protobuf) as registered or forwarded.
        body BLOB NOT NULL,
        PRIMARY KEY (code, origin)
    ) STRICT;
    CREATE INDEX resources_provider ON resources (provider);
    CREATE INDEX resources_origin ON resources (origin);
    CREATE TABLE grants (
        id INTEGER PRIMARY KEY,
        resource_code TEXT NOT NULL,
        consumer TEXT NOT NULL,
        provider TEXT NOT NULL,
        purpose TEXT NOT NULL,
        state INTEGER NOT NULL,
        reason TEXT NOT NULL,
        requested_at INTEGER NOT NULL,
        decided_at INTEGER,
        UNIQUE (consumer, resource_code)
    ) STRICT;
    CREATE INDEX grants_provider ON grants (provider);
    -- Published records, one row per run of batches of one resource committed together
    -- (offsets first_offset..=last_offset): a row however many records it holds. `records` is
    -- the run encoded as a protobuf PublishRequest (its repeated `records` field; resource_code
    -- left empty).
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        resource_code TEXT NOT NULL,
        first_offset INTEGER NOT NULL,
        last_offset INTEGER NOT NULL,
        records BLOB NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX batches_by_end ON batches (resource_code, last_offset);
    CREATE TABLE cursors (
        consumer TEXT NOT NULL,
        resource_code TEXT NOT NULL,
        acked INTEGER NOT NULL DEFAULT 0,
        served INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (consumer, resource_code)
    ) STRICT;
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        algorithm TEXT NOT NULL
    ) STRICT;
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 2: the open-data portal (see `crate::portal`).
    r#"
    -- One row per served dataset: its current version and metadata (DatasetMetadata, protobuf).
    CREATE TABLE portal_datasets (
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        openness INTEGER NOT NULL,
        metadata BLOB NOT NULL,
        published_at INTEGER NOT NULL
    ) STRICT;
    -- The versions whose files are on disk and downloadable: the current one and the one before.
    CREATE TABLE portal_versions (
        dataset_id TEXT NOT NULL REFERENCES portal_datasets (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        -- JSON: [{"format", "sha256", "size"}].
        files TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, version)
    ) STRICT;
    -- Download tokens of conditional datasets, by the SHA-256 of the token (never the token).
    CREATE TABLE portal_tokens (
        token_sha256 TEXT PRIMARY KEY,
        dataset_id TEXT NOT NULL REFERENCES portal_datasets (id) ON DELETE CASCADE,
        applicant TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX portal_tokens_dataset ON portal_tokens (dataset_id);
    "#,
    // 3: the open-data website (see `crate::portal::downloads`, `crate::portal::history`).
    r#"
    -- Downloads counted on the server, by dataset (kept when a dataset is unpublished).
    CREATE TABLE portal_downloads (
        dataset_id TEXT PRIMARY KEY,
        downloads INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    -- Every publication and unpublication, for version histories, the changelog and the feed.
    CREATE TABLE portal_history (
        seq INTEGER PRIMARY KEY,
        dataset_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        -- 'publish' or 'unpublish'.
        change TEXT NOT NULL,
        at INTEGER NOT NULL,
        title TEXT NOT NULL,
        organization_credit_code TEXT NOT NULL,
        record_count INTEGER NOT NULL,
        content_sha256 TEXT NOT NULL,
        -- JSON: [{"format", "sha256", "size"}]; [] for an unpublication.
        files TEXT NOT NULL,
        -- JSON: the version's metadata quality, worked out when it was published.
        quality TEXT NOT NULL
    ) STRICT;
    CREATE INDEX portal_history_dataset ON portal_history (dataset_id, seq);
    "#,
    // 4: applications for conditional datasets (see `crate::portal::applications`).
    r#"
    CREATE TABLE portal_applications (
        id TEXT PRIMARY KEY,
        -- SHA-256 of the secret in the applicant's status link (never the secret).
        secret_sha256 TEXT NOT NULL,
        -- Not a foreign key: an application outlives its dataset's unpublication.
        dataset_id TEXT NOT NULL,
        applicant TEXT NOT NULL,
        organisation TEXT NOT NULL,
        purpose TEXT NOT NULL,
        contact TEXT NOT NULL,
        -- 'pending', 'approved' or 'rejected'.
        state TEXT NOT NULL,
        submitted_at INTEGER NOT NULL,
        decided_at INTEGER,
        decided_by TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        -- When an approval's download token expires.
        expires_at INTEGER,
        -- When the applicant collected the token, and its digest (a portal_tokens row).
        collected_at INTEGER,
        token_sha256 TEXT
    ) STRICT;
    CREATE INDEX portal_applications_state ON portal_applications (state, submitted_at);
    "#,
    // 5: versions whose files an imported state did not bring (see `crate::portal::restore`).
    r#"
    ALTER TABLE portal_versions ADD COLUMN awaiting_files INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// The schema version this build writes.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The tables and columns of schema version `version` (1 to [`schema_version`]) that `conn`
/// lacks, as `table t` and `column t.c`: a copy that claims a version must hold its tables,
/// or reading it fails later, deep in some query, as if the node were at fault. The reference is
/// the migrations up to `version`, run on an empty database in memory.
pub fn missing_schema(conn: &Connection, version: i64) -> rusqlite::Result<Vec<String>> {
    let reference = Connection::open_in_memory()?;
    let steps = usize::try_from(version).unwrap_or(0).min(MIGRATIONS.len());
    for sql in &MIGRATIONS[..steps] {
        reference.execute_batch(sql)?;
    }
    let held = schema_of(conn)?;
    let mut missing = Vec::new();
    for (table, columns) in schema_of(&reference)? {
        match held.get(&table) {
            None => missing.push(format!("table {table}")),
            Some(have) => missing.extend(
                columns
                    .difference(have)
                    .map(|column| format!("column {table}.{column}")),
            ),
        }
    }
    Ok(missing)
}

/// Every table of `conn` with its columns.
fn schema_of(
    conn: &Connection,
) -> rusqlite::Result<BTreeMap<String, std::collections::BTreeSet<String>>> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut columns = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    tables
        .into_iter()
        .map(|table| {
            let names = columns
                .query_map([&table], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok((table, names))
        })
        .collect()
}

/// Brings `conn`'s schema up to date, each step in its own transaction.
pub fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > schema_version() {
        bail!(
            "the store has schema version {current}, newer than this govdc-hub knows ({}); \
             run a newer govdc-hub",
            schema_version()
        );
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let next = version + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {next}; COMMIT;"
        ))
        .with_context(|| format!("migrating the store to schema version {next}"))?;
    }
    Ok(())
}

/// Runs `sql` through the connection's statement cache: the hot paths (publish, fetch, audit)
/// run the same few statements thousands of times a second, and parsing them each time costs
/// more than running them.
pub fn cached_row<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// [`Connection::execute`] through the statement cache (see [`cached_row`]).
pub fn cached_exec<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

const STATEMENT_CACHE: usize = 64;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // WAL: readers never block the writer; FULL: a commit is durable once it returns.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

/// What went wrong in the node's storage (its database or its files), by what a caller can do
/// about it. The gRPC edge turns it into a status in one place (`From<StorageError> for Status`
/// in `service`), with [`StorageError::report`] as the message.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory's file system is full (SQLITE_FULL, ENOSPC, EDQUOT): nothing was
    /// written; the same call succeeds once space is freed.
    #[error("{what}: the data directory's disk is full")]
    Full {
        /// What was being done.
        what: String,
        /// The database's or the file system's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other failure of the database or the file system.
    #[error("{what}")]
    Failed {
        /// What was being done.
        what: String,
        /// The database's or the file system's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The writer is gone: the node is shutting down.
    #[error("the store is closed: the node is shutting down")]
    Closed,
    /// A read on the blocking thread pool panicked or was cancelled.
    #[error("read task failed")]
    ReadTask(#[source] tokio::task::JoinError),
    /// A value could not be encoded for the store.
    #[error("{what}")]
    Encoding {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value does not decode.
    #[error("{what}")]
    Corrupt {
        /// What does not decode.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StorageError {
    /// Classifies a database error met while doing `what`.
    pub fn sqlite(what: impl Into<String>, e: rusqlite::Error) -> StorageError {
        let what = what.into();
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            StorageError::Full {
                what,
                source: Box::new(e),
            }
        } else {
            StorageError::Failed {
                what,
                source: Box::new(e),
            }
        }
    }

    /// Classifies a file-system error met while doing `what`.
    pub fn io(what: impl Into<String>, e: std::io::Error) -> StorageError {
        let what = what.into();
        if matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ) {
            StorageError::Full {
                what,
                source: Box::new(e),
            }
        } else {
            StorageError::Failed {
                what,
                source: Box::new(e),
            }
        }
    }

    /// The error with its cause, on one line: what a caller is told and the log says.
    pub fn report(&self) -> String {
        match self {
            StorageError::Full { source, .. } => {
                format!("{self} ({source}); nothing was written, try again once space is freed")
            }
            StorageError::Failed { source, .. } => format!("{self}: {source}"),
            StorageError::ReadTask(source) => format!("{self}: {source}"),
            StorageError::Encoding { source, .. } => format!("{self}: {source}"),
            StorageError::Corrupt { source, .. } => format!("{self}: {source}"),
            StorageError::Closed => self.to_string(),
        }
    }
}

/// Database errors as storage errors, for the SQL code: they become a caller's status only at
/// the gRPC edge.
pub trait SqlResult<T> {
    /// The value, or its error as a [`StorageError`].
    fn sql(self) -> Result<T, StorageError>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn sql(self) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::sqlite("storage error", e))
    }
}

/// What a queued write reports back: whether it succeeded (else its savepoint is rolled back,
/// and the error is what it failed with), and a callback told whether the transaction then
/// committed.
type Completion<E> = (Result<(), E>, Box<dyn FnOnce(Result<(), E>) + Send>);

enum Job<E> {
    /// Runs inside the shared transaction; given an error instead of the connection when the
    /// transaction could not start or was lost before its turn (it then reports that error).
    Tx(TxJob<E>),
    /// Runs alone, outside any transaction, with the connection to itself (state import).
    Exclusive(Box<dyn FnOnce(&mut Connection) + Send>),
    /// Checkpoints the WAL and closes.
    Close(oneshot::Sender<()>),
}

/// Most writes committed in one transaction.
const GROUP_LIMIT: usize = 512;

/// WAL pages (4 KiB) past which the writer checkpoints after a commit itself (SQLite's
/// `wal_autocheckpoint`; its default is 1,000). The checkpoint thread has copied most of them by
/// then, so this copies little; what it buys is a WAL fully copied, which the next transaction
/// then writes from its beginning again, so the WAL stays this size however long the load lasts.
pub const WRITER_CHECKPOINT_PAGES: i64 = 8192;
/// Least time between two background checkpoints: under a stream of small commits, one
/// checkpoint covers many.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// The node's store. `E` is the error its callers' jobs fail with; the store's own failures
/// reach them as a [`StorageError`] turned into it.
pub struct Store<E> {
    dir: PathBuf,
    jobs: mpsc::Sender<Job<E>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    generation: Arc<watch::Sender<u64>>,
    // Held for the life of the store: the advisory lock is released when the file is closed.
    _lock: File,
}

impl<E> std::fmt::Debug for Store<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl<E: From<StorageError> + Clone + Send + 'static> Store<E> {
    /// Opens (creating if needed) the store in `dir`, takes its lock, removes scratch files
    /// interrupted exports and imports left, refuses it if SQLite's `quick_check` finds it
    /// damaged, and migrates it.
    pub fn open(dir: &Path) -> anyhow::Result<Store<E>> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => bail!(
                "another govdc-hub process holds the store in {} (lock file {}); a node has exactly \
                 one writer, so this process will not start",
                dir.display(),
                lock_path.display()
            ),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()));
            }
        }
        // For whoever looks at the lock file: which process holds it.
        lock.set_len(0)?;
        writeln!(lock, "{}", std::process::id())?;

        // Only now, with the lock held: no other process can be writing them.
        sweep_scratch(dir)?;

        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)
            .with_context(|| format!("opening the database {}", path.display()))?;
        check_intact(&conn, &path)?;
        configure(&conn).with_context(|| format!("configuring {}", path.display()))?;
        migrate(&conn)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .with_context(|| format!("configuring {}", path.display()))?;
        let checkpoints = Checkpoints::start(&path)?;

        let (jobs, queue) = mpsc::channel(4096);
        let generation = Arc::new(watch::channel(0).0);
        let replaced = generation.clone();
        std::thread::Builder::new()
            .name("govdc-hub-writer".into())
            .spawn(move || writer(conn, queue, &replaced, checkpoints))
            .context("starting the writer thread")?;
        Ok(Store {
            dir: dir.to_owned(),
            jobs,
            readers: Arc::default(),
            generation,
            _lock: lock,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` in the writer's transaction and returns its result once committed. When `f`
    /// fails, its changes are rolled back and the others' in the same group are kept.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.queue(f, |_| {}).await?.await
    }

    /// Queues `f` for the writer's transaction like [`Store::write`], and returns once it is
    /// queued, with a future of its committed result: a caller can queue its next write while
    /// this one commits.
    ///
    /// `settle` runs on the writer thread once the transaction committed (with `f`'s result) or
    /// failed (with the error), before the result is reported and before any later transaction
    /// starts; so settle hooks run in commit order, and what they make visible in memory is
    /// exactly what is on disk.
    pub async fn queue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        settle: impl FnOnce(Result<&T, &E>) + Send + 'static,
    ) -> Result<impl Future<Output = Result<T, E>> + Send + 'static, E> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Tx(Box::new(move |conn: Result<&Connection, E>| {
            let result = conn.and_then(f);
            let ok = result.as_ref().map(|_| ()).map_err(Clone::clone);
            let done: Box<dyn FnOnce(Result<(), E>) + Send> = Box::new(move |committed| {
                // A job's own error first: it says why that job wrote nothing.
                let result = result.and_then(|value| committed.map(|()| value));
                settle(result.as_ref());
                let _ = tx.send(result);
            });
            (ok, done)
        }));
        self.jobs.send(job).await.map_err(|_| closed())?;
        Ok(async move { rx.await.map_err(|_| closed())? })
    }

    /// How many exclusive jobs (state imports, which replace the content wholesale) ran since
    /// the store was opened, a failed one included (it may have replaced part). It changes on
    /// the writer thread right after the job, so a write job or a settle hook reads the value of
    /// the content it sees.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// A receiver that changes each time the store's content is replaced (see
    /// [`Store::generation`]): whatever mirrors the content in memory is then stale.
    pub fn replaced(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Runs `f` alone on the writing connection, outside any transaction.
    pub async fn exclusive<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Exclusive(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        }));
        self.jobs.send(job).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Runs `f` on a reading connection, on the blocking thread pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let readers = self.readers.clone();
        let path = self.dir.join(DB_FILE);
        tokio::task::spawn_blocking(move || {
            let pooled = readers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_reader(&path).map_err(|e| StorageError::sqlite("storage error", e))?,
            };
            let result = f(&conn);
            readers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(StorageError::ReadTask)?
    }

    /// Finishes the queued writes, checkpoints the WAL into the database file and closes.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        self.readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

/// The files an interrupted state export or import leaves in the data directory (copies of a
/// database with their journals: `<what>-<nanos>.db.tmp`, see `service::node`), and the scratch
/// file of the anchor copy.
fn is_scratch(name: &str) -> bool {
    name.contains(".db.tmp") || name == format!("{}.tmp", crate::anchor::LOCAL_FILE)
}

/// Removes what a process killed mid-export or mid-import left beside the store.
fn sweep_scratch(dir: &Path) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("listing the data directory {}", dir.display()))?;
    for entry in entries {
        let entry =
            entry.with_context(|| format!("listing the data directory {}", dir.display()))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(is_scratch) {
            tracing::info!(path = %entry.path().display(), "removing a scratch file an interrupted export or import left");
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing the scratch file {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Refuses a damaged database before anything reads or writes it.
///
/// `PRAGMA quick_check` reads every page once and checks the b-tree structure (page types, cell
/// pointers, free lists, record headers, `NOT NULL` and `STRICT` types): one read of every page,
/// linear in the store's size (a 270 MB store of record batches: 0.5-0.7 s from the page cache,
/// 3.3 s cold, on a 2-core machine at load 18), which a start can afford. `integrity_check`
/// also checks every index against its table (`N log N`) and is left to an operator who
/// suspects the store. Neither sees a changed byte inside a value (a record's
/// payload, an audit record's text); the audit chain's hashes find those
/// (`govdc-hub audit verify`, safe while the node runs).
fn check_intact(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let advice = "govdc-hub will not serve from a damaged store. Keep this data directory for \
                  inspection, then restore it from a backup, or start the node on an empty data \
                  directory and import a good copy with ImportState (an ExportState of a healthy \
                  replica or a BackupPolicy restore point)";
    let findings: rusqlite::Result<Vec<String>> =
        conn.prepare("PRAGMA quick_check(5)").and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
    match findings {
        Ok(findings) if findings.iter().all(|f| f == "ok") => Ok(()),
        Ok(findings) => bail!(
            "the store {} is damaged: SQLite's quick_check found: {}. {advice}",
            path.display(),
            // Its findings come as lines; the message stays one line for logs.
            findings.join("; ").replace('\n', "; ")
        ),
        Err(e) => bail!(
            "the store {} is damaged: SQLite's quick_check could not read it: {e}. {advice}",
            path.display()
        ),
    }
}

fn closed<E: From<StorageError>>() -> E {
    StorageError::Closed.into()
}

/// A connection that only reads.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The checkpoint thread: woken after commits, it copies the WAL into the database file
/// (`PASSIVE`: it never blocks the writer or the readers).
struct Checkpoints {
    wake: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
    /// Held by a checkpoint and by an exclusive job, which replaces the database under it.
    gate: Arc<Mutex<()>>,
}

impl Checkpoints {
    fn start(path: &Path) -> anyhow::Result<Checkpoints> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the database {}", path.display()))?;
        configure(&conn).with_context(|| format!("configuring {}", path.display()))?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let gate = Arc::new(Mutex::new(()));
        let held = gate.clone();
        let thread = std::thread::Builder::new()
            .name("govdc-hub-checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    {
                        let _gate = held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                            tracing::warn!(error = %e, "checkpointing the WAL");
                        }
                    }
                    std::thread::sleep(CHECKPOINT_PAUSE);
                }
            })
            .context("starting the checkpoint thread")?;
        Ok(Checkpoints { wake, thread, gate })
    }

    /// After a commit: a checkpoint soon (one pending wake-up covers any number of commits).
    fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// Stops the thread, its last checkpoint finished.
    fn stop(self) {
        drop(self.wake);
        if self.thread.join().is_err() {
            tracing::warn!("the checkpoint thread panicked");
        }
    }
}

fn writer<E: From<StorageError> + Clone>(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Job<E>>,
    generation: &watch::Sender<u64>,
    checkpoints: Checkpoints,
) {
    let mut pending: Option<Job<E>> = None;
    loop {
        let job = match pending.take() {
            Some(job) => job,
            None => match queue.blocking_recv() {
                Some(job) => job,
                None => break,
            },
        };
        match job {
            Job::Close(done) => {
                checkpoints.stop();
                checkpoint(&conn);
                drop(conn);
                let _ = done.send(());
                return;
            }
            Job::Exclusive(f) => {
                let gate = checkpoints.gate.clone();
                let _gate = gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                f(&mut conn);
                generation.send_modify(|g| *g += 1);
            }
            Job::Tx(first) => {
                let mut group = vec![first];
                while group.len() < GROUP_LIMIT {
                    match queue.try_recv() {
                        Ok(Job::Tx(f)) => group.push(f),
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&conn, group);
                checkpoints.wake();
            }
        }
    }
    checkpoints.stop();
    checkpoint(&conn);
}

fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "checkpointing the WAL");
    }
}

type TxJob<E> = Box<dyn FnOnce(Result<&Connection, E>) -> Completion<E> + Send>;

fn commit_group<E: From<StorageError> + Clone>(conn: &Connection, group: Vec<TxJob<E>>) {
    if let Err(e) = cached_exec(conn, "BEGIN IMMEDIATE", []) {
        let status: E = StorageError::sqlite("starting a transaction", e).into();
        for f in group {
            let (_, callback) = f(Err(status.clone()));
            callback(Err(status.clone()));
        }
        return;
    }
    let mut done = Vec::with_capacity(group.len());
    // Set when the transaction is gone before the group ends: SQLite may roll a whole
    // transaction back on SQLITE_FULL or an I/O error. The jobs after that must not run (they
    // would run in autocommit mode, each committing on its own while its caller is told the
    // group failed), and none of the group's jobs committed.
    let mut lost: Option<E> = None;
    for f in group {
        if let Some(status) = &lost {
            let (_, callback) = f(Err(status.clone()));
            done.push(callback);
            continue;
        }
        if let Err(e) = cached_exec(conn, "SAVEPOINT job", []) {
            let status: E = StorageError::sqlite("opening a savepoint", e).into();
            let (_, callback) = f(Err(status.clone()));
            done.push(callback);
            continue;
        }
        let (ok, callback) = f(Ok(conn));
        if conn.is_autocommit() {
            lost = Some(match ok {
                Err(status) => status,
                Ok(()) => StorageError::Failed {
                    what: "the transaction".to_owned(),
                    source: "SQLite rolled it back after an error; nothing of it was written"
                        .into(),
                }
                .into(),
            });
            done.push(callback);
            continue;
        }
        let end = if ok.is_ok() {
            cached_exec(conn, "RELEASE job", [])
        } else {
            cached_exec(conn, "ROLLBACK TO job", [])
                .and_then(|_| cached_exec(conn, "RELEASE job", []))
        };
        if let Err(e) = end {
            tracing::error!(error = %e, "closing a savepoint");
        }
        done.push(callback);
    }
    let committed = match lost {
        Some(status) => Err(status),
        None => cached_exec(conn, "COMMIT", []).map(|_| ()).map_err(|e| {
            let status: E = StorageError::sqlite("committing", e).into();
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            status
        }),
    };
    for callback in done {
        callback(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::DbResult;
    use tonic::Status;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "govdc-store-{name}-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    }

    #[tokio::test]
    async fn a_full_store_is_resource_exhausted_and_its_group_reports_exactly_what_committed() {
        let dir = scratch_dir("full");
        let store = Arc::new(Store::<Status>::open(&dir).expect("opens"));
        // SQLite's own bound on the file's pages stands in for a full disk: SQLITE_FULL.
        store
            .write(|conn| {
                let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).db()?;
                conn.execute_batch(&format!("PRAGMA max_page_count = {}", pages + 4))
                    .db()
            })
            .await
            .expect("bounded");
        // The writer busy for a moment, so the three writes queue up and commit as one group.
        let busy = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .exclusive(|_| {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let insert = |key: &'static str, len: usize| {
            store.queue(
                move |conn| {
                    conn.execute(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2)",
                        [key.to_owned(), "x".repeat(len)],
                    )
                    .db()
                },
                |_| {},
            )
        };
        let before = insert("before", 10).await.expect("queued");
        let big = insert("big", 1 << 20).await.expect("queued");
        let after = insert("after", 10).await.expect("queued");
        busy.await.expect("joins").expect("runs");
        let (before, big, after) = (before.await, big.await, after.await);
        let refused = big.expect_err("a megabyte does not fit in four pages");
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        assert!(refused.message().contains("disk is full"), "{refused:?}");
        // SQLite may roll the whole transaction back on SQLITE_FULL: either way a write is
        // reported committed exactly when it is, and none runs outside the group's transaction.
        for (key, result) in [("before", before), ("after", after)] {
            let stored = store
                .read(move |conn| Ok(crate::service::setting(conn, key)?))
                .await
                .expect("reads");
            assert_eq!(
                result.is_ok(),
                stored.is_some(),
                "{key}: {result:?}, stored {stored:?}"
            );
            if let Err(status) = result {
                assert_eq!(
                    status.code(),
                    tonic::Code::ResourceExhausted,
                    "{key}: {status:?}"
                );
            }
        }
        // What fits is written again at once.
        insert("later", 10)
            .await
            .expect("queued")
            .await
            .expect("a small write after the full one commits");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn scratch_files_are_swept_and_a_damaged_store_is_refused_at_open() {
        let dir = scratch_dir("damaged");
        let store = Store::<Status>::open(&dir).expect("opens");
        store
            .write(|conn| {
                for n in 0..200 {
                    crate::service::set_setting(conn, &format!("k{n}"), Some(&"v".repeat(100)))?;
                }
                Ok(())
            })
            .await
            .expect("writes");
        store.close().await;
        drop(store);
        std::fs::write(dir.join("import-1.db.tmp"), b"half a copy").expect("scratch");
        std::fs::write(dir.join("import-1.db.tmp-journal"), b"its journal").expect("scratch");
        let store = Store::<Status>::open(&dir).expect("opens again");
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .expect("lists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp"))
            .collect();
        left.sort();
        assert!(left.is_empty(), "{left:?}");
        store.close().await;
        drop(store);

        // The settings table's root page (page 2) gets a cell count it does not have.
        let path = dir.join(DB_FILE);
        let mut bytes = std::fs::read(&path).expect("reads");
        let page = 4096;
        assert!(bytes.len() > 2 * page);
        bytes[page + 3] ^= 0x40;
        std::fs::write(&path, &bytes).expect("writes");
        let error = format!(
            "{:#}",
            Store::<Status>::open(&dir).expect_err("a damaged store is refused")
        );
        assert!(error.contains("hub.db is damaged"), "{error}");
        assert!(error.contains("quick_check"), "{error}");
        assert!(!error.contains('\n'), "one line: {error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
