//! Request body helpers: JSON parsing with problem+json errors, and `Idempotency-Key`.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// Parses a JSON body after checking its content type.
///
/// # Errors
/// [`ApiError::UnsupportedMediaType`] without `application/json`; [`ApiError::BadJson`]
/// with serde's description (path, line, column, what was expected) for a body that is not
/// JSON of the expected shape; [`ApiError::Invalid`] naming the field (`lines[0].quantity`)
/// for a value of the right type that the field refuses (a decimal string that is not a
/// number).
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
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let e = e.into_inner();
        // A value of the right JSON type that a field refuses (`"quantity": "abc"`) is
        // invalid input naming the field, like any other bad value: 422, not 400.
        if e.classify() == Category::Data && e.to_string().starts_with(INVALID_VALUE) {
            let msg = e.to_string();
            let reason = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m);
            return ApiError::invalid(path, reason);
        }
        if path.is_empty() || path == "." {
            ApiError::BadJson(format!("invalid JSON body: {e}"))
        } else {
            ApiError::BadJson(format!("invalid JSON body at {path}: {e}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadJson(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// How serde words an error of a value with the right type but a refused content
/// (`serde::de::Error::invalid_value`, which the decimal fields use).
const INVALID_VALUE: &str = "invalid value: ";

/// The `Idempotency-Key` header, if present: 1-255 visible ASCII characters.
///
/// # Errors
/// [`ApiError::Invalid`] for an empty, too long or non-ASCII key.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?
        .trim();
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1-255 visible ASCII characters",
        ));
    }
    Ok(Some(s.to_string()))
}

/// Hex SHA-256 of a request body: a retry with the same key must send the same request.
/// A JSON body is hashed in its compact form with sorted keys, so a retry that only
/// formats the same JSON differently (a client library's spacing or key order) is the
/// same request; any other body is hashed as sent.
pub fn body_hash(body: &Bytes) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        // serde_json's map is a BTreeMap (no `preserve_order`): keys come out sorted.
        Ok(v) => hex::encode(Sha256::digest(v.to_string().as_bytes())),
        Err(_) => hex::encode(Sha256::digest(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_json_formatted_differently_is_the_same_request() {
        let a = body_hash(&Bytes::from_static(br#"{"sku":"TEA-1","quantity":2}"#));
        let b = body_hash(&Bytes::from_static(b"{ \"quantity\": 2,\n  \"sku\": \"TEA-1\" }"));
        let c = body_hash(&Bytes::from_static(br#"{"sku":"TEA-1","quantity":3}"#));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Not JSON: as sent.
        assert_ne!(
            body_hash(&Bytes::from_static(b"a b")),
            body_hash(&Bytes::from_static(b"a  b"))
        );
    }
}
