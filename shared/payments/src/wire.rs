//! The JSON shapes of the Stripe API subset Caja speaks (PaymentIntent, Refund, error),
//! shared by the client ([`crate::stripe`]) and the simulator ([`crate::sim`]).
//!
//! Compatibility rule: these follow Stripe's published objects; unknown fields are
//! ignored when reading, and optional fields are `Option` so a leaner answer still parses.

use serde::{Deserialize, Serialize};

/// A PaymentIntent object (the fields Caja reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntentBody {
    /// `pi_…`.
    pub id: String,
    /// Always `"payment_intent"`.
    #[serde(default)]
    pub object: String,
    /// Amount in minor units.
    pub amount: i64,
    /// Captured minor units.
    #[serde(default)]
    pub amount_received: i64,
    /// Lowercase ISO 4217 code (`"gbp"`).
    pub currency: String,
    /// Stripe's status name.
    pub status: String,
    /// `"manual"` or `"automatic"`.
    #[serde(default)]
    pub capture_method: Option<String>,
    /// The card token or payment method used.
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// A Refund object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundBody {
    /// `re_…`.
    pub id: String,
    /// Always `"refund"`.
    #[serde(default)]
    pub object: String,
    /// Refunded minor units.
    pub amount: i64,
    /// Lowercase ISO 4217 code.
    pub currency: String,
    /// The refunded intent's id.
    pub payment_intent: String,
    /// `succeeded`, `pending`, `failed`, `canceled`.
    pub status: String,
}

/// Stripe's error envelope: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The body of a Stripe error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `card_error`, `invalid_request_error`, `api_error`, `idempotency_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// A short code (`card_declined`, `resource_missing`, `amount_too_large`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// For card errors, the issuer's reason (`insufficient_funds`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
    /// The parameter at fault, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// For card errors on an intent, the intent after the decline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<PaymentIntentBody>,
}
