//! Errors of the admin API as RFC 9457 problem details (`application/problem+json`),
//! and extractors whose rejections use the same body.
//!
//! Every problem has a stable `type` URI (`https://caja.dev/problems/<slug>`), a `title`,
//! the `status` and a `detail` saying what was wrong. 5xx bodies are opaque: the cause is
//! logged once, here.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ServerError;

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem, e.g. `https://caja.dev/problems/bad-request`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short human-readable summary of the kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What was wrong with this request.
    pub detail: String,
    /// The request field that is wrong, for validation problems (`invalid-input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

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
    #[error("too many failed logins for this username; try again in {} s", retry_after_secs(*until_ms))]
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
}

/// (status, slug, title) of a status code.
fn kind_of(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad-request", "Bad request"),
        404 => ("not-found", "Not found"),
        405 => ("method-not-allowed", "Method not allowed"),
        408 => ("timeout", "Request timeout"),
        401 => ("unauthorized", "Unauthorized"),
        403 => ("forbidden", "Forbidden"),
        409 => ("conflict", "Conflict"),
        422 => ("invalid-input", "Invalid input"),
        423 => ("login-locked", "Locked after too many failed logins"),
        429 => ("rate-limited", "Too many requests"),
        413 => ("payload-too-large", "Payload too large"),
        415 => ("unsupported-media-type", "Unsupported media type"),
        503 => ("unavailable", "Service unavailable"),
        s if s >= 500 => ("internal", "Internal server error"),
        _ => ("error", "Error"),
    }
}

/// Whole seconds from now until `until_ms`, rounded up, at least 1 (RFC 9110 section
/// 10.2.3 `Retry-After`).
fn retry_after_secs(until_ms: i64) -> i64 {
    let ms = (until_ms - chrono::Utc::now().timestamp_millis()).max(1);
    (ms + 999) / 1000
}

/// Builds a problem response.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let (slug, _) = kind_of(status);
    problem_with(status, slug, detail, None)
}

/// Builds a problem response with an explicit slug and optional field.
pub fn problem_with(
    status: StatusCode,
    slug: &str,
    detail: impl Into<String>,
    field: Option<&str>,
) -> Response {
    let (_, title) = kind_of(status);
    let body = Problem {
        kind: format!("https://caja.dev/problems/{slug}"),
        title: title.to_string(),
        status: status.as_u16(),
        detail: detail.into(),
        field: field.map(str::to_string),
    };
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

/// The `WWW-Authenticate` value of a 401 (RFC 6750 section 3: no error code when no
/// credentials were sent at all).
fn www_authenticate(missing: bool) -> HeaderValue {
    if missing {
        HeaderValue::from_static(r#"Bearer realm="caja-sync""#)
    } else {
        HeaderValue::from_static(r#"Bearer realm="caja-sync", error="invalid_token""#)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        match self {
            ApiError::Invalid { field, .. } => {
                return problem_with(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-input",
                    detail,
                    Some(field),
                );
            }
            ApiError::Token(e) => {
                let mut res = problem_with(StatusCode::UNAUTHORIZED, e.slug(), detail, None);
                let missing = e == caja_shared::auth::TokenError::Missing;
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, www_authenticate(missing));
                return res;
            }
            ApiError::Unauthenticated { slug, .. } => {
                let mut res = problem_with(StatusCode::UNAUTHORIZED, slug, detail, None);
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, www_authenticate(false));
                return res;
            }
            ApiError::Locked { until_ms } => {
                let mut res = problem(StatusCode::LOCKED, detail);
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs(until_ms).to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return res;
            }
            ApiError::RateLimited(secs) => {
                let mut res = problem(StatusCode::TOO_MANY_REQUESTS, detail);
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return res;
            }
            _ => {}
        }
        let status = match &self {
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Invalid { .. }
            | ApiError::Token(_)
            | ApiError::Unauthenticated { .. }
            | ApiError::Locked { .. }
            | ApiError::RateLimited(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        problem(status, detail)
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
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(r.body_text()),
            _ => ApiError::BadRequest(r.body_text()),
        }
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
            .map_err(|r| ApiError::BadRequest(r.body_text()))?;
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
            .map_err(|r: QueryRejection| ApiError::BadRequest(r.body_text()))
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
            .map_err(|r: PathRejection| ApiError::BadRequest(r.body_text()))
    }
}

/// Turns any error response that is not already a problem (from tower-http layers: body
/// limit, timeout, caught panic; from the router: method not allowed) into one. 5xx
/// details stay opaque.
pub async fn problemize(res: Response) -> Response {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if !status.is_client_error() && !status.is_server_error() || is_problem {
        return res;
    }
    let detail = match status.as_u16() {
        413 => "request body exceeds the size limit".to_string(),
        408 => "the request took too long".to_string(),
        s if s >= 500 => {
            tracing::error!(status = s, "admin API request failed outside a handler");
            "internal error".to_string()
        }
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    problem(status, detail)
}

/// The fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}
