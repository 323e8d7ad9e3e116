//! Health probes for orchestrators and the desktop app.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::Node;
use crate::store::StoreError;

/// Readiness details.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `not-ready`.
    pub status: String,
    /// `ok` or the database error.
    pub database: String,
    /// `connected`, `offline` (selling goes on) or `standalone`.
    pub sync: String,
}

/// The process is alive.
#[utoipa::path(get, path = "/health/live", responses((status = 200, description = "alive")))]
pub async fn live() -> &'static str {
    "ok"
}

/// The node can take sales: its database answers. Being offline from the sync server does
/// not make it unready (offline is normal), but it is reported.
#[utoipa::path(get, path = "/health/ready", responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn ready(State(node): State<Node>) -> (StatusCode, Json<Ready>) {
    let db = node
        .db()
        .read(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(StoreError::from)
        })
        .await;
    let sync = if !node.link().configured() {
        "standalone"
    } else if node.link().status().connected {
        "connected"
    } else {
        "offline"
    };
    match db {
        Ok(_) => (
            StatusCode::OK,
            Json(Ready {
                status: "ready".into(),
                database: "ok".into(),
                sync: sync.into(),
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Ready {
                status: "not-ready".into(),
                database: e.to_string(),
                sync: sync.into(),
            }),
        ),
    }
}
