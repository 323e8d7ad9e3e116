//! Errors of the admin API as RFC 9457 problem details (`application/problem+json`),
//! and extractors whose rejections use the same body.
//!
//! Bodies and types are the shared vocabulary ([`caja_shared::problem`], the same the
//! node uses; docs/ERRORS.md): a stable `type` URI (`https://caja.dev/problems/<name>`), a
//! `title`, the `status` and a `detail` saying what was wrong. Rejections, unknown routes,
//! wrong methods, oversized bodies and timeouts come from the code shared with the node.
//! 5xx bodies are opaque: the cause is logged once, here.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use caja_shared::problem::{self as shared, ProblemType};
use serde::de::DeserializeOwned;

use crate::error::ServerError;

pub use caja_shared::problem::{PROBLEM_JSON, Problem};

/// Every client-visible outcome of the admin API that is not a success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// One field is invalid (422 `invalid-input`, with the field named).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The access token is missing or refused (401, the token error's slug).
    #[error("{0}")]
    Token(caja_shared::auth::TokenError),
    /// Login or refresh refused (401 with this slug: `login-failed`, `refresh-reused`, …).
    #[error("{detail}")]
    Unauthenticated {
        /// Problem slug.
        slug: &'static str,
        /// What happened (never whether a username exists).
        detail: String,
    },
    /// The user lacks the permission the route needs (403 `forbidden`).
    #[error("{0}")]
    Forbidden(String),
    /// Too many wrong passwords for this username: locked until `until_ms` (milliseconds
    /// since the epoch, UTC); 423 `login-locked` with `Retry-After`.
    #[error("too many failed logins for this username; try again in {} s", shared::retry_after_secs(*until_ms))]
    Locked {
        /// When the lock ends.
        until_ms: i64,
    },
    /// Too many requests from this address (429 `rate-limited`, `Retry-After`).
    #[error("too many requests from this address; retry in {0} s")]
    RateLimited(u64),
    /// The body is larger than the limit (1 MiB).
    #[error("request body exceeds the size limit")]
    PayloadTooLarge,
    /// The body is not JSON (`Content-Type` must be `application/json`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A fault on the server; the cause was logged.
    #[error("internal error")]
    Internal,
    /// An extractor refused the request; the problem comes from the code shared with the
    /// node (`caja_shared::problem::http`).
    #[error("{}", .0.detail)]
    Rejected(Problem),
}

/// Builds a problem response of the generic type of `status` ([`ProblemType::of_status`]).
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let s = status.as_u16();
    Problem::with_status(ProblemType::of_status(s), s, detail).into_response()
}

impl ApiError {
    /// The problem type of this outcome (the one mapping of head office's errors).
    pub fn problem_type(&self) -> ProblemType {
        match self {
            ApiError::BadRequest(_) => ProblemType::BadRequest,
            ApiError::NotFound(_) => ProblemType::NotFound,
            ApiError::Conflict(_) => ProblemType::Conflict,
            ApiError::Invalid { .. } => ProblemType::InvalidInput,
            ApiError::Token(e) => ProblemType::of_token(e),
            ApiError::Unauthenticated { slug, .. } => {
                ProblemType::parse(slug).unwrap_or(ProblemType::Unauthorized)
            }
            ApiError::Forbidden(_) => ProblemType::Forbidden,
            ApiError::Locked { .. } => ProblemType::LoginLocked,
            ApiError::RateLimited(_) => ProblemType::RateLimited,
            ApiError::PayloadTooLarge => ProblemType::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ProblemType::UnsupportedMediaType,
            ApiError::Internal => ProblemType::Internal,
            ApiError::Rejected(p) => p.problem_type().unwrap_or(ProblemType::BadRequest),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ty = self.problem_type();
        let retry_after = match &self {
            ApiError::Locked { until_ms } => Some(shared::http::retry_after_until(*until_ms)),
            ApiError::RateLimited(secs) => Some(HeaderValue::from(*secs)),
            _ => None,
        };
        let body = match self {
            ApiError::Rejected(p) => p,
            ApiError::Invalid { field, .. } => Problem::new(ty, self.to_string()).field(field),
            other => Problem::new(ty, other.to_string()),
        };
        let mut res = body.into_response();
        let h = res.headers_mut();
        if ty.status() == 401
            && let Some(v) = shared::http::www_authenticate("caja-sync", ty)
        {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(v) = retry_after {
            h.insert(header::RETRY_AFTER, v);
        }
        res
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Invalid(m) => ApiError::BadRequest(m),
            ServerError::StoreExists(c) => ApiError::Conflict(format!("store {c} already exists")),
            ServerError::UnknownStore(c) => ApiError::NotFound(format!("store {c} does not exist")),
            ServerError::InvalidField { field, reason } => ApiError::Invalid { field, reason },
            ServerError::Conflict(m) => ApiError::Conflict(m),
            ServerError::NotFound(m) => ApiError::NotFound(m),
            other => {
                tracing::error!(error = %other, "admin API request failed");
                ApiError::Internal
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::Rejected(shared::http::json_rejection(&r))
    }
}

/// A JSON body whose rejection is a problem response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

/// A JSON body that may be left out: a request with no body at all (and no
/// `Content-Type`) gets `T::default()`; anything else must be JSON as for [`ApiJson`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJsonOrDefault<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for ApiJsonOrDefault<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.headers().contains_key(header::CONTENT_TYPE) {
            return ApiJson::<T>::from_request(req, state)
                .await
                .map(|j| ApiJsonOrDefault(j.0));
        }
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::Rejected(shared::http::bytes_rejection(&r)))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            Ok(ApiJsonOrDefault(T::default()))
        } else {
            Err(ApiError::UnsupportedMediaType(
                "a body needs Content-Type: application/json".into(),
            ))
        }
    }
}

/// A query string whose rejection is a problem response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| ApiError::Rejected(shared::http::query_rejection(&r)))
    }
}

/// Path parameters whose rejection is a problem response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r: PathRejection| ApiError::Rejected(shared::http::path_rejection(&r)))
    }
}

/// Turns any bare error response (from tower-http layers: body limit, timeout, caught
/// panic; from the router: method not allowed) into a problem, with the code the node
/// uses too. 5xx details stay opaque.
pub async fn problemize(res: Response) -> Response {
    shared::http::problemize(res, "the request took too long")
}

/// The fallback for unknown routes (404 `not-found`, as at the node).
pub async fn not_found(req: Request) -> Response {
    shared::http::no_route(req.method(), req.uri().path()).into_response()
}
