//! Raw QUIC peers for head office's protocol tests: enrollment of test nodes with real
//! CSRs and certificates ([`enroll`]), client endpoints with or without a certificate
//! ([`endpoint`], [`connect`]), reading the server's refusals ([`read_until_error`],
//! [`close_code`]), and a minimal node ([`RawNode`]): an in-memory document host
//! ([`MemHost`]) driving `caja_shared::sync::Session` over mutual-TLS QUIC.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use automerge::sync::{self, Message, SyncDoc};
use automerge::{Automerge, ChangeHash};
use caja_shared::docs::{self, DocId};
use caja_shared::facts::Fact;
use caja_shared::ids::{FactId, NodeId, StoreCode};
use caja_shared::net::client::{self, ClientIdentity};
use caja_shared::net::wire;
use caja_shared::protocol::Frame;
use caja_shared::sync::{DocHost, Session, SyncError};
use chrono::NaiveDate;
use tokio::task::JoinHandle;

use super::TestHq;

/// How long [`read_until_error`] waits for a frame and [`close_code`] for the close.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// An in-memory node's documents.
#[derive(Default)]
pub struct MemHost {
    /// The documents by id.
    pub docs: HashMap<DocId, Automerge>,
}

impl MemHost {
    fn doc(&mut self, doc: &DocId) -> Result<&mut Automerge, String> {
        if !self.docs.contains_key(doc) {
            let am = docs::empty_doc(doc).map_err(|e| e.to_string())?;
            self.docs.insert(doc.clone(), am);
        }
        self.docs.get_mut(doc).ok_or_else(|| "vanished".to_string())
    }

    /// The sorted hex heads of `doc` (empty when the host does not have it).
    pub fn heads_hex(&self, doc: &DocId) -> Vec<String> {
        let mut h: Vec<String> = self
            .docs
            .get(doc)
            .map(|a| a.get_heads().iter().map(|h| hex::encode(h.0)).collect())
            .unwrap_or_default();
        h.sort();
        h
    }
}

impl DocHost for MemHost {
    fn announce(&mut self) -> Result<Vec<(DocId, Vec<ChangeHash>)>, String> {
        let mut v: Vec<_> = self
            .docs
            .iter()
            .map(|(d, a)| (d.clone(), a.get_heads()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }
    fn may_sync(&self, _doc: &DocId) -> bool {
        true
    }
    fn generate(&mut self, doc: &DocId, state: &mut sync::State) -> Result<Option<Message>, String> {
        Ok(self.doc(doc)?.generate_sync_message(state))
    }
    fn receive(&mut self, doc: &DocId, state: &mut sync::State, m: Message) -> Result<(), SyncError> {
        self.doc(doc)
            .map_err(SyncError::Host)?
            .receive_sync_message(state, m)
            .map_err(|e| SyncError::Host(e.to_string()))
    }
}

/// `n` sample sales of `store` on `date`, with fresh ids.
///
/// # Panics
/// When `store` is not a store code.
pub fn sales(store: &str, date: NaiveDate, n: usize) -> Vec<Fact> {
    (0..n)
        .map(|_| {
            let mut f = caja_shared::facts::tests_support::sample();
            f.id = FactId::new();
            f.store = store.parse().expect("a store code");
            f.business_date = date;
            f
        })
        .collect()
}

/// A ledger document holding `facts` (all of one store and day).
///
/// # Panics
/// When `facts` is empty or cannot be appended.
pub fn ledger_with(facts: &[Fact]) -> (DocId, Automerge) {
    let doc = DocId::Ledger {
        store: facts[0].store.clone(),
        date: facts[0].business_date,
    };
    let mut am = docs::ledger_empty();
    docs::append_facts(&mut am, facts).expect("facts append to a ledger");
    (doc, am)
}

/// A QUIC client endpoint trusting the CA with `fingerprint`, presenting `identity`.
///
/// # Panics
/// When the endpoint cannot be bound or the fingerprint or identity is unusable.
pub fn endpoint(fingerprint: &str, identity: Option<&ClientIdentity>) -> quinn::Endpoint {
    let mut ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("a client endpoint");
    ep.set_default_client_config(
        client::client_config(fingerprint, identity).expect("a client configuration"),
    );
    ep
}

/// An enrolled test node: its id, store, key and certificate.
pub struct Enrolled {
    /// The node id head office gave it.
    pub node: NodeId,
    /// Its store.
    pub store: StoreCode,
    /// Its private key (PEM).
    pub key_pem: caja_shared::auth::secrets::Secret,
    /// Its client certificate (DER).
    pub certificate: Vec<u8>,
    /// When the certificate expires (Unix seconds).
    pub not_after: i64,
}

impl Enrolled {
    /// The certificate and key as a client identity.
    ///
    /// # Panics
    /// When they do not make one (a harness bug).
    pub fn identity(&self) -> ClientIdentity {
        ClientIdentity::new(self.certificate.clone(), &self.key_pem).expect("a client identity")
    }

    /// An endpoint that trusts `hq`'s CA and presents this node's certificate.
    pub fn endpoint(&self, hq: &TestHq) -> quinn::Endpoint {
        endpoint(&hq.ca_fingerprint(), Some(&self.identity()))
    }

    /// The `Hello` this node opens a session with (announcing no documents).
    pub fn hello(&self) -> Frame {
        Frame::Hello {
            node: self.node,
            store: self.store.clone(),
            docs: vec![],
        }
    }
}

/// Registers `store` if needed and enrolls a node for it with a fresh code.
///
/// # Panics
/// When the code cannot be issued or the enrollment fails.
pub async fn enroll(hq: &TestHq, store: &str) -> Enrolled {
    let code: StoreCode = store.parse().expect("a store code");
    let _ = hq
        .server
        .create_store(&caja_sync_server::Actor::local(), code.clone(), store)
        .await;
    let issued = hq
        .server
        .enrollment_code(
            &caja_sync_server::Actor::local(),
            &code,
            Duration::from_secs(3600),
        )
        .await
        .expect("an enrollment code");
    let key = client::node_csr().expect("a node key and CSR");
    let e = client::enroll(
        &hq.quic.to_string(),
        &hq.ca_fingerprint(),
        issued.code,
        key.csr_der,
        None,
    )
    .await
    .expect("the enrollment succeeds");
    assert_eq!(e.store, code);
    Enrolled {
        node: e.node,
        store: e.store,
        key_pem: key.key_pem,
        certificate: e.certificate,
        not_after: e.not_after,
    }
}

/// Connects and opens the sync stream.
///
/// # Panics
/// When the connection or the stream cannot be opened.
pub async fn connect(
    ep: &quinn::Endpoint,
    addr: SocketAddr,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let conn = ep
        .connect(addr, client::SERVER_NAME)
        .expect("a connection attempt")
        .await
        .expect("a connection");
    let (send, recv) = conn.open_bi().await.expect("a sync stream");
    (conn, send, recv)
}

/// Reads frames until an Error frame arrives (skipping Welcome and Sync); returns it.
///
/// # Panics
/// When no readable frame arrives within [`FRAME_TIMEOUT`] or the stream ends first.
pub async fn read_until_error(recv: &mut quinn::RecvStream) -> Frame {
    loop {
        let f = tokio::time::timeout(FRAME_TIMEOUT, wire::read_frame(recv))
            .await
            .expect("a frame in time")
            .expect("a readable frame")
            .expect("an error frame before the end of the stream");
        if matches!(f, Frame::Error { .. }) {
            return f;
        }
    }
}

/// Waits for the connection to close and returns the application close code, if any.
///
/// # Panics
/// When the server does not close it within [`FRAME_TIMEOUT`].
pub async fn close_code(conn: &quinn::Connection) -> Option<u64> {
    match tokio::time::timeout(FRAME_TIMEOUT, conn.closed())
        .await
        .expect("the server closes the connection")
    {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

/// A minimal node: one connection running a client session over an in-memory host.
pub struct RawNode {
    /// The documents, shared with the session task.
    pub host: Arc<Mutex<MemHost>>,
    /// The connection to head office.
    pub conn: quinn::Connection,
    /// The session task: `Ok` when head office ended the stream, `Err` with the reason.
    pub task: JoinHandle<Result<(), String>>,
    _endpoint: quinn::Endpoint,
}

/// Locks the host, even if a panicking test poisoned it.
fn lock(host: &Mutex<MemHost>) -> MutexGuard<'_, MemHost> {
    host.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RawNode {
    /// Connects `me` to `hq` and runs a client session over `host` until the stream ends.
    ///
    /// # Panics
    /// When the connection cannot be made.
    pub async fn start(hq: &TestHq, me: &Enrolled, host: MemHost) -> RawNode {
        let ep = me.endpoint(hq);
        let (conn, mut send, mut recv) = connect(&ep, hq.quic).await;
        let host = Arc::new(Mutex::new(host));
        let (node, store) = (me.node, me.store.clone());
        let task = tokio::spawn({
            let host = host.clone();
            async move {
                let (mut session, hello) = {
                    let mut h = lock(&host);
                    Session::client(&mut *h, node, store).map_err(|e| e.to_string())?
                };
                wire::write_frame(&mut send, &hello)
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    let Some(frame) = wire::read_frame(&mut recv).await.map_err(|e| e.to_string())? else {
                        return Ok(());
                    };
                    let out = {
                        let mut h = lock(&host);
                        session.handle(frame, &mut *h).map_err(|e| e.to_string())?
                    };
                    for f in out {
                        wire::write_frame(&mut send, &f)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
        });
        RawNode {
            host,
            conn,
            task,
            _endpoint: ep,
        }
    }

    /// The sorted hex heads of the node's catalog.
    pub fn catalog_heads(&self) -> Vec<String> {
        lock(&self.host).heads_hex(&DocId::Catalog)
    }

    /// The sorted hex heads of `doc`.
    pub fn doc_heads(&self, doc: &DocId) -> Vec<String> {
        lock(&self.host).heads_hex(doc)
    }

    /// A product of the node's catalog.
    ///
    /// # Panics
    /// When the catalog cannot be read.
    pub fn product(&self, sku: &str) -> Option<caja_shared::docs::Product> {
        let h = lock(&self.host);
        h.docs
            .get(&DocId::Catalog)
            .and_then(|d| docs::product(d, sku).expect("a readable catalog"))
    }

    /// Closes the connection (code 0) and stops the session.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        self.task.abort();
    }
}
