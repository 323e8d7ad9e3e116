//! The sans-IO sync session: what to send when a frame arrives or a document changes.
//!
//! No sockets, no clock, no tokio: the caller feeds frames in and writes the frames that
//! come out, and a [`DocHost`] owns the documents (and their storage). This keeps the
//! protocol testable deterministically: the tests below run two peers over an in-memory
//! queue with duplicated and reordered delivery and dropped connections.
//!
//! Flow: the node sends [`Frame::Hello`] with its documents' heads; the server checks the
//! node (outside this module), answers [`Frame::Welcome`] with its heads, and from then on
//! both sides run automerge's sync protocol only for documents whose heads differ. After
//! the catch-up, [`Session::local_change`] pushes each new local change as it happens.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;
use automerge::sync::{self, Message};

use crate::docs::DocId;
use crate::protocol::{DocHeads, ErrorCode, Frame};

/// Errors that end a session.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The peer asked to sync a document it may not see.
    #[error("document {0} is not allowed for this peer")]
    Forbidden(DocId),
    /// A sync message could not be decoded.
    #[error("bad sync message for {doc}: {detail}")]
    Malformed {
        /// The document.
        doc: DocId,
        /// What was wrong.
        detail: String,
    },
    /// A frame arrived that the session did not expect in its phase.
    #[error("unexpected frame in phase {0}")]
    Unexpected(&'static str),
    /// The peer ended the session with an error frame.
    #[error("peer refused: {code:?}: {message}")]
    Remote {
        /// The peer's code.
        code: ErrorCode,
        /// The peer's message.
        message: String,
    },
    /// The document host failed (storage, automerge).
    #[error("document host: {0}")]
    Host(String),
}

impl SyncError {
    /// The error frame to send the peer before closing, if one should be sent.
    pub fn to_frame(&self) -> Option<Frame> {
        let code = match self {
            SyncError::Forbidden(_) => ErrorCode::Forbidden,
            SyncError::Malformed { .. } => ErrorCode::Malformed,
            SyncError::Unexpected(_) => ErrorCode::UnexpectedFrame,
            SyncError::Remote { .. } => return None,
            SyncError::Host(_) => ErrorCode::Internal,
        };
        let message = if code == ErrorCode::Internal {
            "internal error".to_string()
        } else {
            self.to_string()
        };
        Some(Frame::Error { code, message })
    }
}

/// The documents one side holds. Implemented by the node and the server over SQLite, and by
/// an in-memory map in tests.
pub trait DocHost {
    /// Heads of every document this side has that the peer may see.
    ///
    /// # Errors
    /// Storage failures, as text.
    fn announce(&mut self) -> Result<Vec<(DocId, Vec<ChangeHash>)>, String>;
    /// Whether the peer may sync this document.
    fn may_sync(&self, doc: &DocId) -> bool;
    /// A sync state saved from an earlier session with this peer, if any.
    fn saved_state(&mut self, _doc: &DocId) -> Option<sync::State> {
        None
    }
    /// Generates the next sync message for `doc` (creating an empty document if this side
    /// does not have it yet).
    ///
    /// # Errors
    /// Storage or automerge failures, as text.
    fn generate(&mut self, doc: &DocId, state: &mut sync::State) -> Result<Option<Message>, String>;
    /// Both sides were found to have exactly these heads for `doc` at the start of a
    /// session: the peer has everything this side has (e.g. a reply acknowledging it was
    /// lost when the last connection dropped). Default: nothing to do.
    ///
    /// # Errors
    /// Storage failures, as text.
    fn in_sync(&mut self, _doc: &DocId, _heads: &[ChangeHash]) -> Result<(), String> {
        Ok(())
    }
    /// Applies a received sync message to `doc` and makes the result durable before
    /// returning (so a later reply acknowledges stored data).
    ///
    /// # Errors
    /// [`SyncError::Forbidden`] when the message carries changes this peer may not make
    /// (e.g. a node writing a document only head office writes; nothing is stored);
    /// [`SyncError::Host`] for storage or automerge failures.
    fn receive(&mut self, doc: &DocId, state: &mut sync::State, message: Message) -> Result<(), SyncError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Node: Hello sent, waiting for Welcome.
    AwaitWelcome,
    /// Both: syncing.
    Live,
}

/// One peer's view of a sync session. Create with [`Session::client`] on the node or
/// [`Session::accept`] on the server.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    states: BTreeMap<DocId, sync::State>,
}

impl Session {
    /// Starts a node's session: returns the session and the Hello frame to send.
    ///
    /// # Errors
    /// [`SyncError::Host`] when the host cannot list its documents.
    pub fn client(
        host: &mut impl DocHost,
        node: crate::ids::NodeId,
        store: crate::ids::StoreCode,
    ) -> Result<(Session, Frame), SyncError> {
        let docs = host.announce().map_err(SyncError::Host)?;
        let docs = docs.into_iter().map(|(d, h)| DocHeads::new(d, &h)).collect();
        Ok((
            Session {
                phase: Phase::AwaitWelcome,
                states: BTreeMap::new(),
            },
            Frame::Hello { node, store, docs },
        ))
    }

    /// Accepts a node on the server after its Hello was checked: returns the session and
    /// the frames to send (Welcome, then the first sync message of each document that
    /// differs).
    ///
    /// # Errors
    /// [`SyncError::Forbidden`] if the node announced a document it may not see;
    /// [`SyncError::Host`] on storage failures.
    pub fn accept(
        host: &mut impl DocHost,
        node_docs: &[DocHeads],
    ) -> Result<(Session, Vec<Frame>), SyncError> {
        if let Some(bad) = node_docs.iter().find(|d| !host.may_sync(&d.doc)) {
            return Err(SyncError::Forbidden(bad.doc.clone()));
        }
        let ours = host.announce().map_err(SyncError::Host)?;
        let welcome = Frame::Welcome {
            docs: ours.iter().map(|(d, h)| DocHeads::new(d.clone(), h)).collect(),
        };
        let mut session = Session {
            phase: Phase::Live,
            states: BTreeMap::new(),
        };
        let mut out = vec![welcome];
        out.extend(session.start_docs(host, ours, node_docs)?);
        Ok((session, out))
    }

    /// Compares both sides' heads and starts the sync of every document that differs.
    fn start_docs(
        &mut self,
        host: &mut impl DocHost,
        ours: Vec<(DocId, Vec<ChangeHash>)>,
        theirs: &[DocHeads],
    ) -> Result<Vec<Frame>, SyncError> {
        let ours: BTreeMap<DocId, BTreeSet<ChangeHash>> = ours
            .into_iter()
            .map(|(d, h)| (d, h.into_iter().collect()))
            .collect();
        let theirs: BTreeMap<DocId, BTreeSet<ChangeHash>> = theirs
            .iter()
            .map(|d| (d.doc.clone(), d.change_hashes().into_iter().collect()))
            .collect();
        let all: BTreeSet<&DocId> = ours.keys().chain(theirs.keys()).collect();
        let mut out = Vec::new();
        for doc in all {
            if !host.may_sync(doc) {
                continue;
            }
            let mut state = host.saved_state(doc).unwrap_or_default();
            match (ours.get(doc), theirs.get(doc)) {
                (Some(a), Some(b)) if a == b => {
                    // Same heads: nothing to exchange now; remember them as shared so the
                    // next local change sends only what is new.
                    state.shared_heads = a.iter().copied().collect();
                    host.in_sync(doc, &state.shared_heads).map_err(SyncError::Host)?;
                    self.states.insert(doc.clone(), state);
                }
                _ => {
                    if let Some(m) = host.generate(doc, &mut state).map_err(SyncError::Host)? {
                        out.push(Frame::Sync {
                            doc: doc.clone(),
                            message: m.encode(),
                        });
                    }
                    self.states.insert(doc.clone(), state);
                }
            }
        }
        Ok(out)
    }

    /// Handles one received frame and returns the frames to send back.
    ///
    /// # Errors
    /// A [`SyncError`]; the caller sends [`SyncError::to_frame`] (if any) and closes.
    pub fn handle(&mut self, frame: Frame, host: &mut impl DocHost) -> Result<Vec<Frame>, SyncError> {
        match (self.phase, frame) {
            (_, Frame::Error { code, message }) => Err(SyncError::Remote { code, message }),
            (Phase::AwaitWelcome, Frame::Welcome { docs }) => {
                self.phase = Phase::Live;
                let ours = host.announce().map_err(SyncError::Host)?;
                self.start_docs(host, ours, &docs)
            }
            (Phase::Live, Frame::Sync { doc, message }) => {
                if !host.may_sync(&doc) {
                    return Err(SyncError::Forbidden(doc));
                }
                let message = Message::decode(&message).map_err(|e| SyncError::Malformed {
                    doc: doc.clone(),
                    detail: e.to_string(),
                })?;
                let state = self
                    .states
                    .entry(doc.clone())
                    .or_insert_with(|| host.saved_state(&doc).unwrap_or_default());
                host.receive(&doc, state, message)?;
                let reply = host.generate(&doc, state).map_err(SyncError::Host)?;
                Ok(reply
                    .map(|m| Frame::Sync {
                        doc,
                        message: m.encode(),
                    })
                    .into_iter()
                    .collect())
            }
            (Phase::AwaitWelcome, _) => Err(SyncError::Unexpected("awaiting welcome")),
            (Phase::Live, _) => Err(SyncError::Unexpected("live")),
        }
    }

    /// A local change to `doc` happened: returns the frame that pushes it, if the session
    /// is live, the peer may see the document and automerge has something to send.
    ///
    /// # Errors
    /// [`SyncError::Host`] on storage failures.
    pub fn local_change(&mut self, doc: &DocId, host: &mut impl DocHost) -> Result<Vec<Frame>, SyncError> {
        if self.phase != Phase::Live || !host.may_sync(doc) {
            return Ok(Vec::new());
        }
        let state = self
            .states
            .entry(doc.clone())
            .or_insert_with(|| host.saved_state(doc).unwrap_or_default());
        let m = host.generate(doc, state).map_err(SyncError::Host)?;
        Ok(m.map(|m| Frame::Sync {
            doc: doc.clone(),
            message: m.encode(),
        })
        .into_iter()
        .collect())
    }

    /// Whether the Welcome has been exchanged.
    pub fn is_live(&self) -> bool {
        self.phase == Phase::Live
    }

    /// The per-document sync states, to persist at the end of a session.
    pub fn states(&self) -> impl Iterator<Item = (&DocId, &sync::State)> {
        self.states.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::{self, Product};
    use crate::ids::{NodeId, StoreCode};
    use automerge::{Automerge, sync::SyncDoc};
    use proptest::prelude::*;
    use std::collections::{HashMap, VecDeque};

    /// An in-memory host; `store` limits which ledgers it lets the peer see.
    #[derive(Default)]
    struct Mem {
        docs: HashMap<DocId, Automerge>,
        store: Option<StoreCode>,
        in_sync: Vec<DocId>,
    }

    impl DocHost for Mem {
        fn announce(&mut self) -> Result<Vec<(DocId, Vec<ChangeHash>)>, String> {
            let mut v: Vec<_> = self
                .docs
                .iter()
                .filter(|(d, _)| self.may_sync(d))
                .map(|(d, a)| (d.clone(), a.get_heads()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(v)
        }
        fn may_sync(&self, doc: &DocId) -> bool {
            match (&self.store, doc.store()) {
                (Some(s), Some(d)) => s == d,
                _ => true,
            }
        }
        fn generate(&mut self, doc: &DocId, state: &mut sync::State) -> Result<Option<Message>, String> {
            let d = match self.docs.get(doc) {
                Some(d) => d,
                None => self
                    .docs
                    .entry(doc.clone())
                    .or_insert(docs::empty_doc(doc).map_err(|e| e.to_string())?),
            };
            Ok(d.generate_sync_message(state))
        }
        fn in_sync(&mut self, doc: &DocId, _heads: &[ChangeHash]) -> Result<(), String> {
            self.in_sync.push(doc.clone());
            Ok(())
        }
        fn receive(&mut self, doc: &DocId, state: &mut sync::State, m: Message) -> Result<(), SyncError> {
            let d = match self.docs.get_mut(doc) {
                Some(d) => d,
                None => self
                    .docs
                    .entry(doc.clone())
                    .or_insert(docs::empty_doc(doc).map_err(|e| SyncError::Host(e.to_string()))?),
            };
            d.receive_sync_message(state, m)
                .map_err(|e| SyncError::Host(e.to_string()))
        }
    }

    fn ledger(store: &str, day: u32) -> DocId {
        DocId::Ledger {
            store: store.parse().unwrap(),
            date: chrono::NaiveDate::from_ymd_opt(2024, 1, day).unwrap(),
        }
    }

    fn sale(store: &str, day: u32, n: i64) -> crate::facts::Fact {
        let mut f = crate::facts::tests_support::sample();
        f.id = crate::ids::FactId::new();
        f.store = store.parse().unwrap();
        f.business_date = chrono::NaiveDate::from_ymd_opt(2024, 1, day).unwrap();
        f.hlc.counter = n as u32;
        f
    }

    /// Runs a session between `node` and `server` until quiet. `dup` duplicates every k-th
    /// frame, `cut_after` drops the connection after that many frames (the session ends and
    /// the caller reconnects). Returns whether it ran to quiet.
    fn run(node: &mut Mem, server: &mut Mem, dup: usize, cut_after: Option<usize>) -> bool {
        let store: StoreCode = "a".parse().unwrap();
        let (mut ns, hello) = Session::client(node, NodeId::new(), store).unwrap();
        let Frame::Hello { docs, .. } = hello else {
            panic!()
        };
        let (mut ss, first) = Session::accept(server, &docs).unwrap();
        let mut to_node: VecDeque<Frame> = first.into();
        let mut to_server: VecDeque<Frame> = VecDeque::new();
        let mut sent = 0usize;
        loop {
            if to_node.is_empty() && to_server.is_empty() {
                return true;
            }
            if let Some(f) = to_node.pop_front() {
                sent += 1;
                if dup > 0 && sent.is_multiple_of(dup) && matches!(f, Frame::Sync { .. }) {
                    to_server.extend(ns.handle(f.clone(), node).unwrap());
                }
                to_server.extend(ns.handle(f, node).unwrap());
            }
            if let Some(f) = to_server.pop_front() {
                sent += 1;
                to_node.extend(ss.handle(f, server).unwrap());
            }
            if cut_after.is_some_and(|c| sent >= c) {
                return false;
            }
            assert!(sent < 10_000, "sync did not go quiet");
        }
    }

    fn heads(m: &Mem, d: &DocId) -> Vec<ChangeHash> {
        m.docs.get(d).map(|a| a.get_heads()).unwrap_or_default()
    }

    #[test]
    fn catch_up_then_same_heads_sends_only_welcome() {
        let mut node = Mem::default();
        let mut server = Mem {
            store: Some("a".parse().unwrap()),
            ..Default::default()
        };
        node.docs.insert(DocId::Catalog, docs::catalog_genesis().unwrap());
        let mut l = docs::ledger_empty();
        docs::append_facts(&mut l, &[sale("a", 1, 1), sale("a", 1, 2)]).unwrap();
        node.docs.insert(ledger("a", 1), l);
        let mut cat = docs::catalog_genesis().unwrap();
        docs::put_products(
            &mut cat,
            &[Product {
                sku: "X".into(),
                name: "x".into(),
                unit_price: 1.into(),
                tax_rate: 0.into(),
                barcode: None,
                category: None,
                stock_tracked: true,
            }],
        )
        .unwrap();
        server.docs.insert(DocId::Catalog, cat);
        assert!(run(&mut node, &mut server, 0, None));
        assert_eq!(heads(&node, &DocId::Catalog), heads(&server, &DocId::Catalog));
        assert_eq!(docs::ledger_len(&server.docs[&ledger("a", 1)]), 2);

        // Second session: nothing differs, so the server sends only its Welcome.
        let (_s, hello) = Session::client(&mut node, NodeId::new(), "a".parse().unwrap()).unwrap();
        let Frame::Hello { docs, .. } = hello else {
            panic!()
        };
        let (_ss, out) = Session::accept(&mut server, &docs).unwrap();
        assert_eq!(out.len(), 1);
        // The node learns from the Welcome that the server has all of its ledger: a lost
        // acknowledgement from the previous session is recovered.
        let mut ns = _s;
        assert!(
            ns.handle(out.into_iter().next().unwrap(), &mut node)
                .unwrap()
                .is_empty()
        );
        assert!(node.in_sync.contains(&ledger("a", 1)));
    }

    #[test]
    fn server_refuses_other_stores_ledgers() {
        let mut server = Mem {
            store: Some("a".parse().unwrap()),
            ..Default::default()
        };
        let docs = vec![DocHeads::new(ledger("b", 1), &[])];
        assert!(matches!(
            Session::accept(&mut server, &docs),
            Err(SyncError::Forbidden(_))
        ));
        let (mut s, _) = Session::accept(&mut server, &[]).unwrap();
        let err = s
            .handle(
                Frame::Sync {
                    doc: ledger("b", 1),
                    message: vec![],
                },
                &mut server,
            )
            .unwrap_err();
        assert!(matches!(err, SyncError::Forbidden(_)));
        assert!(matches!(
            err.to_frame(),
            Some(Frame::Error {
                code: ErrorCode::Forbidden,
                ..
            })
        ));
        let err = s
            .handle(
                Frame::Sync {
                    doc: ledger("a", 1),
                    message: vec![1, 2, 3],
                },
                &mut server,
            )
            .unwrap_err();
        assert!(matches!(err, SyncError::Malformed { .. }));
    }

    #[test]
    fn live_push_reaches_peer() {
        let mut node = Mem::default();
        let mut server = Mem {
            store: Some("a".parse().unwrap()),
            ..Default::default()
        };
        node.docs.insert(DocId::Catalog, docs::catalog_genesis().unwrap());
        server
            .docs
            .insert(DocId::Catalog, docs::catalog_genesis().unwrap());
        let (mut ns, hello) = Session::client(&mut node, NodeId::new(), "a".parse().unwrap()).unwrap();
        let Frame::Hello { docs: d, .. } = hello else {
            panic!()
        };
        let (mut ss, first) = Session::accept(&mut server, &d).unwrap();
        for f in first {
            assert!(ns.handle(f, &mut node).unwrap().is_empty());
        }
        // A sale on the node is pushed to the server through local_change.
        let doc = ledger("a", 3);
        let mut l = docs::ledger_empty();
        docs::append_facts(&mut l, &[sale("a", 3, 1)]).unwrap();
        node.docs.insert(doc.clone(), l);
        let mut to_server: VecDeque<Frame> = ns.local_change(&doc, &mut node).unwrap().into();
        let mut rounds = 0;
        while let Some(f) = to_server.pop_front() {
            for back in ss.handle(f, &mut server).unwrap() {
                to_server.extend(ns.handle(back, &mut node).unwrap());
            }
            rounds += 1;
            assert!(rounds < 20);
        }
        assert_eq!(heads(&node, &doc), heads(&server, &doc));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Random sales on the node in several days, with duplicated frames and connections
        /// cut at random points: after a final clean session both sides are equal.
        #[test]
        fn converges_despite_duplicates_and_cuts(
            batches in proptest::collection::vec((1u32..4, 1usize..6), 1..6),
            dup in 0usize..4,
            cuts in proptest::collection::vec(1usize..12, 0..3),
        ) {
            let mut node = Mem::default();
            let mut server = Mem { store: Some("a".parse().unwrap()), ..Default::default() };
            node.docs.insert(DocId::Catalog, docs::catalog_genesis().unwrap());
            server.docs.insert(DocId::Catalog, docs::catalog_genesis().unwrap());
            let mut n = 0;
            let mut expected = 0usize;
            for (day, count) in batches {
                let doc = ledger("a", day);
                let facts: Vec<_> = (0..count).map(|_| { n += 1; sale("a", day, n) }).collect();
                expected += count;
                let d = node.docs.entry(doc).or_insert_with(docs::ledger_empty);
                docs::append_facts(d, &facts).unwrap();
            }
            for c in cuts {
                run(&mut node, &mut server, dup, Some(c));
            }
            prop_assert!(run(&mut node, &mut server, dup, None));
            let mut total = 0;
            for (doc, a) in &node.docs {
                prop_assert_eq!(a.get_heads(), heads(&server, doc));
                if doc.store().is_some() { total += docs::ledger_len(&server.docs[doc]); }
            }
            prop_assert_eq!(total, expected);
        }
    }
}
