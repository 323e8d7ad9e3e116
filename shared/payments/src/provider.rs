//! The provider-neutral contract: the [`PaymentProvider`] trait, its requests, typed
//! outcomes and errors, and the amount bounds checked before any call.
//!
//! Card numbers never reach Caja: the terminal gives a card token (`tok_…`) and Caja only
//! ever passes that token on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use caja_shared::facts::MAX_AMOUNT_MINOR;
use caja_shared::money::Currency;
use serde::{Deserialize, Serialize};

/// A boxed, `Send` future, so that [`PaymentProvider`] stays object safe
/// (`Arc<dyn PaymentProvider>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The id of one card tender of a sale (`caja_shared::ids::TenderId`, a UUIDv7): the
/// stable id every provider call for that tender derives its idempotency key from
/// ([`crate::key::idempotency_key`]).
pub use caja_shared::ids::TenderId;

/// A provider's PaymentIntent id (Stripe: `pi_…`). Opaque text chosen by the provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntentId(pub String);

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Ask for an authorization: create and confirm a PaymentIntent with manual capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// The tender this authorization pays; the idempotency key derives from it, so another
    /// card after a decline needs a new tender id.
    pub tender: TenderId,
    /// Amount in minor units of `currency` (pence for GBP); 1..=[`MAX_AMOUNT_MINOR`].
    pub amount_minor: i64,
    /// The sale's currency.
    pub currency: Currency,
    /// The card token the terminal gave (`tok_…`); never a card number.
    pub card_token: String,
}

/// Capture an authorized intent (all of it, or less).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    /// The tender the intent pays.
    pub tender: TenderId,
    /// The authorized intent.
    pub intent: IntentId,
    /// Minor units to capture; `None` captures the whole authorization. When set,
    /// 1..=[`MAX_AMOUNT_MINOR`].
    pub amount_minor: Option<i64>,
}

/// Void an authorization that was not captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// The tender the intent pays.
    pub tender: TenderId,
    /// The intent to cancel.
    pub intent: IntentId,
}

/// Refund a captured intent, fully or partly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The tender that was paid.
    pub tender: TenderId,
    /// Which refund of this tender this is (0, 1, …): a tender may be refunded in several
    /// parts, each with its own idempotency key.
    pub seq: u32,
    /// The captured intent.
    pub intent: IntentId,
    /// Minor units to refund; `None` refunds what is left. When set,
    /// 1..=[`MAX_AMOUNT_MINOR`].
    pub amount_minor: Option<i64>,
}

/// A PaymentIntent's status (Stripe's names); unknown statuses are kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    /// Needs a card.
    RequiresPaymentMethod,
    /// Created, not yet confirmed.
    RequiresConfirmation,
    /// The card needs a customer action (3-D Secure); not used by card-present tokens.
    RequiresAction,
    /// In flight at the provider.
    Processing,
    /// Authorized; waiting for capture or cancel.
    RequiresCapture,
    /// Voided.
    Canceled,
    /// Captured.
    Succeeded,
    /// A status this client does not know.
    #[serde(untagged)]
    Other(String),
}

/// A PaymentIntent as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The provider's id.
    pub id: IntentId,
    /// Authorized amount in minor units.
    pub amount_minor: i64,
    /// Captured amount in minor units (0 until captured).
    pub amount_received_minor: i64,
    /// The intent's currency.
    pub currency: Currency,
    /// Where the intent is in its life.
    pub status: IntentStatus,
}

/// Why a card was declined: the provider's code, in words a cashier can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclineCode {
    /// A generic decline (`card_declined`, `generic_decline`, `do_not_honor`).
    CardDeclined,
    /// Not enough money on the card (`insufficient_funds`).
    InsufficientFunds,
    /// The card has expired (`expired_card`).
    ExpiredCard,
    /// Wrong security code (`incorrect_cvc`).
    IncorrectCvc,
    /// Reported lost or stolen (`lost_card`, `stolen_card`).
    LostOrStolen,
    /// The issuer could not process it (`processing_error`): trying again may work.
    ProcessingError,
    /// Another provider code, kept as sent.
    Other(String),
}

impl DeclineCode {
    /// Maps a provider's `decline_code` (or `code`) to a typed reason.
    pub fn from_code(code: &str) -> Self {
        match code {
            "card_declined" | "generic_decline" | "do_not_honor" => Self::CardDeclined,
            "insufficient_funds" => Self::InsufficientFunds,
            "expired_card" => Self::ExpiredCard,
            "incorrect_cvc" => Self::IncorrectCvc,
            "lost_card" | "stolen_card" => Self::LostOrStolen,
            "processing_error" => Self::ProcessingError,
            other => Self::Other(other.to_string()),
        }
    }

    /// The stable machine code (`card_declined`, `insufficient_funds`, …).
    pub fn code(&self) -> &str {
        match self {
            Self::CardDeclined => "card_declined",
            Self::InsufficientFunds => "insufficient_funds",
            Self::ExpiredCard => "expired_card",
            Self::IncorrectCvc => "incorrect_cvc",
            Self::LostOrStolen => "lost_or_stolen",
            Self::ProcessingError => "processing_error",
            Self::Other(c) => c,
        }
    }

    /// A sentence for the cashier's screen.
    pub fn cashier_text(&self) -> &'static str {
        match self {
            Self::CardDeclined => "Card declined: ask for another payment method.",
            Self::InsufficientFunds => "Declined: insufficient funds.",
            Self::ExpiredCard => "Declined: the card has expired.",
            Self::IncorrectCvc => "Declined: incorrect security code.",
            Self::LostOrStolen => "Declined: keep the card and call the manager.",
            Self::ProcessingError => "The card issuer could not process it: try again.",
            Self::Other(_) => "Card declined: ask for another payment method.",
        }
    }
}

/// A decline: the typed reason and the provider's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decline {
    /// The reason.
    pub code: DeclineCode,
    /// The provider's message, for logs.
    pub message: String,
    /// The intent the decline left behind, when the provider named it.
    pub intent: Option<IntentId>,
}

/// The outcome of [`PaymentProvider::authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Approved: the intent is authorized (`requires_capture`).
    Authorized(Intent),
    /// Declined by the card issuer; a final answer, not an error.
    Declined(Decline),
}

/// A refund as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The provider's refund id (`re_…`).
    pub id: String,
    /// The refunded intent.
    pub intent: IntentId,
    /// Refunded minor units.
    pub amount_minor: i64,
    /// The refund's currency.
    pub currency: Currency,
    /// The provider's status (`succeeded`, `pending`, …).
    pub status: String,
}

/// Why a provider call failed. [`PaymentError::is_retryable`] splits them: a retryable
/// error may succeed if the same call is sent again with the same idempotency key.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The amount is ≤ 0 or above [`MAX_AMOUNT_MINOR`]; refused before any call. Final.
    #[error("amount {amount_minor} is out of bounds (1..={MAX_AMOUNT_MINOR} minor units)")]
    AmountOutOfBounds {
        /// The refused amount in minor units.
        amount_minor: i64,
    },
    /// The card token is empty or not a token (`tok_…`); refused before any call. Final.
    #[error("card token must look like tok_… (letters, digits, '_'), at most 255 bytes")]
    BadToken,
    /// The provider does not know the intent (Stripe `resource_missing`). Final.
    #[error("the provider does not know payment intent {0}")]
    UnknownIntent(IntentId),
    /// The provider refused the request (a 4xx other than a decline). Final.
    #[error("provider refused the request (HTTP {status}, {code}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The provider's error `code` (`amount_too_large`, `idempotency_error`, …), or
        /// its `type` when there is no code.
        code: String,
        /// The provider's message.
        message: String,
    },
    /// The provider's answer could not be understood (bad JSON, missing fields, unknown
    /// currency, an answer about another intent). Final: the same call would give the same.
    #[error("malformed provider response: {0}")]
    Malformed(String),
    /// No answer within the per-call timeout. Retryable.
    #[error("provider did not answer in time")]
    Timeout,
    /// The connection failed (refused, reset). Retryable.
    #[error("could not reach the provider: {0}")]
    Connect(String),
    /// The provider answered 5xx (or 429). Retryable.
    #[error("provider error (HTTP {status}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The provider's message, if any.
        message: String,
    },
    /// The circuit breaker is open: the provider failed repeatedly and is not called
    /// until the cool-down ends. Callers fall back to offline rules. Not retried here.
    #[error("provider unavailable (breaker open)")]
    BreakerOpen,
}

impl PaymentError {
    /// True for errors the same call may not repeat: timeouts, connection failures and
    /// 5xx/429 answers. Everything else is final.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Timeout | Self::Connect(_) | Self::Server { .. })
    }

    /// True when the provider could not be reached or is failing, so a caller should
    /// fall back to offline rules (the retryable errors and [`PaymentError::BreakerOpen`]).
    pub fn is_unavailable(&self) -> bool {
        self.is_retryable() || matches!(self, Self::BreakerOpen)
    }
}

/// Refuses an amount ≤ 0 or above [`MAX_AMOUNT_MINOR`].
///
/// # Errors
/// [`PaymentError::AmountOutOfBounds`].
pub fn check_amount(amount_minor: i64) -> Result<i64, PaymentError> {
    if (1..=MAX_AMOUNT_MINOR).contains(&amount_minor) {
        Ok(amount_minor)
    } else {
        Err(PaymentError::AmountOutOfBounds { amount_minor })
    }
}

/// Refuses a card token that is not `tok_` followed by 1-251 ASCII letters, digits or `_`
/// (what a terminal hands over; anything else may be a card number typed by mistake).
///
/// # Errors
/// [`PaymentError::BadToken`].
pub fn check_token(token: &str) -> Result<&str, PaymentError> {
    let ok = token.len() <= 255
        && token.strip_prefix("tok_").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if ok {
        Ok(token)
    } else {
        Err(PaymentError::BadToken)
    }
}

/// A card payment provider. Implementations derive every mutating call's idempotency key
/// from the request's stable ids only ([`crate::key::idempotency_key`]), so sending the
/// same request again (a retry after a lost answer) never charges twice.
///
/// Object safe: use it as `Arc<dyn PaymentProvider>`.
pub trait PaymentProvider: Send + Sync {
    /// Creates and confirms a PaymentIntent with manual capture from a card token.
    ///
    /// # Errors
    /// Bounds and token checks before any call; then see [`PaymentError`]. A decline is
    /// `Ok(AuthOutcome::Declined)`, not an error.
    fn authorize<'a>(&'a self, req: &'a AuthorizeRequest)
    -> BoxFuture<'a, Result<AuthOutcome, PaymentError>>;

    /// Captures an authorized intent; capturing an already captured intent with the same
    /// request returns the same answer.
    ///
    /// # Errors
    /// See [`PaymentError`].
    fn capture<'a>(&'a self, req: &'a CaptureRequest) -> BoxFuture<'a, Result<Intent, PaymentError>>;

    /// Voids an authorization.
    ///
    /// # Errors
    /// See [`PaymentError`].
    fn cancel<'a>(&'a self, req: &'a CancelRequest) -> BoxFuture<'a, Result<Intent, PaymentError>>;

    /// Refunds a captured intent, fully or partly.
    ///
    /// # Errors
    /// See [`PaymentError`].
    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, Result<Refund, PaymentError>>;

    /// Looks an intent up (read only, no idempotency key).
    ///
    /// # Errors
    /// [`PaymentError::UnknownIntent`] and the others of [`PaymentError`].
    fn intent<'a>(&'a self, id: &'a IntentId) -> BoxFuture<'a, Result<Intent, PaymentError>>;
}

/// An `Arc` of a provider is a provider, so `Arc<dyn PaymentProvider>` can be wrapped
/// (e.g. by [`crate::resilient::ResilientProvider`]).
impl<P: PaymentProvider + ?Sized> PaymentProvider for std::sync::Arc<P> {
    fn authorize<'a>(
        &'a self,
        req: &'a AuthorizeRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, PaymentError>> {
        (**self).authorize(req)
    }

    fn capture<'a>(&'a self, req: &'a CaptureRequest) -> BoxFuture<'a, Result<Intent, PaymentError>> {
        (**self).capture(req)
    }

    fn cancel<'a>(&'a self, req: &'a CancelRequest) -> BoxFuture<'a, Result<Intent, PaymentError>> {
        (**self).cancel(req)
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, Result<Refund, PaymentError>> {
        (**self).refund(req)
    }

    fn intent<'a>(&'a self, id: &'a IntentId) -> BoxFuture<'a, Result<Intent, PaymentError>> {
        (**self).intent(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_bounds() {
        assert!(check_amount(1).is_ok());
        assert!(check_amount(MAX_AMOUNT_MINOR).is_ok());
        for bad in [0, -1, MAX_AMOUNT_MINOR + 1, i64::MIN, i64::MAX] {
            assert!(matches!(
                check_amount(bad),
                Err(PaymentError::AmountOutOfBounds { amount_minor }) if amount_minor == bad
            ));
        }
    }

    #[test]
    fn tokens() {
        assert!(check_token("tok_approve").is_ok());
        for bad in [
            "",
            "tok_",
            "4242424242424242",
            "tok_a b",
            "tok_é",
            &"tok_a".repeat(60),
        ] {
            assert!(check_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decline_codes_round_trip() {
        for c in [
            "card_declined",
            "insufficient_funds",
            "expired_card",
            "incorrect_cvc",
        ] {
            assert_eq!(DeclineCode::from_code(c).code(), c);
        }
        assert_eq!(DeclineCode::from_code("do_not_honor"), DeclineCode::CardDeclined);
        assert_eq!(DeclineCode::from_code("weird").code(), "weird");
    }

    #[test]
    fn retryable_split() {
        assert!(PaymentError::Timeout.is_retryable());
        assert!(
            PaymentError::Server {
                status: 500,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!PaymentError::Malformed("x".into()).is_retryable());
        assert!(!PaymentError::BreakerOpen.is_retryable());
        assert!(PaymentError::BreakerOpen.is_unavailable());
    }
}
