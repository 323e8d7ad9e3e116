//! `/health/live` and `/health/ready`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::SyncServer;
use crate::http::error::{Problem, problem};

/// A health answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `"ok"`.
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn live() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// The database answers.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Database not answering", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ready(State(server): State<SyncServer>) -> Response {
    if server.ready().await {
        axum::Json(Health { status: "ok".into() }).into_response()
    } else {
        problem(StatusCode::SERVICE_UNAVAILABLE, "the database does not answer")
    }
}
