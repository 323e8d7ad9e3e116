//! Request body helpers: JSON parsing with problem+json errors, and `Idempotency-Key`.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::error::NodeError;

/// Parses a JSON body after checking its content type.
///
/// # Errors
/// [`ApiError::UnsupportedMediaType`] without `application/json`; [`ApiError::BadJson`]
/// with serde's description (line, column, what was expected).
pub fn json<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" && !(mime.starts_with("application/") && mime.ends_with("+json")) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "expected Content-Type: application/json, got {:?}",
            if ct.is_empty() { "nothing" } else { ct }
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadJson(format!("invalid JSON body: {e}")))
}

/// The `Idempotency-Key` header, if present: 1-255 visible ASCII characters.
///
/// # Errors
/// [`NodeError::Invalid`] for an empty, too long or non-ASCII key.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| NodeError::invalid("Idempotency-Key", "must be visible ASCII"))?
        .trim();
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(NodeError::invalid("Idempotency-Key", "must be 1-255 visible ASCII characters").into());
    }
    Ok(Some(s.to_string()))
}

/// Hex SHA-256 of a request body: a retry with the same key must send the same body.
pub fn body_hash(body: &Bytes) -> String {
    hex::encode(Sha256::digest(body))
}
