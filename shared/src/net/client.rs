//! What a store node needs to connect to the sync server: its keys and certificate
//! signing requests, enrollment, and a QUIC client configuration that trusts only the
//! server CA whose fingerprint the node pinned, presenting the node's client certificate
//! (mutual TLS) once it has one.
//!
//! Trust comes from the pin, not from DNS or the system roots: the server's chain must
//! contain a certificate whose SHA-256 equals the pin, and the end-entity certificate must
//! be validly signed by that CA for [`SERVER_NAME`] (checked by rustls' WebPKI verifier
//! with the pinned CA as the only root).

use std::sync::Arc;

use crate::pin::{self, PinMode, PinnedVerifier};
use rustls::pki_types::CertificateDer;

use super::tls::{self, TlsError};

/// The TLS server name nodes use; trust comes from the pinned CA, not DNS.
pub const SERVER_NAME: &str = "caja-sync";

/// Parses a pinned fingerprint: 64 hex digits, case-insensitive, colons allowed.
///
/// # Errors
/// [`TlsError::BadFingerprint`].
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TlsError> {
    pin::parse(text).map_err(|_| TlsError::BadFingerprint(text.to_string()))
}

/// A node's client certificate chain and private key, presented for mutual TLS. `Debug`
/// never shows the key.
pub struct ClientIdentity {
    /// The client certificate, then (optionally) the CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of the client certificate.
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A private key (PEM, PKCS#8) and a certificate signing request for it (DER).
pub struct KeyAndCsr {
    /// The private key in PEM; keep it on the node, never send it.
    pub key_pem: crate::auth::secrets::Secret,
    /// The PKCS#10 CSR (DER) to send.
    pub csr_der: Vec<u8>,
}

/// A fresh ECDSA P-256 key (rcgen, ring) and a CSR for the node's QUIC client certificate.
/// The CSR's subject and extensions are informative only: the server decides what the
/// certificate says.
///
/// # Errors
/// [`TlsError::Generate`].
pub fn node_csr() -> Result<KeyAndCsr, TlsError> {
    csr(rcgen::CertificateParams::default(), "caja-node")
}

/// A fresh key and a CSR for the node's LAN (HTTPS) server certificate naming `names`
/// (DNS names or IP addresses). The server issues the certificate for the names sent in
/// [`crate::protocol::LanRequest::names`], checked by
/// head office's LAN-name check.
///
/// # Errors
/// [`TlsError::Generate`] for a name that is neither a DNS name nor an IP address.
pub fn lan_csr(names: &[String]) -> Result<KeyAndCsr, TlsError> {
    csr(rcgen::CertificateParams::new(names.to_vec())?, "caja-node LAN")
}

fn csr(mut params: rcgen::CertificateParams, cn: &str) -> Result<KeyAndCsr, TlsError> {
    let key = rcgen::KeyPair::generate()?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    params.distinguished_name = dn;
    let request = params.serialize_request(&key)?;
    Ok(KeyAndCsr {
        key_pem: crate::auth::secrets::Secret::new(key.serialize_pem()),
        csr_der: request.der().to_vec(),
    })
}

impl ClientIdentity {
    /// An identity from the client certificate (DER) enrollment or renewal returned and
    /// the private key PEM of [`node_csr`].
    ///
    /// # Errors
    /// [`TlsError::BadPem`] when the key is not a PEM private key.
    pub fn new(certificate: Vec<u8>, key_pem: &crate::auth::secrets::Secret) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes()).map_err(|_| {
                TlsError::BadPem {
                    path: "(node key)".into(),
                    what: "private key",
                }
            })?;
        Ok(ClientIdentity {
            chain: vec![CertificateDer::from(certificate)],
            key,
        })
    }
}

/// What a successful enrollment returns.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The node id head office assigned.
    pub node: crate::ids::NodeId,
    /// The store the code was issued for.
    pub store: crate::ids::StoreCode,
    /// The client certificate (DER).
    pub certificate: Vec<u8>,
    /// The CA certificate (DER), whose SHA-256 is the pinned fingerprint.
    pub ca: Vec<u8>,
    /// When the client certificate expires, seconds since the epoch (UTC).
    pub not_after: i64,
    /// The LAN server certificate (DER), when one was requested.
    pub lan_certificate: Option<Vec<u8>>,
    /// The chain currency: every amount the node records is in it.
    pub currency: crate::money::Currency,
}

/// Why an enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The server could not be reached.
    #[error("cannot reach the sync server at {server}: {reason}")]
    Connect {
        /// `host:port`.
        server: String,
        /// Why.
        reason: String,
    },
    /// A server answered, but its CA is not the pinned one: the wrong server, or the wrong
    /// fingerprint. Nothing was sent to it.
    #[error(
        "the server at {server} is not the sync server pinned: its CA fingerprint did not match {pinned}; check --ca-fingerprint (caja-sync ca-fingerprint prints it) and --server. Nothing was sent to it"
    )]
    WrongCa {
        /// `host:port`.
        server: String,
        /// The fingerprint given.
        pinned: String,
    },
    /// The server refused the enrollment (expired or used code, rate limit, bad CSR).
    #[error("the sync server refused the enrollment: {0}")]
    Refused(String),
    /// Something unexpected on the wire.
    #[error("enrollment protocol error: {0}")]
    Protocol(String),
    /// Local TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// How long [`enroll`] waits for the server's answer.
pub const ENROLL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The start of the handshake error when the server's chain lacks the pinned CA.
const PIN_MISMATCH: &str = pin::MISMATCH;

/// Enrolls a node: connects to `server` (`host:port`) trusting only the CA pinned by
/// `ca_fingerprint`, without a client certificate, sends [`crate::protocol::Frame::Enroll`]
/// and waits ([`ENROLL_TIMEOUT`] at most) for the certificates.
///
/// # Errors
/// [`EnrollError::Connect`] when the server cannot be reached; [`EnrollError::WrongCa`]
/// when its CA does not match the pin; [`EnrollError::Refused`] with the server's reason
/// (`unknown enrollment code`, `enrollment code expired`, `enrollment code already used`,
/// a rate limit, a bad CSR); [`EnrollError::Protocol`] for anything unexpected;
/// [`EnrollError::Tls`] for a malformed pin.
pub async fn enroll(
    server: &str,
    ca_fingerprint: &str,
    code: crate::auth::secrets::Secret,
    csr_der: Vec<u8>,
    lan: Option<crate::protocol::LanRequest>,
) -> Result<Enrollment, EnrollError> {
    use crate::protocol::Frame;
    let config = client_config(ca_fingerprint, None)?;
    let connect = |reason: String| EnrollError::Connect {
        server: server.to_string(),
        reason,
    };
    if !server
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    {
        return Err(connect(
            "give the server as HOST:PORT, e.g. hq.example:7443 (the port is caja-sync's --listen-quic)"
                .into(),
        ));
    }
    let addr = tokio::net::lookup_host(server)
        .await
        .map_err(|e| connect(format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| connect("the name resolves to no address".into()))?;
    let bind: std::net::SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint =
        quinn::Endpoint::client(bind).map_err(|e| connect(format!("local UDP socket: {e}")))?;
    endpoint.set_default_client_config(config);
    let result = tokio::time::timeout(ENROLL_TIMEOUT, async {
        let conn = endpoint
            .connect(addr, SERVER_NAME)
            .map_err(|e| connect(e.to_string()))?
            .await
            .map_err(|e| {
                if let Some(why) = refused_before_handshake(&e) {
                    return connect(format!("{why}; try again in a minute"));
                }
                let text = e.to_string();
                if text.contains(PIN_MISMATCH) {
                    EnrollError::WrongCa {
                        server: server.to_string(),
                        pinned: ca_fingerprint.to_string(),
                    }
                } else {
                    connect(text)
                }
            })?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| connect(e.to_string()))?;
        let frame = Frame::Enroll {
            code,
            csr: csr_der,
            lan,
        };
        super::wire::write_frame(&mut send, &frame)
            .await
            .map_err(|e| EnrollError::Protocol(e.to_string()))?;
        let _ = send.finish();
        let answer = super::wire::read_frame(&mut recv).await;
        conn.close(quinn::VarInt::from_u32(0), b"enrolled");
        match answer {
            Ok(Some(Frame::Enrolled {
                node,
                store,
                certificate,
                ca,
                not_after,
                lan_certificate,
                currency,
            })) => Ok(Enrollment {
                node,
                store,
                certificate,
                ca,
                not_after,
                lan_certificate,
                currency: currency.parse().map_err(|e| {
                    EnrollError::Protocol(format!("head office sent currency {currency:?}: {e}"))
                })?,
            }),
            Ok(Some(Frame::Error { message, .. })) => Err(EnrollError::Refused(message)),
            Ok(Some(other)) => Err(EnrollError::Protocol(format!("unexpected answer {other:?}"))),
            Ok(None) => Err(EnrollError::Protocol(
                "the server closed without answering".into(),
            )),
            Err(e) => Err(match conn.close_reason() {
                Some(quinn::ConnectionError::ApplicationClosed(c)) => {
                    EnrollError::Refused(String::from_utf8_lossy(&c.reason).into_owned())
                }
                _ => EnrollError::Protocol(e.to_string()),
            }),
        }
    })
    .await
    .unwrap_or_else(|_| Err(connect(format!("no answer within {ENROLL_TIMEOUT:?}"))));
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), endpoint.wait_idle()).await;
    result
}

/// What a node tells its operator when the server refused a connection before the
/// handshake (QUIC CONNECTION_REFUSED: head office's per-address limits), else `None`.
pub fn refused_before_handshake(e: &quinn::ConnectionError) -> Option<&'static str> {
    match e {
        quinn::ConnectionError::ConnectionClosed(c)
            if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            Some(
                "the sync server refused the connection before the handshake: too many \
                 connections or attempts from this address (its --connections-per-ip and \
                 --handshakes-per-minute)",
            )
        }
        _ => None,
    }
}

/// A quinn client config (ring provider, TLS 1.3, ALPN `caja-sync/1`, keep-alive 5 s,
/// idle timeout 30 s) that trusts ONLY a server whose chain contains a CA certificate with
/// this SHA-256 fingerprint (hex, case-insensitive, colons allowed) and whose end-entity
/// certificate is validly signed by that CA for [`SERVER_NAME`]. With `identity`, the
/// node presents its client certificate (mutual TLS); without, it can only enroll.
///
/// # Errors
/// [`TlsError::BadFingerprint`] for a malformed pin; [`TlsError::Rustls`] for an identity
/// whose key does not match; [`TlsError::Quic`] if the TLS configuration cannot be built.
pub fn client_config(
    ca_fingerprint: &str,
    identity: Option<&ClientIdentity>,
) -> Result<quinn::ClientConfig, TlsError> {
    let pin = parse_fingerprint(ca_fingerprint)?;
    let provider = tls::provider();
    let verifier = PinnedVerifier::new(pin, PinMode::Ca, provider.clone());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut tls = match identity {
        Some(id) => builder.with_client_auth_cert(id.chain.clone(), id.key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![crate::protocol::ALPN.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(tls::KEEP_ALIVE))
        .max_idle_timeout(Some(tls::idle_timeout()));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_without_a_port_is_refused_saying_how_to_write_it() {
        for server in ["localhost", "hq.example:", ":7443", "hq.example:port"] {
            let e = enroll(
                server,
                &"ab".repeat(32),
                crate::auth::secrets::Secret::new("code"),
                Vec::new(),
                None,
            )
            .await
            .unwrap_err();
            assert!(e.to_string().contains("HOST:PORT"), "{server}: {e}");
        }
    }

    #[test]
    fn fingerprints_parse_with_colons_and_case() {
        let hex64 = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex64).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abc").is_err());
        assert!(client_config(&hex64, None).is_ok());
        assert!(matches!(
            client_config("zz", None),
            Err(TlsError::BadFingerprint(_))
        ));
    }
}
