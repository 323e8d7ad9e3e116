//! A client of a node's REST API for programs (the demo's replay driver, the benchmarks,
//! later the desktop app): logs a user in, sends the bearer token on every request and
//! refreshes it when the node says it expired. Over HTTPS it pins the node's certificate.
//!
//! Tokens are held in memory only and never printed (`Debug` redacts them).

use std::sync::{Arc, Mutex};

use caja_shared::auth::secrets::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached or the client could not be built.
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// The node answered with an error (`body` is its problem+json).
    #[error("{status}: {body}")]
    Refused {
        /// The status.
        status: StatusCode,
        /// The body.
        body: String,
    },
    /// The pinned certificate fingerprint is malformed.
    #[error(transparent)]
    Pin(#[from] caja_node::http::tls::LanTlsError),
}

struct Tokens {
    access: Secret,
    refresh: Secret,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    tokens: Mutex<Option<Tokens>>,
}

/// A logged-in (or not yet) client of one node. Cheap to clone; clones share the tokens.
#[derive(Clone)]
pub struct NodeClient(Arc<Inner>);

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("base", &self.0.base)
            .field("tokens", &"<redacted>")
            .finish()
    }
}

impl NodeClient {
    /// A client of the node at `base` (`http://host:port` or `https://host:port`); with
    /// `pin` (hex SHA-256 of the node's certificate or of the chain CA) HTTPS trusts only
    /// that. Requests time out after 60 s.
    ///
    /// # Errors
    /// [`ClientError::Pin`] for a malformed pin, [`ClientError::Http`] if the client
    /// cannot be built.
    pub fn new(base: &str, pin: Option<&str>) -> Result<NodeClient, ClientError> {
        caja_node::install_crypto();
        let mut b = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(pin) = pin {
            b = b.use_preconfigured_tls(caja_node::http::tls::client_config(pin)?);
        }
        Ok(NodeClient(Arc::new(Inner {
            http: b.build()?,
            base: base.trim_end_matches('/').to_string(),
            tokens: Mutex::new(None),
        })))
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.0.base
    }

    /// The current access token, if logged in (to hand to another program; never log it).
    pub fn access_token(&self) -> Option<Secret> {
        self.0.tokens.lock().ok()?.as_ref().map(|t| t.access.clone())
    }

    async fn token_call(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        let res = self
            .0
            .http
            .post(format!("{}{path}", self.0.base))
            .json(&body)
            .send()
            .await?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            return Err(ClientError::Refused { status, body: text });
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let (Some(a), Some(r)) = (v["access_token"].as_str(), v["refresh_token"].as_str()) else {
            return Err(ClientError::Refused {
                status,
                body: "the answer has no tokens".into(),
            });
        };
        if let Ok(mut t) = self.0.tokens.lock() {
            *t = Some(Tokens {
                access: Secret::new(a),
                refresh: Secret::new(r),
            });
        }
        Ok(v["user"].clone())
    }

    /// Logs in with username and password; returns the `user` of the answer.
    ///
    /// # Errors
    /// [`ClientError::Refused`] (401 `login-failed`, 429 `rate-limited`, …).
    pub async fn login_password(&self, username: &str, password: &Secret) -> Result<Value, ClientError> {
        self.token_call(
            "/v1/auth/login",
            json!({"username": username, "password": password.expose()}),
        )
        .await
    }

    /// Logs in at `terminal` with username and PIN; returns the `user` of the answer.
    ///
    /// # Errors
    /// [`ClientError::Refused`] (401 `login-failed`, 423 `login-locked`, …).
    pub async fn login_pin(
        &self,
        terminal: &str,
        username: &str,
        pin: &Secret,
    ) -> Result<Value, ClientError> {
        self.token_call(
            "/v1/auth/pin",
            json!({"terminal": terminal, "username": username, "pin": pin.expose()}),
        )
        .await
    }

    /// Trades the refresh token for new tokens.
    ///
    /// # Errors
    /// [`ClientError::Refused`] when not logged in or the session ended.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let refresh = self
            .0
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.as_ref().map(|t| t.refresh.clone()))
            .ok_or(ClientError::Refused {
                status: StatusCode::UNAUTHORIZED,
                body: "not logged in".into(),
            })?;
        self.token_call("/v1/auth/refresh", json!({"refresh_token": refresh.expose()}))
            .await
            .map(|_| ())
    }

    fn build(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .0
            .http
            .request(method.clone(), format!("{}{path}", self.0.base));
        if let Some(t) = self.access_token() {
            r = r.bearer_auth(t.expose());
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        r
    }

    /// Sends a request with the bearer token; if the node says the token expired, refreshes
    /// once and sends it again. Returns the response whatever its status.
    ///
    /// # Errors
    /// [`ClientError::Http`] when the node cannot be reached.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClientError> {
        let res = self.build(&method, path, body, headers).send().await?;
        let expired = res.status() == StatusCode::UNAUTHORIZED
            && res
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("token-expired"));
        if expired && self.refresh().await.is_ok() {
            return Ok(self.build(&method, path, body, headers).send().await?);
        }
        Ok(res)
    }

    /// [`NodeClient::send`] expecting success, returning the JSON body.
    ///
    /// # Errors
    /// [`ClientError::Refused`] for a non-2xx answer.
    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let res = self.send(method, path, body, &[]).await?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            return Err(ClientError::Refused { status, body: text });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
