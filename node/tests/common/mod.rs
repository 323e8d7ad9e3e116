//! Test harness for the node's REST API: [`spawn_node`] opens a standalone node in a
//! temporary directory with an `admin` user, serves it on `127.0.0.1:0` and returns a
//! client logged in as that admin (every request carries its bearer token unless a test
//! says otherwise). [`TestNode::add_user`] and [`TestNode::login`] make more staff.

// Each test binary uses a different part of this harness.
#![allow(dead_code)]

use std::path::PathBuf;

use caja_node::auth::local::LocalUser;
use caja_node::{Node, NodeConfig};
use caja_shared::auth::secrets::Secret;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The day every test transaction happens on unless it says otherwise (no test depends on
/// the wall clock's date).
pub const DAY: &str = "2024-03-15";
/// A time on [`DAY`].
pub const AT: &str = "2024-03-15T10:30:00Z";

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// The PIN the test user of each role gets: `admin` 11111111, `manager` 22223333,
/// `cashier` 44445555 (8 digits so they cannot appear by chance in a log line).
pub fn pin_of(role: &str) -> &'static str {
    match role {
        "admin" => "11111111",
        "manager" => "22223333",
        _ => "44445555",
    }
}

/// A node serving on loopback. Dropping it cancels the server.
pub struct TestNode {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The library handle.
    pub node: Node,
    /// The bearer token sent with every request (`None`: unauthenticated requests).
    pub bearer: Option<String>,
    /// Shared HTTP client.
    pub client: reqwest::Client,
    /// Cancels the server.
    pub token: CancellationToken,
    /// The data directory (kept while the node lives).
    pub dir: TempDir,
    /// The serving task.
    pub task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// A response, its body read as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub json: Value,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The `content-type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts `status` and returns the JSON body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        &self.json
    }

    /// Asserts an RFC 9457 problem with `status` and type `code`, returns its `detail`.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> String {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.text
        );
        assert_eq!(
            self.json["type"],
            format!("https://caja.dev/problems/{code}"),
            "body: {}",
            self.text
        );
        assert_eq!(self.json["status"], status, "body: {}", self.text);
        assert!(self.json["title"].as_str().is_some_and(|t| !t.is_empty()));
        self.json["detail"].as_str().unwrap_or_default().to_string()
    }
}

/// Opens a standalone node in a fresh temporary directory and serves it on
/// `127.0.0.1:0`.
pub async fn spawn_node() -> TestNode {
    spawn_node_with(|_| {}).await
}

/// [`spawn_node`] with settings changed by `tune` (rate limits, lockouts, TLS).
pub async fn spawn_node_with(tune: impl FnOnce(&mut NodeConfig)) -> TestNode {
    caja_node::install_crypto();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = NodeConfig {
        data_dir: PathBuf::from(dir.path()),
        listen: "127.0.0.1:0".parse().expect("address"),
        sync: None,
        ..NodeConfig::default()
    };
    // Tests drive one node hard from one address; the rate-limit tests set their own.
    config.limits.requests_per_second = 100_000;
    config.limits.logins_per_minute = 10_000;
    tune(&mut config);
    config.validate().expect("valid config");
    let node = Node::open(config).await.expect("open node");
    let scheme = if node.config().lan_tls.enabled {
        "https"
    } else {
        "http"
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("{scheme}://{}", listener.local_addr().expect("local addr"));
    let token = CancellationToken::new();
    let stop = token.clone();
    let n = node.clone();
    let task = tokio::spawn(async move { n.serve(listener, stop).await });
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if node.config().lan_tls.enabled {
        let fp = node.lan_identity().expect("LAN certificate").fingerprint();
        builder = builder.use_preconfigured_tls(caja_node::http::tls::client_config(&fp).expect("pin"));
    }
    let mut t = TestNode {
        url,
        node,
        bearer: None,
        client: builder.build().expect("client"),
        token,
        dir,
        task: Some(task),
    };
    t.add_user("admin", &["admin"]).await;
    t.bearer = Some(t.login("admin").await);
    t
}

impl TestNode {
    /// Creates a user named `name` with `roles`, [`PASSWORD`] and the PIN of its first
    /// role ([`pin_of`]); returns its id.
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

    /// A copy of this client that sends `bearer` (or nothing) instead.
    pub fn as_user(&self, bearer: Option<String>) -> Client<'_> {
        Client { node: self, bearer }
    }

    /// Sends a request and reads the whole reply.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            text,
        }
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

/// A view of a [`TestNode`] that sends another bearer token (or none).
pub struct Client<'a> {
    node: &'a TestNode,
    bearer: Option<String>,
}

impl Client<'_> {
    /// A request with this client's token.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .node
            .client
            .request(method, format!("{}{path}", self.node.url));
        match &self.bearer {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends and reads the reply.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        self.node.send(req).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.req(Method::GET, path)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.req(Method::POST, path).json(body)).await
    }
}
