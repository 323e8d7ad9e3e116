//! Stores: registering them, listing them with their connection state, their enrollment
//! codes, the nodes enrolled in them, and head office's writes to their `store/<store>`
//! documents.
//!
//! Modules:
//! - [`enrollment`] holds one-time enrollment codes ([`EnrollmentCode`]).
//! - [`payments`] holds the stores' card-payment settings (set by head office).
//! - [`nodes`] holds enrolled nodes ([`NodeInfo`]) and their revocation.
//! - [`trust`] holds the rules of enrollment codes and node certificates (code alphabet,
//!   digests, refusals).
//! - `storedoc` (private): head office's writes to the store documents.

pub mod enrollment;
pub mod nodes;
pub mod payments;
pub(crate) mod storedoc;
pub mod trust;

use caja_shared::docs::DocId;
use caja_shared::ids::StoreCode;

use crate::audit::Actor;
use crate::db::{StoreDb, StoreRow};
use crate::error::ServerError;
use crate::server::SyncServer;

pub use enrollment::EnrollmentCode;
pub use nodes::NodeInfo;

/// A store as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    /// The stored row (code, name, last contact, projected facts).
    pub row: StoreRow,
    /// Whether a node of the store is connected now.
    pub connected: bool,
}

/// Checks a store name: 1-200 characters, no control characters.
///
/// # Errors
/// [`ServerError::Invalid`] saying what is wrong.
pub fn validate_store_name(name: &str) -> Result<(), ServerError> {
    let n = name.trim().chars().count();
    if n == 0 || n > 200 || name.chars().any(char::is_control) {
        return Err(ServerError::Invalid(format!(
            "store name {name:?} must be 1-200 characters without control characters"
        )));
    }
    Ok(())
}

/// Registers a store with a checked name on `db`.
///
/// # Errors
/// [`ServerError::StoreExists`] if the code is taken, [`ServerError::Invalid`] for a bad
/// name, [`ServerError::Sqlite`].
pub(crate) fn register_store(db: &impl StoreDb, code: &StoreCode, name: &str) -> Result<(), ServerError> {
    validate_store_name(name)?;
    if !db.create_store(code, name.trim(), &crate::db::now_rfc3339())? {
        return Err(ServerError::StoreExists(code.clone()));
    }
    Ok(())
}

/// Registers a store on an open database and audits it as done by `by` (`caja-sync store
/// add` calls this with [`Actor::local`]; a running server creates the store's document
/// within a second, `crate::server::watch`).
///
/// # Errors
/// As `register_store`.
pub fn register(
    conn: &rusqlite::Connection,
    by: &Actor,
    code: &StoreCode,
    name: &str,
) -> Result<(), ServerError> {
    register_store(conn, code, name)?;
    crate::audit::record(
        conn,
        &crate::audit::NewEntry::new("store.created", serde_json::json!({"name": name}))
            .store(code)
            .by(by),
    )
}

impl SyncServer {
    /// Tells the sessions that the documents of `stores` changed.
    pub(crate) fn broadcast_stores(&self, stores: &[StoreCode]) {
        for s in stores {
            self.hub().changed(DocId::Store { store: s.clone() });
        }
    }

    /// Registers a store on behalf of `by` (recorded in the audit log) and creates its
    /// `store/<store>` document (genesis and the chain's custom roles). Its node enrolls
    /// with a code from [`SyncServer::enrollment_code`].
    ///
    /// # Errors
    /// [`ServerError::StoreExists`] if the code is taken; [`ServerError::Invalid`] for a
    /// bad name; [`ServerError::Sqlite`].
    pub async fn create_store(&self, by: &Actor, code: StoreCode, name: &str) -> Result<(), ServerError> {
        let name = name.to_string();
        let by = by.clone();
        let store = code.clone();
        self.hub()
            .with_core(move |core| {
                register(&core.conn, &by, &code, &name)?;
                crate::users::directory::create_store_doc(core, &code)
            })
            .await??;
        self.hub().changed(DocId::Store { store });
        Ok(())
    }

    /// Every registered store with its last contact, projected facts and whether a node
    /// of it is connected now.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn stores(&self) -> Result<Vec<StoreStatus>, ServerError> {
        let rows = self.hub().with_core(|core| core.conn.list_stores()).await??;
        Ok(rows
            .into_iter()
            .map(|row| StoreStatus {
                connected: self.hub().is_connected(&row.code),
                row,
            })
            .collect())
    }
}
