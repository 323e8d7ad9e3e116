//! The server's [`DocHost`]: the documents one connected node of a store may sync,
//! stored in SQLite and projected into the facts table as they arrive.
//!
//! A node of store `S` may sync the catalog, `S`'s ledgers and `S`'s store document,
//! nothing else. A received change is made durable before the session answers: the
//! document chunk, its new facts (and the audit rows of its security facts and overrides)
//! and the peer's sync state commit in one SQLite transaction; if anything fails the
//! document leaves the cache so memory never runs ahead of disk.
//!
//! The catalog is the chain's: a node may change it (a store admin's `catalog.write`), and
//! each received change is audited as `catalog.changed_by_node` with the node, its store
//! and the SKUs it touched, in the same transaction.
//!
//! The store document is head office's: a node may read it but never change it. Every
//! change the server's own actor made is already stored here (the server persists before
//! it shares) and the genesis change is in every replica from the start, so a message that
//! brings any change the server does not hold is refused ([`SyncError::Forbidden`]):
//! whatever actor it claims, it is the node's, or a forgery of head office's actor id.
//! Nothing of it is stored and the document leaves the cache.

use automerge::ChangeHash;
use automerge::sync::{self, Message, SyncDoc};
use caja_shared::docs::{self, DocId, store};
use caja_shared::docstore;
use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::sync::{DocHost, SyncError};

use crate::error::ServerError;
use crate::reports::projection::{self, Projected};
use crate::server::hub::Core;

/// At most this many SKUs are listed in one `catalog.changed_by_node` audit entry (the
/// count is always whole).
const CATALOG_AUDIT_SKUS: usize = 100;

/// The documents of one connection, over the locked [`Core`].
pub(crate) struct ServerHost<'a> {
    core: &'a mut Core,
    store: &'a StoreCode,
    peer: String,
    /// Set when a received message changed the catalog (to broadcast it afterwards).
    pub catalog_changed: bool,
    /// Set when a received message tried to change the store document.
    pub refused_store_change: Option<Vec<String>>,
}

impl<'a> ServerHost<'a> {
    pub fn new(core: &'a mut Core, store: &'a StoreCode, node: &NodeId) -> Self {
        Self {
            core,
            store,
            peer: node.to_string(),
            catalog_changed: false,
            refused_store_change: None,
        }
    }

    /// Saves the sync states a session ends with.
    pub fn save_states<'s>(&mut self, states: impl Iterator<Item = (&'s DocId, &'s sync::State)>) {
        for (doc, state) in states {
            if let Err(e) = docstore::save_state(&self.core.conn, &self.peer, doc, state) {
                tracing::warn!(doc = %doc, error = %e, "could not save sync state");
            }
        }
    }

    /// Applies, persists and projects; see [`DocHost::receive`].
    fn receive_inner(
        &mut self,
        doc: &DocId,
        state: &mut sync::State,
        message: Message,
    ) -> Result<Received, ServerError> {
        let Core {
            conn, cache, actor, ..
        } = &mut *self.core;
        let am = cache.get_or_create(conn, doc)?;
        let before = am.get_heads();
        am.receive_sync_message(state, message)
            .map_err(docs::DocError::from)?;
        let after = am.get_heads();
        if doc.written_by_head_office() && after != before {
            let actors = store::actors_since(am, &before)
                .iter()
                .map(|a| {
                    if *a == store::genesis_actor() {
                        format!("{a} (genesis)")
                    } else if a == actor {
                        format!("{a} (forged head office actor)")
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            return Ok(Received::Refused(actors));
        }
        let tx = conn.transaction()?;
        if after != before {
            docstore::persist(&tx, doc, am, &before)?;
            if *doc == DocId::Catalog {
                // Nodes may write the chain catalog (a store admin's `catalog.write`), so
                // head office's audit says which node changed which products.
                let skus = docs::changed_skus(am, &before, &after);
                tracing::info!(node = %self.peer, store = %self.store, products = skus.len(), "a node changed the catalog");
                let shown: Vec<&String> = skus.iter().take(CATALOG_AUDIT_SKUS).collect();
                crate::audit::record(
                    &tx,
                    &crate::audit::NewEntry::new(
                        "catalog.changed_by_node",
                        serde_json::json!({"products": skus.len(), "skus": shown}),
                    )
                    .node(&self.peer)
                    .store(self.store),
                )?;
            }
            if let DocId::Ledger { store, .. } = doc {
                for fact in docs::new_facts(am, &before, &after) {
                    match fact {
                        Ok(f) => match projection::project_fact(&*tx, store, &f)? {
                            Projected::WrongStore => tracing::warn!(
                                doc = %doc, fact = %f.id, fact_store = %f.store,
                                "fact belongs to another store than its ledger; not projected"
                            ),
                            Projected::OutOfBounds => tracing::warn!(
                                doc = %doc, fact = %f.id,
                                "fact has an amount beyond the bounds our nodes enforce; not projected"
                            ),
                            Projected::Inserted => {
                                crate::audit::record_fact(&tx, &f)?;
                            }
                            Projected::Duplicate => {}
                        },
                        Err(e) => tracing::warn!(doc = %doc, error = %e, "undecodable fact; not projected"),
                    }
                }
            }
        }
        docstore::save_state(&tx, &self.peer, doc, state)?;
        tx.commit()?;
        Ok(Received::Stored {
            changed: after != before,
        })
    }
}

/// What [`ServerHost::receive_inner`] did with a message.
enum Received {
    /// Applied and persisted.
    Stored {
        /// Whether the document's heads moved.
        changed: bool,
    },
    /// Refused: it changes the store document; these actors' changes were in it.
    Refused(Vec<String>),
}

impl DocHost for ServerHost<'_> {
    fn announce(&mut self) -> Result<Vec<(DocId, Vec<ChangeHash>)>, String> {
        let all = docstore::all_heads(&self.core.conn).map_err(|e| e.to_string())?;
        Ok(all.into_iter().filter(|(d, _)| self.may_sync(d)).collect())
    }

    fn may_sync(&self, doc: &DocId) -> bool {
        match doc {
            DocId::Catalog => true,
            DocId::Ledger { store, .. } | DocId::Store { store } => store == self.store,
        }
    }

    fn saved_state(&mut self, doc: &DocId) -> Option<sync::State> {
        match docstore::load_state(&self.core.conn, &self.peer, doc) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(doc = %doc, error = %e, "could not load sync state; starting fresh");
                None
            }
        }
    }

    fn generate(&mut self, doc: &DocId, state: &mut sync::State) -> Result<Option<Message>, String> {
        let Core { conn, cache, .. } = &mut *self.core;
        let am = cache.get_or_create(conn, doc).map_err(|e| e.to_string())?;
        Ok(am.generate_sync_message(state))
    }

    fn receive(&mut self, doc: &DocId, state: &mut sync::State, message: Message) -> Result<(), SyncError> {
        match self.receive_inner(doc, state, message) {
            Ok(Received::Stored { changed }) => {
                if changed && *doc == DocId::Catalog {
                    self.catalog_changed = true;
                }
                Ok(())
            }
            Ok(Received::Refused(actors)) => {
                self.core.cache.forget(doc);
                *state = sync::State::new();
                tracing::warn!(doc = %doc, ?actors, "refused a node's change to a document only head office writes");
                self.refused_store_change = Some(actors);
                Err(SyncError::Forbidden(doc.clone()))
            }
            Err(e) => {
                // Memory must never run ahead of disk, and a fresh sync state is always safe.
                self.core.cache.forget(doc);
                *state = sync::State::new();
                tracing::error!(doc = %doc, error = %e, "could not apply a sync message");
                Err(SyncError::Host(e.to_string()))
            }
        }
    }
}
