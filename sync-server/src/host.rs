//! The server's [`DocHost`]: the documents one connected node of a store may sync,
//! stored in SQLite and projected into the facts table as they arrive.
//!
//! A node of store `S` may sync the catalog and `S`'s ledgers, nothing else. A received
//! change is made durable before the session answers: the document chunk, its new facts
//! and the peer's sync state commit in one SQLite transaction; if anything fails the
//! document leaves the cache so memory never runs ahead of disk.

use automerge::ChangeHash;
use automerge::sync::{self, Message, SyncDoc};
use caja_shared::docs::{self, DocId};
use caja_shared::docstore;
use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::sync::{DocHost, SyncError};

use crate::error::ServerError;
use crate::hub::Core;
use crate::projection::{self, Projected};

/// The documents of one connection, over the locked [`Core`].
pub(crate) struct ServerHost<'a> {
    core: &'a mut Core,
    store: &'a StoreCode,
    peer: String,
    /// Set when a received message changed the catalog (to broadcast it afterwards).
    pub catalog_changed: bool,
}

impl<'a> ServerHost<'a> {
    pub fn new(core: &'a mut Core, store: &'a StoreCode, node: &NodeId) -> Self {
        Self {
            core,
            store,
            peer: node.to_string(),
            catalog_changed: false,
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
    ) -> Result<bool, ServerError> {
        let Core { conn, cache, .. } = &mut *self.core;
        let am = cache.get_or_create(conn, doc)?;
        let before = am.get_heads();
        am.receive_sync_message(state, message)
            .map_err(docs::DocError::from)?;
        let after = am.get_heads();
        let tx = conn.transaction()?;
        if after != before {
            docstore::persist(&tx, doc, am, &before)?;
            if let DocId::Ledger { store, .. } = doc {
                for fact in docs::new_facts(am, &before, &after) {
                    match fact {
                        Ok(f) => match projection::project_fact(&tx, store, &f)? {
                            Projected::WrongStore => tracing::warn!(
                                doc = %doc, fact = %f.id, fact_store = %f.store,
                                "fact belongs to another store than its ledger; not projected"
                            ),
                            Projected::Inserted | Projected::Duplicate => {}
                        },
                        Err(e) => tracing::warn!(doc = %doc, error = %e, "undecodable fact; not projected"),
                    }
                }
            }
        }
        docstore::save_state(&tx, &self.peer, doc, state)?;
        tx.commit()?;
        Ok(after != before)
    }
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
            Ok(changed) => {
                if changed && *doc == DocId::Catalog {
                    self.catalog_changed = true;
                }
                Ok(())
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
