//! Clients of a node's REST API, two ways:
//!
//! - [`Api`]: typed calls (`post_sale`, `sync_status`, ...) that decode into the test's own
//!   response types ([`SaleView`], [`DailyReport`], ...: only the fields the tests read, not
//!   the product's types, so a change of the wire shape shows up as a failure); errors are
//!   `anyhow` errors naming the request.
//! - [`Reply`] (from [`send`] or a [`Client`]): the raw status, headers and body, with
//!   [`Reply::ok`] and [`Reply::problem`] asserting a status or an RFC 9457 problem.

use anyhow::{Context, bail};
use chrono::NaiveDate;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::HTTP_TIMEOUT;

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
    ///
    /// # Panics
    /// When the status differs (the message shows the body).
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
    ///
    /// # Panics
    /// When the status, content type, `type`, `status` member or `title` is not as expected.
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

/// Sends a request and reads the whole reply.
///
/// # Panics
/// When the request cannot be sent or its body read (the node is unreachable: a failed
/// test).
pub async fn send(req: reqwest::RequestBuilder) -> Reply {
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

/// A raw client of one node that sends a given bearer token (or none); see
/// [`TestNode::as_user`](super::TestNode::as_user).
pub struct Client<'a> {
    /// The HTTP client.
    pub(crate) http: &'a reqwest::Client,
    /// The node's base URL.
    pub(crate) url: &'a str,
    /// The token sent, if any.
    pub(crate) bearer: Option<String>,
}

impl Client<'_> {
    /// A request to `path` (which starts with `/`) with this client's token.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.bearer {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends and reads the reply ([`send`]).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        send(req).await
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
        Ok(Api::with_client(client, base))
    }

    /// A client for the node at `base` over `client` (e.g. one that pins the node's LAN
    /// certificate), not logged in.
    pub fn with_client(client: reqwest::Client, base: &str) -> Api {
        Api {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: Default::default(),
        }
    }

    /// Another client of the same node, not logged in (for a second user).
    pub fn fresh(&self) -> Api {
        Api {
            client: self.client.clone(),
            base: self.base.clone(),
            token: Default::default(),
        }
    }

    /// Sends `token` from now on (`None`: nothing), as if that login had happened here.
    pub fn set_token(&self, token: Option<String>) {
        if let Ok(mut slot) = self.token.lock() {
            *slot = token;
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
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
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
