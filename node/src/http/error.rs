//! HTTP errors: every client-visible outcome and the one place that maps it to a status
//! and an RFC 9457 `application/problem+json` body with a stable `type`.
//!
//! 5xx bodies are opaque ("internal error"); their cause is logged once, here.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use caja_shared::auth::sessions::RefreshError;

use crate::auth::AuthError;
use crate::error::NodeError;
use crate::store::StoreError;

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://caja.dev/problems/";

/// An RFC 9457 problem details body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem, e.g. `https://caja.dev/problems/unknown-sku`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short human summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What exactly was wrong with this request.
    pub detail: String,
}

/// Every error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A domain refusal.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The body is not valid JSON of the expected shape.
    #[error("{0}")]
    BadJson(String),
    /// A path or query parameter is malformed.
    #[error("{0}")]
    BadParam(String),
    /// The body exceeds the configured limit (`max_body_bytes`).
    #[error("request body exceeds this node's limit (max_body_bytes)")]
    TooLarge,
    /// The body has a media type the route does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The route does not exist.
    #[error("no route {0}")]
    NoRoute(String),
    /// The route exists but not with this method (the `Allow` header lists those it has).
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Node(NodeError::from(e))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Node(NodeError::Auth(e))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge
            }
            other => ApiError::BadJson(other.body_text()),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadJson(r.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadParam(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadParam(r.body_text())
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use NodeError as N;
        match self {
            ApiError::Node(N::Invalid { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", "Invalid input")
            }
            ApiError::Node(N::UnknownSku(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unknown-sku", "Unknown SKU")
            }
            ApiError::Node(N::NotFound(_)) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Node(N::Conflict(_)) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::Node(N::IdempotencyReused(_)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
            ),
            ApiError::Node(N::Money(_)) | ApiError::Node(N::Fact(_)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-amount",
                "Amounts do not add up",
            ),
            ApiError::Node(N::Auth(a)) => auth_parts(a),
            ApiError::Node(N::Store(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            ApiError::BadJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON body"),
            ApiError::BadParam(_) => (StatusCode::BAD_REQUEST, "bad-parameter", "Bad parameter"),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "no-route", "No such route"),
            ApiError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
        }
    }
}

/// Status, problem slug and title of an authentication or authorisation refusal.
fn auth_parts(a: &AuthError) -> (StatusCode, &'static str, &'static str) {
    match a {
        AuthError::Token(t) => (StatusCode::UNAUTHORIZED, t.slug(), "Unauthorized"),
        AuthError::LoginFailed(_) => (StatusCode::UNAUTHORIZED, "login-failed", "Login failed"),
        AuthError::Locked { .. } => (
            StatusCode::LOCKED,
            "login-locked",
            "Locked after too many failed logins",
        ),
        AuthError::Refresh(r) => match r {
            RefreshError::Unknown => (
                StatusCode::UNAUTHORIZED,
                "refresh-unknown",
                "Unknown refresh token",
            ),
            RefreshError::Expired => (
                StatusCode::UNAUTHORIZED,
                "refresh-expired",
                "Refresh token expired",
            ),
            RefreshError::Revoked(_) => (StatusCode::UNAUTHORIZED, "refresh-revoked", "Session revoked"),
            RefreshError::Reused { .. } => {
                (StatusCode::UNAUTHORIZED, "refresh-reused", "Refresh token reused")
            }
            RefreshError::Sqlite(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        },
        AuthError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
        AuthError::Override(_) => (
            StatusCode::FORBIDDEN,
            "override-refused",
            "Manager override refused",
        ),
        AuthError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", "Invalid input"),
    }
}

/// Builds a problem response.
pub fn problem_response(status: StatusCode, code: &str, title: &str, detail: String) -> Response {
    let body = Problem {
        kind: format!("{PROBLEM_BASE}{code}"),
        title: title.into(),
        status: status.as_u16(),
        detail,
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title) = self.parts();
        let detail = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "internal error; see the node log".to_string()
        } else {
            self.to_string()
        };
        let mut res = problem_response(status, code, title, detail);
        let h = res.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 section 3: how to authenticate, and why the token was refused.
            let v = match self {
                ApiError::Node(NodeError::Auth(AuthError::Token(caja_shared::auth::TokenError::Missing))) => {
                    "Bearer realm=\"caja-node\"".to_string()
                }
                _ => format!(
                    "Bearer realm=\"caja-node\", error=\"invalid_token\", error_description=\"{code}\""
                ),
            };
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let ApiError::Node(NodeError::Auth(AuthError::Locked { until, .. })) = &self {
            // Whole seconds, rounded up (RFC 9110 section 10.2.3).
            let ms = (*until - chrono::Utc::now()).num_milliseconds().max(1);
            let secs = (ms + 999) / 1000;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}
