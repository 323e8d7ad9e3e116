//! Stores: registering them, listing them with their connection state, their enrollment
//! codes, the nodes enrolled in them, and head office's writes to their `store/<store>`
//! documents.
//!
//! Modules:
//! - [`enrollment`]: one-time enrollment codes ([`EnrollmentCode`]).
//! - [`nodes`]: enrolled nodes ([`NodeInfo`]) and their revocation.
//! - [`trust`]: the rules of enrollment codes and node certificates (code alphabet,
//!   digests, refusals).
//! - `storedoc` (private): head office's writes to the store documents.

pub mod enrollment;
pub mod nodes;
pub(crate) mod storedoc;
pub mod trust;

use caja_shared::docs::DocId;
use caja_shared::ids::StoreCode;

use crate::audit::Actor;
use crate::db::StoreRow;
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
                crate::db::create_store(&core.conn, &code, &name)?;
                crate::audit::record(
                    &core.conn,
                    &crate::audit::NewEntry::new("store.created", serde_json::json!({"name": name}))
                        .store(&code)
                        .by(&by),
                )?;
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
        let rows = self
            .hub()
            .with_core(|core| crate::db::list_stores(&core.conn))
            .await??;
        Ok(rows
            .into_iter()
            .map(|row| StoreStatus {
                connected: self.hub().is_connected(&row.code),
                row,
            })
            .collect())
    }
}
