//! Head office's own payment facts: `FactBody::Payment` events (forwarded, captured,
//! declined, expired) written into the store's ledger document of the current UTC day
//! (`ledger/<store>/<yyyy-mm-dd>`) with the server's actor, persisted and projected in the
//! caller's transaction, then pushed to the store's connected nodes like any ledger
//! change (the caller announces the returned document after commit).

use std::str::FromStr;

use automerge::ActorId;
use caja_shared::docs::{self, DocId};
use caja_shared::docstore::{self, DocCache};
use caja_shared::facts::{FACT_SCHEMA_VERSION, Fact, FactBody};
use caja_shared::hlc::Hlc;
use caja_shared::ids::{FactId, NodeId, StoreCode};
use caja_shared::payments::PaymentEvent;
use chrono::Utc;
use rusqlite::Connection;

use crate::db::StoreDb;
use crate::error::ServerError;

/// The `settings` key of head office's node id (the `node` of the facts it writes).
const NODE_SETTING: &str = "head_office_node_id";

/// The terminal named in head office's facts.
pub(crate) const HEAD_OFFICE_TERMINAL: &str = "head-office";

/// Head office's node id for the facts it writes: read from `settings`, or made (UUIDv7)
/// and saved on first use.
///
/// # Errors
/// [`ServerError::Sqlite`]; [`ServerError::Invalid`] for a stored id that does not parse.
pub(crate) fn head_office_node(conn: &Connection) -> Result<NodeId, ServerError> {
    if let Some(id) = conn.setting(NODE_SETTING)? {
        return NodeId::from_str(&id)
            .map_err(|_| ServerError::Invalid(format!("settings.{NODE_SETTING} is not a node id")));
    }
    let id = NodeId::new();
    conn.set_setting(NODE_SETTING, &id.to_string())?;
    Ok(id)
}

/// Appends `event` as a fact of `store` to today's ledger (UTC day) on `conn` (the
/// caller's transaction), persists the change and projects the fact. Returns the
/// document written, to announce after commit; on error the caller forgets it from
/// `cache`.
///
/// # Errors
/// [`ServerError`] from automerge or SQLite.
pub(crate) fn write_event(
    conn: &Connection,
    cache: &mut DocCache,
    actor: &ActorId,
    hlc: &mut Hlc,
    store: &StoreCode,
    event: PaymentEvent,
) -> Result<DocId, ServerError> {
    let now = Utc::now();
    let node = head_office_node(conn)?;
    let fact = Fact {
        v: FACT_SCHEMA_VERSION,
        id: FactId::new(),
        store: store.clone(),
        node,
        terminal: HEAD_OFFICE_TERMINAL.into(),
        user: None,
        user_name: Some("head office".into()),
        authorized_by: None,
        hlc: hlc.tick(u64::try_from(now.timestamp_millis()).unwrap_or(0)),
        occurred_at: now,
        business_date: now.date_naive(),
        body: FactBody::Payment(event),
    };
    let doc = DocId::Ledger {
        store: store.clone(),
        date: fact.business_date,
    };
    let on_disk = conn.document_stored(&doc.to_string())?;
    let am = cache.get_or_create(conn, &doc)?;
    am.set_actor(actor.clone());
    let before = am.get_heads();
    docs::append_facts(am, std::slice::from_ref(&fact))?;
    docstore::persist(conn, &doc, am, if on_disk { &before } else { &[] })?;
    crate::reports::projection::project_fact(conn, store, &fact)?;
    Ok(doc)
}
