//! [`SyncServer`]: the library entry point the binary, the node's demo and the tests use:
//! opening a data dir and serving QUIC and the admin API. The operations live with their
//! domain (`crate::stores`, `crate::users`, `crate::catalog`, `crate::reports`), each an
//! `impl SyncServer` block.
//!
//! Modules:
//! - [`options`] holds [`ServerOptions`].
//! - `hub` (crate): the shared state of a running server (database, documents, who is
//!   connected).
//! - `watch` (crate): the watcher of other processes' writes to the data dir.

pub(crate) mod hub;
pub mod options;
pub(crate) mod watch;

pub use options::{ProviderOptions, ServerOptions};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caja_shared::auth::TokenKeys;

use caja_shared::money::Currency;
use tokio_util::sync::CancellationToken;

use crate::db::{self, StoreDb};
use crate::error::ServerError;
use crate::server::hub::{Core, Hub};
use crate::tls::TlsMaterial;
use crate::{catalog, http, quic};

/// The sync server: database, documents, certificates. Cheap to clone (an `Arc` inside);
/// clones share everything.
#[derive(Clone)]
pub struct SyncServer(Arc<Inner>);

struct Inner {
    hub: Hub,
    currency: Currency,
    tls: TlsMaterial,
    keys: TokenKeys,
    data_dir: PathBuf,
    /// Held while the server lives: one server per data directory.
    _lock: std::fs::File,
}

impl std::fmt::Debug for SyncServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncServer")
            .field("currency", &self.0.currency)
            .field("ca_fingerprint", &self.ca_fingerprint())
            .finish()
    }
}

impl SyncServer {
    /// Opens or creates the data dir: the SQLite database (`caja-sync.db`), the CA and the
    /// server certificate (generated on first start, reused after), and the admin API's
    /// token signing key (`jwt.key`, Ed25519, mode 0600). The currency is recorded on first
    /// open; all report amounts are in it. Stores without a `store/<store>` document get
    /// one. Only one `SyncServer` may hold a data dir at a time (`serve.lock`).
    ///
    /// # Errors
    /// [`ServerError::Io`] / [`ServerError::Sqlite`] / [`ServerError::DocStore`] when the
    /// data dir or database cannot be opened; [`ServerError::Tls`] for unusable
    /// certificates; [`ServerError::CurrencyMismatch`] when the data dir was created for
    /// another currency; [`ServerError::Locked`] while another process holds the data dir.
    pub fn open(data_dir: &Path, currency: Currency) -> Result<SyncServer, ServerError> {
        Self::open_with(data_dir, currency, ServerOptions::default())
    }

    /// [`SyncServer::open`] with explicit [`ServerOptions`].
    ///
    /// # Errors
    /// As [`SyncServer::open`].
    pub fn open_with(
        data_dir: &Path,
        currency: Currency,
        options: ServerOptions,
    ) -> Result<SyncServer, ServerError> {
        std::fs::create_dir_all(data_dir).map_err(|e| ServerError::io(data_dir, e))?;
        let lock = lock_data_dir(data_dir)?;
        let conn = db::open(data_dir)?;
        match conn.setting("currency")? {
            Some(stored) if stored != currency.code() => {
                return Err(ServerError::CurrencyMismatch {
                    stored,
                    requested: currency,
                });
            }
            Some(_) => {}
            None => conn.set_setting("currency", currency.code())?,
        }
        let mut core = Core::new(conn, currency)?;
        catalog::ensure(&mut core)?;
        for store in crate::stores::storedoc::missing(&core.conn)? {
            crate::users::directory::create_store_doc(&mut core, &store)?;
        }
        let tls = TlsMaterial::load_or_create(data_dir)?;
        let keys = TokenKeys::load_or_create(&data_dir.join(JWT_KEY_FILE))?;
        Ok(SyncServer(Arc::new(Inner {
            hub: Hub::new(core, tls.authority.clone(), options),
            currency,
            tls,
            keys,
            data_dir: data_dir.to_path_buf(),
            _lock: lock,
        })))
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.0.hub
    }

    pub(crate) fn keys(&self) -> &TokenKeys {
        &self.0.keys
    }

    /// The options the server was opened with.
    pub(crate) fn options(&self) -> &ServerOptions {
        &self.0.hub.options
    }

    /// The chain CA and the server's certificates (to set up the admin API's HTTPS).
    pub fn tls(&self) -> &crate::tls::TlsMaterial {
        &self.0.tls
    }

    /// Lowercase hex SHA-256 of the CA certificate DER: what a node pins.
    pub fn ca_fingerprint(&self) -> String {
        self.0.tls.ca_fingerprint()
    }

    /// Serves QUIC on `quic` and the admin HTTP API on `http` until `shutdown` is
    /// cancelled, then closes connections gracefully (each saves its sync states) and
    /// returns. If the HTTP server fails, QUIC stops too. Meanwhile a watcher notices
    /// nodes revoked and stores added by `caja-sync` commands on the same data dir.
    ///
    /// # Errors
    /// [`ServerError::Tls`] / [`ServerError::Quic`] if the QUIC endpoint cannot start;
    /// [`ServerError::Http`] if the HTTP server fails.
    pub async fn serve(
        &self,
        quic: std::net::UdpSocket,
        http: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        self.serve_on(quic, http, shutdown).await
    }

    /// [`SyncServer::serve`] with the admin API over HTTPS (`tls`, e.g. from
    /// [`http::https::admin_server_config`]).
    ///
    /// # Errors
    /// As [`SyncServer::serve`].
    pub async fn serve_https(
        &self,
        quic: std::net::UdpSocket,
        http: tokio::net::TcpListener,
        tls: rustls::ServerConfig,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        // `tap_io` only so axum knows the peer address of a TLS stream (`ConnectInfo`).
        let listener = axum::serve::ListenerExt::tap_io(http::https::HttpsListener::new(http, tls), |_| {});
        self.serve_on(quic, listener, shutdown).await
    }

    async fn serve_on<L>(
        &self,
        quic: std::net::UdpSocket,
        http: L,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError>
    where
        L: axum::serve::Listener<Addr = std::net::SocketAddr>,
        for<'a> std::net::SocketAddr:
            axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
    {
        let config = self.0.tls.quic_server_config()?;
        quic.set_nonblocking(true)
            .map_err(|e| ServerError::Quic(e.to_string()))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(config),
            quic,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| ServerError::Quic(e.to_string()))?;
        let stop = shutdown.child_token();
        let (router, trims) = http::router_with_limits(self.clone());
        let http_task = {
            let stop = stop.clone();
            async move {
                let r = axum::serve(
                    http,
                    router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .await;
                stop.cancel();
                r
            }
        };
        let watch_task = watch::run(
            self.0.hub.clone(),
            self.0.data_dir.join(db::DB_FILE),
            trims,
            stop.clone(),
        );
        let forward_task = self.forwarder()?.run(stop.clone());
        let quic_task = quic::run(self.0.hub.clone(), endpoint, stop);
        let (result, (), (), ()) = tokio::join!(http_task, quic_task, watch_task, forward_task);
        result.map_err(ServerError::Http)
    }

    /// The card forwarder of this server's options (with the provider client, if one is
    /// configured).
    fn forwarder(&self) -> Result<crate::payments::forward::Forwarder, ServerError> {
        let options = self.options();
        let provider: Option<Arc<dyn caja_payments::PaymentProvider>> = match &options.payment_provider {
            None => None,
            Some(p) => {
                let mut config = caja_payments::StripeConfig::new(p.url.clone(), p.key.clone());
                config.timeout = p.timeout;
                let client = caja_payments::StripeClient::new(config)
                    .map_err(|e| ServerError::Invalid(format!("payment provider: {e}")))?;
                Some(Arc::new(caja_payments::ResilientProvider::new(
                    client,
                    p.resilience.clone(),
                )))
            }
        };
        Ok(crate::payments::forward::Forwarder {
            hub: self.0.hub.clone(),
            provider,
            poll: options.forward_poll,
            retry: options.forward_retry,
        })
    }

    /// Whether the database answers `SELECT 1`.
    pub(crate) async fn ready(&self) -> bool {
        matches!(self.0.hub.with_core(|core| core.conn.ping()).await, Ok(true))
    }
}

/// File name of the admin API's token signing key inside the data dir.
pub const JWT_KEY_FILE: &str = "jwt.key";

/// Takes an exclusive advisory lock on `DIR/serve.lock` for the life of the server, so two
/// servers never run on one data directory.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, ServerError> {
    let path = dir.join("serve.lock");
    let file = std::fs::File::create(&path).map_err(|source| ServerError::Io {
        path: path.clone(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::Locked(path)),
        Err(std::fs::TryLockError::Error(source)) => Err(ServerError::Io { path, source }),
    }
}
