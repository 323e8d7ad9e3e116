//! The server's error type: every way a [`crate::SyncServer`] operation can fail.

use std::path::PathBuf;

use caja_shared::docs::DocError;
use caja_shared::docstore::DocStoreError;
use caja_shared::ids::StoreCode;
use caja_shared::money::Currency;

use crate::tls::TlsError;

/// Errors of the sync server library.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file or directory of the data dir could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Document storage failed.
    #[error(transparent)]
    DocStore(Box<DocStoreError>),
    /// A document operation failed.
    #[error(transparent)]
    Doc(Box<DocError>),
    /// Certificates or TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The QUIC endpoint could not be created or failed.
    #[error("quic endpoint: {0}")]
    Quic(String),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Http(std::io::Error),
    /// A store with this code is already registered.
    #[error("store {0} already exists")]
    StoreExists(StoreCode),
    /// No store with this code is registered.
    #[error("store {0} does not exist")]
    UnknownStore(StoreCode),
    /// Input that the server refuses (a product, a store name), with the reason.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// One field of the input is refused (a username, a password, a role), with the
    /// reason; the admin API names the field in its problem body.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field, e.g. `username` or `roles`.
        field: &'static str,
        /// What is wrong with it (never the value of a secret).
        reason: String,
    },
    /// The thing to create exists already (a username, a role in use), with the reason.
    #[error("{0}")]
    Conflict(String),
    /// The thing named does not exist (a user, a node, a role).
    #[error("{0}")]
    NotFound(String),
    /// Another `caja-sync` process (a running server) holds the data directory.
    #[error(
        "{0}: a caja-sync server is running on this data directory; stop it, or use its admin API instead"
    )]
    Locked(PathBuf),
    /// A signing key for access tokens could not be loaded or created.
    #[error(transparent)]
    Key(#[from] caja_shared::auth::tokens::KeyError),
    /// The data dir was created for another currency.
    #[error("data dir holds {stored} amounts, but the server was started with {requested}")]
    CurrencyMismatch {
        /// The currency recorded in the database.
        stored: String,
        /// The currency asked for.
        requested: Currency,
    },
    /// A blocking task panicked or was cancelled (a bug; details in the log).
    #[error("internal task failed: {0}")]
    Task(String),
}

impl From<DocStoreError> for ServerError {
    fn from(e: DocStoreError) -> Self {
        ServerError::DocStore(Box::new(e))
    }
}

impl From<DocError> for ServerError {
    fn from(e: DocError) -> Self {
        ServerError::Doc(Box::new(e))
    }
}

impl ServerError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ServerError::Io {
            path: path.into(),
            source,
        }
    }
}
