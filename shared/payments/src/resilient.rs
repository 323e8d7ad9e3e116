//! [`ResilientProvider`]: retries with exponential backoff and jitter (`backon`) and a
//! circuit breaker (`failsafe`) around any [`PaymentProvider`].
//!
//! A retry sends the same request again, so the inner provider derives the same
//! idempotency key ([`crate::key`]): a lost answer never charges twice. Only retryable
//! errors ([`PaymentError::is_retryable`]) are retried and count as breaker failures; a
//! decline or a 4xx means the provider is up. After `breaker_failures` consecutive failed
//! calls the breaker opens: calls fail at once with [`PaymentError::BreakerOpen`] (callers
//! fall back to offline rules) until the cool-down ends; then it is half-open and lets calls
//! through (failsafe lets every call through while half-open, not just one probe): one
//! success closes it, one failure opens it again with a longer cool-down (doubling up to
//! `breaker_max_cooldown`). Its state is readable ([`ResilientProvider::breaker`]) for
//! `/metrics`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use failsafe::failure_policy::{self, ConsecutiveFailures};
use failsafe::{Instrument, StateMachine};

use crate::provider::{
    AuthOutcome, AuthorizeRequest, BoxFuture, CancelRequest, CaptureRequest, Intent, IntentId, PaymentError,
    PaymentProvider, Refund, RefundRequest,
};

/// Retry and breaker settings.
#[derive(Debug, Clone)]
pub struct ResilienceConfig {
    /// Retries after the first attempt (default 3).
    pub max_retries: usize,
    /// First backoff delay (default 200 ms); each retry doubles it, plus jitter in
    /// `(0, delay)`.
    pub min_delay: Duration,
    /// Cap on one backoff delay (default 2 s).
    pub max_delay: Duration,
    /// Consecutive failed attempts that open the breaker (default 5).
    pub breaker_failures: u32,
    /// How long the breaker stays open the first time (default 30 s).
    pub breaker_cooldown: Duration,
    /// Cap on the open time when half-open probes keep failing (default 5 min).
    pub breaker_max_cooldown: Duration,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            breaker_max_cooldown: Duration::from_secs(300),
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused with [`PaymentError::BreakerOpen`].
    Open,
    /// The cool-down ended; the next result decides.
    HalfOpen,
}

impl BreakerState {
    /// The state as a metric value: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> u8 {
        self as u8
    }
}

/// A snapshot of the breaker for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerStats {
    /// The state now. An open breaker whose cool-down has ended reads `Open` until the
    /// next call moves it to half-open.
    pub state: BreakerState,
    /// Times it opened since start.
    pub opened_total: u64,
    /// Calls refused while open since start.
    pub rejected_total: u64,
}

#[derive(Debug, Default)]
struct Observed {
    state: AtomicU8,
    opened: AtomicU64,
    rejected: AtomicU64,
}

/// Feeds failsafe's state changes into [`Observed`].
#[derive(Debug, Clone, Default)]
struct Observer(Arc<Observed>);

impl Instrument for Observer {
    fn on_call_rejected(&self) {
        self.0.rejected.fetch_add(1, Ordering::Relaxed);
    }
    fn on_open(&self) {
        self.0.opened.fetch_add(1, Ordering::Relaxed);
        self.0.state.store(BreakerState::Open as u8, Ordering::Relaxed);
        tracing::warn!("payment provider breaker opened");
    }
    fn on_half_open(&self) {
        self.0
            .state
            .store(BreakerState::HalfOpen as u8, Ordering::Relaxed);
        tracing::info!("payment provider breaker half-open");
    }
    fn on_closed(&self) {
        self.0.state.store(BreakerState::Closed as u8, Ordering::Relaxed);
    }
}

/// The breaker's open times: `start`, doubling up to `max`. (failsafe's own
/// `backoff::exponential` panics below one second, which tests and small configs need.)
#[derive(Debug, Clone)]
struct Cooldown {
    next: Duration,
    max: Duration,
}

impl Iterator for Cooldown {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        Some(d)
    }
}

type Breaker = StateMachine<ConsecutiveFailures<Cooldown>, Observer>;

/// A provider with retries and a circuit breaker. Cheap to clone: clones share the breaker.
#[derive(Clone)]
pub struct ResilientProvider<P> {
    inner: Arc<P>,
    breaker: Breaker,
    observed: Arc<Observed>,
    config: ResilienceConfig,
}

impl<P> std::fmt::Debug for ResilientProvider<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientProvider")
            .field("breaker", &self.breaker())
            .field("config", &self.config)
            .finish()
    }
}

impl<P> ResilientProvider<P> {
    /// The breaker's state and counters.
    pub fn breaker(&self) -> BreakerStats {
        let state = match self.observed.state.load(Ordering::Relaxed) {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        };
        BreakerStats {
            state,
            opened_total: self.observed.opened.load(Ordering::Relaxed),
            rejected_total: self.observed.rejected.load(Ordering::Relaxed),
        }
    }
}

impl<P: PaymentProvider> ResilientProvider<P> {
    /// Wraps `inner` with `config`'s retries and breaker.
    pub fn new(inner: P, config: ResilienceConfig) -> Self {
        let observer = Observer::default();
        let observed = observer.0.clone();
        let policy = failure_policy::consecutive_failures(
            config.breaker_failures.max(1),
            Cooldown {
                next: config.breaker_cooldown,
                max: config.breaker_max_cooldown.max(config.breaker_cooldown),
            },
        );
        let breaker = StateMachine::new(policy, observer);
        Self {
            inner: Arc::new(inner),
            breaker,
            observed,
            config,
        }
    }

    /// One attempt through the breaker.
    async fn attempt<T, Fut>(&self, call: Fut) -> Result<T, PaymentError>
    where
        Fut: Future<Output = Result<T, PaymentError>>,
    {
        if !self.breaker.is_call_permitted() {
            return Err(PaymentError::BreakerOpen);
        }
        let r = call.await;
        match &r {
            Err(e) if e.is_retryable() => self.breaker.on_error(),
            _ => self.breaker.on_success(),
        }
        r
    }

    /// Runs `call` (which builds the same request every time) with retries.
    async fn run<'a, T, F, Fut>(&'a self, op: &'static str, call: F) -> Result<T, PaymentError>
    where
        F: Fn(&'a P) -> Fut,
        Fut: Future<Output = Result<T, PaymentError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.min_delay)
            .with_max_delay(self.config.max_delay)
            .with_max_times(self.config.max_retries)
            .with_jitter()
            .with_jitter_seed(rand::random());
        let inner: &'a P = &self.inner;
        (|| self.attempt(call(inner)))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(PaymentError::is_retryable)
            .notify(|e, after| tracing::info!(op, error = %e, ?after, "retrying provider call"))
            .await
    }
}

impl<P: PaymentProvider> PaymentProvider for ResilientProvider<P> {
    fn authorize<'a>(
        &'a self,
        req: &'a AuthorizeRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, PaymentError>> {
        Box::pin(self.run("authorize", move |p| p.authorize(req)))
    }

    fn capture<'a>(&'a self, req: &'a CaptureRequest) -> BoxFuture<'a, Result<Intent, PaymentError>> {
        Box::pin(self.run("capture", move |p| p.capture(req)))
    }

    fn cancel<'a>(&'a self, req: &'a CancelRequest) -> BoxFuture<'a, Result<Intent, PaymentError>> {
        Box::pin(self.run("cancel", move |p| p.cancel(req)))
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, Result<Refund, PaymentError>> {
        Box::pin(self.run("refund", move |p| p.refund(req)))
    }

    fn intent<'a>(&'a self, id: &'a IntentId) -> BoxFuture<'a, Result<Intent, PaymentError>> {
        Box::pin(self.run("intent", move |p| p.intent(id)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use caja_shared::money::Currency;
    use proptest::prelude::*;

    use super::*;
    use crate::provider::{IntentStatus, TenderId};

    /// Fails the first `fail_first` calls with `error`, then succeeds; records the key of
    /// every capture attempt.
    struct Flaky {
        fail_first: usize,
        error: fn() -> PaymentError,
        calls: AtomicUsize,
        keys: Mutex<Vec<String>>,
    }

    impl Flaky {
        fn new(fail_first: usize, error: fn() -> PaymentError) -> Self {
            Self {
                fail_first,
                error,
                calls: AtomicUsize::new(0),
                keys: Mutex::new(vec![]),
            }
        }
        fn step(&self) -> Result<Intent, PaymentError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                return Err((self.error)());
            }
            Ok(Intent {
                id: IntentId("pi_1".into()),
                amount_minor: 100,
                amount_received_minor: 100,
                currency: Currency::GBP,
                status: IntentStatus::Succeeded,
            })
        }
    }

    impl PaymentProvider for Flaky {
        fn authorize<'a>(
            &'a self,
            _: &'a AuthorizeRequest,
        ) -> BoxFuture<'a, Result<AuthOutcome, PaymentError>> {
            Box::pin(async move { self.step().map(AuthOutcome::Authorized) })
        }
        fn capture<'a>(&'a self, req: &'a CaptureRequest) -> BoxFuture<'a, Result<Intent, PaymentError>> {
            self.keys.lock().unwrap().push(req.idempotency_key());
            Box::pin(async move { self.step() })
        }
        fn cancel<'a>(&'a self, _: &'a CancelRequest) -> BoxFuture<'a, Result<Intent, PaymentError>> {
            Box::pin(async move { self.step() })
        }
        fn refund<'a>(&'a self, _: &'a RefundRequest) -> BoxFuture<'a, Result<Refund, PaymentError>> {
            Box::pin(async { Err(PaymentError::Timeout) })
        }
        fn intent<'a>(&'a self, _: &'a IntentId) -> BoxFuture<'a, Result<Intent, PaymentError>> {
            Box::pin(async move { self.step() })
        }
    }

    fn fast(breaker_failures: u32, cooldown_ms: u64) -> ResilienceConfig {
        ResilienceConfig {
            max_retries: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            breaker_failures,
            breaker_cooldown: Duration::from_millis(cooldown_ms),
            breaker_max_cooldown: Duration::from_millis(cooldown_ms),
        }
    }

    fn capture_req() -> CaptureRequest {
        CaptureRequest {
            tender: TenderId::new(),
            intent: IntentId("pi_1".into()),
            amount_minor: None,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// However many attempts a lost answer causes, every attempt carries one key.
        #[test]
        fn retries_reuse_the_key(fails in 0usize..=3) {
            let p = ResilientProvider::new(Flaky::new(fails, || PaymentError::Timeout), fast(100, 10));
            let req = capture_req();
            let r = rt().block_on(p.capture(&req));
            prop_assert!(r.is_ok());
            let keys = p.inner.keys.lock().unwrap().clone();
            prop_assert_eq!(keys.len(), fails + 1);
            prop_assert!(keys.iter().all(|k| *k == req.idempotency_key()));
        }
    }

    #[test]
    fn final_errors_are_not_retried() {
        let p = ResilientProvider::new(
            Flaky::new(1, || PaymentError::Malformed("x".into())),
            fast(100, 10),
        );
        let r = rt().block_on(p.capture(&capture_req()));
        assert!(matches!(r, Err(PaymentError::Malformed(_))));
        assert_eq!(p.inner.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn breaker_opens_then_closes() {
        let rt = rt();
        // 4 failing attempts (1 + 3 retries) then success; the breaker opens at 3.
        let p = ResilientProvider::new(
            Flaky::new(4, || PaymentError::Server {
                status: 500,
                message: String::new(),
            }),
            fast(3, 50),
        );
        let r = rt.block_on(p.capture(&capture_req()));
        assert!(matches!(r, Err(PaymentError::BreakerOpen)), "{r:?}");
        assert_eq!(p.inner.calls.load(Ordering::SeqCst), 3);
        assert_eq!(p.breaker().state, BreakerState::Open);
        // Refused at once while open: the provider is not called.
        assert!(matches!(
            rt.block_on(p.intent(&IntentId("pi_1".into()))),
            Err(PaymentError::BreakerOpen)
        ));
        assert_eq!(p.inner.calls.load(Ordering::SeqCst), 3);
        assert_eq!(p.breaker().rejected_total, 2);
        std::thread::sleep(Duration::from_millis(60));
        // Half-open: the 4th failure opens it again.
        assert!(matches!(
            rt.block_on(p.intent(&IntentId("pi_1".into()))),
            Err(PaymentError::BreakerOpen)
        ));
        assert_eq!(p.breaker().opened_total, 2);
        std::thread::sleep(Duration::from_millis(60));
        assert!(rt.block_on(p.intent(&IntentId("pi_1".into()))).is_ok());
        assert_eq!(p.breaker().state, BreakerState::Closed);
    }
}
