//! Test harness: a server on loopback ports in a temp dir, enrollment of test nodes
//! (real CSRs, real certificates), and a minimal node (an in-memory document host driving
//! `caja_shared::sync::Session` over mutual-TLS QUIC).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automerge::sync::{self, Message, SyncDoc};
use automerge::{Automerge, ChangeHash};
use caja_shared::docs::{self, DocId};
use caja_shared::facts::Fact;
use caja_shared::ids::{FactId, NodeId, StoreCode};
use caja_shared::money::Currency;
use caja_shared::protocol::Frame;
use caja_shared::sync::{DocHost, Session, SyncError};
use caja_sync_server::client::ClientIdentity;
use caja_sync_server::{ServerError, ServerOptions, SyncServer, client, wire};
use chrono::NaiveDate;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server serving on loopback until `stop`.
pub struct Running {
    pub server: SyncServer,
    pub quic: SocketAddr,
    pub http: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    pub async fn start(dir: &Path) -> Running {
        Self::start_with(dir, ServerOptions::default()).await
    }

    pub async fn start_with(dir: &Path, options: ServerOptions) -> Running {
        let server = SyncServer::open_with(dir, Currency::GBP, options).unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let quic = udp.local_addr().unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tcp.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn({
            let (server, shutdown) = (server.clone(), shutdown.clone());
            async move { server.serve(udp, tcp, shutdown).await }
        });
        Running {
            server,
            quic,
            http,
            shutdown,
            handle,
        }
    }

    /// Cancels and waits for `serve` to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

/// Polls `check` every 20 ms until it is true; panics after `limit` (a timeout, not a
/// timing assertion).
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An in-memory node's documents.
#[derive(Default)]
pub struct MemHost {
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

/// Sample sales of `store` on `date`, with fresh ids.
pub fn sales(store: &str, date: NaiveDate, n: usize) -> Vec<Fact> {
    (0..n)
        .map(|_| {
            let mut f = caja_shared::facts::tests_support::sample();
            f.id = FactId::new();
            f.store = store.parse().unwrap();
            f.business_date = date;
            f
        })
        .collect()
}

/// A ledger document holding `facts` (all of one store and day).
pub fn ledger_with(facts: &[Fact]) -> (DocId, Automerge) {
    let doc = DocId::Ledger {
        store: facts[0].store.clone(),
        date: facts[0].business_date,
    };
    let mut am = docs::ledger_empty();
    docs::append_facts(&mut am, facts).unwrap();
    (doc, am)
}

/// A QUIC client endpoint trusting the CA with `fingerprint`, presenting `identity`.
pub fn endpoint(fingerprint: &str, identity: Option<&ClientIdentity>) -> quinn::Endpoint {
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(client::client_config(fingerprint, identity).unwrap());
    ep
}

/// An enrolled test node: its id, store, key and certificate.
pub struct Enrolled {
    pub node: NodeId,
    pub store: StoreCode,
    pub key_pem: caja_shared::auth::secrets::Secret,
    pub certificate: Vec<u8>,
    pub not_after: i64,
}

impl Enrolled {
    pub fn identity(&self) -> ClientIdentity {
        ClientIdentity::new(self.certificate.clone(), &self.key_pem).unwrap()
    }

    pub fn endpoint(&self, run: &Running) -> quinn::Endpoint {
        endpoint(&run.server.ca_fingerprint(), Some(&self.identity()))
    }

    pub fn hello(&self) -> Frame {
        Frame::Hello {
            node: self.node,
            store: self.store.clone(),
            docs: vec![],
        }
    }
}

/// Registers `store` if needed and enrolls a node for it with a fresh code.
pub async fn enroll(run: &Running, store: &str) -> Enrolled {
    let code: StoreCode = store.parse().unwrap();
    let _ = run
        .server
        .create_store(&caja_sync_server::Actor::local(), code.clone(), store)
        .await;
    let issued = run
        .server
        .enrollment_code(
            &caja_sync_server::Actor::local(),
            &code,
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let key = client::node_csr().unwrap();
    let e = client::enroll(
        &run.quic.to_string(),
        &run.server.ca_fingerprint(),
        issued.code,
        key.csr_der,
        None,
    )
    .await
    .unwrap();
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
pub async fn connect(
    ep: &quinn::Endpoint,
    addr: SocketAddr,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let conn = ep.connect(addr, client::SERVER_NAME).unwrap().await.unwrap();
    let (send, recv) = conn.open_bi().await.unwrap();
    (conn, send, recv)
}

/// Reads frames until an Error frame arrives (skipping Welcome and Sync); returns it.
pub async fn read_until_error(recv: &mut quinn::RecvStream) -> Frame {
    loop {
        let f = tokio::time::timeout(Duration::from_secs(10), wire::read_frame(recv))
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
pub async fn close_code(conn: &quinn::Connection) -> Option<u64> {
    match tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("the server closes the connection")
    {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

/// A minimal node: one connection running a client session over an in-memory host.
pub struct Node {
    pub host: Arc<Mutex<MemHost>>,
    pub conn: quinn::Connection,
    pub task: JoinHandle<Result<(), String>>,
    _endpoint: quinn::Endpoint,
}

impl Node {
    pub async fn start(run: &Running, me: &Enrolled, host: MemHost) -> Node {
        let ep = me.endpoint(run);
        let (conn, mut send, mut recv) = connect(&ep, run.quic).await;
        let host = Arc::new(Mutex::new(host));
        let (node, store) = (me.node, me.store.clone());
        let task = tokio::spawn({
            let host = host.clone();
            async move {
                let (mut session, hello) = {
                    let mut h = host.lock().unwrap();
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
                        let mut h = host.lock().unwrap();
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
        Node {
            host,
            conn,
            task,
            _endpoint: ep,
        }
    }

    pub fn catalog_heads(&self) -> Vec<String> {
        self.host.lock().unwrap().heads_hex(&DocId::Catalog)
    }

    pub fn doc_heads(&self, doc: &DocId) -> Vec<String> {
        self.host.lock().unwrap().heads_hex(doc)
    }

    pub fn product(&self, sku: &str) -> Option<caja_shared::docs::Product> {
        let h = self.host.lock().unwrap();
        h.docs
            .get(&DocId::Catalog)
            .and_then(|d| docs::product(d, sku).unwrap())
    }

    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        self.task.abort();
    }
}

/// The stored `store/<store>` document of a data dir, read from its database file.
pub fn stored_store_doc(dir: &Path, store: &str) -> Option<Automerge> {
    let conn = rusqlite::Connection::open(dir.join(caja_sync_server::db::DB_FILE)).unwrap();
    caja_shared::docstore::load(
        &conn,
        &DocId::Store {
            store: store.parse().unwrap(),
        },
    )
    .unwrap()
}

/// The users of a stored store document, by username.
pub fn staff(dir: &Path, store: &str) -> Vec<caja_shared::docs::store::StaffUser> {
    let Some(doc) = stored_store_doc(dir, store) else {
        return vec![];
    };
    let mut v: Vec<_> = caja_shared::docs::store::users(&doc)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    v.sort_by(|a, b| a.username.cmp(&b.username));
    v
}
