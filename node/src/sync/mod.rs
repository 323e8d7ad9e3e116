//! The node's sync client: keeps a QUIC connection to the sync server and runs the sync
//! session over it, reconnecting with exponential backoff and jitter.
//!
//! - [`host`]: the node's [`caja_shared::sync::DocHost`].
//!
//! Every session step runs as one writer job, so received changes are stored and projected
//! atomically, and local sales are never blocked for longer than one step.
//!
//! The node proves who it is with the client certificate from its enrollment (mutual
//! TLS; the file is read again at every connect, so a renewed certificate is used from
//! the next connection on). When a third of the certificate's validity is left, a live
//! session asks for a new one (`Renew` with a CSR for a fresh key) and stores it: no
//! downtime, the old certificate stays valid until it expires.

pub mod host;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use caja_shared::docs::DocId;
use caja_shared::net::{client, wire};
use caja_shared::protocol::Frame;
use caja_shared::sync::{Session, SyncError};
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
    Store(Box<StoreError>),
    #[error("server closed the stream")]
    Closed,
    #[error("link disabled")]
    Disabled,
    #[error("{0}")]
    Identity(String),
}

impl LinkError {
    /// The server's reason when it closed the connection on purpose.
    fn closed_by_peer(&self) -> Option<String> {
        match self {
            LinkError::Connection(c) => wire::closed_by_peer(c),
            LinkError::Wire(w) => w.closed_by_peer(),
            _ => None,
        }
    }
}

impl From<StoreError> for LinkError {
    fn from(e: StoreError) -> Self {
        LinkError::Store(Box::new(e))
    }
}

/// Runs the sync client until `shutdown`: connect, sync, and on any failure wait (backoff
/// 200 ms doubling to 10 s, with jitter) and reconnect.
pub async fn run(node: Node, target: SyncTarget, shutdown: CancellationToken) {
    if let Err(e) = client::parse_fingerprint(&target.ca_fingerprint) {
        warn!(error = %e, "sync disabled: bad CA fingerprint");
        node.link().update(|s| s.last_error = Some(e.to_string()));
        return;
    }
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
        let res = match connect_config(&node, &target) {
            Ok(config) => match endpoint_for(&target.server, &mut endpoints).await {
                Ok((endpoint, addr)) => {
                    session(
                        &node,
                        &endpoint,
                        config,
                        addr,
                        &target,
                        &shutdown,
                        enabled.clone(),
                    )
                    .await
                }
                Err(e) => Err(e),
            },
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
                let why = if let Some(reason) = e.closed_by_peer() {
                    // Head office restarting or shutting down is routine, not a fault.
                    info!(%reason, server = %target.server, "the sync server closed the link; reconnecting");
                    format!("the sync server closed the link: {reason}")
                } else {
                    if matches!(e, LinkError::Connect(_)) {
                        warn!(error = %e, server = %target.server, "could not connect to the sync server");
                    } else {
                        warn!(error = %e, server = %target.server, "sync session ended");
                    }
                    e.to_string()
                };
                link.update(|s| s.last_error = Some(why));
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

/// The QUIC client configuration of this attempt: the pinned CA and the node's current
/// client certificate (read from the data directory every time).
fn connect_config(node: &Node, target: &SyncTarget) -> Result<quinn::ClientConfig, LinkError> {
    let identity = crate::enroll::client_identity(&node.config().data_dir)
        .map_err(|e| LinkError::Identity(e.to_string()))?;
    client::client_config(&target.ca_fingerprint, Some(&identity))
        .map_err(|e| LinkError::Identity(e.to_string()))
}

/// Resolves `host:port` (every attempt, so a changed DNS entry is followed) and returns the
/// client endpoint of that address family, opening it on first use.
async fn endpoint_for(
    server: &str,
    endpoints: &mut [Option<quinn::Endpoint>; 2],
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
        let e = quinn::Endpoint::client(bind)
            .map_err(|e| LinkError::Connect(format!("cannot open a UDP socket: {e}")))?;
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

/// How often a live session checks whether the certificate is due: a tenth of its
/// validity, between 1 s and 60 s.
async fn renewal_check_interval(node: &Node) -> Result<Duration, LinkError> {
    let enrolled = node.db().read(crate::enroll::read).await?;
    let validity = enrolled.map_or(0, |e| (e.cert_not_after - e.cert_issued_at).max(0)) as u64;
    Ok(Duration::from_secs((validity / 10).clamp(1, 60)))
}

/// Whether the client certificate is due for renewal; if so, a fresh key and the `Renew`
/// frame asking for its certificate.
async fn renewal(node: &Node) -> Result<Option<(caja_shared::auth::secrets::Secret, Frame)>, LinkError> {
    let enrolled = node.db().read(crate::enroll::read).await?;
    let Some(e) = enrolled else { return Ok(None) };
    if !crate::enroll::renewal_due(
        e.cert_issued_at,
        e.cert_not_after,
        caja_shared::auth::tokens::now_secs(),
    ) {
        return Ok(None);
    }
    let k =
        client::node_csr().map_err(|e| LinkError::Identity(format!("generating a key for renewal: {e}")))?;
    info!(
        not_after = e.cert_not_after,
        "client certificate due for renewal; asking the server"
    );
    Ok(Some((k.key_pem, Frame::Renew { csr: k.csr_der })))
}

#[allow(clippy::too_many_arguments)]
async fn session(
    node: &Node,
    endpoint: &quinn::Endpoint,
    config: quinn::ClientConfig,
    addr: std::net::SocketAddr,
    target: &SyncTarget,
    shutdown: &CancellationToken,
    mut enabled: watch::Receiver<bool>,
) -> Result<(), LinkError> {
    let conn = endpoint
        .connect_with(config, addr, client::SERVER_NAME)
        .map_err(|e| LinkError::Connect(e.to_string()))?
        .await
        .map_err(|e| match client::refused_before_handshake(&e) {
            Some(why) => LinkError::Connect(format!("{why}; retrying")),
            None => LinkError::Connection(e),
        })?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut changes = node.db().subscribe();
    let ident = node.identity().clone();
    let (mut session, hello) = {
        let (node_id, store) = (ident.node_id, ident.store.clone());
        let store2 = store.clone();
        node.db()
            .write(
                move |ctx| -> Result<Result<(Session, Frame), SyncError>, StoreError> {
                    let mut host = NodeHost { ctx, store: store2 };
                    Ok(Session::client(&mut host, node_id, store))
                },
            )
            .await??
    };
    // The key of a renewal asked for in this session, until its certificate arrives.
    let mut renewing: Option<caja_shared::auth::secrets::Secret> = None;
    let mut renew_tick = tokio::time::interval(renewal_check_interval(node).await?);
    renew_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                if let Frame::Renewed { certificate, not_after } = frame {
                    match renewing.take() {
                        Some(key) => {
                            crate::enroll::save_renewal(node.db(), &node.config().data_dir, &certificate, &key, not_after)
                                .await
                                .map_err(|e| LinkError::Identity(format!("storing the renewed certificate: {e}")))?;
                            info!(not_after, "client certificate renewed; the next connection uses it");
                        }
                        None => warn!("the server sent a certificate this session did not ask for; ignored"),
                    }
                    continue;
                }
                let welcome = matches!(frame, Frame::Welcome { .. });
                let refused = matches!(frame, Frame::Error { .. });
                if !refused {
                    link.update(|s| { s.last_sync_at = Some(Utc::now()); if welcome { s.connected = true; s.last_error = None; } });
                }
                let (s, out) = step(node, session, move |s, h| s.handle(frame, h)).await?;
                session = s;
                for f in out { wire::write_frame(&mut send, &f).await?; }
            }
            // A session may outlive the certificate it started with: check as it goes.
            _ = renew_tick.tick(), if session.is_live() && renewing.is_none() => {
                if let Some((key, frame)) = renewal(node).await? {
                    wire::write_frame(&mut send, &frame).await?;
                    renewing = Some(key);
                }
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
