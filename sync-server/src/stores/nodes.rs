//! Enrolled nodes as head office sees them, and their revocation.

use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::protocol::ErrorCode;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Actor, NewEntry};
use crate::db::TrustDb;
use crate::error::ServerError;
use crate::server::SyncServer;
use crate::stores::enrollment::ts;

/// An enrolled node as head office sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node id.
    pub node: NodeId,
    /// Its store.
    pub store: StoreCode,
    /// When it enrolled (UTC).
    pub enrolled_at: DateTime<Utc>,
    /// When its newest client certificate expires (UTC).
    pub cert_not_after: DateTime<Utc>,
    /// When head office revoked it, if it did.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether it is connected now.
    pub connected: bool,
}

impl SyncServer {
    /// Every enrolled node.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ServerError> {
        let rows = self.hub().with_core(|core| core.conn.list_nodes()).await??;
        Ok(rows
            .into_iter()
            .map(|r| NodeInfo {
                connected: self.hub().is_node_connected(&r.node),
                node: r.node,
                store: r.store,
                enrolled_at: ts(r.enrolled_at),
                cert_not_after: ts(r.cert_not_after),
                revoked_at: r.revoked_at.map(ts),
            })
            .collect())
    }

    /// Revokes a node on behalf of `by`: disconnects it now (QUIC close code
    /// `Unauthorized`, reason `node revoked`) and refuses its certificates from then on.
    ///
    /// # Errors
    /// [`ServerError::NotFound`] for an unknown node; [`ServerError::Sqlite`].
    pub async fn revoke_node(&self, by: &Actor, node: NodeId) -> Result<(), ServerError> {
        let by = by.clone();
        self.hub()
            .with_core(move |core| revoke(&core.conn, &by, &node))
            .await??;
        let n = self
            .hub()
            .disconnect(&node, ErrorCode::Unauthorized as u32, "node revoked");
        tracing::info!(%node, connections = n, "node revoked");
        Ok(())
    }
}

/// Every enrolled node as stored, on an open database (`caja-sync node list`).
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn list(conn: &rusqlite::Connection) -> Result<Vec<crate::db::NodeRow>, ServerError> {
    Ok(conn.list_nodes()?)
}

/// Revokes a node on `conn` and audits it (the CLI calls this directly; a running server
/// notices within a second and disconnects it).
///
/// # Errors
/// [`ServerError::NotFound`] for an unknown node; [`ServerError::Sqlite`].
pub fn revoke(conn: &rusqlite::Connection, by: &Actor, node: &NodeId) -> Result<(), ServerError> {
    let Some(store) = conn.revoke_node(node, Utc::now().timestamp())? else {
        return Err(ServerError::NotFound(format!("no enrolled node {node}")));
    };
    audit::record(
        conn,
        &NewEntry::new("node.revoked", json!({}))
            .node(node)
            .store(&store)
            .by(by),
    )
}
