//! The facts projection: ledger facts the server received, as rows for reports.
//!
//! `facts` holds one row per fact (id, store, business day, kind, currency, total);
//! `fact_tenders` one row per tender of a sale or refund, by report name. A sale's cash
//! tenders are recorded net of the change given, so a day's tenders add up to its takings.
//! Rows are derived from the ledger documents and written in the same SQLite transaction
//! as the document change (through `FactDb`); a replayed fact is harmless.

use crate::db::{FactDb, FactRow, PaymentDb};
use crate::error::ServerError;
use caja_shared::facts::{Fact, FactBody, takings_by_tender};
use caja_shared::ids::StoreCode;

/// How a fact counts in reports.
fn kind(fact: &Fact) -> &'static str {
    match fact.body {
        FactBody::Sale(_) => "sale",
        FactBody::Refund(_) => "refund",
        FactBody::StockMovement(_) => "stock_movement",
        FactBody::Security(_) => "security",
        FactBody::Payment(_) => "payment",
    }
}

/// Outcome of projecting one fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    /// A new row was written.
    Inserted,
    /// The fact was already projected.
    Duplicate,
    /// The fact claims another store than its ledger's and was skipped.
    WrongStore,
    /// An amount is beyond [`caja_shared::facts::MAX_AMOUNT_MINOR`] (no node of ours
    /// writes such a fact) and was skipped, so it cannot break the reports.
    OutOfBounds,
}

/// Projects one fact of `ledger_store`'s ledger. A fact whose own store differs is
/// skipped ([`Projected::WrongStore`]); the caller logs it. A new sale's stored-offline
/// card tenders are queued for forwarding (`card_forwards`) in the same transaction.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn project_fact(
    db: &(impl FactDb + PaymentDb),
    ledger_store: &StoreCode,
    fact: &Fact,
) -> Result<Projected, ServerError> {
    if &fact.store != ledger_store {
        return Ok(Projected::WrongStore);
    }
    if !fact.amounts_within_bounds() {
        return Ok(Projected::OutOfBounds);
    }
    let (currency, tenders) = match &fact.body {
        FactBody::Sale(s) => (Some(s.currency), takings_by_tender(&s.tenders, s.change_minor)),
        FactBody::Refund(r) => (
            Some(r.currency),
            r.tenders
                .iter()
                .map(|t| (t.report_name(), t.amount_minor))
                .collect(),
        ),
        FactBody::Payment(p) => (Some(p.currency), Vec::new()),
        FactBody::StockMovement(_) | FactBody::Security(_) => (None, Vec::new()),
    };
    let inserted = db.insert_fact(&FactRow {
        fact,
        kind: kind(fact),
        currency: currency.map(|c| c.code().to_string()),
        total_minor: fact.takings_minor(),
        tenders,
    })?;
    if inserted {
        crate::payments::queue::queue_stored_tenders(db, fact, chrono::Utc::now().timestamp())?;
    }
    Ok(if inserted {
        Projected::Inserted
    } else {
        Projected::Duplicate
    })
}
