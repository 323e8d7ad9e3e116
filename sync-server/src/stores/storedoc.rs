//! Head office's writes to the `store/<store>` documents (staff and custom roles, see
//! [`caja_shared::docs::store`]): every write is made with the server's own stable actor
//! id (kept in `settings`), so the sync host can tell head office's changes from
//! anyone else's, and persisted in the caller's SQLite transaction.
//!
//! On any failure the caller must forget the documents it touched from the cache
//! ([`forget`]), so memory never runs ahead of disk.

use std::collections::BTreeMap;

use automerge::{ActorId, Automerge};
use caja_shared::docs::{DocError, DocId, store};
use caja_shared::docstore::{self, DocCache};
use caja_shared::ids::StoreCode;
use rusqlite::Connection;

use crate::db::StoreDb;
use crate::error::ServerError;

/// The `settings` key of the server's actor id (32 hex digits).
const ACTOR_SETTING: &str = "store_doc_actor";

/// The server's actor id for store documents: read from `settings`, or created (16
/// random bytes) and saved on first use.
///
/// # Errors
/// [`ServerError::Sqlite`]; [`ServerError::Invalid`] for a stored id that is not hex.
pub(crate) fn server_actor(conn: &Connection) -> Result<ActorId, ServerError> {
    if let Some(hex_id) = conn.setting(ACTOR_SETTING)? {
        let bytes = hex::decode(&hex_id)
            .map_err(|_| ServerError::Invalid(format!("settings.{ACTOR_SETTING} is not hex")))?;
        return Ok(ActorId::from(bytes));
    }
    let bytes: [u8; 16] = rand::random();
    conn.set_setting(ACTOR_SETTING, &hex::encode(bytes))?;
    Ok(ActorId::from(bytes))
}

/// Applies `f` to the store's document as head office (actor `actor`) and persists what
/// changed on `conn` (the caller's transaction). A document not yet on disk is stored
/// whole, genesis included. Returns whether anything was written.
///
/// # Errors
/// [`ServerError`] from automerge or SQLite; the caller forgets the document.
pub(crate) fn edit(
    conn: &Connection,
    cache: &mut DocCache,
    actor: &ActorId,
    store: &StoreCode,
    f: impl FnOnce(&mut Automerge) -> Result<(), DocError>,
) -> Result<bool, ServerError> {
    let doc = DocId::Store { store: store.clone() };
    let on_disk = conn.document_stored(&doc.to_string())?;
    let am = cache.get_or_create(conn, &doc)?;
    am.set_actor(actor.clone());
    let before = am.get_heads();
    f(am)?;
    let after = am.get_heads();
    docstore::persist(conn, &doc, am, if on_disk { &before } else { &[] })?;
    Ok(!on_disk || after != before)
}

/// Drops these stores' documents from memory (after a failed write).
pub(crate) fn forget<'a>(cache: &mut DocCache, stores: impl IntoIterator<Item = &'a StoreCode>) {
    for s in stores {
        cache.forget(&DocId::Store { store: s.clone() });
    }
}

/// The stores that have no document yet (registered by the CLI, or before store
/// documents existed).
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn missing(db: &impl StoreDb) -> Result<Vec<StoreCode>, ServerError> {
    Ok(db.stores_without_document()?)
}

/// Writes a store's whole document content: the custom roles and the users allowed in
/// it (`users`), in one change.
///
/// # Errors
/// As [`edit`].
pub(crate) fn fill(
    conn: &Connection,
    cache: &mut DocCache,
    actor: &ActorId,
    store_code: &StoreCode,
    roles: &BTreeMap<String, Vec<String>>,
    users: &[store::StaffUser],
) -> Result<bool, ServerError> {
    edit(conn, cache, actor, store_code, |am| {
        store::put_roles(am, roles, &[])?;
        store::put_users(am, users, &[])
    })
}
