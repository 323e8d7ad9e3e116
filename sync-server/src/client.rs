//! What a store node needs to connect to the sync server: a QUIC client configuration
//! that trusts only the server CA whose fingerprint the node pinned at enrollment.
//!
//! Trust comes from the pin, not from DNS or the system roots: the server's chain must
//! contain a certificate whose SHA-256 equals the pin, and the end-entity certificate must
//! be validly signed by that CA for [`SERVER_NAME`] (checked by rustls' WebPKI verifier
//! with the pinned CA as the only root).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::tls::{self, TlsError};

/// The TLS server name nodes use; trust comes from the pinned CA, not DNS.
pub const SERVER_NAME: &str = "caja-sync";

/// Parses a pinned fingerprint: 64 hex digits, case-insensitive, colons allowed.
///
/// # Errors
/// [`TlsError::BadFingerprint`].
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TlsError> {
    let clean: String = text.trim().chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(&clean, &mut out).map_err(|_| TlsError::BadFingerprint(text.to_string()))?;
    Ok(out)
}

/// A quinn client config (ring provider, TLS 1.3, ALPN `caja-sync/1`, keep-alive 5 s,
/// idle timeout 30 s) that trusts ONLY a server whose chain contains a CA certificate with
/// this SHA-256 fingerprint (hex, case-insensitive, colons allowed) and whose end-entity
/// certificate is validly signed by that CA for [`SERVER_NAME`].
///
/// # Errors
/// [`TlsError::BadFingerprint`] for a malformed pin; [`TlsError::Rustls`] or
/// [`TlsError::Quic`] if the TLS configuration cannot be built (a bug).
pub fn client_config(ca_fingerprint: &str) -> Result<quinn::ClientConfig, TlsError> {
    let pin = parse_fingerprint(ca_fingerprint)?;
    let provider = tls::provider();
    let verifier = Arc::new(PinnedCaVerifier {
        pin,
        provider: provider.clone(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![caja_shared::protocol::ALPN.to_vec()];
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

/// Verifies the server's chain against the pinned CA only.
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    fn is_pinned(&self, cert: &CertificateDer<'_>) -> bool {
        use sha2::{Digest, Sha256};
        Sha256::digest(cert.as_ref()).as_slice() == self.pin
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .chain(std::iter::once(end_entity))
            .find(|c| self.is_pinned(c))
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "the sync server's certificate chain does not contain the pinned CA {}",
                    hex::encode(self.pin)
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(format!("pinned CA unusable: {e}")))?;
        let rest: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| !self.is_pinned(c))
            .cloned()
            .collect();
        webpki.verify_server_cert(end_entity, &rest, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_colons_and_case() {
        let hex64 = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex64).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abc").is_err());
        assert!(client_config(&hex64).is_ok());
        assert!(matches!(client_config("zz"), Err(TlsError::BadFingerprint(_))));
    }
}
