//! `/v1/products`: catalog writes, CSV import, search and barcode lookup.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use caja_shared::docs::{ProductInput, ProductView};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::Node;
use crate::auth::Principal;
use crate::catalog::{self, ImportReport};
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::store::{audit, projection};

/// Creates or updates a product in this store's catalog (it replicates to head office).
#[utoipa::path(put, path = "/v1/products/{sku}", request_body = ProductInput,
    params(("sku" = String, Path, description = "SKU, 1-64 characters")),
    responses((status = 200, body = ProductView), (status = 422, body = Problem), (status = 400, body = Problem)))]
pub async fn put(
    State(node): State<Node>,
    p: Principal,
    Path(sku): Path<String>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<ProductView>, ApiError> {
    let input: ProductInput = body::json(&headers, &bytes?)?;
    let product = catalog::validate(&sku, input)?;
    let view = ProductView::from(&product);
    node.db()
        .write(move |ctx| {
            catalog::put(ctx, std::slice::from_ref(&product))?;
            audit::catalog_changed(ctx.conn, p.who(), &[product.sku], "put")?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(Json(view))
}

/// Imports a CSV catalog (`Content-Type: text/csv`), all or nothing.
#[utoipa::path(post, path = "/v1/products:import", request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 422, body = Problem), (status = 415, body = Problem)))]
pub async fn import(
    State(node): State<Node>,
    p: Principal,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportReport>, ApiError> {
    let bytes = bytes?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("text/csv") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "expected Content-Type: text/csv, got {ct:?}"
        )));
    }
    let products = catalog::parse_csv(&bytes)?;
    let written = products.len();
    node.db()
        .write(move |ctx| {
            catalog::put(ctx, &products)?;
            let skus: Vec<String> = products.iter().map(|p| p.sku.clone()).collect();
            audit::catalog_changed(ctx.conn, p.who(), &skus, "import")?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(Json(ImportReport { written }))
}

/// Search parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to match (prefixes of SKU, name or category); empty lists by SKU.
    #[serde(default)]
    pub q: String,
    /// Most results (1-200, default 50).
    pub limit: Option<usize>,
}

/// Searches the catalog.
#[utoipa::path(get, path = "/v1/products", params(SearchQuery),
    responses((status = 200, body = [ProductView]), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(node): State<Node>,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ProductView>>, ApiError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1-200"));
    }
    let found = node.db().read(move |c| catalog::search(c, &q.q, limit)).await?;
    Ok(Json(found.iter().map(ProductView::from).collect()))
}

/// One product.
#[utoipa::path(get, path = "/v1/products/{sku}", params(("sku" = String, Path, description = "SKU")),
    responses((status = 200, body = ProductView), (status = 404, body = Problem)))]
pub async fn get(State(node): State<Node>, Path(sku): Path<String>) -> Result<Json<ProductView>, ApiError> {
    let s = sku.clone();
    let p = node.db().read(move |c| projection::product(c, &s)).await?;
    p.map(|p| Json(ProductView::from(&p)))
        .ok_or_else(|| ApiError::NotFound(format!("product {sku}")))
}

/// Looks a product up by EAN-13 or UPC-A barcode (check digit verified).
#[utoipa::path(get, path = "/v1/products/by-barcode/{code}", params(("code" = String, Path, description = "12 or 13 digits")),
    responses((status = 200, body = ProductView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn by_barcode(
    State(node): State<Node>,
    Path(code): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    let p = node.db().read(move |c| catalog::by_barcode(c, &code)).await?;
    Ok(Json(ProductView::from(&p)))
}
