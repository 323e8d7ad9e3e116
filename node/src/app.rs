//! The node: opening its storage and identity, and running the REST API and the sync
//! client until shutdown.

use std::sync::Arc;

use caja_shared::docs::{self, DocId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::NodeConfig;
use crate::identity::{self, Identity};
use crate::store::{Db, StoreError};
use crate::sync::SyncLink;

/// A running node's shared handle. Cheap to clone.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

struct Inner {
    db: Db,
    identity: Identity,
    config: NodeConfig,
    link: SyncLink,
}

impl Node {
    /// Opens the node's data directory (creating it on first start), its identity and the
    /// catalog document.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be opened or belongs to another store.
    pub async fn open(config: NodeConfig) -> Result<Node, StoreError> {
        let db = Db::open(&config.data_dir)?;
        let (store, terminal, currency, dir) = (
            config.store.clone(),
            config.terminal.clone(),
            config.currency,
            config.data_dir.clone(),
        );
        let identity = db
            .write(move |ctx| -> Result<Identity, StoreError> {
                let id = identity::load_or_create(ctx, &store, &terminal, currency, &dir)?;
                // Store the shared catalog genesis so it replicates like any change.
                if caja_shared::docstore::load(ctx.conn, &DocId::Catalog)?.is_none() {
                    let am = ctx.doc(&DocId::Catalog)?;
                    let _ = docs::skus(am)?;
                    ctx.persist(&DocId::Catalog, &[])?;
                }
                Ok(id)
            })
            .await?;
        let link = SyncLink::new(config.sync.clone());
        Ok(Node(Arc::new(Inner {
            db,
            identity,
            config,
            link,
        })))
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// Who this node is.
    pub fn identity(&self) -> &Identity {
        &self.0.identity
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &NodeConfig {
        &self.0.config
    }

    /// The sync link (status, enable/disable).
    pub fn link(&self) -> &SyncLink {
        &self.0.link
    }

    /// Serves the REST API on `listener` and runs the sync client (if configured) until
    /// `shutdown` is cancelled; then stops accepting, finishes in-flight requests and
    /// waits for background tasks.
    ///
    /// # Errors
    /// I/O errors of the HTTP server.
    pub async fn serve(&self, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
        let tasks = TaskTracker::new();
        if let Some(target) = self.0.config.sync.clone() {
            let node = self.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { crate::sync::run(node, target, stop).await });
        }
        let app = crate::http::router(self.clone());
        let stop = shutdown.clone();
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        res
    }
}
