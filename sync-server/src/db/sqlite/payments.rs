//! [`PaymentDb`] for SQLite: the `card_forwards` table, head office's durable queue of
//! stored-offline card tenders to forward. Rows are kept at least 30 days after their
//! final state (providers keep idempotency keys about 24 h; this row is our own dedupe
//! record); nothing purges them yet.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::db::{CardForward, DbError, ForwardState, ForwardTotal, PaymentDb};

/// The forward queue. Idempotent.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS card_forwards (
    tender          TEXT PRIMARY KEY,
    store           TEXT NOT NULL,
    sale            TEXT NOT NULL,
    receipt_no      TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    token           TEXT NOT NULL,
    forward_by      INTEGER NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    provider_ref    TEXT,
    code            TEXT,
    message         TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS card_forwards_by_state ON card_forwards(state, next_attempt_at);
";

const COLUMNS: &str = "tender, store, sale, receipt_no, amount_minor, currency, token, forward_by, state, \
     attempts, provider_ref, code, message, created_at, updated_at, next_attempt_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<CardForward> {
    let state: String = r.get(8)?;
    Ok(CardForward {
        tender: r.get(0)?,
        store: r.get(1)?,
        sale: r.get(2)?,
        receipt_no: r.get(3)?,
        amount_minor: r.get(4)?,
        currency: r.get(5)?,
        token: r.get(6)?,
        forward_by: r.get(7)?,
        state: ForwardState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                8,
                rusqlite::types::Type::Text,
                format!("unknown card forward state {state:?}").into(),
            )
        })?,
        attempts: r.get(9)?,
        provider_ref: r.get(10)?,
        code: r.get(11)?,
        message: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        next_attempt_at: r.get(15)?,
    })
}

impl PaymentDb for Connection {
    fn insert_card_forward(&self, f: &CardForward) -> Result<bool, DbError> {
        let n = self
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO card_forwards ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))?
            .execute(params![
                f.tender,
                f.store,
                f.sale,
                f.receipt_no,
                f.amount_minor,
                f.currency,
                f.token,
                f.forward_by,
                f.state.as_str(),
                f.attempts,
                f.provider_ref,
                f.code,
                f.message,
                f.created_at,
                f.updated_at,
                f.next_attempt_at,
            ])?;
        Ok(n > 0)
    }

    fn card_forward(&self, tender: &str) -> Result<Option<CardForward>, DbError> {
        Ok(self
            .prepare_cached(&format!("SELECT {COLUMNS} FROM card_forwards WHERE tender = ?1"))?
            .query_row(params![tender], from_row)
            .optional()?)
    }

    fn card_forwards_in(&self, state: ForwardState, limit: u32) -> Result<Vec<CardForward>, DbError> {
        let rows = self
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM card_forwards WHERE state = ?1 \
                 ORDER BY next_attempt_at, created_at, tender LIMIT ?2"
            ))?
            .query_map(params![state.as_str(), limit], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn update_card_forward(&self, f: &CardForward) -> Result<(), DbError> {
        self.prepare_cached(
            "UPDATE card_forwards SET state = ?2, attempts = ?3, provider_ref = ?4, code = ?5, \
             message = ?6, updated_at = ?7, next_attempt_at = ?8 WHERE tender = ?1",
        )?
        .execute(params![
            f.tender,
            f.state.as_str(),
            f.attempts,
            f.provider_ref,
            f.code,
            f.message,
            f.updated_at,
            f.next_attempt_at,
        ])?;
        Ok(())
    }

    fn next_forward_due(&self) -> Result<Option<i64>, DbError> {
        Ok(self
            .prepare_cached(
                "SELECT MIN(next_attempt_at) FROM card_forwards WHERE state IN ('pending', 'forwarding')",
            )?
            .query_row([], |r| r.get(0))?)
    }

    fn forward_totals(&self, from: Option<i64>, to: Option<i64>) -> Result<Vec<ForwardTotal>, DbError> {
        let mut stmt = self.prepare_cached(
            "SELECT store, state, currency, COUNT(*), SUM(amount_minor) FROM card_forwards
             WHERE (?1 IS NULL OR created_at >= ?1) AND (?2 IS NULL OR created_at < ?2)
             GROUP BY store, state, currency ORDER BY store, state, currency",
        )?;
        let rows = stmt
            .query_map(params![from, to], |r| {
                let state: String = r.get(1)?;
                Ok((r.get(0)?, state, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<Vec<(String, String, String, i64, i64)>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(store, state, currency, count, amount_minor)| {
                Some(ForwardTotal {
                    store,
                    state: ForwardState::parse(&state)?,
                    currency,
                    count,
                    amount_minor,
                })
            })
            .collect())
    }
}
