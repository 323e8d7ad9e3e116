//! Enrollment (`Enroll` → `Enrolled`) on a connection without a client certificate, and
//! renewal (`Renew` → `Renewed`) on a live session.
//!
//! Enrollment: the CSRs are parsed and their signatures verified first (a bad CSR does
//! not burn the code); then, in ONE SQLite transaction, the code is checked and consumed,
//! the node is created, its client certificate is signed and recorded, and the audit entry
//! written. A refused code gets `Error{Unauthorized, "unknown enrollment code" | "enrollment
//! code expired" | "enrollment code already used"}`; a bad CSR or LAN name
//! `Error{Malformed, ...}`. The code is never logged or audited.

use std::net::SocketAddr;
use std::time::Duration;

use caja_shared::auth::secrets::Secret;
use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::protocol::{ErrorCode, Frame, LanRequest};
use quinn::{Connection, SendStream, VarInt};
use serde_json::json;

use super::{audit, error_frame, refuse};
use crate::audit::NewEntry;
use crate::ca::{self, CsrError};
use crate::db::TrustDb;
use crate::error::ServerError;
use crate::server::hub::Hub;
use crate::stores::trust::{self, CodeRefusal};
use caja_shared::net::wire;

/// How long the server waits for the new node to close after `Enrolled`.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The outcome of the enrollment transaction.
enum Outcome {
    Enrolled(Frame),
    Refused(CodeRefusal),
}

async fn refused_audit(hub: &Hub, remote: SocketAddr, reason: &str, store: Option<&str>) {
    let mut entry = NewEntry::new(
        "enrollment.refused",
        json!({"reason": reason, "remote": remote.to_string()}),
    );
    if let Some(s) = store {
        entry = entry.store(s);
    }
    audit(hub, entry).await;
}

/// Handles an `Enroll` frame.
pub(super) async fn enroll(
    hub: &Hub,
    conn: &Connection,
    send: &mut SendStream,
    remote: SocketAddr,
    code: Secret,
    csr: Vec<u8>,
    lan: Option<LanRequest>,
) {
    let parsed = (|| -> Result<_, CsrError> {
        let client = ca::parse_csr(&csr, "client")?;
        let lan = match lan {
            Some(l) => Some((
                ca::parse_csr(&l.csr, "LAN")?,
                ca::check_lan_names(&l.names)?,
                l.names,
            )),
            None => None,
        };
        Ok((client, lan))
    })();
    let (client_key, lan) = match parsed {
        Ok(p) => p,
        Err(e) => {
            let message = e.to_string();
            tracing::warn!(reason = %message, "enrollment refused");
            refused_audit(hub, remote, &message, None).await;
            return refuse(conn, send, error_frame(ErrorCode::Malformed, &message)).await;
        }
    };
    let node = NodeId::new();
    let authority = hub.authority.clone();
    let validity = hub.options.node_cert_validity;
    let remote_text = remote.to_string();
    let outcome = hub
        .with_core(move |core| -> Result<Outcome, ServerError> {
            let now = chrono::Utc::now().timestamp();
            let tx = core.conn.transaction()?;
            let store = match trust::consume_code(&*tx, code.expose(), &node, now)? {
                Ok(s) => s,
                Err(refusal) => {
                    let store = match &refusal {
                        CodeRefusal::Used { store } | CodeRefusal::Expired { store } => Some(store.clone()),
                        CodeRefusal::Unknown => None,
                    };
                    let mut entry = NewEntry::new(
                        "enrollment.refused",
                        json!({"reason": refusal.to_string(), "remote": remote_text}),
                    );
                    if let Some(s) = store {
                        entry = entry.store(s);
                    }
                    crate::audit::record(&tx, &entry)?;
                    tx.commit()?;
                    return Ok(Outcome::Refused(refusal));
                }
            };
            tx.insert_node(&node, &store, now)?;
            let cert = authority.issue_client(&client_key, &node, &store, now, validity)?;
            tx.insert_cert(&cert.sha256, &node, cert.not_after, now)?;
            let lan_names = lan.as_ref().map(|l| l.2.clone());
            let lan_cert = match lan {
                // The LAN certificate is a server certificate (EKU serverAuth) and is not
                // recorded in node_certs: it can never authenticate a node here.
                Some((key, sans, _)) => Some(authority.issue_lan(&key, &node, &store, sans, now, validity)?),
                None => None,
            };
            crate::audit::record(
                &tx,
                &NewEntry::new(
                    "node.enrolled",
                    json!({"remote": remote_text, "not_after": cert.not_after,
                           "lan_names": lan_names}),
                )
                .node(node)
                .store(&store),
            )?;
            tx.commit()?;
            Ok(Outcome::Enrolled(Frame::Enrolled {
                node,
                store,
                certificate: cert.der,
                ca: authority.ca_der().to_vec(),
                not_after: cert.not_after,
                lan_certificate: lan_cert.map(|c| c.der),
                currency: core.currency.code().to_string(),
            }))
        })
        .await;
    match outcome {
        Ok(Ok(Outcome::Enrolled(frame))) => {
            tracing::info!(%node, "node enrolled");
            if let Err(e) = wire::write_frame(send, &frame).await {
                tracing::warn!(%node, error = %e, "could not send the certificates to the new node");
                return;
            }
            let _ = send.finish();
            // The node closes once it has the certificates; a server that drops the
            // connection first resets it (TOOLCHAIN.md).
            let _ = tokio::time::timeout(CLOSE_GRACE, conn.closed()).await;
            conn.close(VarInt::from_u32(0), b"enrolled");
        }
        Ok(Ok(Outcome::Refused(refusal))) => {
            let message = refusal.to_string();
            tracing::warn!(reason = %message, "enrollment refused");
            refuse(conn, send, error_frame(ErrorCode::Unauthorized, &message)).await;
        }
        Ok(Err(e)) | Err(e) => {
            tracing::error!(error = %e, "enrollment failed");
            refuse(conn, send, error_frame(ErrorCode::Internal, "internal error")).await;
        }
    }
}

/// Handles a `Renew` frame of a live session: a new client certificate for the same
/// node and store, recorded beside the old one (which stays valid until it expires).
///
/// # Errors
/// The `Error` frame to send before closing: `Malformed` for a bad CSR, `Unauthorized`
/// for a node revoked meanwhile, `Internal` otherwise.
pub(super) async fn renew(hub: &Hub, node: NodeId, store: StoreCode, csr: Vec<u8>) -> Result<Frame, Frame> {
    let key = match ca::parse_csr(&csr, "client") {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "renewal refused");
            return Err(error_frame(ErrorCode::Malformed, &e.to_string()));
        }
    };
    let authority = hub.authority.clone();
    let validity = hub.options.node_cert_validity;
    let result = hub
        .with_core(move |core| -> Result<Option<(Vec<u8>, i64)>, ServerError> {
            let now = chrono::Utc::now().timestamp();
            let tx = core.conn.transaction()?;
            if !matches!(tx.node(&node)?, Some((_, None))) {
                return Ok(None);
            }
            let cert = authority.issue_client(&key, &node, &store, now, validity)?;
            tx.insert_cert(&cert.sha256, &node, cert.not_after, now)?;
            crate::audit::record(
                &tx,
                &NewEntry::new("node.renewed", json!({"not_after": cert.not_after}))
                    .node(node)
                    .store(&store),
            )?;
            tx.commit()?;
            Ok(Some((cert.der, cert.not_after)))
        })
        .await;
    match result {
        Ok(Ok(Some((certificate, not_after)))) => {
            tracing::info!(not_after, "client certificate renewed");
            Ok(Frame::Renewed {
                certificate,
                not_after,
            })
        }
        Ok(Ok(None)) => Err(error_frame(ErrorCode::Unauthorized, "node revoked")),
        Ok(Err(e)) | Err(e) => {
            tracing::error!(error = %e, "renewal failed");
            Err(error_frame(ErrorCode::Internal, "internal error"))
        }
    }
}
