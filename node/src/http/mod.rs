//! The node's REST API on the store LAN (`/v1/...`), its OpenAPI document and error
//! mapping.
//!
//! - [`error`]: `ApiError` and RFC 9457 problem bodies.
//! - [`body`]: JSON parsing and `Idempotency-Key`.
//! - [`routes`]: handlers per resource.

pub mod body;
pub mod error;
pub mod routes;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::{get, post, put};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::app::Node;
use error::ApiError;
use routes::{health, products, reports, sales, stock, sync};

/// The OpenAPI document of the node API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Caja node API",
        description = "Store node REST API: catalog, sales, refunds, stock, reports, sync status. Errors are application/problem+json (RFC 9457)."
    ),
    paths(
        products::put,
        products::import,
        products::list,
        products::get,
        products::by_barcode,
        sales::create,
        sales::get,
        sales::refund,
        stock::get,
        stock::create,
        reports::daily,
        sync::status,
        sync::set_link,
        health::live,
        health::ready,
    )
)]
pub struct ApiDoc;

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

async fn no_route(req: Request) -> ApiError {
    ApiError::NoRoute(format!("{} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} {}", req.method(), req.uri().path()))
}

/// Builds the router with its limits: body size (`max_body_bytes`, CSV imports 8x),
/// 30 s request timeout, request tracing.
pub fn router(node: Node) -> Router {
    let limit = node.config().max_body_bytes;
    Router::new()
        .route("/v1/products", get(products::list))
        .route(
            "/v1/products:import",
            post(products::import).layer(DefaultBodyLimit::max(limit * 8)),
        )
        .route("/v1/products/by-barcode/{code}", get(products::by_barcode))
        .route("/v1/products/{sku}", put(products::put).get(products::get))
        .route("/v1/sales", post(sales::create))
        .route("/v1/sales/{id}", get(sales::get))
        .route("/v1/refunds", post(sales::refund))
        .route("/v1/stock/movements", post(stock::create))
        .route("/v1/stock/{sku}", get(stock::get))
        .route("/v1/reports/daily", get(reports::daily))
        .route("/v1/sync/status", get(sync::status))
        .route("/v1/sync/link", put(sync::set_link))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/openapi.json", get(openapi))
        // After every route: it applies to the routes added so far. axum still sets `Allow`.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(node)
}
