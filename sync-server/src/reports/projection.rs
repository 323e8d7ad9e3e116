//! The facts projection: ledger facts the server received, as rows for reports.
//!
//! `facts` holds one row per fact (id, store, business day, kind, currency, total);
//! `fact_tenders` one row per tender of a sale or refund, by report name. A sale's cash
//! tenders are recorded net of the change given, so a day's tenders add up to its takings.
//! Rows are derived from the ledger documents and written in the same SQLite transaction
//! as the document change; `INSERT OR IGNORE` makes a replayed fact harmless.

use caja_shared::facts::{Fact, FactBody, Tender, TenderKind};
use caja_shared::ids::StoreCode;
use rusqlite::{Connection, params};

use crate::error::ServerError;

/// How a fact counts in reports.
fn kind(fact: &Fact) -> &'static str {
    match fact.body {
        FactBody::Sale(_) => "sale",
        FactBody::Refund(_) => "refund",
        FactBody::StockMovement(_) => "stock_movement",
        FactBody::Security(_) => "security",
    }
}

/// A sale's tenders with the change taken off its cash tenders (first cash tender first):
/// `(report name, amount in minor units)`.
pub fn takings_by_tender(tenders: &[Tender], change_minor: i64) -> Vec<(String, i64)> {
    let mut change = change_minor.max(0);
    tenders
        .iter()
        .map(|t| {
            let mut amount = t.amount_minor;
            if t.kind == TenderKind::Cash && change > 0 && amount > 0 {
                let take = change.min(amount);
                amount -= take;
                change -= take;
            }
            (t.report_name(), amount)
        })
        .collect()
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
/// skipped ([`Projected::WrongStore`]); the caller logs it.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn project_fact(
    conn: &Connection,
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
        FactBody::StockMovement(_) | FactBody::Security(_) => (None, Vec::new()),
    };
    let id = fact.id.to_string();
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO facts (id, store, business_date, kind, currency, total_minor, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            id,
            fact.store.as_str(),
            fact.business_date.format("%Y-%m-%d").to_string(),
            kind(fact),
            currency.map(|c| c.code().to_string()),
            fact.takings_minor(),
            fact.encode(),
        ])?;
    if inserted == 0 {
        return Ok(Projected::Duplicate);
    }
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO fact_tenders (fact_id, idx, name, amount_minor) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (i, (name, amount)) in tenders.iter().enumerate() {
        stmt.execute(params![id, i as i64, name, amount])?;
    }
    Ok(Projected::Inserted)
}

/// Number of projected facts, all stores.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn fact_count(conn: &Connection) -> Result<u64, ServerError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM facts", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The stored JSON of one projected fact, or `None`.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn fact_body(conn: &Connection, id: &str) -> Result<Option<String>, ServerError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row("SELECT body FROM facts WHERE id = ?1", params![id], |r| r.get(0))
        .optional()?)
}
