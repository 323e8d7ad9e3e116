//! Certificates: the server's own CA and its server certificate, and the QUIC server
//! TLS configuration.
//!
//! On first start [`TlsMaterial::load_or_create`] generates, with rcgen, a CA ("Caja sync
//! CA") and a server certificate signed by it for the DNS names `caja-sync` and
//! `localhost` and the IP 127.0.0.1, and writes `ca.pem`, `ca.key.pem`, `server.pem` and
//! `server.key.pem` into the data dir (keys with mode 0600 on Unix). Later starts reuse
//! them, so the CA fingerprint nodes pin stays the same. Nodes pin the SHA-256 of the CA
//! certificate ([`fingerprint`]); see [`caja_shared::net::client`]. The CA also signs the nodes'
//! client and LAN certificates ([`crate::ca`]), and the QUIC server asks every connection
//! for a client certificate issued by it (mutual TLS).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The DNS names (and IP) the server certificate is valid for.
pub const SERVER_NAMES: &[&str] = &["caja-sync", "localhost", "127.0.0.1"];

/// Common name of the generated CA.
pub const CA_NAME: &str = "Caja sync CA";

pub(crate) use caja_shared::net::tls::idle_timeout;
pub use caja_shared::net::tls::{TlsError, fingerprint, provider};

/// The server's certificates and key, loaded from (or generated into) the data dir.
pub struct TlsMaterial {
    /// The CA certificate (DER).
    pub ca: CertificateDer<'static>,
    /// The chain the server presents: the server certificate, then the CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server certificate's private key.
    pub key: PrivateKeyDer<'static>,
    /// The CA as an issuer of node certificates.
    pub(crate) authority: Arc<crate::ca::Authority>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_fingerprint", &self.ca_fingerprint())
            .field("key", &"<redacted>")
            .finish()
    }
}

fn io(path: &Path, source: std::io::Error) -> TlsError {
    TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(|e| io(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| io(path, e))
}

/// The CA's parameters; deterministic, so an issuer can be rebuilt from the stored key.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "Caja");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn server_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(SERVER_NAMES.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "caja-sync");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

impl TlsMaterial {
    /// Loads the certificates from `dir`, generating whichever are missing: the CA on a
    /// first start, the server certificate (signed by the existing CA) if only it is gone.
    ///
    /// # Errors
    /// [`TlsError::Io`] for unreadable or unwritable files, [`TlsError::BadPem`] for files
    /// that do not parse, [`TlsError::Generate`] if rcgen fails.
    pub fn load_or_create(dir: &Path) -> Result<TlsMaterial, TlsError> {
        let (ca_pem, ca_key_pem) = (dir.join("ca.pem"), dir.join("ca.key.pem"));
        let (srv_pem, srv_key_pem) = (dir.join("server.pem"), dir.join("server.key.pem"));
        if !ca_pem.exists() || !ca_key_pem.exists() {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            write_file(&ca_key_pem, &key.serialize_pem(), true)?;
            write_file(&ca_pem, &cert.pem(), false)?;
            // A new CA invalidates any old server certificate.
            let _ = std::fs::remove_file(&srv_pem);
        }
        if !srv_pem.exists() || !srv_key_pem.exists() {
            let ca_key_text = read_text(&ca_key_pem)?;
            let ca_key = KeyPair::from_pem(&ca_key_text).map_err(|_| TlsError::BadPem {
                path: ca_key_pem.clone(),
                what: "private key",
            })?;
            let issuer = Issuer::new(ca_params(), ca_key);
            let key = KeyPair::generate()?;
            let cert = server_params()?.signed_by(&key, &issuer)?;
            write_file(&srv_key_pem, &key.serialize_pem(), true)?;
            write_file(&srv_pem, &cert.pem(), false)?;
        }
        let cert = |path: &Path| -> Result<CertificateDer<'static>, TlsError> {
            CertificateDer::from_pem_slice(read_text(path)?.as_bytes()).map_err(|_| TlsError::BadPem {
                path: path.to_path_buf(),
                what: "certificate",
            })
        };
        let ca = cert(&ca_pem)?;
        let server = cert(&srv_pem)?;
        let ca_key_text = read_text(&ca_key_pem)?;
        let ca_key = KeyPair::from_pem(&ca_key_text).map_err(|_| TlsError::BadPem {
            path: ca_key_pem.clone(),
            what: "private key",
        })?;
        // The issuer is read from the stored CA certificate itself (its exact subject and
        // key identifier), so issued certificates chain to it byte for byte.
        let issuer = Issuer::from_ca_cert_der(&ca, ca_key)?;
        let key = PrivateKeyDer::from_pem_slice(read_text(&srv_key_pem)?.as_bytes()).map_err(|_| {
            TlsError::BadPem {
                path: srv_key_pem.clone(),
                what: "private key",
            }
        })?;
        Ok(TlsMaterial {
            chain: vec![server, ca.clone()],
            authority: Arc::new(crate::ca::Authority::new(issuer, ca.clone())),
            ca,
            key,
        })
    }

    /// A fresh HTTPS certificate for head office's admin API, signed by the CA, for
    /// `localhost`, `127.0.0.1`, `caja-sync` and `extra` names (DNS names or IPs; at most
    /// 16 in all), valid 5 years: the chain (leaf, CA) and the key. Made at each start and
    /// kept only in memory; clients trust the CA, not this leaf.
    ///
    /// # Errors
    /// [`TlsError::BadName`] naming a name that is not a DNS name or IP (or too many);
    /// [`TlsError::Generate`].
    pub fn issue_admin_certificate(
        &self,
        extra: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let mut names: Vec<String> = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        for n in extra {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let sans = crate::ca::check_lan_names(&names).map_err(|e| match e {
            crate::ca::CsrError::BadName(why) => TlsError::BadName(format!("--admin-name: {why}")),
            other => TlsError::BadName(other.to_string()),
        })?;
        let now = caja_shared::auth::tokens::now_secs();
        let (der, key) = self
            .authority
            .issue_admin(sans, now, Duration::from_secs(5 * 365 * 86_400))?;
        Ok((
            vec![CertificateDer::from(der), self.ca.clone()],
            PrivateKeyDer::Pkcs8(key.into()),
        ))
    }

    /// Lowercase hex SHA-256 of the CA certificate.
    pub fn ca_fingerprint(&self) -> String {
        fingerprint(&self.ca)
    }

    /// The QUIC server configuration: TLS 1.3 with the ring provider, ALPN
    /// `caja-sync/1`, client certificates verified against this CA by rustls' WebPKI
    /// verifier (EKU clientAuth, validity, signature), idle timeout 30 s, at most 4
    /// concurrent bidirectional streams per connection.
    ///
    /// A client certificate is optional at the TLS layer (`allow_unauthenticated`),
    /// because a node that enrolls has none yet; a connection without one may only send
    /// `Enroll` (the QUIC layer enforces that). A certificate that does not chain to this
    /// CA fails the handshake.
    ///
    /// # Errors
    /// [`TlsError::Rustls`] if the key does not match the certificate.
    pub fn quic_server_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone())?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Quic(format!("client certificate verifier: {e}")))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![caja_shared::protocol::ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(idle_timeout()))
            .max_concurrent_bidi_streams(4u32.into())
            .max_concurrent_uni_streams(0u32.into());
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let a = TlsMaterial::load_or_create(dir.path()).unwrap();
        let b = TlsMaterial::load_or_create(dir.path()).unwrap();
        assert_eq!(a.ca_fingerprint(), b.ca_fingerprint());
        assert_eq!(a.ca_fingerprint().len(), 64);
        assert_eq!(a.chain.len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("server.key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Losing only the server certificate re-issues it from the same CA.
        std::fs::remove_file(dir.path().join("server.pem")).unwrap();
        let c = TlsMaterial::load_or_create(dir.path()).unwrap();
        assert_eq!(c.ca_fingerprint(), a.ca_fingerprint());
        assert_ne!(c.chain[0], a.chain[0]);
        assert!(c.quic_server_config().is_ok());
    }
}
