//! `/v1/stores`: register stores, list them, and issue one-time enrollment codes for
//! their nodes.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use caja_shared::ids::StoreCode;
use caja_shared::payments::PaymentSettings;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::SyncServer;
use crate::http::auth::Principal;
use crate::http::error::{ApiError, ApiJson, ApiJsonOrDefault, ApiPath, Problem};

/// Body of `POST /v1/stores`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStore {
    /// Store code: 1-40 characters of a-z, 0-9 and '-', not starting with '-'.
    #[schema(example = "uk")]
    pub code: String,
    /// Display name, 1-200 characters.
    #[schema(example = "United Kingdom")]
    pub name: String,
}

/// Answer of `POST /v1/stores`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StoreCreated {
    /// The store code.
    pub code: String,
    /// The display name.
    pub name: String,
}

/// Body of `POST /v1/stores/{code}/enrollment-codes`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeIn {
    /// Hours the code stays valid (default 24, at most 720).
    #[serde(default)]
    pub ttl_hours: Option<u32>,
}

/// A one-time enrollment code: shown only here; only its SHA-256 is stored.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CodeOut {
    /// The store a node enrolled with it joins.
    pub store: String,
    /// The code (`XXXXX-XXXXX-XXXXX-XXXXX`, case-insensitive).
    pub code: String,
    /// When it stops working (RFC 3339, UTC).
    pub expires_at: String,
}

impl std::fmt::Debug for CodeOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeOut")
            .field("store", &self.store)
            .field("code", &"<redacted>")
            .finish()
    }
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

/// Registers a store (and its staff document).
#[utoipa::path(post, path = "/v1/stores", tag = "stores", request_body = CreateStore,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Store registered", body = StoreCreated),
        (status = 400, description = "Bad code or name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Store exists", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiJson(body): ApiJson<CreateStore>,
) -> Result<(StatusCode, axum::Json<StoreCreated>), ApiError> {
    me.chain_wide("registering a store")?;
    let code: StoreCode = body
        .code
        .parse()
        .map_err(|e: caja_shared::ids::StoreCodeError| ApiError::BadRequest(e.to_string()))?;
    server.create_store(&me.actor(), code.clone(), &body.name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(StoreCreated {
            code: code.to_string(),
            name: body.name.trim().to_string(),
        }),
    ))
}

/// Issues a one-time enrollment code for a store's node.
#[utoipa::path(post, path = "/v1/stores/{code}/enrollment-codes", tag = "stores", request_body = CodeIn,
    security(("bearer" = [])),
    params(("code" = String, Path, description = "Store code")),
    responses(
        (status = 201, description = "The code (shown only now)", body = CodeOut),
        (status = 404, description = "No such store", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad ttl_hours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn enrollment_code(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(code): ApiPath<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<CodeIn>,
) -> Result<(StatusCode, axum::Json<CodeOut>), ApiError> {
    let store: StoreCode = code
        .parse()
        .map_err(|_| ApiError::NotFound(format!("store {code:?} does not exist")))?;
    me.within("an enrollment code", [store.as_str()])?;
    let hours = body.ttl_hours.unwrap_or(24);
    if hours == 0 || hours > 720 {
        return Err(ApiError::Invalid {
            field: "ttl_hours",
            reason: "must be 1 to 720 hours".into(),
        });
    }
    let issued = server
        .enrollment_code(&me.actor(), &store, Duration::from_secs(u64::from(hours) * 3600))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CodeOut {
            store: store.to_string(),
            code: issued.code.expose().to_string(),
            expires_at: issued
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    ))
}

/// Lists the registered stores.
#[utoipa::path(get, path = "/v1/stores", tag = "stores",
    security(("bearer" = [])),
    responses((status = 200, description = "Stores by code", body = [StoreOut])))]
pub async fn list(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
) -> Result<axum::Json<Vec<StoreOut>>, ApiError> {
    let stores = server.stores().await?;
    Ok(axum::Json(
        stores
            .into_iter()
            .filter(|s| me.sees(s.row.code.as_str()))
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

/// Parses a store code from the path; a malformed one is "no such store".
fn store_code(code: &str) -> Result<StoreCode, ApiError> {
    code.parse()
        .map_err(|_| ApiError::NotFound(format!("store {code:?} does not exist")))
}

/// A store's card-payment settings (offline floor limit, caps, window, forwarding deadline).
#[utoipa::path(get, path = "/v1/stores/{code}/payment-settings", tag = "stores",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "Store code")),
    responses(
        (status = 200, description = "The settings (defaults until set)", body = PaymentSettings),
        (status = 403, description = "Not one of the caller's stores", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn payment_settings(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(code): ApiPath<String>,
) -> Result<axum::Json<PaymentSettings>, ApiError> {
    let store = store_code(&code)?;
    me.within("payment settings", [store.as_str()])?;
    Ok(axum::Json(server.payment_settings(&store).await?))
}

/// Sets a store's card-payment settings; they replicate to the store's nodes. Audited
/// as `store.payment_settings_changed`.
#[utoipa::path(put, path = "/v1/stores/{code}/payment-settings", tag = "stores",
    request_body = PaymentSettings,
    security(("bearer" = [])),
    params(("code" = String, Path, description = "Store code")),
    responses(
        (status = 200, description = "The settings as stored", body = PaymentSettings),
        (status = 403, description = "Not one of the caller's stores", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such store", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad value (the problem names the field)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_payment_settings(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(code): ApiPath<String>,
    ApiJson(body): ApiJson<PaymentSettings>,
) -> Result<axum::Json<PaymentSettings>, ApiError> {
    let store = store_code(&code)?;
    me.within("payment settings", [store.as_str()])?;
    Ok(axum::Json(
        server.set_payment_settings(&me.actor(), &store, body).await?,
    ))
}
