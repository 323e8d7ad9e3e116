//! `/v1/facts/{id}`: one fact the stores sent, as projected (who recorded it, who
//! authorised it).

use axum::extract::State;

use crate::SyncServer;
use crate::http::error::{ApiError, ApiPath, Problem};

/// One projected fact as its JSON (schema of `caja_shared::facts::Fact`), including
/// `user`, `user_name` and `authorized_by`.
#[utoipa::path(get, path = "/v1/facts/{id}", tag = "reports", security(("bearer" = [])),
    params(("id" = String, Path, description = "Fact id (UUIDv7)")),
    responses(
        (status = 200, description = "The fact", content_type = "application/json"),
        (status = 404, description = "No such fact", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(server): State<SyncServer>,
    axum::Extension(me): axum::Extension<crate::http::auth::Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    match server.fact(&id).await? {
        // Another store's fact is "not found" for a user scoped to their stores.
        Some(f) if f["store"].as_str().is_some_and(|s| me.sees(s)) => Ok(axum::Json(f)),
        _ => Err(ApiError::NotFound(format!("no fact {id:?}"))),
    }
}
