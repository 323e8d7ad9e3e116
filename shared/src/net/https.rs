//! HTTPS for an axum server: the listener both the node's LAN API and head office's
//! admin API use, and the rustls server configuration they share.
//!
//! `tls-listener` does the handshakes (concurrently, each with a timeout, so a slow client
//! cannot stall the others); [`HttpsListener`] only decides how failures are logged. A
//! failed handshake (a plain-HTTP client on the TLS port, a client with another pin or
//! CA, a port scanner) is the client's problem and is logged at debug, where
//! `tls-listener`'s own axum adapter logs it at error on every occurrence.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::tls::TlsError;

/// An HTTPS listener for `axum::serve`.
pub struct HttpsListener(tls_listener::TlsListener<tokio::net::TcpListener, tokio_rustls::TlsAcceptor>);

impl HttpsListener {
    /// Serves TLS with `config` on `listener`.
    pub fn new(listener: tokio::net::TcpListener, config: rustls::ServerConfig) -> HttpsListener {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        HttpsListener(tls_listener::TlsListener::new(acceptor, listener))
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(conn) => return conn,
                Err(tls_listener::Error::ListenerError(e)) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a TCP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.listener().local_addr()
    }
}

/// A rustls server configuration (TLS 1.3 and 1.2, ring, HTTP/1.1) for a chain and key.
///
/// # Errors
/// [`TlsError::Rustls`] when the key does not match the certificate.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut c = rustls::ServerConfig::builder_with_provider(super::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}
