//! HTTPS for head office's admin API: where its certificate comes from. The listener
//! and the rustls configuration are [`caja_shared::net::https`], shared with the node.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::{TlsError, TlsMaterial};

pub use caja_shared::net::https::{HttpsListener, server_config};

/// Where the admin API's HTTPS certificate comes from.
#[derive(Debug, Clone)]
pub enum AdminCert {
    /// Issued by the chain CA at each start, in memory, for `localhost`, `127.0.0.1`,
    /// `caja-sync` and these extra DNS names or IPs (at most 16, no wildcards). Clients
    /// trust the CA (`ca.pem` in the data directory; `caja-sync ca-fingerprint` for a pin).
    Chain(Vec<String>),
    /// PEM files (a certificate chain, leaf first, and its private key), e.g. from a public
    /// CA for the host's public name.
    Files {
        /// The certificate chain.
        cert: std::path::PathBuf,
        /// The private key.
        key: std::path::PathBuf,
    },
}

/// The admin API's rustls configuration for `cert`.
///
/// # Errors
/// [`TlsError::Io`] / [`TlsError::BadPem`] for unreadable files; [`TlsError::Generate`]
/// for names that are not valid DNS names or IPs (the message names them);
/// [`TlsError::Rustls`] when a key does not match its certificate.
pub fn admin_server_config(tls: &TlsMaterial, cert: &AdminCert) -> Result<rustls::ServerConfig, TlsError> {
    match cert {
        AdminCert::Chain(extra) => {
            let (chain, key) = tls.issue_admin_certificate(extra)?;
            server_config(chain, key)
        }
        AdminCert::Files { cert, key } => {
            let text = |p: &Path| {
                std::fs::read(p).map_err(|source| TlsError::Io {
                    path: p.to_path_buf(),
                    source,
                })
            };
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text(cert)?)
                .collect::<Result<_, _>>()
                .ok()
                .filter(|c: &Vec<_>| !c.is_empty())
                .ok_or_else(|| TlsError::BadPem {
                    path: cert.clone(),
                    what: "certificate chain",
                })?;
            let key_der = PrivateKeyDer::from_pem_slice(&text(key)?).map_err(|_| TlsError::BadPem {
                path: key.clone(),
                what: "private key",
            })?;
            server_config(chain, key_der)
        }
    }
}
