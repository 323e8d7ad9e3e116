//! The online path of a tokenized card tender: authorized and captured with the card
//! provider (`caja_payments`, behind a retrying circuit breaker) before the sale is
//! written, on the request's task, never on the writer thread.
//!
//! A decline is final for the sale (422 `card-declined`); a provider that cannot be
//! reached (timeouts, 5xx, breaker open) leaves the tender to the store-and-forward rules
//! ([`super::card::check_offline`]).

use std::sync::Arc;

use caja_payments::{
    AuthOutcome, AuthorizeRequest, CaptureRequest, PaymentError, PaymentProvider, RefundRequest,
    ResilienceConfig, ResilientProvider, StripeClient, StripeConfig,
};
use caja_shared::facts::TenderKind;
use caja_shared::money::{Currency, parse_minor};
use caja_shared::payments::TenderId;

use super::card::{OnlineCard, check_tender};
use super::{SaleError, SaleRequest};

/// The node's card provider: a Stripe-compatible client behind retries and a breaker.
/// Cheap to clone.
pub type Provider = Arc<ResilientProvider<StripeClient>>;

/// Builds the provider from the node's settings.
///
/// # Errors
/// [`PaymentError`] when the HTTP client cannot be built.
pub fn provider(url: &str, key: &str) -> Result<Provider, PaymentError> {
    let client = StripeClient::new(StripeConfig::new(url, key))?;
    Ok(Arc::new(ResilientProvider::new(
        client,
        ResilienceConfig::default(),
    )))
}

/// Authorizes and captures every tokenized card tender of `req` (`result[i]` for tender
/// `i`; `None` where the tender is not a tokenized card or the provider cannot be
/// reached, so the store-and-forward rules apply to it).
///
/// # Errors
/// [`SaleError::Invalid`] for a bad tender, [`SaleError::CardDeclined`] with the
/// provider's sentence for the cashier (after voiding the cards already taken for this
/// sale).
///
/// `seed` (the request's user and `Idempotency-Key`) makes the tender ids deterministic,
/// so a retried request reuses the provider's idempotency keys and is charged once.
pub async fn charge(
    p: &Provider,
    req: &SaleRequest,
    currency: Currency,
    seed: Option<&str>,
) -> Result<Vec<Option<OnlineCard>>, SaleError> {
    let mut out = Vec::with_capacity(req.tenders.len());
    for (i, t) in req.tenders.iter().enumerate() {
        check_tender(i, t)?;
        let Some(token) = t.card_token.as_ref().filter(|_| t.kind == TenderKind::Card) else {
            out.push(None);
            continue;
        };
        let amount = parse_minor(&t.amount, currency)
            .map_err(|e| SaleError::invalid(format!("tenders[{i}].amount"), e.to_string()))?;
        if amount <= 0 {
            out.push(None);
            continue;
        }
        let id = tender_id(seed, i);
        let auth = AuthorizeRequest {
            tender: id,
            amount_minor: amount,
            currency,
            card_token: token.clone(),
        };
        let outcome = match p.authorize(&auth).await {
            Ok(o) => o,
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "card provider unreachable: the card falls to the offline rules");
                out.push(None);
                continue;
            }
            Err(e) => {
                release(p, &out).await;
                return Err(SaleError::CardDeclined(format!(
                    "the card provider refused the payment ({e}): ask for another payment"
                )));
            }
        };
        let intent = match outcome {
            AuthOutcome::Authorized(intent) => intent,
            AuthOutcome::Declined(d) => {
                release(p, &out).await;
                return Err(SaleError::CardDeclined(format!(
                    "{} ({})",
                    d.code.cashier_text(),
                    d.code.code()
                )));
            }
        };
        let cap = CaptureRequest {
            tender: id,
            intent: intent.id.clone(),
            amount_minor: None,
        };
        match p.capture(&cap).await {
            Ok(captured) => out.push(Some(OnlineCard {
                id,
                provider_ref: captured.id.0,
            })),
            Err(e) => {
                // Authorized but not captured: void it and take the card offline instead,
                // never twice (the offline tender gets a new id only if this one is voided).
                tracing::warn!(error = %e, intent = %intent.id, "capture failed: voiding, the card falls to the offline rules");
                let _ = p
                    .cancel(&caja_payments::CancelRequest {
                        tender: id,
                        intent: intent.id,
                    })
                    .await;
                out.push(None);
            }
        }
    }
    Ok(out)
}

/// The id of tender `i`: derived from `seed` (SHA-256) when there is one, else fresh.
fn tender_id(seed: Option<&str>, i: usize) -> TenderId {
    use sha2::Digest;
    let Some(seed) = seed else { return TenderId::new() };
    let d = sha2::Sha256::digest(format!("caja-tender/{seed}/{i}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    TenderId(uuid::Builder::from_random_bytes(b).into_uuid())
}

/// Gives back the money of cards already captured for a sale that will not be written.
pub async fn release(p: &Provider, cards: &[Option<OnlineCard>]) {
    for c in cards.iter().flatten() {
        let r = RefundRequest {
            tender: c.id,
            seq: 0,
            intent: caja_payments::IntentId(c.provider_ref.clone()),
            amount_minor: None,
        };
        if let Err(e) = p.refund(&r).await {
            tracing::error!(error = %e, intent = %c.provider_ref, "could not refund a card of a sale that was not recorded");
        }
    }
}
