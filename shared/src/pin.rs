//! Certificate pinning: the one rustls verifier that trusts a peer only because its chain
//! contains a certificate with a known SHA-256, never because of the system's roots or DNS.
//! Nodes pin head office's CA for QUIC ([`PinMode::Ca`]); tills pin a node's LAN
//! certificate, or the chain CA that issued it ([`PinMode::LeafOrCa`]).
//!
//! With a pinned CA, the end-entity certificate must also be validly signed by it for the
//! name the client asked for (rustls' WebPKI verifier with the pinned CA as its only root).
//! A pinned leaf (a node's self-signed certificate) is accepted as it is: the pin names
//! that exact certificate, which is stronger than any name check.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// The start of the handshake error when no certificate of the chain matches the pin;
/// callers look for it to explain the failure.
pub const MISMATCH: &str = "the presented certificate chain does not contain the pinned certificate";

/// A pin that is not a SHA-256 in hex.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("certificate fingerprint {0:?} is not a SHA-256 in hex (64 hex digits, colons allowed)")]
pub struct PinError(pub String);

/// Parses a pin: 64 hex digits, case-insensitive, colons allowed.
///
/// # Errors
/// [`PinError`].
pub fn parse(text: &str) -> Result<[u8; 32], PinError> {
    let clean: String = text.trim().chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(&clean, &mut out).map_err(|_| PinError(text.to_string()))?;
    Ok(out)
}

/// Lowercase hex SHA-256 of a certificate's DER bytes: what is pinned.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// What the pin may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMode {
    /// A CA in the chain; the leaf must be signed by it for the requested name.
    Ca,
    /// The leaf itself, or a CA in the chain as with [`PinMode::Ca`].
    LeafOrCa,
}

/// The pinning verifier; see the module docs.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: [u8; 32],
    mode: PinMode,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    /// A verifier for `pin` in `mode`, checking signatures with `provider`.
    pub fn new(pin: [u8; 32], mode: PinMode, provider: Arc<CryptoProvider>) -> Arc<PinnedVerifier> {
        Arc::new(PinnedVerifier { pin, mode, provider })
    }

    fn matches(&self, c: &CertificateDer<'_>) -> bool {
        Sha256::digest(c.as_ref()).as_slice() == self.pin
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.mode == PinMode::LeafOrCa && self.matches(end_entity) {
            return Ok(ServerCertVerified::assertion());
        }
        let ca = intermediates
            .iter()
            .chain(std::iter::once(end_entity))
            .find(|c| self.matches(c))
            .ok_or_else(|| rustls::Error::General(format!("{MISMATCH} {}", hex::encode(self.pin))))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(format!("pinned CA unusable: {e}")))?;
        let rest: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| !self.matches(c))
            .cloned()
            .collect();
        webpki.verify_server_cert(end_entity, &rest, server_name, ocsp, now)
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
    fn pins_parse_with_colons_and_case() {
        assert_eq!(parse(&"AB".repeat(32)).unwrap(), [0xab; 32]);
        assert_eq!(parse(&vec!["ab"; 32].join(":")).unwrap(), [0xab; 32]);
        assert!(parse("abc").is_err());
        assert!(parse(&"zz".repeat(32)).is_err());
        assert_eq!(fingerprint(b"x").len(), 64);
    }
}
