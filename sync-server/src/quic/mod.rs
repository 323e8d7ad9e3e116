//! The QUIC side: the accept loop, who a connection is (its client certificate), and one
//! task per connection: an enrollment ([`enroll`]) or a node's sync session ([`session`])
//! over the server's document host ([`host`]).
//!
//! Per connection: TLS 1.3 with an optional client certificate signed by the server CA
//! (rustls verifies it in the handshake; a certificate from another CA fails there). The
//! node opens one bidirectional stream and sends its first frame within
//! [`HELLO_TIMEOUT`]:
//! - without a client certificate only `Enroll` is accepted (rate-limited per remote IP);
//!   anything else gets `Error{Unauthorized}` and a close;
//! - with one, the certificate's SHA-256 is looked up in `node_certs`: unknown or revoked
//!   gets `Error{Unauthorized}` ("unknown client certificate" / "node revoked"); the
//!   first frame must be a `Hello` naming the certificate's node and store, else
//!   `Error{Unauthorized}`. Then the session runs for that store's documents.
//!
//! Every refusal is logged once, audited, and closes the connection with the error code
//! as the QUIC application code. A revoked node's live connections are closed at once
//! with code [`ErrorCode::Unauthorized`] and reason `node revoked` ([`Hub::disconnect`]).
//!
//! Before the handshake, [`limits`] bounds live connections and handshakes per remote IP
//! address. Not bounded yet: the work of one huge catch-up (it holds the core mutex per
//! frame, not for the whole catch-up).

mod enroll;
pub(crate) mod host;
pub(crate) mod limits;
mod session;

use std::net::SocketAddr;
use std::time::Duration;

use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::protocol::{ErrorCode, Frame};
use quinn::{Connection, SendStream, VarInt};
use rustls::pki_types::CertificateDer;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::audit::NewEntry;
use crate::db::TrustDb;
use crate::server::hub::Hub;
use caja_shared::net::wire;

/// How long a node has to open its stream and send its first frame.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server waits for the node to read an `Error` frame before closing.
const ERROR_GRACE: Duration = Duration::from_secs(1);

/// Serves nodes on `endpoint` until `shutdown` is cancelled, then lets every connection
/// save its state and close, and closes the endpoint.
pub(crate) async fn run(hub: Hub, endpoint: quinn::Endpoint, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let remote = incoming.remote_address();
                match hub.conn_limits.admit(remote.ip(), incoming.remote_address_validated()) {
                    limits::Admission::Accept(slot) => {
                        let hub = hub.clone();
                        let shutdown = shutdown.clone();
                        tracker.spawn(async move {
                            connection(hub, incoming, shutdown).await;
                            drop(slot);
                        });
                    }
                    limits::Admission::Retry => {
                        tracing::debug!(%remote, "handshake budget of an unvalidated address spent; asking for a Retry");
                        if let Err(e) = incoming.retry() {
                            e.into_incoming().refuse();
                        }
                    }
                    limits::Admission::Refuse(reason) => {
                        // Anyone can cause these, at any rate: one warning a minute per
                        // address, the rest at debug.
                        if hub.conn_limits.warn_about(remote.ip()) {
                            tracing::warn!(%remote, reason, "connection refused before the handshake (--connections-per-ip, --handshakes-per-minute); more from this address this minute are logged at debug");
                        } else {
                            tracing::debug!(%remote, reason, "connection refused before the handshake");
                        }
                        incoming.refuse();
                    }
                }
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

/// Writes an audit entry; a failure is logged (the event itself is in the log already).
async fn audit(hub: &Hub, entry: NewEntry) {
    let kind = entry.kind.clone();
    match hub
        .with_core(move |core| crate::audit::record(&core.conn, &entry))
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) => tracing::error!(%kind, error = %e, "could not write an audit entry"),
    }
}

/// Refuses an unauthenticated or misidentified connection: audit, log, Error, close.
async fn refuse_unauthorized(
    hub: &Hub,
    conn: &Connection,
    send: &mut SendStream,
    remote: SocketAddr,
    who: Option<(&NodeId, &StoreCode)>,
    message: &str,
) {
    tracing::warn!(%remote, node = ?who.map(|w| w.0.to_string()), reason = message, "connection refused");
    let mut entry = NewEntry::new(
        "connection.refused",
        json!({"reason": message, "remote": remote.to_string()}),
    );
    if let Some((node, store)) = who {
        entry = entry.node(node).store(store);
    }
    audit(hub, entry).await;
    refuse(conn, send, error_frame(ErrorCode::Unauthorized, message)).await;
}

/// The leaf of the client certificate chain the peer presented, if any.
fn client_certificate(conn: &Connection) -> Option<CertificateDer<'static>> {
    conn.peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?
        .into_iter()
        .next()
}

/// One connection: handshake, the first frame, then an enrollment or a session.
async fn connection(hub: Hub, incoming: quinn::Incoming, shutdown: CancellationToken) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            // Includes client certificates from another CA. Not audited: anyone on the
            // internet can cause these, and they carry no identity.
            tracing::info!(%remote, error = %e, "QUIC handshake failed");
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
    let first = match first {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            match e.to_frame() {
                Some(frame) => {
                    tracing::warn!(%remote, error = %e, "bad first frame; closing");
                    refuse(&conn, &mut send, frame).await;
                }
                None => tracing::debug!(%remote, error = %e, "connection lost before the first frame"),
            }
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, "no first frame within {HELLO_TIMEOUT:?}; closing");
            let frame = error_frame(ErrorCode::UnexpectedFrame, "no Hello received in time");
            return refuse(&conn, &mut send, frame).await;
        }
    };

    let Some(cert) = client_certificate(&conn) else {
        // Anything on a connection without a certificate counts against the enrollment
        // limit of its address: it is an enrollment attempt or a mistake.
        if let Err(not_until) = hub.enroll_limiter.check_key(&remote.ip()) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            tracing::warn!(%remote, "enrollment rate limit exceeded");
            let message = format!(
                "too many enrollment attempts from this address; try again in {} s",
                wait.as_secs().max(1)
            );
            return refuse(&conn, &mut send, error_frame(ErrorCode::RateLimited, &message)).await;
        }
        return match first {
            Frame::Enroll { code, csr, lan } => {
                enroll::enroll(&hub, &conn, &mut send, remote, code, csr, lan)
                    .instrument(tracing::info_span!("enroll", %remote))
                    .await
            }
            _ => {
                let message = "this connection has no client certificate: only Enroll is allowed (enroll the node first)";
                refuse_unauthorized(&hub, &conn, &mut send, remote, None, message).await
            }
        };
    };

    let sha = crate::tls::fingerprint(&cert);
    let owner = hub
        .with_core(move |core| core.conn.identify(&sha).map_err(crate::ServerError::from))
        .await;
    let owner = match owner {
        Ok(Ok(Some(o))) => o,
        Ok(Ok(None)) => {
            return refuse_unauthorized(&hub, &conn, &mut send, remote, None, "unknown client certificate")
                .await;
        }
        Ok(Err(e)) | Err(e) => {
            tracing::error!(%remote, error = %e, "could not look up the client certificate");
            return refuse(
                &conn,
                &mut send,
                error_frame(ErrorCode::Internal, "internal error"),
            )
            .await;
        }
    };
    if owner.revoked_at.is_some() {
        let who = Some((&owner.node, &owner.store));
        return refuse_unauthorized(&hub, &conn, &mut send, remote, who, "node revoked").await;
    }
    let (node, store, docs) = match first {
        Frame::Hello { node, store, docs } => (node, store, docs),
        Frame::Enroll { .. } => {
            tracing::warn!(%remote, "an enrolled node sent Enroll; closing");
            let frame = error_frame(
                ErrorCode::UnexpectedFrame,
                "this node is already enrolled: the first frame must be Hello",
            );
            return refuse(&conn, &mut send, frame).await;
        }
        _ => {
            tracing::warn!(%remote, "first frame is not Hello; closing");
            let frame = error_frame(ErrorCode::UnexpectedFrame, "the first frame must be Hello");
            return refuse(&conn, &mut send, frame).await;
        }
    };
    if node != owner.node || store != owner.store {
        let message = format!(
            "the Hello names node {node} of store {store}, but this certificate was issued to node {} of store {}",
            owner.node, owner.store
        );
        let who = Some((&owner.node, &owner.store));
        return refuse_unauthorized(&hub, &conn, &mut send, remote, who, &message).await;
    }
    let span = tracing::info_span!("node", store = %store, node = %node, %remote);
    session::run(
        hub,
        conn,
        send,
        recv,
        session::Peer {
            node,
            store,
            docs,
            remote,
        },
        shutdown,
    )
    .instrument(span)
    .await;
}
