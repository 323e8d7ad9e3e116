//! The admin REST API for head office (axum): stores, enrollment codes, nodes, users,
//! roles, catalog, reports, the audit log, login, health and the OpenAPI document at
//! `/openapi.json`.
//!
//! Every route is in ONE table ([`access`]) with the access it requires; the router is
//! built from it and one middleware (`auth::authorize`) checks the bearer token and the
//! permission. Plain HTTP only (TLS for the admin API comes later): the binary refuses a
//! non-loopback listener unless `--allow-plain-http` is given.
//!
//! - [`error`] holds problem+json errors and extractors.
//! - [`access`] holds the route table.
//! - [`auth`] holds the access check and token issuing.
//! - [`routes`] holds the handlers.
//! - [`openapi`] holds the OpenAPI document.
//!
//! Limits ([`crate::ServerOptions`]): request bodies (1 MiB), request time (30 s), requests
//! per client IP per second (all routes, 50), logins and refreshes per client IP per
//! minute (10); beyond a rate limit: 429 `rate-limited` with `Retry-After`.

pub mod access;
pub mod auth;
pub mod error;
pub mod https;
pub mod openapi;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::SyncServer;
use error::ApiError;

/// Default largest request body, in bytes (1 MiB).
pub const BODY_LIMIT: usize = 1 << 20;

/// Default longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A cleanup of a rate limiter's memory (forgets quiet addresses).
pub type Trim = Box<dyn Fn() + Send + Sync>;

/// The 429 problem of a rate limit.
fn too_many(e: tower_governor::GovernorError) -> Response {
    match e {
        tower_governor::GovernorError::TooManyRequests { wait_time, .. } => {
            tracing::warn!(retry_after = wait_time, "admin API rate limit exceeded");
            // governor gives whole seconds rounded down: one more is never too early.
            ApiError::RateLimited(wait_time + 1).into_response()
        }
        other => {
            tracing::error!(error = %other, "rate limiter could not identify the client");
            ApiError::Internal.into_response()
        }
    }
}

/// A per-client-IP rate limit layer.
type IpLimit = GovernorLayer<
    PeerIpKeyExtractor,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    axum::body::Body,
>;

/// A per-client-IP limit of `burst` requests replenished one per `period`.
fn limit(period: Duration, burst: u32) -> Option<(IpLimit, Trim)> {
    let config = Arc::new(
        GovernorConfigBuilder::default()
            .period(period)
            .burst_size(burst.max(1))
            .key_extractor(PeerIpKeyExtractor)
            .finish()?,
    );
    let limiter = config.limiter().clone();
    let trim: Trim = Box::new(move || limiter.retain_recent());
    Some((GovernorLayer::new(config).error_handler(too_many), trim))
}

/// The router and its rate limiters' cleanups (the server calls them every minute).
pub fn router_with_limits(server: SyncServer) -> (Router, Vec<Trim>) {
    let options = server.options().clone();
    let mut trims = Vec::new();
    let per_minute = options.logins_per_minute.max(1);
    let login = limit(Duration::from_secs(60) / per_minute, per_minute);
    let per_second = options.requests_per_second.max(1);
    let global = limit(Duration::from_secs(1) / per_second, per_second);
    let mut router = Router::new();
    for r in access::routes() {
        let mut handler = r.handler.route_layer(axum::middleware::from_fn_with_state(
            (server.clone(), r.spec.access),
            auth::authorize,
        ));
        if r.spec.login_limited
            && let Some((layer, _)) = &login
        {
            handler = handler.route_layer(layer.clone());
        }
        router = router.route(r.spec.path, handler);
    }
    if let Some((_, t)) = login {
        trims.push(t);
    }
    let mut router = router
        .fallback(error::not_found)
        .with_state(server)
        .layer(RequestBodyLimitLayer::new(options.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ));
    if let Some((layer, t)) = global {
        router = router.layer(layer);
        trims.push(t);
    }
    let router = router
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::map_response(error::problemize))
        .layer(TraceLayer::new_for_http());
    (router, trims)
}

/// The admin API router over `server`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the rate limits key on the
/// client's address.
pub fn router(server: SyncServer) -> Router {
    router_with_limits(server).0
}

#[cfg(test)]
mod tests;
