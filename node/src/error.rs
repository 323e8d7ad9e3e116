//! The node's domain error: what the services (catalog, sales, inventory, reports) refuse.
//!
//! The HTTP layer maps each variant to a status and an RFC 9457 problem type in one place
//! (`http::error`).

use caja_shared::facts::FactError;
use caja_shared::money::MoneyError;

use crate::auth::AuthError;
use crate::store::StoreError;

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A field of the request is invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `lines[0].quantity`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The SKU is not in the catalog.
    #[error("unknown SKU {0:?}: it is not in this store's catalog")]
    UnknownSku(String),
    /// No such resource.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with what is stored (e.g. refunding more than was sold).
    #[error("{0}")]
    Conflict(String),
    /// The `Idempotency-Key` was already used for a different request.
    #[error("Idempotency-Key {0:?} was already used for a different request")]
    IdempotencyReused(String),
    /// Money did not add up.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// A fact could not be built.
    #[error(transparent)]
    Fact(#[from] FactError),
    /// Authentication or authorisation refused the request.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Storage failed (boxed: storage errors are large and rare).
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl NodeError {
    /// Shorthand for [`NodeError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        NodeError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        NodeError::Store(Box::new(e))
    }
}

impl From<rusqlite::Error> for NodeError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e).into()
    }
}

impl From<caja_shared::docs::DocError> for NodeError {
    fn from(e: caja_shared::docs::DocError) -> Self {
        StoreError::Schema(e).into()
    }
}
