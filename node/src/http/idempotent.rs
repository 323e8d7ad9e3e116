//! `Idempotency-Key` for fact-creating writes: a retried checkout, refund or stock
//! movement returns the first result and never records a second fact.
//!
//! The first response for a key is stored in the same transaction as the fact; a retry
//! with the same key and body gets it back unchanged (header `Idempotent-Replayed: true`);
//! the same key with another body is 422 `idempotency-key-reused`. Keys are per user: one
//! user's key never returns another user's fact.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::Node;
use crate::http::body;
use crate::http::error::ApiError;
use crate::store::{Ctx, facts as ledger};

/// Runs `f` (which records a fact) once per `Idempotency-Key` of `user`, answering 201
/// with its JSON; see the module docs.
///
/// # Errors
/// The closure's error, [`ApiError::IdempotencyReused`], a malformed key.
pub async fn idempotent_write<T: Serialize + Send + 'static>(
    node: &Node,
    user: &str,
    headers: &HeaderMap,
    bytes: Bytes,
    route: &'static str,
    f: impl FnOnce(&mut Ctx<'_>) -> Result<T, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let key = body::idempotency_key(headers)?.map(|k| (format!("{user}/{k}"), k));
    let hash = body::body_hash(&bytes);
    let (status, json, replayed) = node
        .db()
        .write(move |ctx| -> Result<(u16, String, bool), ApiError> {
            if let Some((k, given)) = &key
                && let Some((h, status, json)) = ledger::idempotent_response(ctx, k)?
            {
                return if h == hash {
                    Ok((status, json, true))
                } else {
                    Err(ApiError::IdempotencyReused(given.clone()))
                };
            }
            let v = f(ctx)?;
            let json = serde_json::to_string(&v).map_err(|e| ApiError::BadJson(e.to_string()))?;
            if let Some((k, _)) = &key {
                ledger::save_idempotent_response(ctx, k, route, &hash, 201, &json)?;
            }
            Ok((201, json, false))
        })
        .await?;
    let mut res = (StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED), json).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}
