//! TLS pieces both ends of Caja's links share: the one crypto provider (ring), the
//! certificate fingerprint nodes and tills pin, the QUIC timeouts both sides agree on, and
//! the error every certificate operation returns.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use sha2::{Digest, Sha256};

/// Errors generating, loading or using certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A PEM file does not hold what it should.
    #[error("{path}: not a valid PEM {what}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What was expected ("certificate", "private key").
        what: &'static str,
    },
    /// rcgen could not generate a key or certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A name for a certificate is not a DNS name or IP address (or there are too many).
    #[error("certificate names: {0}")]
    BadName(String),
    /// The fingerprint to pin is not 64 hex digits.
    #[error("CA fingerprint {0:?} is not a SHA-256 in hex (64 hex digits, colons allowed)")]
    BadFingerprint(String),
    /// The TLS configuration cannot be used for QUIC (e.g. no TLS 1.3 suite).
    #[error("tls configuration unusable for QUIC: {0}")]
    Quic(String),
}

/// The ring crypto provider every rustls configuration of Caja is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Lowercase hex SHA-256 of a certificate's DER bytes: what nodes pin.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The idle timeout both sides use (30 s).
pub fn idle_timeout() -> quinn::IdleTimeout {
    // 30 000 ms is far below the VarInt limit (2^62), so the conversion cannot fail.
    quinn::IdleTimeout::from(quinn::VarInt::from_u32(30_000))
}

/// Keep-alive interval of clients (5 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
