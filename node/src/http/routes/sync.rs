//! `/v1/sync`: the state of the link to the sync server, and switching it on or off.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use caja_shared::docs::DocId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::Node;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::store::StoreError;

/// `GET /v1/sync/status` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    /// This node's id.
    pub node_id: String,
    /// Its store.
    pub store: String,
    /// Whether a sync server is configured.
    pub configured: bool,
    /// Whether the link is switched on.
    pub enabled: bool,
    /// Whether a session with the server is live.
    pub connected: bool,
    /// The server address.
    pub server: Option<String>,
    /// Facts recorded here that the server has not acknowledged yet.
    pub pending_facts: u64,
    /// Last time the server was heard from (RFC 3339, UTC).
    pub last_sync_at: Option<String>,
    /// Last connection error.
    pub last_error: Option<String>,
    /// Heads of the local catalog document (hex): equal to the server's when in sync.
    pub catalog_heads: Vec<String>,
    /// Products in the local catalog.
    pub catalog_products: u64,
    /// UDP bytes sent to the server since the node started.
    pub bytes_sent: u64,
    /// UDP bytes received from the server since the node started.
    pub bytes_received: u64,
}

/// The sync link's state.
#[utoipa::path(get, path = "/v1/sync/status", responses((status = 200, body = SyncStatus)))]
pub async fn status(State(node): State<Node>) -> Result<Json<SyncStatus>, ApiError> {
    let (pending, heads, products) = node
        .db()
        .read(|c| -> Result<(i64, Vec<String>, i64), StoreError> {
            let pending: i64 = c.query_row(
                "SELECT COUNT(*) FROM facts WHERE local = 1 AND acked = 0",
                [],
                |r| r.get(0),
            )?;
            let products: i64 = c.query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0))?;
            let mut heads: Vec<String> = caja_shared::docstore::all_heads(c)
                .map_err(StoreError::from)?
                .into_iter()
                .filter(|(d, _)| *d == DocId::Catalog)
                .flat_map(|(_, h)| h.into_iter().map(|h| h.to_string()))
                .collect();
            heads.sort();
            Ok((pending, heads, products))
        })
        .await?;
    let link = node.link();
    let st = link.status();
    Ok(Json(SyncStatus {
        node_id: node.identity().node_id.to_string(),
        store: node.identity().store.to_string(),
        configured: link.configured(),
        enabled: link.enabled(),
        connected: st.connected,
        server: link.server(),
        pending_facts: pending as u64,
        last_sync_at: st.last_sync_at.map(|t| t.to_rfc3339()),
        last_error: st.last_error,
        catalog_heads: heads,
        catalog_products: products as u64,
        bytes_sent: st.bytes_sent,
        bytes_received: st.bytes_received,
    }))
}

/// `PUT /v1/sync/link` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// `false` takes the store offline (sales go on; facts wait); `true` reconnects.
    pub enabled: bool,
}

/// Switches the sync link on or off.
#[utoipa::path(put, path = "/v1/sync/link", request_body = LinkRequest,
    responses((status = 200, body = SyncStatus), (status = 400, body = Problem)))]
pub async fn set_link(
    State(node): State<Node>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<SyncStatus>, ApiError> {
    let req: LinkRequest = body::json(&headers, &bytes?)?;
    node.link().set_enabled(req.enabled);
    status(State(node)).await
}
