//! `/v1/nodes`: enrolled store nodes, and revoking one (it is disconnected at once).

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use caja_shared::ids::NodeId;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::SyncServer;
use crate::http::auth::Principal;
use crate::http::error::{ApiError, ApiPath, Problem};

/// An enrolled node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeOut {
    /// Node id.
    pub node: String,
    /// Its store.
    pub store: String,
    /// When it enrolled (RFC 3339, UTC).
    pub enrolled_at: String,
    /// When its newest client certificate expires (RFC 3339, UTC).
    pub cert_not_after: String,
    /// When it was revoked, or null.
    pub revoked_at: Option<String>,
    /// Whether it is connected now.
    pub connected: bool,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Lists enrolled nodes.
#[utoipa::path(get, path = "/v1/nodes", tag = "nodes", security(("bearer" = [])),
    responses((status = 200, description = "Nodes by enrollment time", body = [NodeOut])))]
pub async fn list(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
) -> Result<axum::Json<Vec<NodeOut>>, ApiError> {
    Ok(axum::Json(
        server
            .nodes()
            .await?
            .into_iter()
            .filter(|n| me.sees(n.store.as_str()))
            .map(|n| NodeOut {
                node: n.node.to_string(),
                store: n.store.to_string(),
                enrolled_at: rfc3339(n.enrolled_at),
                cert_not_after: rfc3339(n.cert_not_after),
                revoked_at: n.revoked_at.map(rfc3339),
                connected: n.connected,
            })
            .collect(),
    ))
}

/// Revokes a node: its connections close now and its certificates are refused.
#[utoipa::path(post, path = "/v1/nodes/{id}/revoke", tag = "nodes", security(("bearer" = [])),
    params(("id" = String, Path, description = "Node id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such node", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let node: NodeId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no enrolled node {id:?}")))?;
    if me.scope.is_some() {
        // Another store's node is "not found" for a user tied to stores.
        let nodes = server.nodes().await?;
        let store = nodes.iter().find(|n| n.node == node).map(|n| n.store.to_string());
        match store {
            Some(s) if me.sees(&s) => {}
            _ => return Err(ApiError::NotFound(format!("no enrolled node {id:?}"))),
        }
    }
    server.revoke_node(&me.actor(), node).await?;
    Ok(StatusCode::NO_CONTENT)
}
