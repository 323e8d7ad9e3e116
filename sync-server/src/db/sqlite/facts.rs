//! [`FactDb`] for SQLite: the `facts` and `fact_tenders` tables and the report queries.

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{DayTotal, DbError, FactDb, FactRow, TenderTotal};

/// The business-day filter of the report queries: currency `?1`, days `?2..=?3`.
const FILTER: &str = "f.currency = ?1
    AND (?2 IS NULL OR f.business_date >= ?2)
    AND (?3 IS NULL OR f.business_date <= ?3)";

impl FactDb for Connection {
    fn insert_fact(&self, row: &FactRow<'_>) -> Result<bool, DbError> {
        let fact = row.fact;
        let id = fact.id.to_string();
        let inserted = self
            .prepare_cached(
                "INSERT OR IGNORE INTO facts (id, store, business_date, kind, currency, total_minor, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                id,
                fact.store.as_str(),
                fact.business_date.format("%Y-%m-%d").to_string(),
                row.kind,
                row.currency,
                row.total_minor,
                fact.encode(),
            ])?;
        if inserted == 0 {
            return Ok(false);
        }
        let mut stmt = self.prepare_cached(
            "INSERT OR IGNORE INTO fact_tenders (fact_id, idx, name, amount_minor) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (i, (name, amount)) in row.tenders.iter().enumerate() {
            stmt.execute(params![id, i as i64, name, amount])?;
        }
        Ok(true)
    }

    fn fact_count(&self) -> Result<u64, DbError> {
        let n: i64 = self.query_row("SELECT COUNT(*) FROM facts", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn fact_body(&self, id: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .query_row("SELECT body FROM facts WHERE id = ?1", params![id], |r| r.get(0))
            .optional()?)
    }

    fn day_totals(
        &self,
        currency: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<DayTotal>, DbError> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT f.store, f.business_date, f.kind, COUNT(*), SUM(f.total_minor) FROM facts f
             WHERE f.kind IN ('sale', 'refund') AND {FILTER} GROUP BY 1, 2, 3"
        ))?;
        let rows = stmt.query_map(params![currency, from, to], |r| {
            Ok(DayTotal {
                store: r.get(0)?,
                date: r.get(1)?,
                kind: r.get(2)?,
                count: r.get(3)?,
                sum_minor: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn tender_totals(
        &self,
        currency: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<TenderTotal>, DbError> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT f.store, f.business_date, t.name, SUM(t.amount_minor)
             FROM fact_tenders t JOIN facts f ON f.id = t.fact_id
             WHERE {FILTER} GROUP BY 1, 2, 3"
        ))?;
        let rows = stmt.query_map(params![currency, from, to], |r| {
            Ok(TenderTotal {
                store: r.get(0)?,
                date: r.get(1)?,
                name: r.get(2)?,
                sum_minor: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
