//! The node: opening its storage and identity, and running the REST API and the sync
//! client until shutdown.

use std::sync::Arc;

use caja_shared::docs::{self, DocId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::local::{self, Created, LocalUser};
use crate::auth::{Auth, AuthError};
use crate::config::NodeConfig;
use crate::http::tls;
use crate::identity::{self, Identity};
use crate::store::{Db, StoreError};
use crate::sync::SyncLink;

/// A running node's shared handle. Cheap to clone.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

struct Inner {
    db: Db,
    identity: Identity,
    config: NodeConfig,
    link: SyncLink,
    auth: Auth,
    provider: Option<crate::sales::online::Provider>,
}

impl Node {
    /// Opens the node's data directory (creating it on first start), its identity and the
    /// catalog document.
    ///
    /// # Errors
    /// [`StoreError`] when the database or the token key cannot be opened, or the
    /// directory belongs to another store.
    pub async fn open(config: NodeConfig) -> Result<Node, StoreError> {
        let db = Db::open(&config.data_dir)?;
        let auth = Auth::open(&config.data_dir, config.auth.clone())
            .map_err(|e| StoreError::Task(format!("token signing key: {e}")))?;
        let (store, terminal, currency, dir) = (
            config.store.clone(),
            config.terminal.clone(),
            config.currency,
            config.data_dir.clone(),
        );
        let identity = db
            .write(move |ctx| -> Result<Identity, StoreError> {
                let id = identity::load_or_create(ctx, &store, &terminal, currency, &dir)?;
                // Store the shared catalog genesis so it replicates like any change.
                if caja_shared::docstore::load(ctx.conn, &DocId::Catalog)?.is_none() {
                    let am = ctx.doc(&DocId::Catalog)?;
                    let _ = docs::skus(am)?;
                    ctx.persist(&DocId::Catalog, &[])?;
                }
                Ok(id)
            })
            .await?;
        let link = SyncLink::new(config.sync.clone());
        let provider = match (&config.payments.url, &config.payments.key) {
            (Some(url), Some(key)) => Some(
                crate::sales::online::provider(url, &key.0)
                    .map_err(|e| StoreError::Task(format!("card provider: {e}")))?,
            ),
            _ => None,
        };
        Ok(Node(Arc::new(Inner {
            db,
            identity,
            config,
            link,
            auth,
            provider,
        })))
    }

    /// The token keys and auth settings.
    pub fn auth(&self) -> &Auth {
        &self.0.auth
    }

    /// Adds a user to a standalone node (one that never enrolled; an enrolled node's staff
    /// come from head office). Hashes the password and PIN with argon2id.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] (invalid field), [`AuthError::Conflict`] (enrolled node or a
    /// taken username), [`AuthError::Store`].
    pub async fn add_local_user(&self, user: LocalUser) -> Result<Created, AuthError> {
        let prepared = tokio::task::spawn_blocking(move || local::prepare(&user))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        let store = self.0.identity.store.clone();
        self.0
            .db
            .write(move |ctx| local::write(ctx, &store, prepared))
            .await
    }

    /// What the auth services need: database, token keys and settings, identity.
    pub fn auth_ctx(&self) -> crate::auth::AuthCtx<'_> {
        crate::auth::AuthCtx {
            db: &self.0.db,
            auth: &self.0.auth,
            identity: &self.0.identity,
        }
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// Who this node is.
    pub fn identity(&self) -> &Identity {
        &self.0.identity
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &NodeConfig {
        &self.0.config
    }

    /// The card provider, when one is configured (`payment_provider_url`).
    pub fn payment_provider(&self) -> Option<&crate::sales::online::Provider> {
        self.0.provider.as_ref()
    }

    /// The sync link (status, enable/disable).
    pub fn link(&self) -> &SyncLink {
        &self.0.link
    }

    /// The LAN certificate the node serves when TLS is on (see [`tls`]), generating a
    /// self-signed one on first use.
    ///
    /// # Errors
    /// [`tls::LanTlsError`].
    pub fn lan_identity(&self) -> Result<tls::LanIdentity, tls::LanTlsError> {
        let c = &self.0.config;
        tls::identity(&c.data_dir, c.listen, &c.lan_tls)
    }

    /// The HTTPS identity and rustls configuration `serve` will use, when `lan_tls.enabled`
    /// (checked before anything starts: `caja-node serve` calls it before announcing).
    ///
    /// # Errors
    /// An unusable certificate or key (as `io::ErrorKind::InvalidInput`, naming the file).
    pub fn https_config(&self) -> std::io::Result<Option<(tls::LanIdentity, rustls::ServerConfig)>> {
        if !self.0.config.lan_tls.enabled {
            return Ok(None);
        }
        let invalid =
            |e: tls::LanTlsError| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string());
        let id = self.lan_identity().map_err(invalid)?;
        let config = tls::server_config(&id).map_err(invalid)?;
        Ok(Some((id, config)))
    }

    /// Serves the REST API on `listener` (HTTPS when `lan_tls.enabled`) and runs the sync
    /// client (if configured) until `shutdown` is cancelled; then stops accepting,
    /// finishes in-flight requests and waits for background tasks.
    ///
    /// # Errors
    /// I/O errors of the HTTP server; an unusable LAN certificate (as
    /// `io::ErrorKind::InvalidInput`).
    pub async fn serve(&self, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
        // The certificate first: an unusable one must stop the node before it syncs.
        let https = self.https_config()?;
        self.serve_with(listener, https, shutdown).await
    }

    /// [`Node::serve`] with the HTTPS configuration already made by
    /// [`Node::https_config`] (`caja-node serve` checks it before announcing).
    ///
    /// # Errors
    /// I/O errors of the HTTP server.
    pub async fn serve_with(
        &self,
        listener: TcpListener,
        https: Option<(tls::LanIdentity, rustls::ServerConfig)>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let tasks = TaskTracker::new();
        if let Some(target) = self.0.config.sync.clone() {
            let node = self.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { crate::sync::run(node, target, stop).await });
        }
        let app =
            crate::http::router(self.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let stop = shutdown.clone();
        let res = if let Some((id, config)) = https {
            tracing::info!(fingerprint = %id.fingerprint(), certificate = %id.source, "serving HTTPS");
            // `tap_io` makes axum pass the peer address through (ConnectInfo<SocketAddr>, which
            // the per-client rate limits key on).
            let listener = axum::serve::ListenerExt::tap_io(tls::LanListener::new(listener, config), |_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        } else {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        };
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        res
    }
}
