//! HTTP errors: every client-visible outcome of the node API and the ONE place that maps
//! the domain errors ([`CatalogError`], [`SaleError`], [`InventoryError`], [`AuthError`],
//! [`StoreError`]) to a status and an RFC 9457
//! `application/problem+json` body of the shared vocabulary ([`caja_shared::problem`],
//! the same types head office uses; docs/ERRORS.md).
//!
//! 5xx bodies are opaque ("internal error"); their cause is logged once, here.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use caja_shared::problem::{self, ProblemType};

use crate::auth::AuthError;
use crate::catalog::CatalogError;
use crate::inventory::InventoryError;
use crate::sales::SaleError;
use crate::store::StoreError;

pub use caja_shared::problem::Problem;

/// Every error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A catalog refusal.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A sale or refund refusal.
    #[error(transparent)]
    Sale(#[from] SaleError),
    /// A stock refusal.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// An authentication or authorisation refusal.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Storage failed (500; boxed: storage errors are large and rare).
    #[error(transparent)]
    Store(Box<StoreError>),
    /// A field of the request (a parameter, a header, a JSON value) is invalid (422).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `limit` or `lines[0].quantity`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such resource (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The `Idempotency-Key` was already used for a different request (422).
    #[error("Idempotency-Key {0:?} was already used for a different request")]
    IdempotencyReused(String),
    /// The body is not valid JSON of the expected shape (400 `malformed-json`).
    #[error("{0}")]
    BadJson(String),
    /// A path or query parameter is malformed (400 `bad-request`).
    #[error("{0}")]
    BadParam(String),
    /// The body has a media type the route does not take (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An extractor refused the request; the problem comes from the code shared with head
    /// office (`caja_shared::problem::http`).
    #[error("{}", .0.detail)]
    Rejected(Problem),
}

impl ApiError {
    /// Shorthand for [`ApiError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(Box::new(e))
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::Rejected(problem::http::json_rejection(&r))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        ApiError::Rejected(problem::http::bytes_rejection(&r))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::Rejected(problem::http::path_rejection(&r))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::Rejected(problem::http::query_rejection(&r))
    }
}

/// The problem type of a catalog refusal.
fn catalog_type(e: &CatalogError) -> ProblemType {
    match e {
        CatalogError::Invalid { .. } => ProblemType::InvalidInput,
        CatalogError::NotFound(_) => ProblemType::NotFound,
        CatalogError::Store(_) => ProblemType::Internal,
    }
}

/// The problem type of a sale or refund refusal.
fn sale_type(e: &SaleError) -> ProblemType {
    match e {
        SaleError::Invalid { .. } => ProblemType::InvalidInput,
        SaleError::UnknownSku(_) => ProblemType::UnknownSku,
        SaleError::NotFound(_) => ProblemType::NotFound,
        SaleError::Conflict(_) => ProblemType::Conflict,
        SaleError::Money(_) | SaleError::Fact(_) => ProblemType::InvalidAmount,
        SaleError::Auth(a) => auth_type(a),
        SaleError::CardDeclined(_) => ProblemType::CardDeclined,
        SaleError::OfflineNotAllowed(_) => ProblemType::OfflineCardNotAllowed,
        SaleError::OfflineFloorLimit(_) => ProblemType::OfflineFloorLimit,
        SaleError::OfflineCapReached(_) => ProblemType::OfflineCapReached,
        SaleError::OfflineWindowClosed(_) => ProblemType::OfflineWindowClosed,
        SaleError::Store(_) => ProblemType::Internal,
    }
}

/// The problem type of a stock refusal.
fn inventory_type(e: &InventoryError) -> ProblemType {
    match e {
        InventoryError::Invalid { .. } => ProblemType::InvalidInput,
        InventoryError::UnknownSku(_) => ProblemType::UnknownSku,
        InventoryError::Store(_) => ProblemType::Internal,
    }
}

/// The problem type of an authentication or authorisation refusal.
fn auth_type(a: &AuthError) -> ProblemType {
    match a {
        AuthError::Token(t) => ProblemType::of_token(t),
        AuthError::LoginFailed(_) => ProblemType::LoginFailed,
        AuthError::Locked { .. } => ProblemType::LoginLocked,
        AuthError::Refresh(r) => ProblemType::of_refresh(r),
        AuthError::Forbidden { .. } => ProblemType::Forbidden,
        AuthError::Override(_) => ProblemType::OverrideRefused,
        AuthError::Invalid { .. } => ProblemType::InvalidInput,
        AuthError::Conflict(_) => ProblemType::Conflict,
        AuthError::Store(_) => ProblemType::Internal,
    }
}

impl ApiError {
    /// The problem type of this error.
    pub fn problem_type(&self) -> ProblemType {
        match self {
            ApiError::Catalog(e) => catalog_type(e),
            ApiError::Sale(e) => sale_type(e),
            ApiError::Inventory(e) => inventory_type(e),
            ApiError::Auth(e) => auth_type(e),
            ApiError::Store(_) => ProblemType::Internal,
            ApiError::Invalid { .. } => ProblemType::InvalidInput,
            ApiError::NotFound(_) => ProblemType::NotFound,
            ApiError::IdempotencyReused(_) => ProblemType::IdempotencyKeyReused,
            ApiError::BadJson(_) => ProblemType::MalformedJson,
            ApiError::BadParam(_) => ProblemType::BadRequest,
            ApiError::UnsupportedMediaType(_) => ProblemType::UnsupportedMediaType,
            ApiError::Rejected(p) => p.problem_type().unwrap_or(ProblemType::BadRequest),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ty = self.problem_type();
        let body = match &self {
            ApiError::Rejected(p) => p.clone(),
            _ if ty.status() >= 500 => {
                tracing::error!(error = %self, "request failed");
                Problem::new(ty, "internal error; see the node log")
            }
            _ => Problem::new(ty, self.to_string()),
        };
        let mut res = body.into_response();
        let h = res.headers_mut();
        if ty.status() == 401
            && let Some(v) = problem::http::www_authenticate("caja-node", ty)
        {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        if let ApiError::Auth(AuthError::Locked { until, .. })
        | ApiError::Sale(SaleError::Auth(AuthError::Locked { until, .. })) = &self
        {
            h.insert(
                header::RETRY_AFTER,
                problem::http::retry_after_until(until.timestamp_millis()),
            );
        }
        res
    }
}
