//! `/v1/stores`: register stores (returns the node token once) and list them.

use axum::extract::State;
use axum::http::StatusCode;
use caja_shared::ids::StoreCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::SyncServer;
use crate::http::error::{ApiError, ApiJson, Problem};

/// Body of `POST /v1/stores`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateStore {
    /// Store code: 1-40 characters of a-z, 0-9 and '-', not starting with '-'.
    #[schema(example = "uk")]
    pub code: String,
    /// Display name, 1-200 characters.
    #[schema(example = "United Kingdom")]
    pub name: String,
}

/// Answer of `POST /v1/stores`: the node token is shown only here.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StoreCreated {
    /// The store code.
    pub code: String,
    /// The display name.
    pub name: String,
    /// The node token (64 hex digits); only its SHA-256 is stored.
    pub token: String,
}

/// One store in `GET /v1/stores`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StoreOut {
    /// The store code.
    pub code: String,
    /// The display name.
    pub name: String,
    /// When a node of the store last spoke to the server (RFC 3339, UTC), or null.
    pub last_contact: Option<String>,
    /// Whether a node of the store is connected now.
    pub connected: bool,
    /// Facts of the store the server has received.
    pub facts: u64,
}

/// Registers a store and returns its node token.
#[utoipa::path(post, path = "/v1/stores", tag = "stores", request_body = CreateStore,
    responses(
        (status = 201, description = "Store registered", body = StoreCreated),
        (status = 400, description = "Bad code or name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Store exists", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(server): State<SyncServer>,
    ApiJson(body): ApiJson<CreateStore>,
) -> Result<(StatusCode, axum::Json<StoreCreated>), ApiError> {
    let code: StoreCode = body
        .code
        .parse()
        .map_err(|e: caja_shared::ids::StoreCodeError| ApiError::BadRequest(e.to_string()))?;
    server.create_store(code.clone(), &body.name).await?;
    let token = String::new();
    Ok((
        StatusCode::CREATED,
        axum::Json(StoreCreated {
            code: code.to_string(),
            name: body.name.trim().to_string(),
            token,
        }),
    ))
}

/// Lists the registered stores.
#[utoipa::path(get, path = "/v1/stores", tag = "stores",
    responses((status = 200, description = "Stores by code", body = [StoreOut])))]
pub async fn list(State(server): State<SyncServer>) -> Result<axum::Json<Vec<StoreOut>>, ApiError> {
    let stores = server.stores().await?;
    Ok(axum::Json(
        stores
            .into_iter()
            .map(|s| StoreOut {
                code: s.row.code.to_string(),
                name: s.row.name,
                last_contact: s
                    .row
                    .last_contact
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                connected: s.connected,
                facts: s.row.facts,
            })
            .collect(),
    ))
}
