//! The node's sync client: keeps a QUIC connection to the sync server and runs the sync
//! session over it, reconnecting with exponential backoff and jitter.
//!
//! - [`host`]: the node's [`caja_shared::sync::DocHost`].
//!
//! Every session step runs as one writer job, so received changes are stored and projected
//! atomically, and local sales are never blocked for longer than one step.

pub mod host;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use caja_shared::docs::DocId;
use caja_shared::protocol::Frame;
use caja_shared::sync::{Session, SyncError};
use caja_sync_server::{client, wire};
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::app::Node;
use crate::config::SyncTarget;
use crate::store::StoreError;
use host::NodeHost;

/// What the sync link is doing, for `/v1/sync/status` and readiness.
#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    /// A session with the server is live.
    pub connected: bool,
    /// Last time a frame arrived from the server (UTC).
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The last connection error, cleared on success.
    pub last_error: Option<String>,
    /// UDP bytes sent to the server over all sessions since start (QUIC overhead included).
    pub bytes_sent: u64,
    /// UDP bytes received from the server over all sessions since start.
    pub bytes_received: u64,
}

/// The node's link to the sync server: its status and an on/off switch (a store can be
/// taken offline on purpose, e.g. in the demo). Cheap to clone.
#[derive(Clone)]
pub struct SyncLink(Arc<LinkInner>);

struct LinkInner {
    target: Option<SyncTarget>,
    status: Mutex<LinkStatus>,
    enabled: watch::Sender<bool>,
}

impl SyncLink {
    /// A link for `target` (None: standalone node), enabled.
    pub fn new(target: Option<SyncTarget>) -> Self {
        let (enabled, _) = watch::channel(true);
        Self(Arc::new(LinkInner {
            target,
            status: Mutex::new(LinkStatus::default()),
            enabled,
        }))
    }

    /// Whether a sync server is configured.
    pub fn configured(&self) -> bool {
        self.0.target.is_some()
    }

    /// The configured server address.
    pub fn server(&self) -> Option<String> {
        self.0.target.as_ref().map(|t| t.server.to_string())
    }

    /// A snapshot of the status.
    pub fn status(&self) -> LinkStatus {
        self.0.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the link may connect.
    pub fn enabled(&self) -> bool {
        *self.0.enabled.borrow()
    }

    /// Turns the link on or off; off closes a live session at once and stops reconnecting.
    pub fn set_enabled(&self, on: bool) {
        self.0.enabled.send_replace(on);
    }

    fn update(&self, f: impl FnOnce(&mut LinkStatus)) {
        if let Ok(mut s) = self.0.status.lock() {
            f(&mut s);
        }
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("stream: {0}")]
    Wire(#[from] wire::WireError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server closed the stream")]
    Closed,
    #[error("link disabled")]
    Disabled,
}

/// Runs the sync client until `shutdown`: connect, sync, and on any failure wait (backoff
/// 200 ms doubling to 10 s, with jitter) and reconnect.
pub async fn run(node: Node, target: SyncTarget, shutdown: CancellationToken) {
    let config = match client::client_config(&target.ca_fingerprint) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "sync disabled: bad CA fingerprint");
            node.link().update(|s| s.last_error = Some(e.to_string()));
            return;
        }
    };
    // One client endpoint per address family, opened when first needed.
    let mut endpoints: [Option<quinn::Endpoint>; 2] = [None, None];
    let link = node.link().clone();
    let mut enabled = link.0.enabled.subscribe();
    let mut backoff = new_backoff();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        if !*enabled.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = enabled.changed() => continue,
            }
        }
        let started = std::time::Instant::now();
        let res = match endpoint_for(&target.server, &mut endpoints, &config).await {
            Ok((endpoint, addr)) => {
                session(&node, &endpoint, addr, &target, &shutdown, enabled.clone()).await
            }
            Err(e) => Err(e),
        };
        link.update(|s| s.connected = false);
        match res {
            Ok(()) => break,
            Err(LinkError::Disabled) => {
                info!("sync link disabled");
                continue;
            }
            Err(e) => {
                warn!(error = %e, server = %target.server, "sync session ended");
                link.update(|s| s.last_error = Some(e.to_string()));
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = new_backoff();
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(10));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
            _ = enabled.changed() => {}
        }
    }
    for endpoint in endpoints.into_iter().flatten() {
        endpoint.close(0u32.into(), b"node shutting down");
        endpoint.wait_idle().await;
    }
}

/// Resolves `host:port` (every attempt, so a changed DNS entry is followed) and returns the
/// client endpoint of that address family, opening it on first use.
async fn endpoint_for(
    server: &str,
    endpoints: &mut [Option<quinn::Endpoint>; 2],
    config: &quinn::ClientConfig,
) -> Result<(quinn::Endpoint, std::net::SocketAddr), LinkError> {
    let addr = tokio::net::lookup_host(server)
        .await
        .map_err(|e| LinkError::Connect(format!("cannot resolve {server}: {e}")))?
        .next()
        .ok_or_else(|| LinkError::Connect(format!("{server} resolves to no address")))?;
    let slot = usize::from(addr.is_ipv6());
    if endpoints[slot].is_none() {
        let bind: std::net::SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let mut e = quinn::Endpoint::client(bind)
            .map_err(|e| LinkError::Connect(format!("cannot open a UDP socket: {e}")))?;
        e.set_default_client_config(config.clone());
        endpoints[slot] = Some(e);
    }
    let endpoint = endpoints[slot]
        .clone()
        .ok_or_else(|| LinkError::Connect("no endpoint".into()))?;
    Ok((endpoint, addr))
}

fn new_backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

async fn step<R: Send + 'static>(
    node: &Node,
    session: Session,
    f: impl FnOnce(&mut Session, &mut NodeHost<'_, '_>) -> Result<R, SyncError> + Send + 'static,
) -> Result<(Session, R), LinkError> {
    let store = node.identity().store.clone();
    let (session, res) = node
        .db()
        .write(
            move |ctx| -> Result<(Session, Result<R, SyncError>), StoreError> {
                let mut session = session;
                let mut host = NodeHost { ctx, store };
                let r = f(&mut session, &mut host);
                Ok((session, r))
            },
        )
        .await?;
    Ok((session, res?))
}

async fn session(
    node: &Node,
    endpoint: &quinn::Endpoint,
    addr: std::net::SocketAddr,
    target: &SyncTarget,
    shutdown: &CancellationToken,
    mut enabled: watch::Receiver<bool>,
) -> Result<(), LinkError> {
    let conn = endpoint
        .connect(addr, client::SERVER_NAME)
        .map_err(|e| LinkError::Connect(e.to_string()))?
        .await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut changes = node.db().subscribe();
    let ident = node.identity().clone();
    let token = target.token.clone();
    let (mut session, hello) = {
        let (node_id, store) = (ident.node_id, ident.store.clone());
        let store2 = store.clone();
        node.db()
            .write(
                move |ctx| -> Result<Result<(Session, Frame), SyncError>, StoreError> {
                    let mut host = NodeHost { ctx, store: store2 };
                    Ok(Session::client(&mut host, node_id, store, token))
                },
            )
            .await??
    };
    wire::write_frame(&mut send, &hello).await?;
    info!(server = %target.server, "sync session started");
    // `read_frame` is not cancel-safe, so a reader task owns the stream and hands whole
    // frames over a one-slot channel (which also gives backpressure).
    let (frames_tx, mut frames) = tokio::sync::mpsc::channel(1);
    let reader = tokio::spawn(async move {
        loop {
            let r = wire::read_frame(&mut recv).await;
            let end = !matches!(r, Ok(Some(_)));
            if frames_tx.send(r).await.is_err() || end {
                break;
            }
        }
    });
    let link = node.link().clone();
    let (base_tx, base_rx) = {
        let s = link.status();
        (s.bytes_sent, s.bytes_received)
    };
    let result = loop {
        let stats = conn.stats();
        link.update(|s| {
            s.bytes_sent = base_tx + stats.udp_tx.bytes;
            s.bytes_received = base_rx + stats.udp_rx.bytes;
        });
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = enabled.changed() => {
                if !*enabled.borrow() { break Err(LinkError::Disabled); }
            }
            frame = frames.recv() => {
                let Some(frame) = frame.transpose()?.flatten() else { break Err(LinkError::Closed) };
                let welcome = matches!(frame, Frame::Welcome { .. });
                let refused = matches!(frame, Frame::Error { .. });
                if !refused {
                    link.update(|s| { s.last_sync_at = Some(Utc::now()); if welcome { s.connected = true; s.last_error = None; } });
                }
                let (s, out) = step(node, session, move |s, h| s.handle(frame, h)).await?;
                session = s;
                for f in out { wire::write_frame(&mut send, &f).await?; }
            }
            changed = changes.recv() => {
                let docs: Vec<DocId> = match changed {
                    Ok(d) => vec![d],
                    // Missed notifications: push every document (cheap when nothing differs).
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let db = node.db().clone();
                        db.read(|c| caja_shared::docstore::list(c).map_err(StoreError::from)).await?
                    }
                    Err(broadcast::error::RecvError::Closed) => break Ok(()),
                };
                for doc in docs {
                    let (s, out) = step(node, session, move |s, h| s.local_change(&doc, h)).await?;
                    session = s;
                    for f in out { wire::write_frame(&mut send, &f).await?; }
                }
            }
        }
    };
    let stats = conn.stats();
    link.update(|s| {
        s.bytes_sent = base_tx + stats.udp_tx.bytes;
        s.bytes_received = base_rx + stats.udp_rx.bytes;
    });
    if let Err(LinkError::Sync(e)) = &result
        && let Some(f) = e.to_frame()
    {
        let _ = wire::write_frame(&mut send, &f).await;
    }
    let _ = send.finish();
    conn.close(0u32.into(), b"bye");
    reader.abort();
    result
}
