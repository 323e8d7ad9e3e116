//! An authenticated node's sync session: the sans-IO [`Session`] against the server's
//! documents for the node's store, changes made by others pushed as they happen, and
//! certificate renewal (`Renew` → `Renewed`) on the live connection.
//!
//! Frames are read one at a time by a reader task feeding a one-slot channel, so a node
//! that sends faster than the server stores is slowed by QUIC flow control. A refused
//! document (another store's, or a change to the store document) ends the session with
//! `Error{Forbidden}`, an audit entry and a close.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use caja_shared::docs::DocId;
use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::protocol::{DocHeads, ErrorCode, Frame};
use caja_shared::sync::{Session, SyncError};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{audit, enroll, error_frame, refuse};
use crate::audit::NewEntry;
use crate::db::{self, StoreDb, TrustDb};
use crate::quic::host::ServerHost;
use crate::server::hub::Hub;
use caja_shared::net::wire::{self, WireError};

/// Minimum interval between `last_contact` updates of one connection.
const TOUCH_EVERY: Duration = Duration::from_secs(1);

/// At most one `Renew` per connection in this interval; a second gets
/// `Error{RateLimited}` and a close.
pub const RENEW_EVERY: Duration = Duration::from_secs(60);

/// The identified peer of a session.
pub(super) struct Peer {
    pub node: NodeId,
    pub store: StoreCode,
    pub docs: Vec<DocHeads>,
    pub remote: SocketAddr,
}

/// Something for the session to process.
enum Input {
    Frame(Frame),
    Changed(Vec<DocId>),
}

/// Why the session loop ended.
enum End {
    Shutdown,
    PeerDone,
    Lost(String),
    Wire(WireError),
    Sync(SyncError, Option<Vec<String>>),
    Refused(Frame),
    Internal(String),
}

/// The result of one step: the frames to send, or why the session ends (with the actors
/// of a refused store-document change).
type StepResult = Result<Vec<Frame>, (SyncError, Option<Vec<String>>)>;

/// Runs one step of the session on a blocking thread; gives the session back with the
/// result.
async fn step(
    hub: &Hub,
    store: &StoreCode,
    node: &NodeId,
    mut session: Session,
    input: Input,
    touch: bool,
) -> Result<(Session, StepResult), String> {
    let (store, node) = (store.clone(), *node);
    let from_node = matches!(input, Input::Frame(_));
    let (session, result, catalog_changed) = hub
        .with_core(move |core| {
            if touch {
                let now = chrono::Utc::now().timestamp();
                if let Err(e) = core
                    .conn
                    .touch_store(&store, &db::now_rfc3339())
                    .and(core.conn.touch_node(&node, now))
                {
                    tracing::warn!(error = %e, "could not record last contact");
                }
            }
            let mut host = ServerHost::new(core, &store, &node);
            let result = match input {
                Input::Frame(f) => session.handle(f, &mut host),
                Input::Changed(docs) => {
                    let mut out = Vec::new();
                    let mut r = Ok(());
                    for doc in docs {
                        match session.local_change(&doc, &mut host) {
                            Ok(frames) => out.extend(frames),
                            Err(e) => {
                                r = Err(e);
                                break;
                            }
                        }
                    }
                    r.map(|()| out)
                }
            };
            let changed = host.catalog_changed;
            let refused = host.refused_store_change.take();
            (session, result.map_err(|e| (e, refused)), changed)
        })
        .await
        .map_err(|e| e.to_string())?;
    if catalog_changed {
        hub.changed(DocId::Catalog);
    }
    if from_node {
        // Ledger changes may have brought stored-offline card payments to forward.
        hub.wake_forwarder();
    }
    Ok((session, result))
}

async fn write_all(send: &mut SendStream, frames: &[Frame]) -> Result<(), WireError> {
    for f in frames {
        wire::write_frame(send, f).await?;
    }
    Ok(())
}

/// An authenticated node's session until it ends.
pub(super) async fn run(
    hub: Hub,
    conn: Connection,
    mut send: SendStream,
    recv: RecvStream,
    peer: Peer,
    shutdown: CancellationToken,
) {
    let Peer {
        node,
        store,
        docs,
        remote,
    } = peer;
    let _connected = hub.connect(store.clone());
    let _live = hub.register(node, conn.clone());
    // Subscribe before the first announce so no change made meanwhile is missed.
    let mut changes = hub.subscribe();
    let accepted = {
        let (store, node) = (store.clone(), node);
        hub.with_core(move |core| {
            let now = chrono::Utc::now().timestamp();
            if let Err(e) = core
                .conn
                .touch_store(&store, &db::now_rfc3339())
                .and(core.conn.touch_node(&node, now))
            {
                tracing::warn!(error = %e, "could not record last contact");
            }
            let mut host = ServerHost::new(core, &store, &node);
            Session::accept(&mut host, &docs)
        })
        .await
    };
    let mut session = match accepted {
        Ok(Ok((session, frames))) => {
            tracing::info!(frames = frames.len(), "node connected");
            if let Err(e) = write_all(&mut send, &frames).await {
                tracing::debug!(error = %e, "connection lost while answering Hello");
                return;
            }
            Some(session)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "session refused");
            if let SyncError::Forbidden(doc) = &e {
                forbidden(&hub, &node, &store, remote, doc, None).await;
            }
            let frame = e
                .to_frame()
                .unwrap_or_else(|| error_frame(ErrorCode::Internal, "internal error"));
            return refuse(&conn, &mut send, frame).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "could not start the session");
            return refuse(
                &conn,
                &mut send,
                error_frame(ErrorCode::Internal, "internal error"),
            )
            .await;
        }
    };

    let (tx, mut rx) = mpsc::channel::<Result<Option<Frame>, WireError>>(1);
    let reader = tokio::spawn(read_loop(recv, tx));
    let mut last_touch = Instant::now();
    let mut last_renew: Option<Instant> = None;
    let end = loop {
        let input = tokio::select! {
            _ = shutdown.cancelled() => break End::Shutdown,
            msg = rx.recv() => match msg {
                None | Some(Ok(None)) => break End::PeerDone,
                Some(Err(e)) => break End::Wire(e),
                Some(Ok(Some(Frame::Renew { csr }))) => {
                    if last_renew.is_some_and(|t| t.elapsed() < RENEW_EVERY) {
                        tracing::warn!("a second Renew within {RENEW_EVERY:?}; closing");
                        break End::Refused(error_frame(
                            ErrorCode::RateLimited,
                            "at most one Renew per connection per minute",
                        ));
                    }
                    last_renew = Some(Instant::now());
                    match enroll::renew(&hub, node, store.clone(), csr).await {
                        Ok(frame) => {
                            if let Err(e) = wire::write_frame(&mut send, &frame).await {
                                break End::Lost(e.to_string());
                            }
                            continue;
                        }
                        Err(frame) => break End::Refused(frame),
                    }
                }
                Some(Ok(Some(frame))) => Input::Frame(frame),
            },
            changed = changes.recv() => match changed {
                Ok(doc) => Input::Changed(vec![doc]),
                // Missed some changes: the catalog and this store's document are the ones
                // broadcast to other sessions, so re-check both.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Input::Changed(vec![DocId::Catalog, DocId::Store { store: store.clone() }])
                }
                Err(broadcast::error::RecvError::Closed) => break End::Shutdown,
            },
        };
        let touch = matches!(input, Input::Frame(_)) && last_touch.elapsed() >= TOUCH_EVERY;
        if touch {
            last_touch = Instant::now();
        }
        let Some(s) = session.take() else {
            break End::Internal("session lost".into());
        };
        match step(&hub, &store, &node, s, input, touch).await {
            Ok((s, result)) => {
                session = Some(s);
                match result {
                    Ok(frames) => {
                        if let Err(e) = write_all(&mut send, &frames).await {
                            break End::Lost(e.to_string());
                        }
                    }
                    Err((e, refused)) => break End::Sync(e, refused),
                }
            }
            Err(e) => break End::Internal(e),
        }
    };
    reader.abort();

    if let Some(s) = session {
        let (store, node) = (store.clone(), node);
        let saved = hub
            .with_core(move |core| {
                let mut host = ServerHost::new(core, &store, &node);
                host.save_states(s.states());
            })
            .await;
        if let Err(e) = saved {
            tracing::warn!(error = %e, "could not save sync states");
        }
    }

    match end {
        End::Shutdown => {
            let _ = send.finish();
            conn.close(VarInt::from_u32(0), b"server shutting down");
            tracing::info!("node disconnected: server shutting down");
        }
        End::PeerDone => {
            let _ = send.finish();
            conn.close(VarInt::from_u32(0), b"done");
            tracing::info!("node ended the session");
        }
        End::Lost(reason) => match conn.close_reason() {
            Some(quinn::ConnectionError::LocallyClosed) => {
                tracing::info!("connection closed by the server (node revoked)")
            }
            Some(c) if wire::closed_by_peer(&c).is_some() => {
                let why = wire::closed_by_peer(&c).unwrap_or_default();
                tracing::info!(reason = %why, "node disconnected")
            }
            _ => tracing::info!(%reason, "connection lost"),
        },
        End::Refused(frame) => refuse(&conn, &mut send, frame).await,
        End::Wire(WireError::Read(quinn::ReadError::ConnectionLost(
            quinn::ConnectionError::LocallyClosed,
        ))) => {
            tracing::info!("connection closed by the server (node revoked)");
        }
        End::Wire(e) => match e.to_frame() {
            Some(frame) => {
                tracing::warn!(error = %e, "protocol violation; closing");
                refuse(&conn, &mut send, frame).await;
            }
            None => match e.closed_by_peer() {
                // The node shut down or switched its link off: routine, not a fault.
                Some(why) => tracing::info!(reason = %why, "node disconnected"),
                None => tracing::info!(error = %e, "connection lost"),
            },
        },
        End::Sync(e, refused) => match e.to_frame() {
            Some(frame) => {
                if let SyncError::Forbidden(doc) = &e {
                    forbidden(&hub, &node, &store, remote, doc, refused).await;
                }
                tracing::warn!(error = %e, "session error; closing");
                refuse(&conn, &mut send, frame).await;
            }
            None => {
                tracing::info!(reason = %e, "node ended the session with an error");
                conn.close(VarInt::from_u32(0), b"");
            }
        },
        End::Internal(e) => {
            tracing::error!(error = %e, "internal failure; closing");
            refuse(
                &conn,
                &mut send,
                error_frame(ErrorCode::Internal, "internal error"),
            )
            .await;
        }
    }
}

/// Reads frames one at a time into a one-slot channel until the stream ends or fails.
async fn read_loop(mut recv: RecvStream, tx: mpsc::Sender<Result<Option<Frame>, WireError>>) {
    loop {
        let r = wire::read_frame(&mut recv).await;
        let last = !matches!(r, Ok(Some(_)));
        if tx.send(r).await.is_err() || last {
            return;
        }
    }
}

/// Audits a refused document request.
async fn forbidden(
    hub: &Hub,
    node: &NodeId,
    store: &StoreCode,
    remote: SocketAddr,
    doc: &DocId,
    store_change: Option<Vec<String>>,
) {
    let detail = match store_change {
        Some(actors) => {
            json!({"doc": doc.to_string(), "reason": "a node may not change a document only head office writes",
                               "actors": actors, "remote": remote.to_string()})
        }
        None => {
            json!({"doc": doc.to_string(), "reason": "document of another store", "remote": remote.to_string()})
        }
    };
    audit(
        hub,
        NewEntry::new("sync.forbidden", detail).node(node).store(store),
    )
    .await;
}
