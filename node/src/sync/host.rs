//! The node's side of the sans-IO sync session: documents in the node database, changes
//! projected in the same transaction that stores them.

use automerge::ChangeHash;
use automerge::sync::{self, Message, SyncDoc};
use caja_shared::docs::store as store_doc;
use caja_shared::docs::{self, DocId};
use caja_shared::docstore;
use caja_shared::ids::StoreCode;
use caja_shared::sync::{DocHost, SyncError};

use crate::auth::staff;
use crate::store::{Ctx, projection};

/// The peer name under which sync states with the server are saved.
pub const SERVER_PEER: &str = "server";

/// [`DocHost`] over the writer's context. Lives for one writer job.
pub struct NodeHost<'c, 'a> {
    /// The writer job's context.
    pub ctx: &'c mut Ctx<'a>,
    /// This node's store: the only ledgers it syncs.
    pub store: StoreCode,
}

impl DocHost for NodeHost<'_, '_> {
    fn announce(&mut self) -> Result<Vec<(DocId, Vec<ChangeHash>)>, String> {
        let all = docstore::all_heads(self.ctx.conn).map_err(|e| e.to_string())?;
        Ok(all.into_iter().filter(|(d, _)| self.may_sync(d)).collect())
    }

    fn may_sync(&self, doc: &DocId) -> bool {
        match doc.store() {
            None => true,
            Some(s) => *s == self.store,
        }
    }

    fn saved_state(&mut self, doc: &DocId) -> Option<sync::State> {
        docstore::load_state(self.ctx.conn, SERVER_PEER, doc)
            .ok()
            .flatten()
    }

    fn generate(&mut self, doc: &DocId, state: &mut sync::State) -> Result<Option<Message>, String> {
        self.loadable(doc, state)?;
        let am = self.ctx.doc(doc).map_err(|e| e.to_string())?;
        Ok(am.generate_sync_message(state))
    }

    fn in_sync(&mut self, doc: &DocId, _heads: &[ChangeHash]) -> Result<(), String> {
        // The session found the server's heads equal to the heads we announced: it stored
        // every fact we have in this document (it persists before it announces), so they
        // are acknowledged even if its reply was lost with the previous connection.
        if matches!(doc, DocId::Ledger { .. }) {
            projection::ack_doc(self.ctx.conn, doc).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn receive(&mut self, doc: &DocId, state: &mut sync::State, message: Message) -> Result<(), SyncError> {
        self.receive_inner(doc, state, message).map_err(SyncError::Host)
    }
}

impl NodeHost<'_, '_> {
    /// Makes sure `doc` loads. A document only head office writes (the staff document)
    /// that no longer loads from disk is dropped and fetched again from the server, with a
    /// fresh sync state, instead of failing every session from now on; any other document
    /// is this node's own data and its error stands.
    fn loadable(&mut self, doc: &DocId, state: &mut sync::State) -> Result<(), String> {
        match self.ctx.doc(doc) {
            Ok(_) => Ok(()),
            Err(e) if doc.written_by_head_office() => {
                tracing::warn!(%doc, error = %e, "local copy of a head-office document does not load; fetching it again");
                self.ctx.drop_doc(doc).map_err(|e| e.to_string())?;
                *state = sync::State::new();
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn receive_inner(
        &mut self,
        doc: &DocId,
        state: &mut sync::State,
        message: Message,
    ) -> Result<(), String> {
        self.loadable(doc, state)?;
        let am = self.ctx.doc(doc).map_err(|e| e.to_string())?;
        let before = am.get_heads();
        am.receive_sync_message(state, message)
            .map_err(|e| e.to_string())?;
        let after = am.get_heads();
        let (skus, facts) = match doc {
            DocId::Catalog => (docs::changed_skus(am, &before, &after), Vec::new()),
            DocId::Ledger { .. } => (Vec::new(), docs::new_facts(am, &before, &after)),
            DocId::Store { .. } => (Vec::new(), Vec::new()),
        };
        // The staff document: read users and roles now, project them below.
        let staff_doc = match doc {
            DocId::Store { .. } if before != after => {
                let users: Vec<store_doc::StaffUser> = store_doc::users(am)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .filter_map(|u| match u {
                        Ok(u) => Some(u),
                        Err(e) => {
                            tracing::warn!(%doc, error = %e, "staff entry does not follow the schema; skipped");
                            None
                        }
                    })
                    .collect();
                Some((users, store_doc::roles(am).map_err(|e| e.to_string())?))
            }
            _ => None,
        };
        // Read products now, while we hold the document.
        let mut products = Vec::new();
        for sku in &skus {
            match docs::product(am, sku) {
                Ok(Some(p)) => products.push(p),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%sku, error = %e, "catalog product does not follow the schema; skipped")
                }
            }
        }
        // Every head of ours is now known to the server: all our facts in it are stored there
        // (the server persists before it replies).
        let acked = after.iter().all(|h| state.shared_heads.contains(h));
        self.ctx.persist(doc, &before).map_err(|e| e.to_string())?;
        for p in &products {
            projection::upsert_product(self.ctx.conn, p).map_err(|e| e.to_string())?;
        }
        if let Some((users, roles)) = &staff_doc {
            let changes = staff::project(self.ctx.conn, users, roles).map_err(|e| e.to_string())?;
            tracing::info!(%doc, staff = users.len(), changes, "staff updated from head office");
        }
        for f in facts {
            match f {
                Ok(f) if f.store == self.store && !f.amounts_within_bounds() => {
                    tracing::warn!(fact = %f.id, %doc, "fact with an amount beyond the bounds our nodes enforce; skipped")
                }
                Ok(f) if f.store == self.store => {
                    projection::project_fact(self.ctx.conn, doc, &f, false, true)
                        .map_err(|e| e.to_string())?
                }
                Ok(f) => {
                    tracing::warn!(fact = %f.id, store = %f.store, %doc, "fact of another store in our ledger; skipped")
                }
                Err(e) => tracing::warn!(%doc, error = %e, "undecodable fact in ledger; skipped"),
            }
        }
        if acked && matches!(doc, DocId::Ledger { .. }) {
            projection::ack_doc(self.ctx.conn, doc).map_err(|e| e.to_string())?;
        }
        docstore::save_state(self.ctx.conn, SERVER_PEER, doc, state).map_err(|e| e.to_string())?;
        Ok(())
    }
}
