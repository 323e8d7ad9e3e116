//! Who this node is: its id (created once and kept in the database), store, default
//! terminal and currency.

use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::money::Currency;
use rusqlite::{OptionalExtension, params};

use crate::store::{Ctx, StoreError};

/// The node's identity, fixed for the life of its data directory.
#[derive(Debug, Clone)]
pub struct Identity {
    /// UUIDv7 of this installation.
    pub node_id: NodeId,
    /// The store it serves.
    pub store: StoreCode,
    /// Default terminal id for receipts.
    pub terminal: String,
    /// The store's currency.
    pub currency: Currency,
}

/// Loads the identity from `meta`, creating it on first start. Refuses a data directory
/// that belongs to another store or uses another currency.
///
/// # Errors
/// [`StoreError::WrongStore`] or [`StoreError::Sqlite`].
pub(crate) fn load_or_create(
    ctx: &mut Ctx<'_>,
    store: &StoreCode,
    terminal: &str,
    currency: caja_shared::money::Currency,
    dir: &std::path::Path,
) -> Result<Identity, StoreError> {
    let get = |k: &str| -> Result<Option<String>, StoreError> {
        Ok(ctx
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![k], |r| r.get(0))
            .optional()?)
    };
    let found_store = get("store")?;
    let node_id = get("node_id")?.and_then(|s| s.parse::<NodeId>().ok());
    let found_currency = get("currency")?;
    if let Some(found) = &found_store
        && found != store.as_str()
    {
        return Err(StoreError::WrongStore {
            dir: dir.to_path_buf(),
            found: found.clone(),
            expected: store.to_string(),
        });
    }
    if let Some(c) = &found_currency
        && c != currency.code()
    {
        return Err(StoreError::WrongStore {
            dir: dir.to_path_buf(),
            found: format!("{} (currency {c})", store),
            expected: format!("{} (currency {})", store, currency.code()),
        });
    }
    let node_id = match node_id {
        Some(id) => id,
        None => {
            let id = NodeId::new();
            let put = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
            ctx.conn.execute(put, params!["node_id", id.to_string()])?;
            ctx.conn.execute(put, params!["store", store.as_str()])?;
            ctx.conn.execute(put, params!["currency", currency.code()])?;
            id
        }
    };
    Ok(Identity {
        node_id,
        store: store.clone(),
        terminal: terminal.to_string(),
        currency,
    })
}

/// A value of the node's `meta` table.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn meta(conn: &rusqlite::Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Sets a value of the node's `meta` table.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn set_meta(conn: &rusqlite::Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![key, value],
    )?;
    Ok(())
}
