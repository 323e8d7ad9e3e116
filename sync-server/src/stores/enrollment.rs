//! One-time enrollment codes: head office issues one per node to enroll, shown once and
//! stored only as its SHA-256 ([`crate::stores::trust`]).

use std::time::Duration;

use caja_shared::auth::secrets::Secret;
use caja_shared::ids::StoreCode;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Actor, NewEntry};
use crate::error::ServerError;
use crate::server::SyncServer;
use crate::stores::trust;

/// A one-time enrollment code for a store: shown once, stored only as its SHA-256.
#[derive(Debug, Clone)]
pub struct EnrollmentCode {
    /// The store a node enrolled with this code will belong to.
    pub store: StoreCode,
    /// The code to give the person installing the node.
    pub code: Secret,
    /// When it stops working (UTC).
    pub expires_at: DateTime<Utc>,
}

impl SyncServer {
    /// Issues a one-time enrollment code for `store`, valid for `ttl`, on behalf of `by`.
    ///
    /// # Errors
    /// [`ServerError::InvalidField`] for a zero or over-30-day `ttl`;
    /// [`ServerError::UnknownStore`], [`ServerError::Sqlite`].
    pub async fn enrollment_code(
        &self,
        by: &Actor,
        store: &StoreCode,
        ttl: Duration,
    ) -> Result<EnrollmentCode, ServerError> {
        let (store, by) = (store.clone(), by.clone());
        self.hub()
            .with_core(move |core| issue_code(&core.conn, &by, &store, ttl))
            .await?
    }
}

/// Longest an enrollment code may live.
pub const MAX_CODE_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Issues a code on `conn` and audits it (the CLI calls this directly, with [`Actor::local`]).
///
/// # Errors
/// [`ServerError::InvalidField`] for a bad `ttl`; [`ServerError::UnknownStore`];
/// [`ServerError::Sqlite`].
pub fn issue_code(
    conn: &rusqlite::Connection,
    by: &Actor,
    store: &StoreCode,
    ttl: Duration,
) -> Result<EnrollmentCode, ServerError> {
    if ttl.is_zero() || ttl > MAX_CODE_TTL {
        return Err(ServerError::InvalidField {
            field: "ttl",
            reason: "an enrollment code lives from 1 second to 30 days".into(),
        });
    }
    let now = Utc::now().timestamp();
    let expires = now + ttl.as_secs() as i64;
    let code = trust::issue_code(conn, store, now, expires)?;
    audit::record(
        conn,
        &NewEntry::new("enrollment_code.issued", json!({"expires_at": expires}))
            .store(store)
            .by(by),
    )?;
    Ok(EnrollmentCode {
        store: store.clone(),
        code: Secret::new(code),
        expires_at: ts(expires),
    })
}

/// A Unix time in seconds as UTC (the epoch for an out-of-range value).
pub(crate) fn ts(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}
