//! The end-to-end harness: a real sync server and real nodes on loopback, typed HTTP
//! helpers for the node API, and a poller with explicit timeouts.
//!
//! - [`TestDir`]: a temporary directory kept when `KEEP_TEST_DIRS` is set.
//! - [`TestServer`]: a [`SyncServer`] serving QUIC and its admin API, which can be stopped
//!   and started again on the same UDP port and data directory (a server restart, as the
//!   nodes see it).
//! - [`TestNode`]: a [`Node`] serving its REST API on `127.0.0.1:0`, with an [`Api`].
//! - [`Api`]: typed calls to a node's REST API. The response types here are the test's
//!   own (only the fields the tests read), not the product's, so a change of the wire
//!   shape shows up as a failure.
//! - [`wait_until`]: polls a condition until it holds or a timeout passes.
//!
//! Nothing here sleeps for correctness: every wait is a poll of a real outcome with a
//! timeout that names what it was waiting for.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use caja_node::auth::local::LocalUser;
use caja_node::enroll::{self, EnrollOptions};
use caja_node::{Node, NodeConfig, SyncTarget};
use caja_shared::auth::secrets::Secret;
use caja_shared::money::Currency;
use caja_sync_server::{NewUser, ServerError, SyncServer};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long one HTTP request to a node may take before the test fails.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server or node may take to stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to keep trying to bind a UDP port that a stopped server has just released.
pub const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

/// Interval between two checks of [`wait_until`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A directory for one test's files: removed when dropped, unless the environment
/// variable `KEEP_TEST_DIRS` is set, in which case it is kept and its path printed.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl TestDir {
    /// Creates `caja-e2e-<name>-XXXX` in the system temporary directory.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new(name: &str) -> anyhow::Result<TestDir> {
        let temp = tempfile::Builder::new()
            .prefix(&format!("caja-e2e-{name}-"))
            .tempdir()
            .context("creating a temporary directory")?;
        if std::env::var_os("KEEP_TEST_DIRS").is_some() {
            let path = temp.keep();
            eprintln!("KEEP_TEST_DIRS: keeping {}", path.display());
            Ok(TestDir { path, _temp: None })
        } else {
            Ok(TestDir {
                path: temp.path().to_path_buf(),
                _temp: Some(temp),
            })
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

/// A sync server on loopback that can be stopped and started again on the same QUIC
/// (UDP) address and data directory. The admin HTTP API gets a fresh port at each start.
pub struct TestServer {
    server: Option<SyncServer>,
    dir: PathBuf,
    currency: Currency,
    options: caja_sync_server::ServerOptions,
    quic: SocketAddr,
    http: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    /// Opens a server in `dir` (created if needed) and serves QUIC on `127.0.0.1:0` and
    /// the admin API on another ephemeral port.
    ///
    /// # Errors
    /// When the server cannot be opened or a port bound.
    pub async fn start(dir: &Path, currency: Currency) -> anyhow::Result<TestServer> {
        Self::start_with(dir, currency, caja_sync_server::ServerOptions::default()).await
    }

    /// [`TestServer::start`] with explicit server options (e.g. short-lived node
    /// certificates).
    ///
    /// # Errors
    /// As [`TestServer::start`].
    pub async fn start_with(
        dir: &Path,
        currency: Currency,
        options: caja_sync_server::ServerOptions,
    ) -> anyhow::Result<TestServer> {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").context("binding the QUIC socket")?;
        let quic = udp.local_addr()?;
        let mut s = TestServer {
            server: None,
            dir: dir.to_path_buf(),
            currency,
            options,
            quic,
            http: quic,
            stop: CancellationToken::new(),
            task: None,
        };
        s.launch(udp).await?;
        Ok(s)
    }

    async fn launch(&mut self, udp: std::net::UdpSocket) -> anyhow::Result<()> {
        let server = SyncServer::open_with(&self.dir, self.currency, self.options.clone())
            .context("opening the sync server")?;
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the admin API")?;
        self.http = http.local_addr()?;
        self.stop = CancellationToken::new();
        let (s, stop) = (server.clone(), self.stop.clone());
        self.task = Some(tokio::spawn(async move { s.serve(udp, http, stop).await }));
        self.server = Some(server);
        Ok(())
    }

    /// The running server.
    ///
    /// # Panics
    /// When the server is stopped (between [`TestServer::stop`] and
    /// [`TestServer::restart`]): a test bug.
    pub fn server(&self) -> &SyncServer {
        self.server
            .as_ref()
            .expect("the test server is stopped; restart it first")
    }

    /// The QUIC address nodes connect to; it stays the same across restarts.
    pub fn quic_addr(&self) -> SocketAddr {
        self.quic
    }

    /// Base URL of the admin API of the current run, e.g. `http://127.0.0.1:40123`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
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

    /// Stops serving (connections are closed, the QUIC port is released) and closes the
    /// database. Does nothing when already stopped.
    ///
    /// # Errors
    /// When the server does not stop within [`STOP_TIMEOUT`] or stopped with an error.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(STOP_TIMEOUT, task)
                .await
                .context("the sync server did not stop in time")?
                .context("the sync server task panicked")?
                .context("the sync server failed")?;
        }
        self.server = None;
        Ok(())
    }

    /// Stops the server (if running) and starts it again on the same data directory and
    /// QUIC address, retrying the bind for up to [`REBIND_TIMEOUT`] while the port is
    /// still held.
    ///
    /// # Errors
    /// When the server does not stop, the port cannot be bound again, or the server
    /// cannot be reopened.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let start = Instant::now();
        let udp = loop {
            match std::net::UdpSocket::bind(self.quic) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < REBIND_TIMEOUT => {
                    eprintln!("rebinding {} failed ({e}); retrying", self.quic);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("rebinding {} after a restart", self.quic));
                }
            }
        };
        self.launch(udp).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The password of every e2e test user with a password.
pub const PASSWORD: &str = "e2e test password 1";

/// The PIN of the e2e test user of a role (8 digits, so it cannot appear by chance in a
/// log line): admin 10293847, manager 56473829, cashier 91827364.
pub fn pin_of(role: &str) -> &'static str {
    match role {
        "admin" => "10293847",
        "manager" => "56473829",
        _ => "91827364",
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

/// A node serving its REST API on an ephemeral loopback port.
pub struct TestNode {
    /// The node (library handle).
    pub node: Node,
    /// Typed client of its REST API.
    pub api: Api,
    stop: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestNode {
    /// Opens a node for `store` in `dir` and serves it. With a `ticket` it enrolls with
    /// the ticket's server (first start only), replicates with it, waits until its staff
    /// have arrived and logs [`Api`] in as the store's admin; without, it runs standalone
    /// with a local `admin-<store>` user, logged in the same way.
    ///
    /// # Errors
    /// When the node cannot be opened, enrolled, reached or logged in.
    pub async fn start(
        dir: &Path,
        store: &str,
        currency: Currency,
        ticket: Option<Ticket>,
    ) -> anyhow::Result<TestNode> {
        if let Some(t) = &ticket
            && enroll::read_dir(dir)?.is_none()
        {
            enroll::enroll(&EnrollOptions {
                data_dir: dir.to_path_buf(),
                server: t.target.server.clone(),
                ca_fingerprint: t.target.ca_fingerprint.clone(),
                code: t.code.clone(),
                lan_names: Vec::new(),
                currency,
            })
            .await
            .with_context(|| format!("enrolling node {store}"))?;
        }
        let mut config = NodeConfig {
            data_dir: dir.to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: store.parse().context("store code")?,
            currency,
            sync: ticket.as_ref().map(|t| t.target.clone()),
            ..NodeConfig::default()
        };
        // The tests drive a node hard from one address.
        config.limits.requests_per_second = 100_000;
        config.limits.logins_per_minute = 10_000;
        config.validate()?;
        let node = Node::open(config)
            .await
            .with_context(|| format!("opening node {store}"))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the node API")?;
        let api = Api::new(&format!("http://{}", listener.local_addr()?))?;
        let stop = CancellationToken::new();
        let (n, s) = (node.clone(), stop.clone());
        let task = tokio::spawn(async move { n.serve(listener, s).await });
        let staff = Staff::of(store);
        match &ticket {
            Some(_) => caja_demo::chain::wait_for_staff(&node, &staff.admin, Duration::from_secs(60)).await?,
            None => {
                if caja_demo::chain::wait_for_staff(&node, &staff.admin, Duration::ZERO)
                    .await
                    .is_err()
                {
                    node.add_local_user(LocalUser {
                        username: staff.admin.clone(),
                        display_name: None,
                        password: Some(Secret::new(PASSWORD)),
                        pin: Some(Secret::new(pin_of("admin"))),
                        roles: vec!["admin".into()],
                    })
                    .await?;
                }
            }
        }
        api.login_password(&staff.admin, PASSWORD).await?;
        Ok(TestNode {
            node,
            api,
            stop,
            task: Some(task),
        })
    }

    /// Stops the node and waits for its HTTP server and sync client.
    ///
    /// # Errors
    /// When it does not stop within [`STOP_TIMEOUT`] or stopped with an error.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(STOP_TIMEOUT, task)
                .await
                .context("the node did not stop in time")?
                .context("the node task panicked")?
                .context("the node failed")?;
        }
        Ok(())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A sale or refund as `POST /v1/sales`, `POST /v1/refunds` and `GET /v1/sales/{id}`
/// return it (the fields the tests read).
#[derive(Debug, Clone, Deserialize)]
pub struct SaleView {
    /// Fact id.
    pub id: String,
    /// `sale` or `refund`.
    pub kind: String,
    /// Receipt number.
    pub receipt_no: String,
    /// Business day.
    pub business_date: NaiveDate,
    /// For a refund with receipt, the sale refunded.
    #[serde(default)]
    pub original_sale: Option<String>,
    /// The priced lines.
    pub lines: Vec<LineView>,
    /// The tenders.
    pub tenders: Vec<TenderView>,
    /// Total, tax included (negative for a refund), major units.
    pub total: Decimal,
    /// Cash change given back.
    pub change: Decimal,
}

/// One line of a [`SaleView`].
#[derive(Debug, Clone, Deserialize)]
pub struct LineView {
    /// SKU.
    pub sku: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit price, tax exclusive, as charged.
    pub unit_price: Decimal,
    /// Line total, tax included.
    pub total: Decimal,
}

/// One tender of a [`SaleView`].
#[derive(Debug, Clone, Deserialize)]
pub struct TenderView {
    /// `cash`, `card` or `other`.
    pub kind: String,
    /// Label, if any.
    #[serde(default)]
    pub label: Option<String>,
    /// Amount tendered.
    pub amount: Decimal,
}

/// `GET /v1/reports/daily` (the fields the tests read).
#[derive(Debug, Clone, Deserialize)]
pub struct DailyReport {
    /// Number of sales.
    pub sales: u64,
    /// Number of refunds.
    pub refunds: u64,
    /// Sum of sale totals.
    pub gross: Decimal,
    /// Sum of refund totals (zero or negative).
    pub refunded: Decimal,
    /// `gross + refunded`.
    pub net: Decimal,
}

/// `GET /v1/sync/status` (the fields the tests read).
#[derive(Debug, Clone, Deserialize)]
pub struct SyncStatus {
    /// Whether the link is switched on.
    pub enabled: bool,
    /// Whether a session with the server is live.
    pub connected: bool,
    /// Why the last session ended or could not start.
    pub last_error: Option<String>,
    /// Facts not yet acknowledged by the server.
    pub pending_facts: u64,
    /// Sorted hex heads of the node's catalog.
    pub catalog_heads: Vec<String>,
    /// Products in the node's catalog.
    pub catalog_products: u64,
}

/// `GET /v1/products/{sku}` (the fields the tests read).
#[derive(Debug, Clone, Deserialize)]
pub struct ProductView {
    /// SKU.
    pub sku: String,
    /// Unit price, tax exclusive.
    pub unit_price: Decimal,
    /// Tax rate as a fraction.
    pub tax_rate: Decimal,
}

/// A typed client of one node's REST API; every request times out after
/// [`HTTP_TIMEOUT`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Api {
    /// A client for the node at `base` (`http://host:port`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str) -> anyhow::Result<Api> {
        caja_node::install_crypto();
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: Default::default(),
        })
    }

    /// Another client of the same node, not logged in (for a second user).
    pub fn fresh(&self) -> Api {
        Api {
            client: self.client.clone(),
            base: self.base.clone(),
            token: Default::default(),
        }
    }

    /// The access token of the current login, if any.
    pub fn token(&self) -> Option<String> {
        self.token.lock().ok().and_then(|t| t.clone())
    }

    async fn login(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let v: Value = ok_json(res).await?;
        let t = v["access_token"].as_str().context("no access_token")?.to_string();
        if let Ok(mut slot) = self.token.lock() {
            *slot = Some(t);
        }
        Ok(v)
    }

    /// `POST /v1/auth/login`; this client then sends the token. Returns the answer.
    ///
    /// # Errors
    /// When the login is refused.
    pub async fn login_password(&self, username: &str, password: &str) -> anyhow::Result<Value> {
        self.login(
            "/v1/auth/login",
            serde_json::json!({"username": username, "password": password}),
        )
        .await
    }

    /// `POST /v1/auth/pin` at `terminal`; this client then sends the token.
    ///
    /// # Errors
    /// When the login is refused.
    pub async fn login_pin(&self, terminal: &str, username: &str, pin: &str) -> anyhow::Result<Value> {
        self.login(
            "/v1/auth/pin",
            serde_json::json!({"terminal": terminal, "username": username, "pin": pin}),
        )
        .await
    }

    /// A request with this client's token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match self.token() {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The node's `host:port` (the base URL without its scheme), for raw connections.
    pub fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// `POST /v1/sales` with an optional `Idempotency-Key`; the raw response.
    ///
    /// # Errors
    /// When the node cannot be reached.
    pub async fn post_sale_raw(&self, body: &Value, key: Option<&str>) -> anyhow::Result<reqwest::Response> {
        self.post("/v1/sales", body, key).await
    }

    /// `POST /v1/sales`, expecting `201 Created`; the created sale.
    ///
    /// # Errors
    /// When the node cannot be reached or answers anything but 201 (with its body).
    pub async fn post_sale(&self, body: &Value, key: Option<&str>) -> anyhow::Result<SaleView> {
        created(self.post("/v1/sales", body, key).await?).await
    }

    /// `POST /v1/refunds`, expecting `201 Created`; the created refund.
    ///
    /// # Errors
    /// When the node cannot be reached or answers anything but 201 (with its body).
    pub async fn post_refund(&self, body: &Value, key: Option<&str>) -> anyhow::Result<SaleView> {
        created(self.post("/v1/refunds", body, key).await?).await
    }

    /// `GET /v1/sales/{id}`.
    ///
    /// # Errors
    /// When the request fails or the answer is not 200.
    pub async fn sale(&self, id: &str) -> anyhow::Result<SaleView> {
        self.get(&format!("/v1/sales/{id}")).await
    }

    /// `GET /v1/reports/daily?date=`; `None` is today (UTC).
    ///
    /// # Errors
    /// When the request fails or the answer is not 200.
    pub async fn daily_report(&self, date: Option<NaiveDate>) -> anyhow::Result<DailyReport> {
        match date {
            Some(d) => self.get(&format!("/v1/reports/daily?date={d}")).await,
            None => self.get("/v1/reports/daily").await,
        }
    }

    /// `GET /v1/sync/status`.
    ///
    /// # Errors
    /// When the request fails or the answer is not 200.
    pub async fn sync_status(&self) -> anyhow::Result<SyncStatus> {
        self.get("/v1/sync/status").await
    }

    /// `PUT /v1/sync/link`: switches the link to the server on or off.
    ///
    /// # Errors
    /// When the request fails or the answer is not 200.
    pub async fn set_link(&self, enabled: bool) -> anyhow::Result<SyncStatus> {
        let res = self
            .request(reqwest::Method::PUT, "/v1/sync/link")
            .json(&serde_json::json!({ "enabled": enabled }))
            .send()
            .await
            .context("PUT /v1/sync/link")?;
        ok_json(res).await
    }

    /// `GET /v1/products/{sku}`.
    ///
    /// # Errors
    /// When the request fails or the answer is not 200.
    pub async fn product(&self, sku: &str) -> anyhow::Result<ProductView> {
        self.get(&format!("/v1/products/{sku}")).await
    }

    async fn post(&self, path: &str, body: &Value, key: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let mut req = self.request(reqwest::Method::POST, path).json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.with_context(|| format!("POST {path}"))
    }

    /// `GET path` expecting success, decoded.
    ///
    /// # Errors
    /// When the request fails or the answer is not 2xx.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let res = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        ok_json(res).await
    }
}

async fn created(res: reqwest::Response) -> anyhow::Result<SaleView> {
    let status = res.status();
    let text = res.text().await.context("reading the response")?;
    if status != reqwest::StatusCode::CREATED {
        bail!("expected 201 Created, got {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("decoding {text}"))
}

async fn ok_json<T: DeserializeOwned>(res: reqwest::Response) -> anyhow::Result<T> {
    let (status, url) = (res.status(), res.url().clone());
    let text = res.text().await.context("reading the response")?;
    if !status.is_success() {
        bail!("{url}: {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("decoding {url}: {text}"))
}

/// Polls `check` every [`POLL_INTERVAL`] until it returns `Ok(true)`. An `Err` counts as
/// "not yet" (a server restarting, say) and is reported if the time runs out. Each check
/// is itself cut off at the deadline.
///
/// # Errors
/// After `timeout`, naming `what` and the last error.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(true)) => return Ok(start.elapsed()),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            match last_error {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
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

/// The path of a file in `shared/data` (read-only real data next to the repository).
pub fn data_file(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")).join(name)
}
