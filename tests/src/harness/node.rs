//! Nodes on loopback. [`spawn_node`] opens a standalone node in a fresh [`TestDir`] with
//! an `admin` user and serves it on `127.0.0.1:0`, logged in as that admin;
//! [`TestNode::start`] opens the node of a store, enrolled with head office through a
//! [`Ticket`] (first start only) or standalone. Either way the [`TestNode`] carries a typed
//! [`Api`] and a raw client (`get`, `post`, ... returning [`Reply`]s), both sending the
//! same bearer token unless a test changes it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use caja_node::auth::local::LocalUser;
use caja_node::enroll::{self, EnrollOptions};
use caja_node::{Node, NodeConfig};
use caja_shared::auth::secrets::Secret;
use caja_shared::money::Currency;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::api::{Client, send};
use super::{Api, HTTP_TIMEOUT, PASSWORD, Reply, STOP_TIMEOUT, Staff, TestDir, Ticket, pin_of, wait_until};

/// How long an enrolled node may take to receive its store's staff from head office.
pub const STAFF_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens a standalone node in a fresh temporary directory, serves it on `127.0.0.1:0`,
/// adds an `admin` user and logs in as that user.
///
/// # Panics
/// As [`spawn_node_with`].
pub async fn spawn_node() -> TestNode {
    spawn_node_with(|_| {}).await
}

/// [`spawn_node`] with settings changed by `tune` (rate limits, lockouts, TLS). The
/// request and login rate limits start high: tests drive one node hard from one address,
/// and the rate-limit tests set their own.
///
/// # Panics
/// When the directory cannot be created, the settings are invalid, or the node cannot be
/// opened, served or logged in to.
pub async fn spawn_node_with(tune: impl FnOnce(&mut NodeConfig)) -> TestNode {
    caja_node::install_crypto();
    let dir = TestDir::new("node").expect("a temporary directory for the node");
    let mut config = NodeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sync: None,
        ..NodeConfig::default()
    };
    config.limits.requests_per_second = 100_000;
    config.limits.logins_per_minute = 10_000;
    tune(&mut config);
    config.validate().expect("valid node settings");
    let node = Node::open(config).await.expect("open the node");
    let mut t = TestNode::serve(node, dir).await.expect("serve the node");
    t.add_user("admin", &["admin"]).await;
    t.api
        .login_password("admin", PASSWORD)
        .await
        .expect("admin logs in");
    t.bearer = t.api.token();
    t
}

/// Waits until `username` is staff at `node` (its store document has replicated).
///
/// # Errors
/// After `timeout`.
pub async fn wait_for_staff(node: &Node, username: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_until(
        &format!("{username} to reach the node of {}", node.identity().store),
        timeout,
        || is_staff(node, username),
    )
    .await
    .map(|_| ())
}

/// Whether `username` is staff at `node` now.
// The closure returns the node's own `StoreError`, whose size is not the harness's choice.
#[allow(clippy::result_large_err)]
async fn is_staff(node: &Node, username: &str) -> anyhow::Result<bool> {
    let u = username.to_string();
    let found = node
        .db()
        .read(move |c| caja_node::auth::staff::by_username(c, &u))
        .await?;
    Ok(found.is_some())
}

/// A node serving its REST API on an ephemeral loopback port. Dropping it cancels the
/// server.
pub struct TestNode {
    /// The library handle.
    pub node: Node,
    /// Typed client of its REST API.
    pub api: Api,
    /// `http://127.0.0.1:<port>` (`https://` when LAN TLS is on).
    pub url: String,
    /// The bearer token the raw client (`get`, `post`, ...) sends (`None`:
    /// unauthenticated requests).
    pub bearer: Option<String>,
    /// The HTTP client (it pins the node's LAN certificate when TLS is on).
    pub client: reqwest::Client,
    /// The data directory.
    pub dir: TestDir,
    stop: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestNode {
    /// Opens a node for `store` in `dir` and serves it. With a `ticket` it enrolls with
    /// the ticket's server (first start only), replicates with it, waits until its staff
    /// have arrived and logs in as the store's admin; without, it runs standalone with a
    /// local `admin-<store>` user, logged in the same way.
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
                currency: Some(currency),
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
        let mut t = TestNode::serve(node, TestDir::borrowed(dir)).await?;
        let staff = Staff::of(store);
        match &ticket {
            Some(_) => wait_for_staff(&t.node, &staff.admin, STAFF_TIMEOUT).await?,
            None => {
                if !is_staff(&t.node, &staff.admin).await? {
                    t.node
                        .add_local_user(LocalUser {
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
        t.api.login_password(&staff.admin, PASSWORD).await?;
        t.bearer = t.api.token();
        Ok(t)
    }

    /// Serves `node` on a fresh loopback port; not logged in.
    async fn serve(node: Node, dir: TestDir) -> anyhow::Result<TestNode> {
        caja_node::install_crypto();
        let tls = node.config().lan_tls.enabled;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the node API")?;
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr()?);
        let mut builder = reqwest::Client::builder().timeout(HTTP_TIMEOUT);
        if tls {
            let fp = node.lan_identity().context("LAN certificate")?.fingerprint();
            builder = builder.use_preconfigured_tls(caja_node::http::tls::client_config(&fp).context("pin")?);
        }
        let client = builder.build().context("building the HTTP client")?;
        let stop = CancellationToken::new();
        let (n, s) = (node.clone(), stop.clone());
        let task = tokio::spawn(async move { n.serve(listener, s).await });
        Ok(TestNode {
            api: Api::with_client(client.clone(), &url),
            node,
            url,
            bearer: None,
            client,
            dir,
            stop,
            task: Some(task),
        })
    }

    /// Stops the HTTP server and sync client and waits for them.
    async fn halt(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(STOP_TIMEOUT, task)
                .await
                .expect("the node stops in time")
                .expect("the node's task does not panic")
                .expect("the node stops without an error");
        }
    }

    /// Stops the node and waits for its HTTP server and sync client.
    ///
    /// # Panics
    /// When it does not stop within [`STOP_TIMEOUT`] or stopped with an error.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    /// Stops the node, opens its data directory again with the same settings and serves
    /// it on a new port. Both clients keep their tokens (the signing key is in the data
    /// directory, so they stay valid).
    ///
    /// # Panics
    /// When the node does not stop or cannot be opened or served again.
    pub async fn restart(mut self) -> TestNode {
        self.halt().await;
        let config = self.node.config().clone();
        let (bearer, token) = (self.bearer.clone(), self.api.token());
        let dir = std::mem::replace(&mut self.dir, TestDir::borrowed(Path::new("")));
        // The old handle must be gone before the data directory is opened again.
        drop(self);
        let node = Node::open(config).await.expect("reopen the node");
        let mut t = TestNode::serve(node, dir).await.expect("serve the node again");
        t.bearer = bearer;
        t.api.set_token(token);
        t
    }

    /// Creates a user named `name` with `roles`, [`PASSWORD`] and the PIN of its first
    /// role ([`pin_of`]); returns its id.
    ///
    /// # Panics
    /// When the user cannot be created.
    pub async fn add_user(&self, name: &str, roles: &[&str]) -> String {
        self.node
            .add_local_user(LocalUser {
                username: name.into(),
                display_name: None,
                password: Some(Secret::new(PASSWORD)),
                pin: Some(Secret::new(pin_of(roles[0]))),
                roles: roles.iter().map(|r| r.to_string()).collect(),
            })
            .await
            .expect("add user")
            .id
    }

    /// Logs `name` in with [`PASSWORD`]; returns the access token.
    ///
    /// # Panics
    /// When the login is refused.
    pub async fn login(&self, name: &str) -> String {
        let r = self
            .send(
                self.client
                    .post(format!("{}/v1/auth/login", self.url))
                    .json(&serde_json::json!({"username": name, "password": PASSWORD})),
            )
            .await;
        r.ok(200)["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// Logs `name` in with a PIN at `terminal`; returns the whole answer.
    pub async fn pin_login(&self, terminal: &str, name: &str, pin: &str) -> Reply {
        self.send(
            self.client
                .post(format!("{}/v1/auth/pin", self.url))
                .json(&serde_json::json!({"terminal": terminal, "username": name, "pin": pin})),
        )
        .await
    }

    /// A raw client of this node that sends `bearer` (or nothing) instead.
    pub fn as_user(&self, bearer: Option<String>) -> Client<'_> {
        Client {
            http: &self.client,
            url: &self.url,
            bearer,
        }
    }

    /// Sends a request and reads the whole reply.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        send(req).await
    }

    /// A request to `path` (which starts with `/`), with this client's bearer token.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.url));
        match &self.bearer {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.req(Method::GET, path)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.req(Method::POST, path).json(body)).await
    }

    /// `POST path` with a JSON body and an `Idempotency-Key`.
    pub async fn post_key(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.send(
            self.req(Method::POST, path)
                .header("idempotency-key", key)
                .json(body),
        )
        .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(self.req(Method::PUT, path).json(body)).await
    }

    /// A request with a raw body and an optional content type.
    pub async fn raw(&self, method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut r = self.req(method, path).body(body);
        if let Some(ct) = content_type {
            r = r.header(CONTENT_TYPE, ct);
        }
        self.send(r).await
    }

    /// Creates or replaces a product, asserting success.
    pub async fn product(&self, sku: &str, body: Value) -> Value {
        self.put(&format!("/v1/products/{sku}"), &body)
            .await
            .ok(200)
            .clone()
    }

    /// The standard test catalog:
    /// - `TEA-1` Earl Grey Tea 50 bags, 2.50 + 20 %, EAN-13 4006381333931, Drinks
    /// - `COF-1` Ground Coffee Dark Roast, 4.75 + 20 %, UPC-A 036000291452, Drinks
    /// - `BAG-1` Carrier bag, 0.10, no tax, not stock tracked
    /// - `SUG-1` Sugar cube, 0.165 + 20 %
    /// - `GUM-1` Chewing gum, 0.10 + 5 %
    pub async fn seed_catalog(&self) {
        self.product(
            "TEA-1",
            serde_json::json!({"name": "Earl Grey Tea 50 bags", "unit_price": "2.50", "tax_rate": "0.20",
                "barcode": "4006381333931", "category": "Drinks"}),
        )
        .await;
        self.product(
            "COF-1",
            serde_json::json!({"name": "Ground Coffee Dark Roast", "unit_price": "4.75", "tax_rate": "0.20",
                "barcode": "036000291452", "category": "Drinks"}),
        )
        .await;
        self.product(
            "BAG-1",
            serde_json::json!({"name": "Carrier bag", "unit_price": "0.10", "stock_tracked": false}),
        )
        .await;
        self.product(
            "SUG-1",
            serde_json::json!({"name": "Sugar cube", "unit_price": "0.165", "tax_rate": "0.2"}),
        )
        .await;
        self.product(
            "GUM-1",
            serde_json::json!({"name": "Chewing gum", "unit_price": "0.10", "tax_rate": "0.05"}),
        )
        .await;
    }

    /// The daily report of `date`, asserting success.
    pub async fn report(&self, date: &str) -> Value {
        self.get(&format!("/v1/reports/daily?date={date}"))
            .await
            .ok(200)
            .clone()
    }

    /// Stock on hand of `sku`, asserting success.
    pub async fn on_hand(&self, sku: &str) -> String {
        let r = self.get(&format!("/v1/stock/{sku}")).await;
        r.ok(200)["on_hand"].as_str().expect("on_hand").to_string()
    }
}
