//! Caja's card payment provider layer (issue #8): what the node and head office use to
//! talk to a card provider.
//!
//! - [`provider`]: the [`PaymentProvider`] trait, requests, typed outcomes and errors.
//! - [`key`]: idempotency keys derived from stable ids only.
//! - [`stripe`]: [`StripeClient`], the Stripe-compatible HTTP client (reqwest, rustls/ring).
//! - [`resilient`]: [`ResilientProvider`], retries with backoff and jitter plus a circuit
//!   breaker around any provider.
//! - [`wire`]: the Stripe JSON shapes both the client and the simulator use.
//! - [`sim`]: the loopback provider simulator (also the `caja-payments-sim` binary).
//!
//! Card numbers never reach Caja: the terminal hands over a token.

pub mod key;
pub mod provider;
pub mod resilient;
pub mod sim;
pub mod stripe;
pub mod wire;

pub use key::{Operation, idempotency_key};
pub use provider::{
    AuthOutcome, AuthorizeRequest, CancelRequest, CaptureRequest, Decline, DeclineCode, Intent, IntentId,
    IntentStatus, PaymentError, PaymentProvider, Refund, RefundRequest, TenderId,
};
pub use resilient::{BreakerState, BreakerStats, ResilienceConfig, ResilientProvider};
pub use stripe::{StripeClient, StripeConfig};
