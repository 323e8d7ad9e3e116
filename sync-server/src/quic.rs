//! The QUIC side: the accept loop and one task per node connection running the sans-IO
//! [`Session`] against the server's documents.
//!
//! Per connection: the node opens one bidirectional stream and sends `Hello` within
//! [`HELLO_TIMEOUT`]; the server checks the store's token, answers with the session's
//! first frames, then loops over frames from the node, documents changed by others (the
//! hub's broadcast) and shutdown. A protocol violation or refused document gets an
//! `Error` frame, is logged once, and closes the connection with the error code as the
//! QUIC application code. Frames are read one at a time by a reader task feeding a
//! one-slot channel, so a node that sends faster than the server stores is slowed by QUIC
//! flow control.
//!
//! Not bounded yet: the number of connections (one task each), and the work of one huge
//! catch-up (it holds the core mutex per frame, not for the whole catch-up).

use std::time::{Duration, Instant};

use caja_shared::docs::DocId;
use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::protocol::{DocHeads, ErrorCode, Frame};
use caja_shared::sync::{Session, SyncError};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::db;
use crate::host::ServerHost;
use crate::hub::Hub;
use crate::wire::{self, WireError};

/// How long a node has to open its stream and send `Hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server waits for the node to read an `Error` frame before closing.
const ERROR_GRACE: Duration = Duration::from_secs(1);

/// Minimum interval between `last_contact` updates of one connection.
const TOUCH_EVERY: Duration = Duration::from_secs(1);

/// Serves nodes on `endpoint` until `shutdown` is cancelled, then lets every connection
/// save its state and close, and closes the endpoint.
pub(crate) async fn run(hub: Hub, endpoint: quinn::Endpoint, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                tracker.spawn(connection(hub.clone(), incoming, shutdown.clone()));
            }
        }
    }
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not end within 5 s of shutdown");
    }
    endpoint.close(VarInt::from_u32(0), b"server shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

/// Sends an `Error` frame, gives the node a moment to read it, then closes the connection
/// with the frame's code.
async fn refuse(conn: &Connection, send: &mut SendStream, frame: Frame) {
    let (code, message) = match &frame {
        Frame::Error { code, message } => (*code as u32, message.clone()),
        _ => (ErrorCode::Internal as u32, String::new()),
    };
    let _ = tokio::time::timeout(ERROR_GRACE, wire::write_frame(send, &frame)).await;
    let _ = send.finish();
    // Either the node acknowledged the frame (stopped) or closed the connection itself.
    let acked = send.stopped();
    let _ = tokio::time::timeout(ERROR_GRACE, async {
        tokio::select! {
            _ = acked => {}
            _ = conn.closed() => {}
        }
    })
    .await;
    let reason: String = message.chars().take(200).collect();
    conn.close(VarInt::from_u32(code), reason.as_bytes());
}

fn error_frame(code: ErrorCode, message: &str) -> Frame {
    Frame::Error {
        code,
        message: message.to_string(),
    }
}

/// One connection: handshake, Hello, then the session.
async fn connection(hub: Hub, incoming: quinn::Incoming, shutdown: CancellationToken) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "QUIC handshake failed");
            return;
        }
    };
    let opened = tokio::select! {
        _ = shutdown.cancelled() => return conn.close(VarInt::from_u32(0), b"server shutting down"),
        r = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi()) => r,
    };
    let (mut send, mut recv) = match opened {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "connection ended before opening a stream");
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, "no stream opened within {HELLO_TIMEOUT:?}; closing");
            return conn.close(
                VarInt::from_u32(ErrorCode::UnexpectedFrame as u32),
                b"no stream opened",
            );
        }
    };
    let first = tokio::time::timeout(HELLO_TIMEOUT, wire::read_frame(&mut recv)).await;
    let hello = match first {
        Ok(Ok(Some(Frame::Hello { node, store, docs }))) => Hello { node, store, docs },
        Ok(Ok(Some(_))) => {
            tracing::warn!(%remote, "first frame is not Hello; closing");
            let frame = error_frame(ErrorCode::UnexpectedFrame, "the first frame must be Hello");
            return refuse(&conn, &mut send, frame).await;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            match e.to_frame() {
                Some(frame) => {
                    tracing::warn!(%remote, error = %e, "bad first frame; closing");
                    refuse(&conn, &mut send, frame).await;
                }
                None => tracing::debug!(%remote, error = %e, "connection lost before Hello"),
            }
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, "no Hello within {HELLO_TIMEOUT:?}; closing");
            let frame = error_frame(ErrorCode::UnexpectedFrame, "no Hello received in time");
            return refuse(&conn, &mut send, frame).await;
        }
    };
    let span = tracing::info_span!("node", store = %hello.store, node = %hello.node, %remote);
    session(hub, conn, send, recv, hello, shutdown)
        .instrument(span)
        .await;
}

/// What the node said in its Hello.
struct Hello {
    node: NodeId,
    store: StoreCode,
    docs: Vec<DocHeads>,
}

/// Something for the session to process.
enum Input {
    Frame(Frame),
    Changed(DocId),
}

/// Why the session loop ended.
enum End {
    Shutdown,
    PeerDone,
    Lost(String),
    Wire(WireError),
    Sync(SyncError),
    Internal(String),
}

/// Runs one step of the session on a blocking thread; gives the session back with the
/// result.
async fn step(
    hub: &Hub,
    store: &StoreCode,
    node: &NodeId,
    mut session: Session,
    input: Input,
    touch: bool,
) -> Result<(Session, Result<Vec<Frame>, SyncError>), String> {
    let (store, node) = (store.clone(), *node);
    let (session, result, catalog_changed) = hub
        .with_core(move |core| {
            if touch && let Err(e) = db::touch_store(&core.conn, &store) {
                tracing::warn!(error = %e, "could not record last contact");
            }
            let mut host = ServerHost::new(core, &store, &node);
            let result = match input {
                Input::Frame(f) => session.handle(f, &mut host),
                Input::Changed(doc) => session.local_change(&doc, &mut host),
            };
            let changed = host.catalog_changed;
            (session, result, changed)
        })
        .await
        .map_err(|e| e.to_string())?;
    if catalog_changed {
        hub.changed(DocId::Catalog);
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
async fn session(
    hub: Hub,
    conn: Connection,
    mut send: SendStream,
    recv: RecvStream,
    hello: Hello,
    shutdown: CancellationToken,
) {
    let Hello { node, store, docs } = hello;
    let auth = {
        let store = store.clone();
        hub.with_core(move |core| -> Result<bool, crate::ServerError> {
            // TEMPORARY (issue 3 in progress): replaced by the client certificate check.
            let ok = db::store_exists(&core.conn, &store)?;
            if ok {
                db::touch_store(&core.conn, &store)?;
            }
            Ok(ok)
        })
        .await
    };
    match auth {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            tracing::warn!("refused: unknown store or wrong token");
            let frame = error_frame(ErrorCode::Unauthorized, "unknown store or wrong token");
            return refuse(&conn, &mut send, frame).await;
        }
        Ok(Err(e)) | Err(e) => {
            tracing::error!(error = %e, "could not check the node's token");
            return refuse(
                &conn,
                &mut send,
                error_frame(ErrorCode::Internal, "internal error"),
            )
            .await;
        }
    }
    let _connected = hub.connect(store.clone());
    // Subscribe before the first announce so no change made meanwhile is missed.
    let mut changes = hub.subscribe();
    let accepted = {
        let (store, node) = (store.clone(), node);
        hub.with_core(move |core| {
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
    let end = loop {
        let input = tokio::select! {
            _ = shutdown.cancelled() => break End::Shutdown,
            msg = rx.recv() => match msg {
                None | Some(Ok(None)) => break End::PeerDone,
                Some(Err(e)) => break End::Wire(e),
                Some(Ok(Some(frame))) => Input::Frame(frame),
            },
            changed = changes.recv() => match changed {
                Ok(doc) => Input::Changed(doc),
                // Missed some changes: only the catalog is ever broadcast, so re-check it.
                Err(broadcast::error::RecvError::Lagged(_)) => Input::Changed(DocId::Catalog),
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
                    Err(e) => break End::Sync(e),
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
        End::Lost(reason) => tracing::info!(%reason, "connection lost"),
        End::Wire(e) => match e.to_frame() {
            Some(frame) => {
                tracing::warn!(error = %e, "protocol violation; closing");
                refuse(&conn, &mut send, frame).await;
            }
            None => tracing::info!(error = %e, "connection lost"),
        },
        End::Sync(e) => match e.to_frame() {
            Some(frame) => {
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
