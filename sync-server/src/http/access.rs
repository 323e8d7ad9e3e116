//! The ONE route table of the admin API: every route with the access it requires. The
//! router is built from it ([`super::router`]), the OpenAPI document marks its protected
//! operations from it, and the permission matrix test requests every route of it with
//! every role. A route cannot be added without saying who may call it.

use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use caja_shared::auth::Permission;

use super::routes;
use crate::SyncServer;

/// Who may call a route (the type both APIs' route tables share).
pub use caja_shared::auth::Access;

/// A route's method, path (axum syntax) and access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path, e.g. `/v1/users/{id}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether the login rate limit (per client IP per minute) applies.
    pub login_limited: bool,
}

/// A route of the table with its handler.
pub(crate) struct Route {
    pub spec: RouteSpec,
    pub handler: MethodRouter<SyncServer>,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
where
    H: axum::handler::Handler<T, SyncServer>,
    T: 'static,
{
    // Every method used below is one of axum's MethodFilter methods.
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route {
        spec: RouteSpec {
            login_limited: false,
            method,
            path,
            access,
        },
        handler: on(filter, handler),
    }
}

fn limited(mut r: Route) -> Route {
    r.spec.login_limited = true;
    r
}

/// Every route of the admin API with its handler.
pub(crate) fn routes() -> Vec<Route> {
    use Access::{Authenticated, Permission as P, Public};
    use Permission::*;
    use routes::{
        audit, auth, catalog, facts, health, nodes, products, reconciliation, reports, roles, stores, users,
    };
    let (get, post, put, patch, delete) = (
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    );
    vec![
        route(get.clone(), "/health/live", Public, health::live),
        route(get.clone(), "/health/ready", Public, health::ready),
        route(get.clone(), "/openapi.json", Public, super::openapi::get),
        limited(route(post.clone(), "/v1/auth/login", Public, auth::login)),
        limited(route(post.clone(), "/v1/auth/refresh", Public, auth::refresh)),
        route(post.clone(), "/v1/auth/logout", Authenticated, auth::logout),
        route(get.clone(), "/v1/auth/me", Authenticated, auth::me),
        route(post.clone(), "/v1/stores", P(StoreManage), stores::create),
        route(get.clone(), "/v1/stores", P(ReportRead), stores::list),
        route(
            post.clone(),
            "/v1/stores/{code}/enrollment-codes",
            P(StoreManage),
            stores::enrollment_code,
        ),
        route(
            get.clone(),
            "/v1/stores/{code}/payment-settings",
            P(StoreManage),
            stores::payment_settings,
        ),
        route(
            put.clone(),
            "/v1/stores/{code}/payment-settings",
            P(StoreManage),
            stores::put_payment_settings,
        ),
        route(put.clone(), "/v1/products/{sku}", P(CatalogWrite), products::put),
        route(get.clone(), "/v1/products", P(CatalogRead), products::list),
        route(get.clone(), "/v1/products/{sku}", P(CatalogRead), products::get),
        route(
            post.clone(),
            "/v1/products:batch",
            P(CatalogWrite),
            products::batch,
        ),
        route(get.clone(), "/v1/catalog", P(CatalogRead), catalog::get),
        route(get.clone(), "/v1/reports/sales", P(ReportRead), reports::sales),
        route(
            get.clone(),
            "/v1/reports/offline-payments",
            P(ReportRead),
            reports::offline_payments,
        ),
        route(
            get.clone(),
            "/v1/reconciliation",
            P(ReconciliationManage),
            reconciliation::list,
        ),
        route(
            get.clone(),
            "/v1/reconciliation/{id}",
            P(ReconciliationManage),
            reconciliation::get,
        ),
        route(
            post.clone(),
            "/v1/reconciliation/{id}/assign",
            P(ReconciliationManage),
            reconciliation::assign,
        ),
        route(
            post.clone(),
            "/v1/reconciliation/{id}/resolve",
            P(ReconciliationManage),
            reconciliation::resolve,
        ),
        route(get.clone(), "/v1/facts/{id}", P(ReportRead), facts::get),
        route(post.clone(), "/v1/users", P(UserManage), users::create),
        route(get.clone(), "/v1/users", P(UserManage), users::list),
        route(get.clone(), "/v1/users/{id}", P(UserManage), users::get),
        route(patch, "/v1/users/{id}", P(UserManage), users::update),
        route(
            post.clone(),
            "/v1/users/{id}/revoke-sessions",
            P(UserManage),
            users::revoke_sessions,
        ),
        route(get.clone(), "/v1/roles", P(UserManage), roles::list),
        route(put, "/v1/roles/{name}", P(UserManage), roles::put),
        route(delete, "/v1/roles/{name}", P(UserManage), roles::delete),
        route(get.clone(), "/v1/nodes", P(NodeManage), nodes::list),
        route(post, "/v1/nodes/{id}/revoke", P(NodeManage), nodes::revoke),
        route(get, "/v1/audit", P(AuditRead), audit::list),
    ]
}

/// The route table without handlers: what each route requires.
pub fn table() -> Vec<RouteSpec> {
    routes().into_iter().map(|r| r.spec).collect()
}
