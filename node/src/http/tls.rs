//! HTTPS on the store LAN: the node's server certificate and rustls configuration, and
//! the pinning client configuration tills (and tests) use to talk to it.
//!
//! The certificate is, in order of preference: the files given with `--tls-cert` and
//! `--tls-key`; the LAN certificate issued by the chain CA at enrollment (`lan.pem`,
//! `lan.key.pem`); else a self-signed certificate generated on first start (rcgen) for
//! `localhost`, `127.0.0.1`, the listen address and the `--lan-name`s, kept as
//! `lan-self-<hash of the names>.pem` so it stays the same until the names change.
//!
//! Clients pin the SHA-256 of a certificate in the chain ([`client_config`]): the node's
//! own certificate (self-signed: `caja-node lan-fingerprint` prints it) or the chain CA's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use caja_shared::auth::tokens::write_secret_file;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::LanTls;
use crate::enroll;

/// Errors setting up LAN TLS.
#[derive(Debug, thiserror::Error)]
pub enum LanTlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{path}: not a PEM {what}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// `certificate chain` or `private key`.
        what: &'static str,
    },
    /// Generating the self-signed certificate failed.
    #[error("generating the LAN certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("LAN TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A pin that is not 64 hex digits.
    #[error("certificate pin {0:?} is not a SHA-256 in hex (64 hex digits, colons allowed)")]
    BadPin(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LanTlsError + '_ {
    move |source| LanTlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The certificate chain and key the node serves, and the chain's first certificate's
/// SHA-256 (what a client pins for a self-signed certificate).
pub struct LanIdentity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// Where it came from (for the start-up log).
    pub source: String,
}

impl std::fmt::Debug for LanIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanIdentity")
            .field("fingerprint", &self.fingerprint())
            .field("source", &self.source)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl LanIdentity {
    /// Lowercase hex SHA-256 of the leaf certificate.
    pub fn fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| caja_shared::pin::fingerprint(c))
            .unwrap_or_default()
    }

    /// The leaf's public-key pin in the form curl's `--pinnedpubkey` takes: `sha256//`
    /// and the base64 SHA-256 of its SubjectPublicKeyInfo (the pin of RFC 7469). `None`
    /// for a key rcgen cannot read.
    pub fn public_key_pin(&self) -> Option<String> {
        use base64::Engine;
        use rcgen::PublicKeyData;
        let pair = rcgen::KeyPair::try_from(&self.key).ok()?;
        let digest = Sha256::digest(pair.subject_public_key_info());
        Some(format!(
            "sha256//{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ))
    }
}

fn load_pair(cert: &Path, key: &Path, source: String) -> Result<LanIdentity, LanTlsError> {
    let text = std::fs::read(cert).map_err(io(cert))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|_| LanTlsError::BadPem {
            path: cert.to_path_buf(),
            what: "certificate chain",
        })?;
    if chain.is_empty() {
        return Err(LanTlsError::BadPem {
            path: cert.to_path_buf(),
            what: "certificate chain",
        });
    }
    let key_text = std::fs::read(key).map_err(io(key))?;
    let key = PrivateKeyDer::from_pem_slice(&key_text).map_err(|_| LanTlsError::BadPem {
        path: key.to_path_buf(),
        what: "private key",
    })?;
    Ok(LanIdentity { chain, key, source })
}

/// The names a generated certificate covers: `localhost`, `127.0.0.1`, the listen IP (when
/// it is not the unspecified address) and `extra`, deduplicated and sorted.
pub fn names(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut n: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    if !listen.ip().is_unspecified() {
        n.push(listen.ip().to_string());
    }
    n.extend(
        extra
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    );
    n.sort();
    n.dedup();
    n
}

/// Loads or creates the certificate to serve (see the module docs).
///
/// # Errors
/// [`LanTlsError`].
pub fn identity(data_dir: &Path, listen: SocketAddr, cfg: &LanTls) -> Result<LanIdentity, LanTlsError> {
    if let (Some(c), Some(k)) = (&cfg.cert, &cfg.key) {
        return load_pair(c, k, format!("{}", c.display()));
    }
    let (ec, ek) = (
        data_dir.join(enroll::LAN_CERT_FILE),
        data_dir.join(enroll::LAN_KEY_FILE),
    );
    if ec.is_file() && ek.is_file() {
        if !cfg.names.is_empty() {
            tracing::warn!(
                names = ?cfg.names,
                "--lan-name names a self-signed certificate, but this node serves the one issued at enrollment (for the names given to `caja-node enroll --lan-name`); they are not added"
            );
        }
        return load_pair(&ec, &ek, "issued by the chain CA at enrollment".into());
    }
    let names = names(listen, &cfg.names);
    let tag = &hex::encode(Sha256::digest(names.join(",").as_bytes()))[..8];
    let (cp, kp) = (
        data_dir.join(format!("lan-self-{tag}.pem")),
        data_dir.join(format!("lan-self-{tag}.key.pem")),
    );
    // Two starts racing (the server and a client asking for the fingerprint) must not
    // write mismatched halves: generate under an exclusive lock, certificate last.
    let lock_path = data_dir.join("lan-self.lock");
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    if !cp.is_file() || !kp.is_file() {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(names.clone())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Caja node (self-signed)");
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let cert = params.self_signed(&key)?;
        write_secret_file(&kp, key.serialize_pem().as_bytes()).map_err(io(&kp))?;
        let tmp = cp.with_extension("tmp");
        std::fs::write(&tmp, cert.pem()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &cp).map_err(io(&cp))?;
    }
    let id = load_pair(&cp, &kp, format!("self-signed for {}", names.join(", ")));
    drop(lock);
    id
}

/// The node's HTTPS listener (the same one head office's admin API uses; a failed
/// handshake is logged at debug).
pub use caja_shared::net::https::HttpsListener as LanListener;

/// The rustls server configuration for an identity: TLS 1.3 and 1.2, ring, HTTP/1.1.
///
/// # Errors
/// [`LanTlsError::Rustls`] when the key does not match the certificate.
pub fn server_config(id: &LanIdentity) -> Result<rustls::ServerConfig, LanTlsError> {
    use caja_shared::net::tls::TlsError;
    caja_shared::net::https::server_config(id.chain.clone(), id.key.clone_key()).map_err(|e| match e {
        TlsError::Rustls(r) => LanTlsError::Rustls(r),
        other => LanTlsError::Rustls(rustls::Error::General(other.to_string())),
    })
}

/// A rustls client configuration that trusts ONLY a node whose chain contains a
/// certificate with this SHA-256 (hex, colons allowed): either the node's own certificate
/// (accepted as is: the pin is stronger than any name check) or a CA certificate, in which
/// case the leaf must be validly signed by it for the name the client connects to.
///
/// # Errors
/// [`LanTlsError::BadPin`].
pub fn client_config(pin: &str) -> Result<rustls::ClientConfig, LanTlsError> {
    let bytes = caja_shared::pin::parse(pin).map_err(|_| LanTlsError::BadPin(pin.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(caja_shared::pin::PinnedVerifier::new(
            bytes,
            caja_shared::pin::PinMode::LeafOrCa,
            provider,
        ))
        .with_no_client_auth())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_stable_until_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "192.168.1.20:8443".parse().unwrap();
        let cfg = LanTls {
            enabled: true,
            names: vec!["till-1.local".into()],
            ..LanTls::default()
        };
        let a = identity(dir.path(), listen, &cfg).unwrap();
        let b = identity(dir.path(), listen, &cfg).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(server_config(&a).is_ok());
        let other = LanTls {
            names: vec!["till-2.local".into()],
            ..cfg.clone()
        };
        assert_ne!(
            identity(dir.path(), listen, &other).unwrap().fingerprint(),
            a.fingerprint()
        );
        assert_eq!(
            names(listen, &cfg.names),
            vec!["127.0.0.1", "192.168.1.20", "localhost", "till-1.local"]
        );
        assert!(client_config(&a.fingerprint()).is_ok());
        assert!(matches!(client_config("abc"), Err(LanTlsError::BadPin(_))));
    }
}
