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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use caja_shared::facts::{Tender, TenderKind, tests_support};
    use caja_shared::ids::TenderId;
    use caja_shared::payments::CardPayment;
    use chrono::Utc;

    fn card(id: Option<TenderId>, token: &str, mode: CardMode, amount: i64) -> Tender {
        Tender {
            kind: TenderKind::Card,
            label: None,
            amount_minor: amount,
            id,
            reference: None,
            card: Some(CardPayment {
                token: token.into(),
                mode,
            }),
        }
    }

    #[test]
    fn only_usable_stored_tenders_are_queued_once() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        let stored = CardMode::StoredOffline {
            forward_by: Utc::now(),
        };
        let mut fact = tests_support::sample();
        let FactBody::Sale(s) = &mut fact.body else {
            panic!("a sale")
        };
        let good = TenderId::new();
        s.tenders = vec![
            card(Some(good), "tok_approve", stored.clone(), 500),
            card(None, "tok_approve", stored.clone(), 100),
            card(Some(TenderId::new()), "tok bad\n", stored.clone(), 100),
            card(Some(TenderId::new()), "tok_approve", stored, -5),
            card(
                Some(TenderId::new()),
                "tok_approve",
                CardMode::Online {
                    provider_ref: "pi_1".into(),
                },
                100,
            ),
        ];
        assert_eq!(queue_stored_tenders(&conn, &fact, 1).unwrap(), 1);
        assert_eq!(
            queue_stored_tenders(&conn, &fact, 2).unwrap(),
            0,
            "a replay queues nothing"
        );
        let row = conn.card_forward(&good.to_string()).unwrap().unwrap();
        assert_eq!((row.amount_minor, row.state), (500, ForwardState::Pending));
        assert_eq!(row.sale, fact.id.to_string());
    }
}
