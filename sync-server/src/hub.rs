//! The shared state of a running server: the database and the document cache behind one
//! mutex (used only from blocking tasks), the broadcast of changed documents, and the
//! nodes connected now.
//!
//! All SQLite and automerge work runs in `tokio::task::spawn_blocking` with the mutex
//! held ([`Hub::with_core`]); no guard is ever held across an `.await`. One mutex means
//! one writer: simple and safe, and the bound on concurrency (not yet a read pool).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use caja_shared::docs::DocId;
use caja_shared::docstore::DocCache;
use caja_shared::ids::StoreCode;
use caja_shared::money::Currency;
use rusqlite::Connection;
use tokio::sync::broadcast;

use crate::error::ServerError;

/// Documents kept in memory at most; the least recently used leave beyond this.
pub const CACHE_CAPACITY: usize = 256;

/// Capacity of the changed-documents broadcast; a session that lags behind re-checks
/// the catalog instead.
const CHANGES_CAPACITY: usize = 1024;

/// The database connection and the loaded documents.
pub(crate) struct Core {
    /// The one SQLite connection.
    pub conn: Connection,
    /// Loaded automerge documents.
    pub cache: DocCache,
    /// The chain currency.
    pub currency: Currency,
}

/// Shared server state; cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub(crate) struct Hub {
    core: Arc<Mutex<Core>>,
    changes: broadcast::Sender<DocId>,
    connected: Arc<Mutex<HashMap<StoreCode, usize>>>,
}

impl Core {
    /// Wraps an open, migrated connection.
    pub fn new(conn: Connection, currency: Currency) -> Core {
        Core {
            conn,
            cache: DocCache::new(CACHE_CAPACITY),
            currency,
        }
    }
}

impl Hub {
    pub fn new(core: Core) -> Hub {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        Hub {
            core: Arc::new(Mutex::new(core)),
            changes,
            connected: Arc::default(),
        }
    }

    /// Runs `f` on a blocking thread with the core locked.
    ///
    /// A panic in an earlier holder poisons the mutex; the cache is then cleared (memory
    /// may be ahead of disk) and work continues from the durable state.
    pub async fn with_core<R, F>(&self, f: F) -> Result<R, ServerError>
    where
        F: FnOnce(&mut Core) -> R + Send + 'static,
        R: Send + 'static,
    {
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = match core.lock() {
                Ok(g) => g,
                Err(poisoned) => {
                    core.clear_poison();
                    let mut g = poisoned.into_inner();
                    g.cache.clear();
                    tracing::error!("core mutex was poisoned by a panic; document cache cleared");
                    g
                }
            };
            f(&mut guard)
        })
        .await
        .map_err(|e| ServerError::Task(e.to_string()))
    }

    /// Tells every session that `doc` changed here, so they push it to their nodes.
    pub fn changed(&self, doc: DocId) {
        // No receivers (no node connected) is fine.
        let _ = self.changes.send(doc);
    }

    /// A receiver of changed documents, for one session.
    pub fn subscribe(&self) -> broadcast::Receiver<DocId> {
        self.changes.subscribe()
    }

    /// Marks a node of `store` connected until the returned guard drops.
    pub fn connect(&self, store: StoreCode) -> ConnectedGuard {
        if let Ok(mut m) = self.connected.lock() {
            *m.entry(store.clone()).or_insert(0) += 1;
        }
        ConnectedGuard {
            connected: self.connected.clone(),
            store,
        }
    }

    /// Whether a node of `store` is connected now.
    pub fn is_connected(&self, store: &StoreCode) -> bool {
        self.connected
            .lock()
            .map(|m| m.get(store).is_some_and(|n| *n > 0))
            .unwrap_or(false)
    }
}

/// Keeps a store counted as connected while alive.
pub(crate) struct ConnectedGuard {
    connected: Arc<Mutex<HashMap<StoreCode, usize>>>,
    store: StoreCode,
}

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.connected.lock()
            && let Some(n) = m.get_mut(&self.store)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.store);
            }
        }
    }
}
