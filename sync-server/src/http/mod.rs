//! The admin REST API for head office (axum): stores, catalog, reports, health and the
//! OpenAPI document at `/openapi.json`.
//!
//! **No authentication yet**: anyone who reaches the HTTP port can register stores and
//! change the catalog, so bind it to loopback or a trusted network. Role-based access
//! control comes in a later issue.
//!
//! - [`error`] holds problem+json errors and extractors.
//! - [`routes`] holds the handlers.
//! - [`openapi`] holds the OpenAPI document.
//!
//! Limits: request bodies 1 MiB, requests 30 s.

pub mod error;
pub mod openapi;
pub mod routes;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::SyncServer;

/// Largest request body accepted, in bytes (1 MiB).
pub const BODY_LIMIT: usize = 1 << 20;

/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The router and the rate limiters' cleanups (call them now and then).
pub fn router_with_limits(server: SyncServer) -> (Router, Vec<Box<dyn Fn() + Send + Sync>>) {
    (router(server), Vec::new())
}

/// The admin API router over `server`.
pub fn router(server: SyncServer) -> Router {
    Router::new()
        .route(
            "/v1/stores",
            post(routes::stores::create).get(routes::stores::list),
        )
        .route(
            "/v1/products/{sku}",
            put(routes::products::put).get(routes::products::get),
        )
        .route("/v1/products:batch", post(routes::products::batch))
        .route("/v1/catalog", get(routes::catalog::get))
        .route("/v1/reports/sales", get(routes::reports::sales))
        .route("/health/live", get(routes::health::live))
        .route("/health/ready", get(routes::health::ready))
        .route("/openapi.json", get(openapi::get))
        .fallback(error::not_found)
        .with_state(server)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::map_response(error::problemize))
        .layer(TraceLayer::new_for_http())
}

#[cfg(test)]
mod tests;
