//! Idempotency keys: derived from stable ids only, so a retry reuses the key.
//!
//! A provider charges once per key (Stripe keeps a key's first answer for 24 hours), so the
//! key must be the same on every attempt of the same operation and different for different
//! operations. The key is `caja-v1-<tender id>-<operation>`: the tender id is chosen once
//! when the cashier starts the card tender and stored with the sale, the operation names
//! the step. Attempt numbers, clocks, amounts and tokens never enter it (they are not
//! parameters of [`idempotency_key`]); a property test below checks that requests which
//! differ only in those fields get the same key.
//!
//! Consequence for callers: a declined tender is finished. If the customer offers another
//! card, that is a new tender with a new id; reusing the declined tender's id with another
//! token or amount is refused by the provider (same key, other body: `idempotency_error`).

use std::fmt;

use crate::provider::{AuthorizeRequest, CancelRequest, CaptureRequest, RefundRequest, TenderId};

/// One provider operation on a tender; each gets its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Creating the PaymentIntent (first half of an authorization).
    Create,
    /// Confirming it with the card token (second half of an authorization).
    Confirm,
    /// Capturing the authorization.
    Capture,
    /// Voiding the authorization.
    Cancel,
    /// The n-th refund (0, 1, …) of the tender.
    Refund(u32),
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create => f.write_str("create"),
            Self::Confirm => f.write_str("confirm"),
            Self::Capture => f.write_str("capture"),
            Self::Cancel => f.write_str("cancel"),
            Self::Refund(n) => write!(f, "refund-{n}"),
        }
    }
}

/// The idempotency key of `op` on `tender`: `caja-v1-<tender uuid>-<op>`, at most 64 ASCII
/// bytes (Stripe allows 255). The only function that makes keys.
pub fn idempotency_key(tender: TenderId, op: Operation) -> String {
    format!("caja-v1-{}-{op}", tender.0.hyphenated())
}

impl AuthorizeRequest {
    /// The keys of the two calls of an authorization: (create, confirm).
    pub fn idempotency_keys(&self) -> (String, String) {
        (
            idempotency_key(self.tender, Operation::Create),
            idempotency_key(self.tender, Operation::Confirm),
        )
    }
}

impl CaptureRequest {
    /// The key of this capture.
    pub fn idempotency_key(&self) -> String {
        idempotency_key(self.tender, Operation::Capture)
    }
}

impl CancelRequest {
    /// The key of this cancel.
    pub fn idempotency_key(&self) -> String {
        idempotency_key(self.tender, Operation::Cancel)
    }
}

impl RefundRequest {
    /// The key of this refund (its tender and sequence number).
    pub fn idempotency_key(&self) -> String {
        idempotency_key(self.tender, Operation::Refund(self.seq))
    }
}

#[cfg(test)]
mod tests {
    use caja_shared::money::Currency;
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::provider::IntentId;

    fn tender(b: u128) -> TenderId {
        TenderId(Uuid::from_u128(b))
    }

    #[test]
    fn format_is_stable() {
        let t = tender(0x0190_0000_0000_7000_8000_0000_0000_0001);
        assert_eq!(
            idempotency_key(t, Operation::Refund(2)),
            "caja-v1-01900000-0000-7000-8000-000000000001-refund-2"
        );
        assert!(idempotency_key(t, Operation::Refund(u32::MAX)).len() <= 64);
    }

    proptest! {
        /// Volatile fields (amounts, tokens, currency, the attempt number, the time) never
        /// change a key; the tender and the operation always do.
        #[test]
        fn volatile_fields_never_change_the_key(
            t in any::<u128>(), other in any::<u128>(),
            a1 in any::<i64>(), a2 in any::<i64>(),
            tok in "tok_[a-z]{1,10}", attempt in 0u32..100, now in any::<u64>(),
            seq in any::<u32>(), cap in proptest::option::of(any::<i64>()),
        ) {
            let _volatile = (attempt, now); // not parameters of any key function
            let r1 = AuthorizeRequest { tender: tender(t), amount_minor: a1, currency: Currency::GBP, card_token: tok.clone() };
            let r2 = AuthorizeRequest { tender: tender(t), amount_minor: a2, currency: Currency::USD, card_token: format!("{tok}x") };
            prop_assert_eq!(r1.idempotency_keys(), r2.idempotency_keys());

            let c1 = CaptureRequest { tender: tender(t), intent: IntentId("pi_a".into()), amount_minor: cap };
            let c2 = CaptureRequest { amount_minor: Some(a2), intent: IntentId("pi_b".into()), ..c1.clone() };
            prop_assert_eq!(c1.idempotency_key(), c2.idempotency_key());

            let f1 = RefundRequest { tender: tender(t), seq, intent: IntentId("pi_a".into()), amount_minor: Some(a1) };
            let f2 = RefundRequest { amount_minor: None, ..f1.clone() };
            prop_assert_eq!(f1.idempotency_key(), f2.idempotency_key());

            // What must differ does.
            let ops = [Operation::Create, Operation::Confirm, Operation::Capture, Operation::Cancel, Operation::Refund(seq), Operation::Refund(seq.wrapping_add(1))];
            for (i, a) in ops.iter().enumerate() {
                for b in &ops[i + 1..] {
                    prop_assert_ne!(idempotency_key(tender(t), *a), idempotency_key(tender(t), *b));
                }
            }
            if t != other {
                prop_assert_ne!(idempotency_key(tender(t), Operation::Capture), idempotency_key(tender(other), Operation::Capture));
            }
        }
    }
}
