//! SQLite storage of the node: one writer thread (with group commit) and a small read pool.
//!
//! - `schema`: tables and connection settings; `auth_schema`: the tables of `auth`.
//! - [`audit`]: the audit log (security facts, staff and catalog changes).
//! - [`projection`]: facts and products turned into query tables.
//! - [`payments`]: the `card_payments` projection (card tenders' derived states).
//! - [`facts`]: the single write path of local facts, counters and idempotency records.
//!
//! Every write goes through [`Db::write`]: the closure runs on the writer thread inside a
//! SQLite savepoint of a batch transaction; documents it changes are persisted and
//! projected in that same transaction. The caller's future resolves only after the batch
//! has committed, so a response to a client means the fact is durable
//! (`synchronous=FULL`). A closure that fails rolls back its savepoint and its in-memory
//! document changes; the others in the batch are unaffected.

pub mod audit;
pub(crate) mod auth_schema;
pub mod facts;
pub mod payments;
pub mod projection;
pub(crate) mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use automerge::{Automerge, ChangeHash};
use caja_shared::docs::DocId;
use caja_shared::docstore::{self, DocCache, DocStoreError};
use caja_shared::hlc::{Hlc, HlcTimestamp};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Most jobs committed in one SQLite transaction (group commit).
const MAX_BATCH: usize = 64;
/// Queue of pending writes; senders wait when it is full (backpressure).
const QUEUE: usize = 1024;
/// Documents kept in memory by the writer.
const DOC_CACHE: usize = 64;

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Document storage failed.
    #[error(transparent)]
    Doc(#[from] DocStoreError),
    /// A document schema error.
    #[error(transparent)]
    Schema(#[from] caja_shared::docs::DocError),
    /// The batch transaction failed to commit; nothing of it is stored.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The writer thread has stopped (node shutting down).
    #[error("the storage writer has stopped")]
    WriterGone,
    /// A background task failed.
    #[error("storage task failed: {0}")]
    Task(String),
    /// The data directory belongs to another store.
    #[error("data directory {dir} belongs to store {found}, not {expected}")]
    WrongStore {
        /// The directory.
        dir: PathBuf,
        /// The store recorded in it.
        found: String,
        /// The store configured.
        expected: String,
    },
    /// Opening the data directory failed.
    #[error("data directory {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// What a write closure gets: the batch transaction (as a connection), the documents, the
/// clock.
pub struct Ctx<'a> {
    /// The SQLite connection, inside the job's savepoint.
    pub conn: &'a Connection,
    docs: &'a mut DocCache,
    /// The node's hybrid logical clock.
    pub hlc: &'a mut Hlc,
    touched: Vec<DocId>,
    changed: Vec<DocId>,
    compact: Vec<DocId>,
}

impl Ctx<'_> {
    /// The document (loaded or created empty), for reading or changing. Changing it
    /// obliges the caller to [`Ctx::persist`] it in the same job.
    ///
    /// # Errors
    /// [`StoreError::Doc`] when it cannot be loaded.
    pub fn doc(&mut self, id: &DocId) -> Result<&mut Automerge, StoreError> {
        if !self.touched.contains(id) {
            self.touched.push(id.clone());
        }
        Ok(self.docs.get_or_create(self.conn, id)?)
    }

    /// Stores what changed in `id` since `before` and records it as changed (subscribers
    /// are told after commit).
    ///
    /// # Errors
    /// [`StoreError::Doc`].
    pub fn persist(&mut self, id: &DocId, before: &[ChangeHash]) -> Result<(), StoreError> {
        let am = self.docs.get_or_create(self.conn, id)?;
        if am.get_heads() != before {
            // Compaction runs later on the maintenance thread, off the sale's latency.
            if docstore::append(self.conn, id, am, before)?.compact && !self.compact.contains(id) {
                self.compact.push(id.clone());
            }
            if !self.changed.contains(id) {
                self.changed.push(id.clone());
            }
        }
        Ok(())
    }

    /// Deletes a document from storage and memory (in this job's transaction).
    ///
    /// # Errors
    /// [`StoreError::Doc`].
    pub fn drop_doc(&mut self, id: &DocId) -> Result<(), StoreError> {
        docstore::delete(self.conn, id)?;
        self.docs.forget(id);
        self.changed.retain(|d| d != id);
        Ok(())
    }

    /// Tick the clock for a new local event at the current system time.
    pub fn tick(&mut self) -> HlcTimestamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.hlc.tick(now)
    }
}

type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut Ctx<'_>) -> (bool, Finish) + Send>;

/// Handle to the node database. Cheap to clone.
#[derive(Clone)]
pub struct Db(Arc<Inner>);

struct Inner {
    /// Held while the node lives: one node per data directory.
    _lock: std::fs::File,
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    changes: broadcast::Sender<DocId>,
}

impl Db {
    /// Opens (creating if needed) `DIR/node.sqlite`, migrates it and starts the writer
    /// thread.
    ///
    /// # Errors
    /// [`StoreError`] when the directory or database cannot be opened.
    pub fn open(dir: &Path) -> Result<Db, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
        // Staff hashes and keys live here: owner only.
        caja_shared::auth::tokens::make_private(dir).map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
        let lock = lock_data_dir(dir)?;
        let path = dir.join("node.sqlite");
        let conn = Connection::open(&path)?;
        caja_shared::auth::tokens::make_private(&path).map_err(|e| StoreError::Io(path.clone(), e))?;
        schema::configure_writer(&conn)?;
        schema::migrate(&conn)?;
        let hlc = Hlc::resume(last_hlc(&conn)?);
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (changes, _) = broadcast::channel(4096);
        let notify = changes.clone();
        let maint_conn = Connection::open(&path)?;
        schema::configure_maintenance(&maint_conn)?;
        let (maint, maint_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("caja-maintenance".into())
            .spawn(move || maintenance_loop(maint_conn, maint_rx))
            .map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
        std::thread::Builder::new()
            .name("caja-writer".into())
            .spawn(move || writer_loop(conn, rx, hlc, notify, maint))
            .map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
        Ok(Db(Arc::new(Inner {
            _lock: lock,
            path,
            jobs,
            readers: Mutex::new(Vec::new()),
            changes,
        })))
    }

    /// Path of the SQLite file.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Runs `f` on the writer thread in its own savepoint and waits until its batch has
    /// committed. An `Err` from `f` rolls back its savepoint only.
    ///
    /// # Errors
    /// The closure's error, [`StoreError::Commit`] when the batch failed to commit, or
    /// [`StoreError::WriterGone`].
    pub async fn write<R, E>(
        &self,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R, E>>();
        let job: Job = Box::new(move |ctx| {
            let res = f(ctx);
            let ok = res.is_ok();
            let finish: Finish = Box::new(move |commit| {
                let out = match (res, commit) {
                    (Ok(r), Ok(())) => Ok(r),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(msg)) => Err(E::from(StoreError::Commit(msg))),
                };
                let _ = tx.send(out);
            });
            (ok, finish)
        });
        self.0
            .jobs
            .send(job)
            .await
            .map_err(|_| E::from(StoreError::WriterGone))?;
        rx.await.map_err(|_| E::from(StoreError::WriterGone))?
    }

    /// Runs a read-only query on a pooled connection, off the async executor.
    ///
    /// # Errors
    /// The closure's error or [`StoreError::Task`].
    pub async fn read<R, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = db.take_reader().map_err(E::from)?;
            let res = f(&conn);
            db.put_reader(conn);
            res
        })
        .await
        .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    fn take_reader(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self
            .0
            .readers
            .lock()
            .map_err(|e| StoreError::Task(e.to_string()))?
            .pop()
        {
            return Ok(c);
        }
        let c = Connection::open_with_flags(
            &self.0.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        schema::configure_reader(&c)?;
        Ok(c)
    }

    fn put_reader(&self, c: Connection) {
        if let Ok(mut pool) = self.0.readers.lock()
            && pool.len() < 8
        {
            pool.push(c);
        }
    }

    /// Subscribes to documents changed by committed writes.
    pub fn subscribe(&self) -> broadcast::Receiver<DocId> {
        self.0.changes.subscribe()
    }
}

/// Takes an exclusive advisory lock on `DIR/node.lock` for the life of the node, so two
/// processes never serve one data directory (they would share a node id and race).
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = dir.join("node.lock");
    let file = std::fs::File::create(&path).map_err(|e| StoreError::Io(path.clone(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Io(
            dir.to_path_buf(),
            std::io::Error::other("another caja-node is already using this data directory"),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io(path, e)),
    }
}

fn last_hlc(conn: &Connection) -> Result<HlcTimestamp, StoreError> {
    let (wall, counter): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT hlc_wall, hlc_counter FROM facts WHERE local = 1 ORDER BY hlc_wall DESC, hlc_counter DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok((None, None)) } else { Err(e) })?;
    Ok(HlcTimestamp {
        wall_ms: wall.unwrap_or(0) as u64,
        counter: counter.unwrap_or(0) as u32,
    })
}

/// Compacts documents the writer reports and checkpoints the WAL, on its own connection,
/// so neither a document-sized save nor a checkpoint lands on a sale's latency. Ends when
/// the writer ends.
fn maintenance_loop(mut conn: Connection, rx: std::sync::mpsc::Receiver<DocId>) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(doc) => {
                if let Err(e) = docstore::compact_stored(&mut conn, &doc) {
                    tracing::warn!(%doc, error = %e, "compaction failed; will retry at the next trigger");
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // PASSIVE never blocks the writer; it copies what it can.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                return;
            }
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    mut hlc: Hlc,
    notify: broadcast::Sender<DocId>,
    maint: std::sync::mpsc::Sender<DocId>,
) {
    let mut cache = DocCache::new(DOC_CACHE);
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut finishes: Vec<Finish> = Vec::with_capacity(batch.len());
        let mut changed: Vec<DocId> = Vec::new();
        let mut compact: Vec<DocId> = Vec::new();
        // IMMEDIATE: take the write lock at BEGIN (waiting up to busy_timeout if the
        // maintenance thread holds it) instead of failing at the first write on a stale
        // read snapshot (SQLITE_BUSY_SNAPSHOT).
        let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "cannot begin a write transaction");
                // Run nothing; tell every caller.
                for job in batch {
                    let _ = job; // dropping the job drops its reply channel: callers see WriterGone
                }
                continue;
            }
        };
        let mut tx = tx;
        for job in batch {
            let sp = match tx.savepoint() {
                Ok(sp) => sp,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open a savepoint");
                    continue;
                }
            };
            let (ok, finish, touched, job_changed, job_compact) = {
                let mut ctx = Ctx {
                    conn: &sp,
                    docs: &mut cache,
                    hlc: &mut hlc,
                    touched: Vec::new(),
                    changed: Vec::new(),
                    compact: Vec::new(),
                };
                let (ok, finish) = job(&mut ctx);
                (ok, finish, ctx.touched, ctx.changed, ctx.compact)
            };
            if ok {
                match sp.commit() {
                    Ok(()) => {
                        changed.extend(job_changed);
                        compact.extend(job_compact);
                        finishes.push(finish);
                    }
                    Err(e) => {
                        for d in touched {
                            cache.forget(&d);
                        }
                        finish(Err(e.to_string()));
                    }
                }
            } else {
                drop(sp); // rolls the savepoint back
                for d in touched {
                    cache.forget(&d);
                }
                finishes.push(finish);
            }
        }
        match tx.commit() {
            Ok(()) => {
                for f in finishes {
                    f(Ok(()));
                }
                changed.sort();
                changed.dedup();
                for d in changed {
                    let _ = notify.send(d);
                }
                compact.dedup();
                for d in compact {
                    let _ = maint.send(d);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "write batch failed to commit");
                cache.clear();
                for f in finishes {
                    f(Err(e.to_string()));
                }
            }
        }
    }
}
