//! Who may call what: the node's route table. Every route is declared here ONCE with its
//! method, path, handler and [`Access`]; the router is built from this table, so a route
//! cannot exist without an access rule, and one guard checks it. The permission matrix
//! test (`node/tests/security.rs`) walks the same table with every role.
//!
//! Data-dependent rights (a price override, a refund without receipt) are checked by the
//! domain functions, which may accept a manager override instead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use caja_shared::auth::Permission;
use governor::middleware::NoOpMiddleware;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;

use super::error::ApiError;
use super::routes::{audit, auth, health, products, reports, sales, stock, sync};
use crate::app::Node;
use crate::auth::{AuthError, Principal, principal};
use caja_shared::problem::{self, ProblemType};

/// What a route requires of its caller (the type both APIs' route tables share).
pub use caja_shared::auth::Access;

/// One route of the node API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path pattern, axum syntax (`/v1/sales/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether the login rate limit applies (credentials are checked).
    pub login_limited: bool,
}

const fn route(method: Method, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        login_limited: false,
    }
}

const fn limited(method: Method, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        login_limited: true,
    }
}

/// The table: every route, its access, and its handler. `body_limit` is the node's
/// request body limit (CSV imports take 8x).
fn table(body_limit: usize) -> Vec<(Route, MethodRouter<Node>)> {
    use Access::{Authenticated, Public};
    use Permission as P;
    let perm = Access::Permission;
    vec![
        (limited(Method::POST, "/v1/auth/login", Public), post(auth::login)),
        (limited(Method::POST, "/v1/auth/pin", Public), post(auth::pin)),
        (
            limited(Method::POST, "/v1/auth/refresh", Public),
            post(auth::refresh),
        ),
        (
            route(Method::POST, "/v1/auth/logout", Authenticated),
            post(auth::logout),
        ),
        (route(Method::GET, "/v1/auth/me", Authenticated), get(auth::me)),
        (
            limited(Method::POST, "/v1/auth/override", Authenticated),
            post(auth::grant_override),
        ),
        (
            route(Method::GET, "/v1/audit", perm(P::AuditRead)),
            get(audit::list),
        ),
        (
            route(Method::GET, "/v1/products", perm(P::CatalogRead)),
            get(products::list),
        ),
        (
            route(Method::POST, "/v1/products:import", perm(P::CatalogWrite)),
            post(products::import).layer(DefaultBodyLimit::max(body_limit.saturating_mul(8))),
        ),
        (
            route(
                Method::GET,
                "/v1/products/by-barcode/{code}",
                perm(P::CatalogRead),
            ),
            get(products::by_barcode),
        ),
        (
            route(Method::PUT, "/v1/products/{sku}", perm(P::CatalogWrite)),
            put(products::put),
        ),
        (
            route(Method::GET, "/v1/products/{sku}", perm(P::CatalogRead)),
            get(products::get),
        ),
        (
            route(Method::POST, "/v1/sales", perm(P::SaleCreate)),
            post(sales::create),
        ),
        (
            route(Method::GET, "/v1/sales/{id}", perm(P::SaleRead)),
            get(sales::get),
        ),
        (
            route(Method::POST, "/v1/refunds", perm(P::RefundCreate)),
            post(sales::refund),
        ),
        (
            route(Method::POST, "/v1/stock/movements", perm(P::StockAdjust)),
            post(stock::create),
        ),
        (
            route(Method::GET, "/v1/stock/{sku}", perm(P::StockRead)),
            get(stock::get),
        ),
        (
            route(Method::GET, "/v1/reports/daily", perm(P::ReportRead)),
            get(reports::daily),
        ),
        (
            route(Method::GET, "/v1/sync/status", perm(P::SyncRead)),
            get(sync::status),
        ),
        (
            route(Method::PUT, "/v1/sync/link", perm(P::SyncManage)),
            put(sync::set_link),
        ),
        (route(Method::GET, "/health/live", Public), get(health::live)),
        (route(Method::GET, "/health/ready", Public), get(health::ready)),
        (route(Method::GET, "/openapi.json", Public), get(super::openapi)),
    ]
}

/// Every route of the node API with its access rule (for tests and documentation).
pub fn routes() -> Vec<Route> {
    table(1 << 20).into_iter().map(|(r, _)| r).collect()
}

#[derive(Clone)]
struct Guard {
    node: Node,
    route: Route,
}

/// The one check every route passes: its [`Access`] against the request's bearer token.
async fn check(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    if g.route.access == Access::Public {
        return next.run(req).await;
    }
    let p = match principal::authenticate(g.node.auth_ctx(), req.headers()).await {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Access::Permission(perm) = g.route.access
        && !p.permissions.contains(&perm)
    {
        tracing::info!(user = %p.username, permission = %perm, route = g.route.path, "permission denied");
        let action = format!("{} {}", g.route.method, g.route.path);
        return ApiError::from(AuthError::forbidden(&p, perm, action, "")).into_response();
    }
    req.extensions_mut().insert(p);
    next.run(req).await
}

type Limiter = GovernorLayer<PeerIpKeyExtractor, NoOpMiddleware, Body>;

/// A per-client-IP rate limit: `per` between replenishments, bursts of `burst`. Over the
/// limit: 429 `rate-limited` with `Retry-After`.
fn limiter(per: Duration, burst: u32) -> Limiter {
    let mut b = GovernorConfigBuilder::default();
    b.period(per.max(Duration::from_micros(1)))
        .burst_size(burst.max(1));
    // Invariant: a positive period and burst (ensured above) always make a config.
    #[allow(clippy::expect_used)]
    let config = Arc::new(b.finish().expect("positive rate-limit period and burst"));
    let limiter = config.limiter().clone();
    // Forget idle clients so the table of clients stays small.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if Arc::strong_count(&limiter) == 1 {
                return;
            }
            limiter.retain_recent();
        }
    });
    GovernorLayer::new(config).error_handler(|e| {
        let (wait, detail) = match e {
            // governor gives whole seconds rounded down: one more is never too early.
            tower_governor::GovernorError::TooManyRequests { wait_time, .. } => (
                wait_time + 1,
                format!(
                    "too many requests from this address; retry in {} s",
                    wait_time + 1
                ),
            ),
            other => (1, other.to_string()),
        };
        let mut res = problem::http::response(ProblemType::RateLimited, detail);
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    })
}

/// Builds the API router from the table: each route behind its guard, the login limit on
/// credential routes, the global per-client limit on all.
pub(crate) fn router(node: Node) -> Router<Node> {
    let limits = node.config().limits.clone();
    let body_limit = node.config().max_body_bytes;
    let logins = limiter(
        Duration::from_millis(60_000 / u64::from(limits.logins_per_minute.max(1))),
        limits.logins_per_minute,
    );
    let mut router = Router::new();
    for (r, mr) in table(body_limit) {
        let (path, login_limited) = (r.path, r.login_limited);
        let guard = Guard {
            node: node.clone(),
            route: r,
        };
        let mut mr = mr.route_layer(middleware::from_fn_with_state(guard, check));
        if login_limited {
            mr = mr.route_layer(logins.clone());
        }
        router = router.route(path, mr);
    }
    let per = Duration::from_micros(1_000_000 / u64::from(limits.requests_per_second.max(1)));
    router.layer(limiter(per, limits.requests_per_second.saturating_mul(2)))
}

/// Extracting a `Principal` in a handler takes the one the route's guard checked; on a
/// route without a guard it refuses with `token-missing`, so a handler can never run as
/// nobody by mistake.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Principal {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| AuthError::Token(caja_shared::auth::TokenError::Missing).into())
    }
}

/// The peer address type the rate limits key on (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`).
pub type Peer = SocketAddr;
