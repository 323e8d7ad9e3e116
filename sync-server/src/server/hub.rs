//! The shared state of a running server: the database and the document cache behind one
//! mutex (used only from blocking tasks), the broadcast of changed documents, the nodes
//! connected now (by store, and each live connection by node id, so a revocation can
//! close them at once), the CA, the options and the enrollment rate limiter.
//!
//! All SQLite and automerge work runs in `tokio::task::spawn_blocking` with the mutex
//! held ([`Hub::with_core`]); no guard is ever held across an `.await`. One mutex means
//! one writer: simple and safe, and the bound on concurrency (not yet a read pool).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use automerge::ActorId;
use caja_shared::auth::RoleTable;
use caja_shared::docs::DocId;
use caja_shared::docstore::DocCache;
use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::money::Currency;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rusqlite::Connection;
use tokio::sync::broadcast;

use crate::ca::Authority;
use crate::error::ServerError;
use crate::server::ServerOptions;

/// Documents kept in memory at most; the least recently used leave beyond this.
pub const CACHE_CAPACITY: usize = 256;

/// Capacity of the changed-documents broadcast; a session that lags behind re-checks
/// the catalog instead.
const CHANGES_CAPACITY: usize = 1024;

/// Live authenticated connections by node: (registration id, connection).
type Live = HashMap<NodeId, Vec<(u64, quinn::Connection)>>;

/// The database connection and the loaded documents.
pub(crate) struct Core {
    /// The one SQLite connection.
    pub conn: Connection,
    /// Loaded automerge documents.
    pub cache: DocCache,
    /// The chain currency.
    pub currency: Currency,
    /// The server's actor id for the store documents it writes.
    pub actor: ActorId,
    /// The roles in force (built-in and the stored custom roles).
    pub roles: RoleTable,
}

/// Shared server state; cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub(crate) struct Hub {
    core: Arc<Mutex<Core>>,
    changes: broadcast::Sender<DocId>,
    connected: Arc<Mutex<HashMap<StoreCode, usize>>>,
    live: Arc<Mutex<Live>>,
    next_conn: Arc<AtomicU64>,
    /// The CA that signs node certificates.
    pub authority: Arc<Authority>,
    /// The server's settings.
    pub options: Arc<ServerOptions>,
    /// Connections without a client certificate (enrollments), per remote IP address.
    pub enroll_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Live connections and handshakes per remote IP address.
    pub conn_limits: Arc<crate::quic::limits::ConnLimits>,
    /// Wakes the card forwarder when a node's ledger changes arrive (they may hold
    /// stored-offline card payments), so forwarding starts at once, not at the next poll.
    forward_wake: Arc<tokio::sync::Notify>,
}

impl Core {
    /// Wraps an open, migrated connection.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`] reading the server's actor id or the custom roles.
    pub fn new(conn: Connection, currency: Currency) -> Result<Core, ServerError> {
        let actor = crate::stores::storedoc::server_actor(&conn)?;
        let roles = crate::users::directory::role_table(&conn)?;
        Ok(Core {
            conn,
            cache: DocCache::new(CACHE_CAPACITY),
            currency,
            actor,
            roles,
        })
    }
}

impl Hub {
    pub fn new(core: Core, authority: Arc<Authority>, options: ServerOptions) -> Hub {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        let per_minute = NonZeroU32::new(options.enrollments_per_minute).unwrap_or(NonZeroU32::MIN);
        Hub {
            core: Arc::new(Mutex::new(core)),
            changes,
            connected: Arc::default(),
            live: Arc::default(),
            next_conn: Arc::default(),
            authority,
            enroll_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            conn_limits: crate::quic::limits::ConnLimits::new(
                options.connections_per_ip,
                options.handshakes_per_minute,
            ),
            options: Arc::new(options),
            forward_wake: Arc::default(),
        }
    }

    /// Wakes the card forwarder (cheap; a wake with nobody waiting is kept for the next
    /// wait).
    pub fn wake_forwarder(&self) {
        self.forward_wake.notify_one();
    }

    /// What the card forwarder waits on besides its timer.
    pub fn forwarder_wake(&self) -> Arc<tokio::sync::Notify> {
        self.forward_wake.clone()
    }

    /// Registers a live, authenticated connection of `node` until the guard drops.
    pub fn register(&self, node: NodeId, conn: quinn::Connection) -> LiveGuard {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.live.lock() {
            m.entry(node).or_default().push((id, conn));
        }
        LiveGuard {
            live: self.live.clone(),
            node,
            id,
        }
    }

    /// Closes every live connection of `node` now with `code` and `reason`; returns how
    /// many there were.
    pub fn disconnect(&self, node: &NodeId, code: u32, reason: &str) -> usize {
        let conns = self
            .live
            .lock()
            .map(|m| m.get(node).cloned().unwrap_or_default())
            .unwrap_or_default();
        for (_, c) in &conns {
            c.close(quinn::VarInt::from_u32(code), reason.as_bytes());
        }
        conns.len()
    }

    /// The nodes with a live connection now.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.live
            .lock()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Whether `node` has a live connection now.
    pub fn is_node_connected(&self, node: &NodeId) -> bool {
        self.live.lock().map(|m| m.contains_key(node)).unwrap_or(false)
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

/// Keeps a node's connection in the live registry while alive.
pub(crate) struct LiveGuard {
    live: Arc<Mutex<Live>>,
    node: NodeId,
    id: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.live.lock()
            && let Some(v) = m.get_mut(&self.node)
        {
            v.retain(|(id, _)| *id != self.id);
            if v.is_empty() {
                m.remove(&self.node);
            }
        }
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
