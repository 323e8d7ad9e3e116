//! Head office on loopback: [`spawn_hq`] opens a [`SyncServer`] in a data directory and
//! serves QUIC on `127.0.0.1:0` and its admin API on another ephemeral port. The
//! [`TestHq`] handle stops it and starts it again on the same QUIC address and data
//! directory (a server restart, as the nodes see it), registers stores with their staff
//! and enrollment [`Ticket`]s, and reads the stored store documents back.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use automerge::Automerge;
use caja_node::SyncTarget;
use caja_shared::auth::secrets::Secret;
use caja_shared::docs::DocId;
use caja_shared::docs::store::StaffUser;
use caja_shared::money::Currency;
use caja_sync_server::{NewUser, ServerError, ServerOptions, SyncServer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Api, PASSWORD, STOP_TIMEOUT, TestDir, pin_of, wait_until};

/// How long to keep trying to bind a UDP port that a stopped server has just released.
pub const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

/// How head office is started by [`spawn_hq_with`].
#[derive(Debug, Clone)]
pub struct HqOptions {
    /// The data directory (created if needed); `None`: a fresh [`TestDir`] that the
    /// [`TestHq`] owns.
    pub dir: Option<PathBuf>,
    /// The chain currency (default GBP).
    pub currency: Currency,
    /// The server's options (default [`ServerOptions::default`]).
    pub server: ServerOptions,
}

impl Default for HqOptions {
    fn default() -> HqOptions {
        HqOptions {
            dir: None,
            currency: Currency::GBP,
            server: ServerOptions::default(),
        }
    }
}

impl HqOptions {
    /// The defaults, in `dir`.
    pub fn in_dir(dir: &Path) -> HqOptions {
        HqOptions {
            dir: Some(dir.to_path_buf()),
            ..HqOptions::default()
        }
    }
}

/// Starts head office in a fresh temporary directory, in GBP, with default options.
///
/// # Panics
/// As [`spawn_hq_with`].
pub async fn spawn_hq() -> TestHq {
    spawn_hq_with(HqOptions::default()).await
}

/// Starts head office in `dir` (which the caller keeps), in GBP, with default options.
///
/// # Panics
/// As [`spawn_hq_with`].
pub async fn spawn_hq_in(dir: &Path) -> TestHq {
    spawn_hq_with(HqOptions::in_dir(dir)).await
}

/// Starts head office as `options` say and serves QUIC on `127.0.0.1:0` and the admin API
/// on another ephemeral port.
///
/// # Panics
/// When the directory cannot be created, the server opened or a port bound.
pub async fn spawn_hq_with(options: HqOptions) -> TestHq {
    let (owned, dir) = match options.dir {
        Some(dir) => (None, dir),
        None => {
            let d = TestDir::new("hq").expect("a temporary directory for head office");
            let path = d.path().to_path_buf();
            (Some(d), path)
        }
    };
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("binding the QUIC socket");
    let quic = udp.local_addr().expect("the QUIC socket's address");
    let mut hq = TestHq {
        server: HqServer(None),
        quic,
        http: quic,
        dir,
        _owned: owned,
        currency: options.currency,
        options: options.server,
        stop: CancellationToken::new(),
        task: None,
    };
    hq.launch(udp).await;
    hq
}

/// The head office a [`TestHq`] is running: derefs to its [`SyncServer`].
///
/// # Panics
/// Dereferencing it while the server is stopped (between [`TestHq::stop`] and
/// [`TestHq::restart`]) panics: a test bug.
#[derive(Debug)]
pub struct HqServer(Option<SyncServer>);

impl Deref for HqServer {
    type Target = SyncServer;

    fn deref(&self) -> &SyncServer {
        self.0.as_ref().expect("head office is stopped; restart it first")
    }
}

/// Head office on loopback that can be stopped and started again on the same QUIC (UDP)
/// address and data directory. The admin HTTP API gets a fresh port at each start.
/// Dropping it cancels the server.
pub struct TestHq {
    /// The running server (`hq.server.create_store(..)`, `hq.server.clone()`).
    pub server: HqServer,
    /// The QUIC address nodes connect to; it stays the same across restarts.
    pub quic: SocketAddr,
    /// The admin API's address in the current run.
    pub http: SocketAddr,
    dir: PathBuf,
    _owned: Option<TestDir>,
    currency: Currency,
    options: ServerOptions,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestHq {
    async fn launch(&mut self, udp: std::net::UdpSocket) {
        let server = SyncServer::open_with(&self.dir, self.currency, self.options.clone())
            .expect("opening head office");
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the admin API");
        self.http = http.local_addr().expect("the admin API's address");
        self.stop = CancellationToken::new();
        let (s, stop) = (server.clone(), self.stop.clone());
        self.task = Some(tokio::spawn(async move { s.serve(udp, http, stop).await }));
        self.server = HqServer(Some(server));
    }

    /// The running server (the same as `&*self.server`).
    ///
    /// # Panics
    /// When the server is stopped: a test bug.
    pub fn server(&self) -> &SyncServer {
        &self.server
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Base URL of the admin API of the current run, e.g. `http://127.0.0.1:40123`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Lowercase hex SHA-256 of the chain CA: what a node pins.
    ///
    /// # Panics
    /// When the server is stopped: a test bug.
    pub fn ca_fingerprint(&self) -> String {
        self.server.ca_fingerprint()
    }

    /// Registers a store as head office does: the store, its staff ([`Staff::of`]: an
    /// admin, a manager and a cashier allowed only there) and a one-time enrollment code
    /// (valid an hour). Returns what its node needs to enroll.
    ///
    /// # Errors
    /// When the code is taken or invalid, or a user cannot be created.
    pub async fn create_store(&self, code: &str, name: &str) -> anyhow::Result<Ticket> {
        let store: caja_shared::ids::StoreCode = code.parse().context("store code")?;
        let s = self.server();
        s.create_store(&caja_sync_server::Actor::local(), store.clone(), name)
            .await
            .with_context(|| format!("creating store {code}"))?;
        let staff = Staff::of(code);
        for (user, role, password) in [
            (&staff.admin, "admin", true),
            (&staff.manager, "manager", true),
            (&staff.cashier, "cashier", false),
        ] {
            s.create_user(
                &caja_sync_server::Actor::local(),
                NewUser {
                    username: user.clone(),
                    display_name: format!("{role} of {name}"),
                    password: password.then(|| Secret::new(PASSWORD)),
                    pin: Some(Secret::new(pin_of(role))),
                    roles: vec![role.into()],
                    stores: vec![store.clone()],
                },
            )
            .await
            .with_context(|| format!("creating {user}"))?;
        }
        let enrollment = s
            .enrollment_code(
                &caja_sync_server::Actor::local(),
                &store,
                Duration::from_secs(3600),
            )
            .await
            .with_context(|| format!("issuing an enrollment code for {code}"))?;
        Ok(Ticket {
            target: SyncTarget {
                server: self.quic.to_string(),
                ca_fingerprint: s.ca_fingerprint(),
            },
            code: enrollment.code,
            staff,
        })
    }

    /// Stops serving (connections are closed, the QUIC port is released), waits for
    /// `serve` to return and closes the database. Does nothing when already stopped.
    ///
    /// # Panics
    /// When the server does not stop within [`STOP_TIMEOUT`] or stopped with an error.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(STOP_TIMEOUT, task)
                .await
                .expect("head office stops in time")
                .expect("head office's task does not panic")
                .expect("head office stops without an error");
        }
        self.server = HqServer(None);
    }

    /// Stops the server (if running) and starts it again on the same data directory and
    /// QUIC address, retrying the bind for up to [`REBIND_TIMEOUT`] while the port is
    /// still held.
    ///
    /// # Panics
    /// When the server does not stop, the port cannot be bound again, or the server
    /// cannot be reopened.
    pub async fn restart(&mut self) {
        self.stop().await;
        let start = Instant::now();
        let udp = loop {
            match std::net::UdpSocket::bind(self.quic) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < REBIND_TIMEOUT => {
                    eprintln!("rebinding {} failed ({e}); retrying", self.quic);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebinding {} after a restart: {e}", self.quic),
            }
        };
        self.launch(udp).await;
    }
}

impl Drop for TestHq {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The usernames of a store's test staff.
#[derive(Debug, Clone)]
pub struct Staff {
    /// `admin-<store>` (role admin; password and PIN).
    pub admin: String,
    /// `mgr-<store>` (role manager; password and PIN).
    pub manager: String,
    /// `cashier-<store>` (role cashier; PIN only).
    pub cashier: String,
}

impl Staff {
    /// The usernames for store `code`.
    pub fn of(code: &str) -> Staff {
        Staff {
            admin: format!("admin-{code}"),
            manager: format!("mgr-{code}"),
            cashier: format!("cashier-{code}"),
        }
    }
}

/// What a node needs to join the chain: where the server is, the pinned CA, a one-time
/// enrollment code, and who its staff are.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The server and CA fingerprint.
    pub target: SyncTarget,
    /// The enrollment code.
    pub code: Secret,
    /// The store's staff.
    pub staff: Staff,
}

/// Waits until the node has the server's catalog (same heads) and reports `products`
/// products.
///
/// # Errors
/// After `timeout`.
pub async fn wait_catalog(
    server: &SyncServer,
    api: &Api,
    products: u64,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    wait_until(
        &format!("{} to have the catalog", api.base()),
        timeout,
        || async {
            let want = server.catalog_heads().await?;
            let st = api.sync_status().await?;
            Ok(st.catalog_heads == want && st.catalog_products == products)
        },
    )
    .await
}

/// Waits until none of the nodes has facts waiting and the server holds at least
/// `facts` facts.
///
/// # Errors
/// After `timeout`, with what was still missing when it ran out.
pub async fn wait_synced(
    server: &SyncServer,
    nodes: &[&Api],
    facts: u64,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    wait_until(
        &format!(
            "{} nodes to have no pending facts and the server {facts} facts",
            nodes.len()
        ),
        timeout,
        || async {
            let mut pending = 0;
            for n in nodes {
                pending += n.sync_status().await?.pending_facts;
            }
            let at_server = server.fact_count().await?;
            if pending == 0 && at_server >= facts {
                Ok(true)
            } else {
                Err(anyhow::anyhow!(
                    "{pending} facts pending at nodes; server has {at_server} of {facts}"
                ))
            }
        },
    )
    .await
}

/// The stored `store/<store>` document of head office's data dir `dir`, read from its
/// database file (`None` when there is none).
///
/// # Panics
/// When the database cannot be read or `store` is not a store code.
pub fn stored_store_doc(dir: &Path, store: &str) -> Option<Automerge> {
    let conn =
        rusqlite::Connection::open(dir.join(caja_sync_server::db::DB_FILE)).expect("open the database");
    caja_shared::docstore::load(
        &conn,
        &DocId::Store {
            store: store.parse().expect("a store code"),
        },
    )
    .expect("load the store document")
}

/// The users of a stored store document ([`stored_store_doc`]), by username.
///
/// # Panics
/// As [`stored_store_doc`], and when a user does not decode.
pub fn staff(dir: &Path, store: &str) -> Vec<StaffUser> {
    let Some(doc) = stored_store_doc(dir, store) else {
        return vec![];
    };
    let mut v: Vec<_> = caja_shared::docs::store::users(&doc)
        .expect("the users of the store document")
        .into_iter()
        .map(|u| u.expect("a user that decodes"))
        .collect();
    v.sort_by(|a, b| a.username.cmp(&b.username));
    v
}
