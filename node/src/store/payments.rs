//! The `card_payments` projection: one row per tokenized card tender, its state derived
//! from the sale fact and every later `Payment` fact of the store's ledgers (this node's
//! own or head office's, arriving by sync). A terminal state never goes back
//! ([`PaymentOutcome::is_terminal`]); only a refund may follow a capture.

use caja_shared::facts::{Fact, FactBody, Tender};
use caja_shared::payments::{CardMode, PaymentEvent, PaymentOutcome};
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// The states in which a card stored offline is still outstanding (counts against the
/// caps and keeps the acceptance window open), as an SQL list.
pub const OUTSTANDING_SQL: &str = "('stored_offline', 'forwarded', 'authorized')";

/// Whether `next` may follow `current` in a tender's life: nothing follows a terminal
/// state except a refund of captured money; `stored_offline` is only ever the first state.
pub fn may_follow(current: PaymentOutcome, next: PaymentOutcome) -> bool {
    if current == next {
        return false;
    }
    if current.is_terminal() {
        return current == PaymentOutcome::Captured && next == PaymentOutcome::Refunded;
    }
    if current == PaymentOutcome::Refunded {
        return false;
    }
    next != PaymentOutcome::StoredOffline
}

fn outcome(name: &str) -> Option<PaymentOutcome> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// Inserts the rows of a sale's or refund's tokenized card tenders (left alone when a
/// row already exists, e.g. a `Payment` event that arrived first).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn project_tenders(conn: &Connection, fact: &Fact) -> Result<(), StoreError> {
    let (receipt, currency, tenders): (&str, _, &[Tender]) = match &fact.body {
        FactBody::Sale(s) => (s.receipt_no.as_str(), s.currency, s.tenders.as_slice()),
        FactBody::Refund(r) => (r.receipt_no.as_str(), r.currency, r.tenders.as_slice()),
        _ => return Ok(()),
    };
    let mut ins = conn.prepare_cached(
        "INSERT OR IGNORE INTO card_payments (tender_id, sale_id, node_id, receipt_no, amount_minor, currency,
           mode, state, forward_by, provider_ref, stored_at_ms, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for t in tenders {
        let (Some(id), Some(card)) = (&t.id, &t.card) else {
            continue;
        };
        let (mode, state, forward_by, provider_ref) = match &card.mode {
            CardMode::Online { provider_ref } => (
                "online",
                PaymentOutcome::Captured,
                None,
                Some(provider_ref.clone()),
            ),
            CardMode::StoredOffline { forward_by } => (
                "stored_offline",
                PaymentOutcome::StoredOffline,
                Some(forward_by.to_rfc3339()),
                None,
            ),
        };
        ins.execute(params![
            id.to_string(),
            fact.id.to_string(),
            fact.node.to_string(),
            receipt,
            t.amount_minor,
            currency.code(),
            mode,
            state.as_str(),
            forward_by,
            provider_ref,
            fact.hlc.wall_ms as i64,
            fact.occurred_at.to_rfc3339(),
        ])?;
    }
    Ok(())
}

/// Applies one `Payment` event to its tender's row: creates the row when the event comes
/// before its sale; moves the state only when [`may_follow`] allows it.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn apply_event(conn: &Connection, fact: &Fact, e: &PaymentEvent) -> Result<(), StoreError> {
    let tender = e.tender.to_string();
    let current: Option<String> = conn
        .prepare_cached("SELECT state FROM card_payments WHERE tender_id = ?1")?
        .query_row(params![tender], |r| r.get(0))
        .optional()?;
    let at = fact.occurred_at.to_rfc3339();
    match current {
        None => {
            let mode = if e.outcome == PaymentOutcome::StoredOffline {
                "stored_offline"
            } else {
                "unknown"
            };
            conn.prepare_cached(
                "INSERT INTO card_payments (tender_id, sale_id, node_id, receipt_no, amount_minor, currency,
                   mode, state, provider_ref, code, message, stored_at_ms, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                tender,
                e.sale.to_string(),
                fact.node.to_string(),
                e.receipt_no,
                e.amount_minor,
                e.currency.code(),
                mode,
                e.outcome.as_str(),
                e.provider_ref,
                e.code,
                e.message,
                fact.hlc.wall_ms as i64,
                at,
            ])?;
        }
        Some(cur) => {
            let allowed = outcome(&cur).is_none_or(|c| may_follow(c, e.outcome));
            if allowed {
                conn.prepare_cached(
                    "UPDATE card_payments SET state = ?2, provider_ref = COALESCE(?3, provider_ref),
                       code = COALESCE(?4, code), message = COALESCE(?5, message), updated_at = ?6
                     WHERE tender_id = ?1",
                )?
                .execute(params![
                    tender,
                    e.outcome.as_str(),
                    e.provider_ref,
                    e.code,
                    e.message,
                    at
                ])?;
            } else {
                tracing::debug!(tender = %tender, from = %cur, to = e.outcome.as_str(), "payment event ignored: state is final");
            }
        }
    }
    Ok(())
}

/// One card tender's row, for the sale view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRow {
    /// `online`, `stored_offline` or `unknown`.
    pub mode: String,
    /// The derived state (`stored_offline`, `captured`, …).
    pub state: String,
    /// The provider's reference, when known.
    pub provider_ref: Option<String>,
    /// The decline or expiry code, when any.
    pub code: Option<String>,
    /// The forwarding deadline (RFC 3339), for a stored payment.
    pub forward_by: Option<String>,
}

/// The card rows of one sale, by tender id.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn rows_of_sale(conn: &Connection, sale: &str) -> Result<Vec<(String, CardRow)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT tender_id, mode, state, provider_ref, code, forward_by FROM card_payments WHERE sale_id = ?1",
    )?;
    let rows = stmt
        .query_map(params![sale], |r| {
            Ok((
                r.get(0)?,
                CardRow {
                    mode: r.get(1)?,
                    state: r.get(2)?,
                    provider_ref: r.get(3)?,
                    code: r.get(4)?,
                    forward_by: r.get(5)?,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Cards stored offline and still outstanding: `(count, amount in minor units, earliest
/// stored time in ms since the epoch)`, for one node (`Some(node id)`) or every node of
/// the store (`None`).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn outstanding(conn: &Connection, node: Option<&str>) -> Result<(i64, i64, Option<i64>), StoreError> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0), MIN(stored_at_ms) FROM card_payments
         WHERE mode = 'stored_offline' AND state IN {OUTSTANDING_SQL} AND (?1 IS NULL OR node_id = ?1)"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![node], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentOutcome::*;

    #[test]
    fn terminal_states_never_go_back() {
        assert!(may_follow(StoredOffline, Forwarded));
        assert!(may_follow(Forwarded, Captured));
        assert!(may_follow(StoredOffline, Declined));
        assert!(may_follow(Captured, Refunded));
        assert!(!may_follow(Captured, Declined));
        assert!(!may_follow(Declined, Captured));
        assert!(!may_follow(Expired, Forwarded));
        assert!(!may_follow(Forwarded, StoredOffline));
        assert!(!may_follow(Refunded, Captured));
    }
}
