//! `/v1/catalog`: the catalog document's heads and size.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::SyncServer;
use crate::http::error::ApiError;

/// Answer of `GET /v1/catalog`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogOut {
    /// Heads of the catalog document (sorted lowercase hex); a node with the same heads
    /// has the same catalog.
    pub heads: Vec<String>,
    /// Number of products.
    pub products: usize,
}

/// The catalog's heads and number of products.
#[utoipa::path(get, path = "/v1/catalog", tag = "catalog",
    responses((status = 200, description = "Catalog state", body = CatalogOut)))]
pub async fn get(State(server): State<SyncServer>) -> Result<axum::Json<CatalogOut>, ApiError> {
    let s = server.catalog_summary().await?;
    Ok(axum::Json(CatalogOut {
        heads: s.heads,
        products: s.products,
    }))
}
