//! Filling the forward queue: the stored-offline card tenders of a sale fact head office
//! just projected become `card_forwards` rows, in the projection's transaction, so a
//! tender is queued exactly when its sale is stored and never twice (tender id key).

use caja_shared::facts::{Fact, FactBody};
use caja_shared::payments::{CardMode, MAX_TOKEN_LEN};

use crate::db::{CardForward, DbError, ForwardState, PaymentDb};

/// Queues the stored-offline card tenders of `fact` (a sale; other facts queue nothing)
/// and returns how many rows were new. Tenders without an id, with a non-positive
/// amount or an unusable token are logged and skipped (nothing can be forwarded for them;
/// the fact itself stays stored).
///
/// # Errors
/// [`DbError`].
pub(crate) fn queue_stored_tenders(db: &impl PaymentDb, fact: &Fact, now: i64) -> Result<usize, DbError> {
    let FactBody::Sale(sale) = &fact.body else {
        return Ok(0);
    };
    let mut queued = 0;
    for t in &sale.tenders {
        let Some(card) = &t.card else { continue };
        let CardMode::StoredOffline { forward_by } = &card.mode else {
            continue;
        };
        let Some(id) = &t.id else {
            tracing::warn!(fact = %fact.id, "stored-offline card tender without an id; not forwarded");
            continue;
        };
        if t.amount_minor <= 0
            || card.token.is_empty()
            || card.token.len() > MAX_TOKEN_LEN
            || card.token.chars().any(|c| !c.is_ascii_graphic())
        {
            tracing::warn!(fact = %fact.id, tender = %id, "stored-offline card tender with a bad amount or token; not forwarded");
            continue;
        }
        let row = CardForward {
            tender: id.to_string(),
            store: fact.store.to_string(),
            sale: fact.id.to_string(),
            receipt_no: sale.receipt_no.clone(),
            amount_minor: t.amount_minor,
            currency: sale.currency.code().to_string(),
            token: card.token.clone(),
            forward_by: forward_by.timestamp(),
            state: ForwardState::Pending,
            attempts: 0,
            provider_ref: None,
            code: None,
            message: None,
            created_at: now,
            updated_at: now,
            next_attempt_at: now,
        };
        if db.insert_card_forward(&row)? {
            queued += 1;
        }
    }
    Ok(queued)
}
