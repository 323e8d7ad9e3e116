//! A payment provider simulator: the Stripe API subset Caja uses, served by axum on a real
//! (loopback) port, with deterministic outcomes by card token. Not product code: the demo
//! and the tests start it (`caja-payments-sim --listen 127.0.0.1:0`, or [`SimServer::start`]).
//!
//! Tokens: `tok_approve` (and any other `tok_…`) authorizes; `tok_decline` is declined
//! (`card_declined`); `tok_insufficient_funds` is declined (`insufficient_funds`);
//! `tok_timeout` never answers within a client's timeout ([`SimConfig::hang`]);
//! `tok_http500` answers HTTP 500; `tok_slow` answers after [`SimConfig::slow`]. The token
//! acts when the intent is confirmed.
//!
//! Like Stripe, an `Idempotency-Key` stores the first non-5xx answer: the same key with the
//! same method, path and body gets it back (`Idempotent-Replayed: true`), with anything
//! else a 400 `idempotency_error`. An intent is captured at most once; a ledger of captures
//! and refunds is kept for tests (`GET /_sim/captures`, `GET /_sim/refunds`). Test switches:
//! `POST /_sim/outage?millis=N` makes every `/v1` call answer 500 for N ms;
//! `POST /_sim/lose_next?count=N` processes the next N mutating calls but holds their
//! answers for [`SimConfig::hang`] (a lost response). `GET /_sim/stats` counts requests.
//!
//! State lives in memory only (one mutex, never held across an await) and is lost on exit.
//! Bodies are limited to [`SimConfig::max_body`]; bad input gets a Stripe-style error,
//! never a panic.

mod api;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::wire::PaymentIntentBody;

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How long `tok_timeout` and lost answers are held (default 60 s): longer than any
    /// client timeout.
    pub hang: Duration,
    /// How long `tok_slow` waits before answering (default 300 ms).
    pub slow: Duration,
    /// Largest accepted request body in bytes (default 16 KiB).
    pub max_body: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            hang: Duration::from_secs(60),
            slow: Duration::from_millis(300),
            max_body: 16 * 1024,
        }
    }
}

/// One capture or refund the simulator made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The capture's intent id, or the refund's `re_…` id.
    pub id: String,
    /// The intent captured or refunded.
    pub intent: String,
    /// Minor units.
    pub amount: i64,
    /// Lowercase ISO 4217 code.
    pub currency: String,
}

/// Request counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Every `/v1` request received.
    pub requests: u64,
    /// `/v1` requests answered 500 by an outage.
    pub outage_failures: u64,
}

struct SimIntent {
    body: PaymentIntentBody,
    refunded: i64,
}

struct StoredAnswer {
    fingerprint: String,
    status: u16,
    body: serde_json::Value,
}

#[derive(Default)]
struct SimState {
    next_id: u64,
    intents: HashMap<String, SimIntent>,
    idempotency: HashMap<String, StoredAnswer>,
    captures: Vec<LedgerEntry>,
    refunds: Vec<LedgerEntry>,
    outage_until: Option<Instant>,
    lose_next: u32,
    stats: Option<SimStats>,
}

impl SimState {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_sim{:08}", self.next_id)
    }

    fn stats(&mut self) -> &mut SimStats {
        self.stats.get_or_insert(SimStats {
            requests: 0,
            outage_failures: 0,
        })
    }
}

/// The simulator's state and settings. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<SimState>>,
    config: Arc<SimConfig>,
    cancel: CancellationToken,
}

impl Simulator {
    /// A fresh simulator with empty state.
    pub fn new(config: SimConfig) -> Self {
        Self {
            state: Arc::default(),
            config: Arc::new(config),
            cancel: CancellationToken::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A poisoned lock only means a handler panicked mid-update; the maps stay usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps `d`, or less if the simulator is shutting down.
    async fn sleep(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.cancel.cancelled() => {}
        }
    }

    /// Every capture so far, in order.
    pub fn captures(&self) -> Vec<LedgerEntry> {
        self.lock().captures.clone()
    }

    /// Every refund so far, in order.
    pub fn refunds(&self) -> Vec<LedgerEntry> {
        self.lock().refunds.clone()
    }

    /// Request counters.
    pub fn stats(&self) -> SimStats {
        *self.lock().stats()
    }

    /// Makes every `/v1` call answer 500 for `d` from now (`Duration::ZERO` ends an outage).
    pub fn set_outage(&self, d: Duration) {
        self.lock().outage_until = Some(Instant::now() + d);
    }

    /// Processes the next `n` mutating calls but holds their answers for
    /// [`SimConfig::hang`], as if the response were lost on the way.
    pub fn lose_next(&self, n: u32) {
        self.lock().lose_next = n;
    }

    /// The router: the Stripe subset under `/v1`, test switches under `/_sim`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/payment_intents", post(api::create))
            .route("/v1/payment_intents/{id}", get(api::retrieve))
            .route("/v1/payment_intents/{id}/{action}", post(api::action))
            .route("/v1/refunds", post(api::refund))
            .route("/_sim/captures", get(captures))
            .route("/_sim/refunds", get(refunds))
            .route("/_sim/stats", get(stats))
            .route("/_sim/outage", post(outage))
            .route("/_sim/lose_next", post(lose_next))
            .fallback(api::not_found)
            .method_not_allowed_fallback(api::method_not_allowed)
            .layer(DefaultBodyLimit::max(self.config.max_body))
            .with_state(self.clone())
    }
}

async fn captures(State(sim): State<Simulator>) -> axum::Json<Vec<LedgerEntry>> {
    axum::Json(sim.captures())
}

async fn refunds(State(sim): State<Simulator>) -> axum::Json<Vec<LedgerEntry>> {
    axum::Json(sim.refunds())
}

async fn stats(State(sim): State<Simulator>) -> axum::Json<SimStats> {
    axum::Json(sim.stats())
}

#[derive(Deserialize)]
struct Millis {
    millis: u64,
}

async fn outage(State(sim): State<Simulator>, Query(q): Query<Millis>) -> &'static str {
    sim.set_outage(Duration::from_millis(q.millis));
    "ok"
}

#[derive(Deserialize)]
struct Count {
    count: u32,
}

async fn lose_next(State(sim): State<Simulator>, Query(q): Query<Count>) -> &'static str {
    sim.lose_next(q.count);
    "ok"
}

/// Serves `sim` on `listener` until `shutdown` completes; held answers end at once then.
///
/// # Errors
/// The listener's I/O errors.
pub async fn run(
    listener: TcpListener,
    sim: Simulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancel = sim.cancel.clone();
    let router = sim.router();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            cancel.cancel();
        })
        .await
}

/// A simulator running on a loopback port in this process (for tests and the demo).
pub struct SimServer {
    /// Where it listens.
    pub addr: SocketAddr,
    sim: Simulator,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl SimServer {
    /// Binds `127.0.0.1:0` and serves a fresh simulator on a tokio task.
    ///
    /// # Errors
    /// Binding the port.
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sim = Simulator::new(config);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(run(listener, sim.clone(), async move {
            s.cancelled().await;
        }));
        Ok(Self {
            addr,
            sim,
            stop,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, the base URL for [`crate::stripe::StripeConfig`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The running simulator's state.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// Stops serving and waits for the task.
    ///
    /// # Errors
    /// The server's I/O error, if it failed.
    pub async fn stop(self) -> std::io::Result<()> {
        self.stop.cancel();
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
