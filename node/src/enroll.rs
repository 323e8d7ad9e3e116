//! Enrollment: how a node gets its identity from head office, and where it keeps it.
//!
//! `caja-node enroll --server HOST:PORT --code CODE --ca-fingerprint SHA256` generates the
//! node's keys HERE (they never leave the data directory), sends certificate signing
//! requests with the one-time code over QUIC to the sync server (trusting only the pinned
//! CA), and stores what comes back:
//! - `DATA/node-identity.pem`: the QUIC client certificate and its private key, in ONE file
//!   (mode 0600) so a renewal replaces both atomically;
//! - `DATA/sync-ca.pem`: the CA certificate;
//! - `DATA/lan.pem` + `DATA/lan.key.pem`: the LAN HTTPS certificate (signed by the same
//!   CA) when LAN names were given;
//! - `meta`: the node id and store head office assigned, the server address, the pinned
//!   fingerprint, and the certificate's validity.
//!
//! Enrolling hands the store's staff over to head office: any local `store/<store>`
//! document (from a standalone period) is dropped.

use std::path::{Path, PathBuf};

use caja_shared::auth::secrets::Secret;
use caja_shared::auth::tokens::write_secret_file;
use caja_shared::docs::DocId;
use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::net::client::{self, ClientIdentity, EnrollError};
use caja_shared::protocol::LanRequest;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::identity::{meta, set_meta};
use crate::store::{Db, StoreError};

/// `meta` key: the sync server (`host:port`) the node enrolled with.
pub const META_SERVER: &str = "enrolled_server";
/// `meta` key: the pinned CA fingerprint.
pub const META_FINGERPRINT: &str = "ca_fingerprint";
/// `meta` key: when the current client certificate was issued (seconds, UTC).
pub const META_CERT_ISSUED: &str = "cert_issued_at";
/// `meta` key: when it expires (seconds, UTC).
pub const META_CERT_NOT_AFTER: &str = "cert_not_after";

/// File of the client certificate and key.
pub const IDENTITY_FILE: &str = "node-identity.pem";
/// File of the CA certificate.
pub const CA_FILE: &str = "sync-ca.pem";
/// File of the LAN certificate issued at enrollment.
pub const LAN_CERT_FILE: &str = "lan.pem";
/// File of its key.
pub const LAN_KEY_FILE: &str = "lan.key.pem";

/// Why enrollment or loading the identity failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    /// The sync server refused or could not be reached.
    #[error(transparent)]
    Server(#[from] EnrollError),
    /// Storage failed (boxed: storage errors are large and rare).
    #[error(transparent)]
    Store(Box<StoreError>),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory is already enrolled.
    #[error(
        "{dir} is already enrolled as node {node} of store {store}; use a fresh data directory to enroll another node"
    )]
    AlreadyEnrolled {
        /// The directory.
        dir: PathBuf,
        /// Its node id.
        node: String,
        /// Its store.
        store: String,
    },
    /// The data directory belongs to another store than the code's.
    #[error(
        "{dir} holds store {found}, but the enrollment code is for store {code_store}: nothing was written here, but head office has registered node {node} for {code_store} with that code (now used up). Ask head office to revoke it (caja-sync node revoke {node}) and for a new code, and enroll a fresh data directory"
    )]
    WrongStore {
        /// The directory.
        dir: PathBuf,
        /// Its store.
        found: String,
        /// The store of the code.
        code_store: String,
        /// The node id head office registered.
        node: String,
    },
    /// The currency expected (`--currency`, or the data directory's) is not the chain's.
    #[error(
        "head office trades in {chain}, but {expected} was expected ({source_of}): nothing was written here, but head office has registered node {node} with that code (now used up). Ask head office to revoke it (caja-sync node revoke {node}) and for a new code, and enroll again without --currency or with --currency {chain}"
    )]
    WrongCurrency {
        /// The chain's currency.
        chain: String,
        /// The currency expected.
        expected: String,
        /// Where the expectation came from.
        source_of: String,
        /// The node id head office registered.
        node: String,
    },
    /// The identity files are missing or unusable.
    #[error("node identity {path}: {reason}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl From<StoreError> for EnrollmentError {
    fn from(e: StoreError) -> Self {
        EnrollmentError::Store(Box::new(e))
    }
}

/// What a data directory's enrollment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The node id head office assigned.
    pub node: NodeId,
    /// The store.
    pub store: StoreCode,
    /// The sync server, `host:port`.
    pub server: String,
    /// The pinned CA fingerprint.
    pub ca_fingerprint: String,
    /// When the client certificate was issued and expires (seconds, UTC).
    pub cert_issued_at: i64,
    /// When it expires (seconds, UTC).
    pub cert_not_after: i64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EnrollmentError + '_ {
    move |source| EnrollmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the enrollment of an open database, if it has one.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn read(conn: &rusqlite::Connection) -> Result<Option<Enrolled>, StoreError> {
    let (Some(server), Some(fp), Some(node), Some(store)) = (
        meta(conn, META_SERVER)?,
        meta(conn, META_FINGERPRINT)?,
        meta(conn, "node_id")?,
        meta(conn, "store")?,
    ) else {
        return Ok(None);
    };
    let num =
        |k: &str| -> Result<i64, StoreError> { Ok(meta(conn, k)?.and_then(|v| v.parse().ok()).unwrap_or(0)) };
    let (Ok(node), Ok(store)) = (node.parse::<NodeId>(), store.parse::<StoreCode>()) else {
        return Ok(None);
    };
    Ok(Some(Enrolled {
        node,
        store,
        server,
        ca_fingerprint: fp,
        cert_issued_at: num(META_CERT_ISSUED)?,
        cert_not_after: num(META_CERT_NOT_AFTER)?,
    }))
}

/// Reads a data directory's enrollment without opening the node (read-only; `None` for a
/// directory that holds no node yet).
///
/// # Errors
/// [`StoreError::Sqlite`] for a database that cannot be read.
pub fn read_dir(data_dir: &Path) -> Result<Option<Enrolled>, StoreError> {
    let path = data_dir.join("node.sqlite");
    if !path.is_file() {
        return Ok(None);
    }
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let has_meta: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    if !has_meta {
        return Ok(None);
    }
    read(&conn)
}

/// The currency a data directory's node recorded (an enrolled node's is head office's),
/// or `None` for a directory that holds no node yet.
///
/// # Errors
/// [`StoreError::Sqlite`] when the database cannot be read.
pub fn recorded_currency(data_dir: &Path) -> Result<Option<caja_shared::money::Currency>, StoreError> {
    let path = data_dir.join("node.sqlite");
    if !path.is_file() {
        return Ok(None);
    }
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let code: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'currency'", [], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            // A database from before the meta table: nothing recorded.
            rusqlite::Error::SqliteFailure(..) => Ok(None),
            other => Err(other),
        })?;
    Ok(code.and_then(|c| c.parse().ok()))
}

/// The PEM text of a certificate (DER).
pub fn cert_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Writes the client certificate and its key as one PEM file (mode 0600, atomic).
///
/// # Errors
/// [`EnrollmentError::Io`].
pub fn write_identity(data_dir: &Path, certificate: &[u8], key_pem: &Secret) -> Result<(), EnrollmentError> {
    let path = data_dir.join(IDENTITY_FILE);
    let text = format!("{}{}", cert_pem(certificate), key_pem.expose());
    write_secret_file(&path, text.as_bytes()).map_err(io(&path))
}

/// Loads the node's client certificate and key for mutual TLS.
///
/// # Errors
/// [`EnrollmentError::Identity`] when the file is missing or does not hold a certificate
/// and a key.
pub fn client_identity(data_dir: &Path) -> Result<ClientIdentity, EnrollmentError> {
    let path = data_dir.join(IDENTITY_FILE);
    let bad = |reason: &str| EnrollmentError::Identity {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let text = std::fs::read(&path)
        .map_err(|e| bad(&format!("{e} (is this node enrolled? run caja-node enroll)")))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|_| bad("not a PEM file"))?;
    if chain.is_empty() {
        return Err(bad("no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_slice(&text).map_err(|_| bad("no private key in it"))?;
    Ok(ClientIdentity { chain, key })
}

/// What to enroll with.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The node's data directory (created if missing).
    pub data_dir: PathBuf,
    /// The sync server's QUIC address, `host:port`.
    pub server: String,
    /// The server CA's SHA-256 fingerprint (from head office, out of band).
    pub ca_fingerprint: String,
    /// The one-time enrollment code.
    pub code: Secret,
    /// DNS names or IPs for a LAN HTTPS certificate signed by the chain CA (none: the
    /// node generates a self-signed one when TLS is enabled).
    pub lan_names: Vec<String>,
    /// The currency the operator expects the chain to trade in; `None` takes head
    /// office's. The node always records head office's (sent at enrollment); a
    /// different one here is refused, since its sales would be left out of the chain's
    /// reports.
    pub currency: Option<caja_shared::money::Currency>,
}

/// Enrolls the node in `data_dir` (see the module docs).
///
/// # Errors
/// [`EnrollmentError`]: already enrolled, refused or unreachable server, a code for
/// another store than the directory's, storage or file errors.
pub async fn enroll(opts: &EnrollOptions) -> Result<Enrolled, EnrollmentError> {
    // A data directory that holds no node yet is created only once head office has said
    // yes: a failed enrollment (wrong code, server unreachable) leaves nothing behind that
    // `serve` would start as a standalone node.
    let existing_db = if opts.data_dir.join("node.sqlite").is_file() {
        let db = Db::open(&opts.data_dir)?;
        if let Some(e) = db.read(read).await? {
            return Err(EnrollmentError::AlreadyEnrolled {
                dir: opts.data_dir.clone(),
                node: e.node.to_string(),
                store: e.store.to_string(),
            });
        }
        let dir_store = db.read(|c| meta(c, "store")).await?;
        let dir_currency = db.read(|c| meta(c, "currency")).await?;
        Some((db, dir_store, dir_currency))
    } else {
        None
    };
    let dir_store = existing_db.as_ref().and_then(|(_, s, _)| s.clone());
    let dir_currency = existing_db.as_ref().and_then(|(_, _, c)| c.clone());
    let node_key = client::node_csr().map_err(EnrollError::from)?;
    // The LAN certificate also covers this machine (`localhost`, `127.0.0.1`), so a till
    // or test on the node's own machine can check it by name against the chain CA.
    let lan_names: Vec<String> = if opts.lan_names.is_empty() {
        Vec::new()
    } else {
        let mut names = opts.lan_names.clone();
        for local in ["localhost", "127.0.0.1"] {
            if !names.iter().any(|n| n == local) {
                names.push(local.to_string());
            }
        }
        names
    };
    let lan = if lan_names.is_empty() {
        None
    } else {
        Some(client::lan_csr(&lan_names).map_err(EnrollError::from)?)
    };
    let got = client::enroll(
        &opts.server,
        &opts.ca_fingerprint,
        opts.code.clone(),
        node_key.csr_der.clone(),
        lan.as_ref().map(|l| LanRequest {
            csr: l.csr_der.clone(),
            names: lan_names.clone(),
        }),
    )
    .await?;
    if let Some(found) = dir_store
        && found != got.store.as_str()
    {
        return Err(EnrollmentError::WrongStore {
            dir: opts.data_dir.clone(),
            found,
            code_store: got.store.to_string(),
            node: got.node.to_string(),
        });
    }
    let expected = match (opts.currency, &dir_currency) {
        (Some(c), _) => Some((c.code().to_string(), "--currency")),
        (None, Some(c)) => Some((c.clone(), "the data directory's")),
        (None, None) => None,
    };
    if let Some((expected, source_of)) = expected
        && expected != got.currency.code()
    {
        return Err(EnrollmentError::WrongCurrency {
            chain: got.currency.code().to_string(),
            expected,
            source_of: source_of.to_string(),
            node: got.node.to_string(),
        });
    }
    let db = match existing_db {
        Some((db, _, _)) => db,
        None => {
            std::fs::create_dir_all(&opts.data_dir).map_err(io(&opts.data_dir))?;
            Db::open(&opts.data_dir)?
        }
    };
    write_identity(&opts.data_dir, &got.certificate, &node_key.key_pem)?;
    let ca_path = opts.data_dir.join(CA_FILE);
    std::fs::write(&ca_path, cert_pem(&got.ca)).map_err(io(&ca_path))?;
    if let (Some(cert), Some(l)) = (&got.lan_certificate, &lan) {
        let (cp, kp) = (
            opts.data_dir.join(LAN_CERT_FILE),
            opts.data_dir.join(LAN_KEY_FILE),
        );
        let chain = format!("{}{}", cert_pem(cert), cert_pem(&got.ca));
        std::fs::write(&cp, chain).map_err(io(&cp))?;
        write_secret_file(&kp, l.key_pem.expose().as_bytes()).map_err(io(&kp))?;
    }
    let now = caja_shared::auth::tokens::now_secs();
    let enrolled = Enrolled {
        node: got.node,
        store: got.store.clone(),
        server: opts.server.clone(),
        ca_fingerprint: opts.ca_fingerprint.clone(),
        cert_issued_at: now,
        cert_not_after: got.not_after,
    };
    let (e, currency) = (enrolled.clone(), got.currency);
    db.write(move |ctx| -> Result<(), StoreError> {
        set_meta(ctx.conn, "node_id", &e.node.to_string())?;
        set_meta(ctx.conn, "store", e.store.as_str())?;
        if meta(ctx.conn, "currency")?.is_none() {
            set_meta(ctx.conn, "currency", currency.code())?;
        }
        set_meta(ctx.conn, META_SERVER, &e.server)?;
        set_meta(ctx.conn, META_FINGERPRINT, &e.ca_fingerprint)?;
        set_meta(ctx.conn, META_CERT_ISSUED, &e.cert_issued_at.to_string())?;
        set_meta(ctx.conn, META_CERT_NOT_AFTER, &e.cert_not_after.to_string())?;
        // Head office owns the staff from now on.
        ctx.drop_doc(&DocId::Store {
            store: e.store.clone(),
        })?;
        ctx.conn.execute("DELETE FROM staff", [])?;
        ctx.conn.execute("DELETE FROM custom_roles", [])?;
        Ok(())
    })
    .await?;
    tracing::info!(node = %enrolled.node, store = %enrolled.store, server = %enrolled.server, "node enrolled");
    Ok(enrolled)
}

/// Records a renewed client certificate: writes the identity file, then its validity.
///
/// # Errors
/// [`EnrollmentError::Io`] / [`EnrollmentError::Store`].
pub async fn save_renewal(
    db: &Db,
    data_dir: &Path,
    certificate: &[u8],
    key_pem: &Secret,
    not_after: i64,
) -> Result<(), EnrollmentError> {
    write_identity(data_dir, certificate, key_pem)?;
    let now = caja_shared::auth::tokens::now_secs();
    db.write(move |ctx| -> Result<(), StoreError> {
        set_meta(ctx.conn, META_CERT_ISSUED, &now.to_string())?;
        set_meta(ctx.conn, META_CERT_NOT_AFTER, &not_after.to_string())
    })
    .await?;
    Ok(())
}

/// Whether a certificate issued at `issued` and expiring at `not_after` is due for
/// renewal at `now`: when less than a third of its validity is left.
pub fn renewal_due(issued: i64, not_after: i64, now: i64) -> bool {
    let validity = (not_after - issued).max(0);
    now >= not_after - validity / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_when_a_third_is_left() {
        assert!(!renewal_due(0, 90, 59));
        assert!(renewal_due(0, 90, 60));
        assert!(renewal_due(0, 90, 100));
        assert!(renewal_due(10, 10, 10));
    }

    #[test]
    fn pem_round_trips() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        let pem = cert_pem(&der);
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).map(|c| c.to_vec());
        assert_eq!(back.ok(), Some(der));
    }
}
