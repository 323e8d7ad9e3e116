//! Card payments as facts: what a card tender carries, the events of its life, and the
//! store's rules for taking cards while the provider or the link is down.
//!
//! A card tender's state is derived from append-only [`PaymentEvent`] facts, never edited:
//! `stored_offline → forwarded → captured | declined | expired`, or online
//! `authorized → captured`, then possibly `voided` or `refunded`. Terminal states
//! ([`PaymentOutcome::is_terminal`]) never go back. Every event names the tender
//! ([`TenderId`]) and the sale fact it belongs to, and the provider idempotency key it was
//! sent with, which is derived only from the tender id (`caja_payments::idempotency_key`),
//! so a retry after a lost answer can never charge twice.
//!
//! Store-and-forward rules (what commercial terminals do offline; Square: a 24 h window
//! and per-payment limits; Clover: per-transaction and total caps): a card is taken
//! offline only up to a floor limit per sale, within a cap on the total stored per node
//! and per store, and within an acceptance window from the first stored payment; some
//! kinds are never taken offline. The limits are [`PaymentSettings`], set by head office
//! in the `store/<store>` document.
//!
//! Compatibility rule: fields are append-only; new fields are `Option` or
//! `#[serde(default)]`; enum variants are only added.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::facts::TenderKind;
use crate::ids::FactId;
use crate::money::Currency;

pub use crate::ids::TenderId;

/// Longest card token accepted (provider tokens such as `tok_…`/`pm_…` are far shorter).
pub const MAX_TOKEN_LEN: usize = 64;

/// What a card tender carries besides its amount. Card numbers never reach Caja: the
/// payment terminal gives a provider token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayment {
    /// The provider's card token (at most [`MAX_TOKEN_LEN`] characters), never a PAN.
    pub token: String,
    /// How the node took it.
    pub mode: CardMode,
}

/// How a node took a card tender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CardMode {
    /// Authorized (and captured) with the provider while the customer waited.
    Online {
        /// The provider's payment (intent) id.
        provider_ref: String,
    },
    /// Stored on the node to be forwarded by head office when the link returns
    /// (store-and-forward), under the store's [`PaymentSettings`].
    StoredOffline {
        /// The last moment head office may still forward it (UTC); after that it expires
        /// into the reconciliation queue.
        forward_by: DateTime<Utc>,
    },
}

/// One event in a card tender's life, recorded as its own fact (`FactBody::Payment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    /// The tender this event is about.
    pub tender: TenderId,
    /// The sale (or refund) fact that holds the tender.
    pub sale: FactId,
    /// The sale's receipt number, for people reading the event.
    #[serde(default)]
    pub receipt_no: Option<String>,
    /// What happened.
    pub outcome: PaymentOutcome,
    /// Amount in minor units of `currency` (positive for a payment, negative for a refund).
    pub amount_minor: i64,
    /// Currency of the amount.
    pub currency: Currency,
    /// The provider's reference (payment intent or refund id), when there is one.
    #[serde(default)]
    pub provider_ref: Option<String>,
    /// The idempotency key sent to the provider for this step, when one was sent.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The provider's decline code (`card_declined`, `insufficient_funds`, …), or why it
    /// expired.
    #[serde(default)]
    pub code: Option<String>,
    /// A sentence a manager can read.
    #[serde(default)]
    pub message: Option<String>,
}

/// The outcome a [`PaymentEvent`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// Taken offline at the till, waiting to be forwarded.
    StoredOffline,
    /// Head office sent it to the provider (the answer is a later event).
    Forwarded,
    /// The provider authorized it (not yet captured).
    Authorized,
    /// The money was captured: final.
    Captured,
    /// The provider refused it: final; the sale stays and the case goes to the
    /// reconciliation queue.
    Declined,
    /// An authorization was cancelled before capture: final.
    Voided,
    /// Money went back to the card.
    Refunded,
    /// Not forwarded before its `forward_by` deadline: final, into the queue.
    Expired,
}

impl PaymentOutcome {
    /// Whether nothing may follow this outcome except a refund of captured money.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PaymentOutcome::Captured
                | PaymentOutcome::Declined
                | PaymentOutcome::Voided
                | PaymentOutcome::Expired
        )
    }

    /// The stable name (`stored_offline`, `captured`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentOutcome::StoredOffline => "stored_offline",
            PaymentOutcome::Forwarded => "forwarded",
            PaymentOutcome::Authorized => "authorized",
            PaymentOutcome::Captured => "captured",
            PaymentOutcome::Declined => "declined",
            PaymentOutcome::Voided => "voided",
            PaymentOutcome::Refunded => "refunded",
            PaymentOutcome::Expired => "expired",
        }
    }
}

/// A store's rules for card payments while offline, in minor units of the chain currency
/// and seconds. Head office sets them (`store/<store>` document); nodes read them.
/// Defaults follow the issue that introduced them: floor limit 100.00, caps 2,000.00 per
/// node and 5,000.00 per store, acceptance window 24 h, forwarding deadline 72 h.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// Largest card amount one sale may store offline, minor units.
    pub floor_limit_minor: i64,
    /// Largest total one node may hold stored offline and not yet forwarded, minor units.
    pub node_cap_minor: i64,
    /// Largest total the store's nodes together may hold, minor units.
    pub store_cap_minor: i64,
    /// How long after the first stored payment a node keeps accepting offline cards,
    /// seconds.
    pub window_secs: u64,
    /// How long head office has to forward a stored payment before it expires, seconds.
    pub forward_deadline_secs: u64,
    /// Card kinds never taken offline (e.g. `gift_card`, `keyed`, `cashback`).
    pub never_offline: Vec<String>,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            floor_limit_minor: 10_000,
            node_cap_minor: 200_000,
            store_cap_minor: 500_000,
            window_secs: 24 * 3600,
            forward_deadline_secs: 72 * 3600,
            never_offline: vec!["gift_card".into(), "keyed".into(), "cashback".into()],
        }
    }
}

impl PaymentSettings {
    /// Checks the settings make sense.
    ///
    /// # Errors
    /// A message naming the field: a negative amount, a cap below the floor limit, a zero
    /// window or deadline.
    pub fn validate(&self) -> Result<(), String> {
        if self.floor_limit_minor < 0 || self.node_cap_minor < 0 || self.store_cap_minor < 0 {
            return Err("floor_limit_minor, node_cap_minor and store_cap_minor must not be negative".into());
        }
        if self.node_cap_minor > self.store_cap_minor {
            return Err("node_cap_minor must not exceed store_cap_minor".into());
        }
        if self.window_secs == 0 || self.forward_deadline_secs == 0 {
            return Err("window_secs and forward_deadline_secs must be positive".into());
        }
        Ok(())
    }
}

/// A tender kind as reports name it, for the payment-event's kind when it is not a card.
pub fn kind_name(kind: TenderKind) -> &'static str {
    match kind {
        TenderKind::Cash => "cash",
        TenderKind::Card => "card",
        TenderKind::Other => "other",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_terminal_states_are_final() {
        PaymentSettings::default().validate().unwrap();
        assert!(PaymentOutcome::Captured.is_terminal());
        assert!(PaymentOutcome::Declined.is_terminal());
        assert!(!PaymentOutcome::StoredOffline.is_terminal());
        assert!(!PaymentOutcome::Forwarded.is_terminal());
        let bad = PaymentSettings {
            node_cap_minor: 600_000,
            ..PaymentSettings::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn events_round_trip_as_json() {
        let e = PaymentEvent {
            tender: TenderId::new(),
            sale: FactId::new(),
            receipt_no: Some("uk-T1-7".into()),
            outcome: PaymentOutcome::Declined,
            amount_minor: 1234,
            currency: "GBP".parse().unwrap(),
            provider_ref: Some("pi_1".into()),
            idempotency_key: Some("caja-v1-x-capture".into()),
            code: Some("card_declined".into()),
            message: None,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<PaymentEvent>(&text).unwrap(), e);
        assert!(text.contains("\"outcome\":\"declined\""), "{text}");
    }
}
