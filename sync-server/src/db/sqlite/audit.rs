//! [`AuditDb`] for SQLite: the `audit` table.

use chrono::DateTime;
use rusqlite::{Connection, params};
use serde_json::Value;

use crate::audit::{AuditEntry, AuditQuery};
use crate::db::{AuditDb, AuditRow, DbError};

/// The audit table, and the renaming of kinds written by older versions. Idempotent.
pub const AUDIT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    store      TEXT,
    node       TEXT,
    actor_id   TEXT,
    actor_name TEXT,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL,
    fact_id    TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_by_at ON audit(at);
-- Kinds written before the shared vocabulary (caja_shared::audit), renamed.
UPDATE audit SET kind = 'fact.login.failed' WHERE kind = 'fact.security.login_failed';
UPDATE audit SET kind = 'fact.login.succeeded' WHERE kind = 'fact.security.login_succeeded';
UPDATE audit SET kind = 'fact.login.locked' WHERE kind = 'fact.security.locked';
UPDATE audit SET kind = 'fact.logout' WHERE kind = 'fact.security.logout';
UPDATE audit SET kind = 'fact.session.revoked' WHERE kind = 'fact.security.session_revoked';
UPDATE audit SET kind = 'fact.override.granted' WHERE kind = 'fact.security.override_granted';
UPDATE audit SET kind = 'fact.override.used' WHERE kind = 'fact.override';
";

impl AuditDb for Connection {
    fn insert_audit(&self, row: &AuditRow<'_>) -> Result<bool, DbError> {
        let n = self
            .prepare_cached(
                "INSERT OR IGNORE INTO audit (at, store, node, actor_id, actor_name, kind, detail, fact_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                row.at,
                row.store,
                row.node,
                row.actor_id,
                row.actor_name,
                row.kind,
                row.detail,
                row.fact_id,
            ])?;
        Ok(n > 0)
    }

    fn list_audit(&self, q: &AuditQuery, limit: u32) -> Result<Vec<AuditEntry>, DbError> {
        let mut stmt = self.prepare_cached(
            "SELECT id, at, store, node, actor_id, actor_name, kind, detail, fact_id FROM audit
             WHERE (?1 IS NULL OR store = ?1) AND (?2 IS NULL OR at >= ?2) AND (?3 IS NULL OR at <= ?3)
               AND (?5 IS NULL OR store IN (SELECT value FROM json_each(?5)))
               AND (?6 IS NULL OR kind = ?6 OR substr(kind, 1, length(?6) + 1) = ?6 || '.')
             ORDER BY at DESC, id DESC LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                q.store,
                q.from.map(|t| t.timestamp()),
                q.to.map(|t| t.timestamp()),
                limit,
                q.within
                    .as_ref()
                    .map(|w| serde_json::to_string(w).unwrap_or_else(|_| "[]".into())),
                q.kind,
            ],
            |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: DateTime::from_timestamp(r.get(1)?, 0).unwrap_or_default(),
                    store: r.get(2)?,
                    node: r.get(3)?,
                    actor_id: r.get(4)?,
                    actor_name: r.get(5)?,
                    kind: r.get(6)?,
                    detail: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or(Value::Null),
                    fact_id: r.get(8)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
