//! `/v1/products`: write products into the chain catalog (one or a batch, each write one
//! automerge transaction pushed to every connected node) and read them back, one or a
//! page at a time.

use axum::extract::State;
use caja_shared::docs::Product;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::SyncServer;
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};

/// Body of `PUT /v1/products/{sku}`. An unknown field is refused (a typo such as
/// `tax_rat` would otherwise clear the tax rate chain-wide).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    /// Display name.
    pub name: String,
    /// Unit price, tax exclusive, in major units: a non-negative decimal string (a JSON
    /// integer is taken too, as at the node).
    #[schema(example = "2.55", value_type = String)]
    #[serde(deserialize_with = "caja_shared::money::de_decimal_text")]
    pub unit_price: String,
    /// Exclusive tax rate as a fraction between 0 and 1 (default "0").
    #[schema(example = "0.05", value_type = Option<String>)]
    #[serde(default, deserialize_with = "caja_shared::money::de_opt_decimal_text")]
    pub tax_rate: Option<String>,
    /// EAN-13 or UPC-A barcode with a valid check digit.
    #[serde(default)]
    pub barcode: Option<String>,
    /// Category name.
    #[serde(default)]
    pub category: Option<String>,
    /// Whether the item has stock on hand (default true).
    #[serde(default)]
    pub stock_tracked: Option<bool>,
}

/// One product of `POST /v1/products:batch`: the SKU plus the fields of [`ProductIn`]
/// (unknown fields refused, as there).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductWithSku {
    /// Stock keeping unit, 1-64 characters without control characters.
    pub sku: String,
    /// The product's fields.
    #[serde(flatten)]
    pub fields: ProductIn,
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

/// A product as the API returns it; decimals are strings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductOut {
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price, tax exclusive, major units.
    pub unit_price: String,
    /// Exclusive tax rate as a fraction.
    pub tax_rate: String,
    /// Normalised 13-digit GTIN, if any.
    pub barcode: Option<String>,
    /// Category, if any.
    pub category: Option<String>,
    /// Whether the item has stock on hand.
    pub stock_tracked: bool,
}

impl From<Product> for ProductOut {
    fn from(p: Product) -> Self {
        ProductOut {
            sku: p.sku,
            name: p.name,
            unit_price: p.unit_price.to_string(),
            tax_rate: p.tax_rate.normalize().to_string(),
            barcode: p.barcode,
            category: p.category,
            stock_tracked: p.stock_tracked,
        }
    }
}

/// Answer of `POST /v1/products:batch`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Written {
    /// Number of products written.
    pub written: usize,
}

fn decimal(field: &'static str, sku: &str, text: &str) -> Result<Decimal, ApiError> {
    caja_shared::money::parse_decimal(text).map_err(|e| ApiError::Invalid {
        field,
        reason: format!("product {sku:?}: {text:?}: {e}"),
    })
}

/// Parses and validates one product.
fn to_product(sku: &str, p: ProductIn) -> Result<Product, ApiError> {
    let product = Product {
        sku: sku.to_string(),
        unit_price: decimal("unit_price", sku, &p.unit_price)?,
        tax_rate: match &p.tax_rate {
            Some(t) => decimal("tax_rate", sku, t)?,
            None => Decimal::ZERO,
        },
        name: p.name,
        barcode: p.barcode.filter(|b| !b.trim().is_empty()),
        category: p.category.filter(|c| !c.trim().is_empty()),
        stock_tracked: p.stock_tracked.unwrap_or(true),
    };
    product.validated().map_err(|e| ApiError::Invalid {
        field: e.field,
        reason: format!("product {sku:?}: {}", e.reason),
    })
}

/// Creates or updates one product.
#[utoipa::path(put, path = "/v1/products/{sku}", tag = "products", request_body = ProductIn,
    params(("sku" = String, Path, description = "Stock keeping unit")),
    responses(
        (status = 200, description = "The product as stored", body = ProductOut),
        (status = 422, description = "Invalid product (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Not JSON, or an unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(
    State(server): State<SyncServer>,
    axum::Extension(me): axum::Extension<crate::http::auth::Principal>,
    ApiPath(sku): ApiPath<String>,
    ApiJson(body): ApiJson<ProductIn>,
) -> Result<axum::Json<ProductOut>, ApiError> {
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
        (status = 200, description = "The product", body = ProductOut),
        (status = 404, description = "No such SKU", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(server): State<SyncServer>,
    ApiPath(sku): ApiPath<String>,
) -> Result<axum::Json<ProductOut>, ApiError> {
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
    pub products: Vec<ProductOut>,
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
        products: products.into_iter().map(ProductOut::from).collect(),
        next,
    }))
}
