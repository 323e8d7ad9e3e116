//! The node's REST API on the store LAN (`/v1/...`), its OpenAPI document and error
//! mapping.
//!
//! - [`access`]: the route table (every route with its permission) and the one guard.
//! - [`error`]: `ApiError` and RFC 9457 problem bodies.
//! - [`body`]: JSON parsing and `Idempotency-Key` parsing.
//! - [`idempotent`]: fact-creating writes recorded once per `Idempotency-Key`.
//! - [`routes`]: handlers per resource.
//! - [`tls`]: HTTPS on the store LAN.

pub mod access;
pub mod body;
pub mod error;
pub mod idempotent;
pub mod routes;
pub mod tls;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use axum::response::{IntoResponse, Response};
use caja_shared::openapi::BearerAuth;
use caja_shared::problem;

use crate::app::Node;
use routes::{audit, auth, health, products, reports, sales, stock, sync};

/// The OpenAPI document of the node API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Caja node API",
        description = "Store node REST API: staff login, catalog, sales, refunds, stock, reports, audit, sync status. Every route but logins, health and this document needs `Authorization: Bearer <token>` (POST /v1/auth/login or /v1/auth/pin). Errors are application/problem+json (RFC 9457)."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        auth::login,
        auth::pin,
        auth::refresh,
        auth::logout,
        auth::me,
        auth::grant_override,
        audit::list,
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

pub(crate) async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

async fn no_route(req: Request) -> Response {
    problem::http::no_route(req.method(), req.uri().path()).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    problem::http::method_not_allowed(req.method(), req.uri().path()).into_response()
}

/// The detail of a 408 `timeout`: a write may have completed all the same (it runs on in
/// the writer), so retry with the same `Idempotency-Key`, or look before repeating it.
fn timeout_detail(timeout: std::time::Duration) -> String {
    format!(
        "the request took longer than {} s; a write may still have completed: retry it with the same Idempotency-Key, or check before repeating it",
        timeout.as_secs()
    )
}

/// Builds the router: the route table of [`access`] (each route behind its access check,
/// login and per-client rate limits), body size (`max_body_bytes`, CSV imports 8x), the
/// request timeout, request tracing, and problem+json (the code shared with head office)
/// for unknown routes and methods and for bare error responses of the layers.
pub fn router(node: Node) -> Router {
    let limit = node.config().max_body_bytes;
    let timeout = node.config().limits.request_timeout;
    access::router(node.clone())
        // After every route: it applies to the routes added so far. axum still sets `Allow`.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::map_response(move |res: Response| {
            let detail = timeout_detail(timeout);
            async move { problem::http::problemize(res, &detail) }
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(node)
}
