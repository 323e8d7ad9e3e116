//! [`ReconcileDb`] for SQLite: the `reconciliation_cases` table.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::db::{Case, CaseFilter, CaseStatus, DbError, ReconcileDb};

/// The reconciliation queue. Idempotent. One case per kind and tender.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reconciliation_cases (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    store        TEXT NOT NULL,
    sale         TEXT,
    tender       TEXT,
    amount_minor INTEGER,
    currency     TEXT,
    status       TEXT NOT NULL,
    assignee     TEXT,
    resolution   TEXT,
    reason       TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    resolved_by  TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS reconciliation_cases_kind_tender
    ON reconciliation_cases(kind, tender) WHERE tender IS NOT NULL;
CREATE INDEX IF NOT EXISTS reconciliation_cases_by_status ON reconciliation_cases(status, id);
";

const COLUMNS: &str = "id, kind, store, sale, tender, amount_minor, currency, status, assignee, resolution, \
     reason, created_at, updated_at, resolved_by";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Case> {
    let status: String = r.get(7)?;
    Ok(Case {
        id: r.get(0)?,
        kind: r.get(1)?,
        store: r.get(2)?,
        sale: r.get(3)?,
        tender: r.get(4)?,
        amount_minor: r.get(5)?,
        currency: r.get(6)?,
        status: CaseStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                7,
                rusqlite::types::Type::Text,
                format!("unknown case status {status:?}").into(),
            )
        })?,
        assignee: r.get(8)?,
        resolution: r.get(9)?,
        reason: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        resolved_by: r.get(13)?,
    })
}

impl ReconcileDb for Connection {
    fn insert_case(&self, c: &Case) -> Result<bool, DbError> {
        let n = self
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO reconciliation_cases ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))?
            .execute(params![
                c.id,
                c.kind,
                c.store,
                c.sale,
                c.tender,
                c.amount_minor,
                c.currency,
                c.status.as_str(),
                c.assignee,
                c.resolution,
                c.reason,
                c.created_at,
                c.updated_at,
                c.resolved_by,
            ])?;
        Ok(n > 0)
    }

    fn case(&self, id: &str) -> Result<Option<Case>, DbError> {
        Ok(self
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM reconciliation_cases WHERE id = ?1"
            ))?
            .query_row(params![id], from_row)
            .optional()?)
    }

    fn list_cases(&self, f: &CaseFilter) -> Result<Vec<Case>, DbError> {
        let stores = f.stores.as_ref().map(|s| s.join("\n"));
        let rows = self
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM reconciliation_cases
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2)
                   AND (?3 IS NULL OR instr(char(10) || ?3 || char(10), char(10) || store || char(10)) > 0)
                   AND (?4 IS NULL OR id > ?4)
                 ORDER BY id LIMIT ?5"
            ))?
            .query_map(
                params![f.status.map(CaseStatus::as_str), f.kind, stores, f.after, f.limit],
                from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn update_case(&self, c: &Case) -> Result<(), DbError> {
        self.prepare_cached(
            "UPDATE reconciliation_cases SET status = ?2, assignee = ?3, resolution = ?4, reason = ?5, \
             updated_at = ?6, resolved_by = ?7 WHERE id = ?1",
        )?
        .execute(params![
            c.id,
            c.status.as_str(),
            c.assignee,
            c.resolution,
            c.reason,
            c.updated_at,
            c.resolved_by,
        ])?;
        Ok(())
    }
}
