//! `/v1/products`: write products into the chain catalog (one or a batch, each write one
//! automerge transaction pushed to every connected node) and read them back, one or a
//! page at a time.

use axum::extract::State;
use caja_shared::docs::{Product, ProductInput, ProductView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::SyncServer;
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};

/// One product of `POST /v1/products:batch`: the SKU plus the fields of
/// [`ProductInput`] (unknown fields refused, as there).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductWithSku {
    /// Stock keeping unit, 1-64 characters without control characters.
    pub sku: String,
    /// The product's fields.
    #[serde(flatten)]
    pub fields: ProductInput,
}

impl<'de> Deserialize<'de> for ProductWithSku {
    // By hand: `deny_unknown_fields` does not work through `flatten`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut object = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let sku = match object.remove("sku") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => return Err(D::Error::custom(format!("sku must be a string, not {other}"))),
            None => return Err(D::Error::missing_field("sku")),
        };
        let fields = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| D::Error::custom(format!("product {sku:?}: {e}")))?;
        Ok(ProductWithSku { sku, fields })
    }
}

/// Answer of `POST /v1/products:batch`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Written {
    /// Number of products written.
    pub written: usize,
}

/// Parses and validates one product ([`ProductInput::validated`]); the reason names the
/// SKU, for the items of a batch.
fn to_product(sku: &str, p: ProductInput) -> Result<Product, ApiError> {
    p.validated(sku).map_err(|e| ApiError::Invalid {
        field: e.field,
        reason: format!("product {sku:?}: {}", e.reason),
    })
}

/// Creates or updates one product.
#[utoipa::path(put, path = "/v1/products/{sku}", tag = "products", request_body = ProductInput,
    params(("sku" = String, Path, description = "Stock keeping unit")),
    responses(
        (status = 200, description = "The product as stored", body = ProductView),
        (status = 422, description = "Invalid product (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Not JSON, or an unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(
    State(server): State<SyncServer>,
    axum::Extension(me): axum::Extension<crate::http::auth::Principal>,
    ApiPath(sku): ApiPath<String>,
    ApiJson(body): ApiJson<ProductInput>,
) -> Result<axum::Json<ProductView>, ApiError> {
    let product = to_product(&sku, body)?;
    server.put_products(&me.actor(), vec![product.clone()]).await?;
    Ok(axum::Json(product.into()))
}

/// Creates or updates many products in one catalog transaction; all or nothing.
#[utoipa::path(post, path = "/v1/products:batch", tag = "products", request_body = [ProductWithSku],
    responses(
        (status = 200, description = "Products written", body = Written),
        (status = 422, description = "An invalid product (the field is named; nothing written)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Not JSON, or an unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn batch(
    State(server): State<SyncServer>,
    axum::Extension(me): axum::Extension<crate::http::auth::Principal>,
    ApiJson(body): ApiJson<Vec<ProductWithSku>>,
) -> Result<axum::Json<Written>, ApiError> {
    let products = body
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            to_product(&p.sku, p.fields).map_err(|e| match e {
                ApiError::Invalid { field, reason } => ApiError::Invalid {
                    field,
                    reason: format!("item {i}, {reason}"),
                },
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let written = products.len();
    server.put_products(&me.actor(), products).await?;
    Ok(axum::Json(Written { written }))
}

/// Reads one product.
#[utoipa::path(get, path = "/v1/products/{sku}", tag = "products",
    params(("sku" = String, Path, description = "Stock keeping unit")),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 404, description = "No such SKU", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(server): State<SyncServer>,
    ApiPath(sku): ApiPath<String>,
) -> Result<axum::Json<ProductView>, ApiError> {
    match server.product(&sku).await? {
        Some(p) => Ok(axum::Json(p.into())),
        None => Err(ApiError::NotFound(format!("no product with sku {sku:?}"))),
    }
}

/// Query of `GET /v1/products`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only products whose SKU, name or barcode contains this (case-insensitive).
    pub q: Option<String>,
    /// Start after this SKU (the `next` of the previous page).
    pub after: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Answer of `GET /v1/products`: one page in SKU order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    /// The products.
    pub products: Vec<ProductView>,
    /// When more follow: the `after` that fetches the next page.
    pub next: Option<String>,
}

/// The chain catalog, a page at a time in SKU order, optionally searched.
#[utoipa::path(get, path = "/v1/products", tag = "catalog", params(ListParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of products", body = ProductPage),
        (status = 400, description = "A malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "limit outside 1-1000", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(server): State<SyncServer>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<axum::Json<ProductPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=crate::catalog::MAX_PAGE).contains(&limit) {
        return Err(ApiError::Invalid {
            field: "limit",
            reason: format!("must be 1-{}", crate::catalog::MAX_PAGE),
        });
    }
    let needle = q.q.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let after = q.after.filter(|a| !a.is_empty());
    let (products, more) = server.products(needle, after, limit).await?;
    let next = more.then(|| products.last().map(|p| p.sku.clone())).flatten();
    Ok(axum::Json(ProductPage {
        products: products.into_iter().map(ProductView::from).collect(),
        next,
    }))
}
