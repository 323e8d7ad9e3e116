//! [`TrustDb`] for SQLite: enrollment codes (stored as digests), enrolled nodes and the
//! client certificates issued to them.

use caja_shared::ids::{NodeId, StoreCode};
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{CertOwner, DbError, NodeRow, TrustDb};
use crate::stores::trust::CodeRefusal;

/// The tables this module owns. Idempotent.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS enrollment_codes (
    code_sha256  TEXT PRIMARY KEY,
    store        TEXT NOT NULL REFERENCES stores(code),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    used_by_node TEXT
);
CREATE TABLE IF NOT EXISTS nodes (
    node_id      TEXT PRIMARY KEY,
    store        TEXT NOT NULL REFERENCES stores(code),
    enrolled_at  INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_contact INTEGER
);
CREATE TABLE IF NOT EXISTS node_certs (
    cert_sha256 TEXT PRIMARY KEY,
    node_id     TEXT NOT NULL REFERENCES nodes(node_id),
    not_after   INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS node_certs_by_node ON node_certs(node_id);
";

impl TrustDb for Connection {
    fn insert_code(&self, digest: &str, store: &StoreCode, now: i64, expires_at: i64) -> Result<(), DbError> {
        self.prepare_cached(
            "INSERT INTO enrollment_codes (code_sha256, store, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![digest, store.as_str(), now, expires_at])?;
        Ok(())
    }

    fn consume_code(
        &self,
        digest: &str,
        node: &NodeId,
        now: i64,
    ) -> Result<Result<StoreCode, CodeRefusal>, DbError> {
        let row: Option<(String, i64, Option<i64>)> = self
            .prepare_cached("SELECT store, expires_at, used_at FROM enrollment_codes WHERE code_sha256 = ?1")?
            .query_row(params![digest], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((store, expires_at, used_at)) = row else {
            return Ok(Err(CodeRefusal::Unknown));
        };
        if used_at.is_some() {
            return Ok(Err(CodeRefusal::Used { store }));
        }
        if expires_at <= now {
            return Ok(Err(CodeRefusal::Expired { store }));
        }
        let Ok(code) = store.parse::<StoreCode>() else {
            return Ok(Err(CodeRefusal::Unknown));
        };
        self.prepare_cached(
            "UPDATE enrollment_codes SET used_at = ?2, used_by_node = ?3 WHERE code_sha256 = ?1",
        )?
        .execute(params![digest, now, node.to_string()])?;
        Ok(Ok(code))
    }

    fn insert_node(&self, node: &NodeId, store: &StoreCode, now: i64) -> Result<(), DbError> {
        self.prepare_cached("INSERT INTO nodes (node_id, store, enrolled_at) VALUES (?1, ?2, ?3)")?
            .execute(params![node.to_string(), store.as_str(), now])?;
        Ok(())
    }

    fn insert_cert(&self, sha256: &str, node: &NodeId, not_after: i64, now: i64) -> Result<(), DbError> {
        self.prepare_cached(
            "INSERT INTO node_certs (cert_sha256, node_id, not_after, issued_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![sha256, node.to_string(), not_after, now])?;
        Ok(())
    }

    fn identify(&self, cert_sha256: &str) -> Result<Option<CertOwner>, DbError> {
        let row: Option<(String, String, Option<i64>, i64)> = self
            .prepare_cached(
                "SELECT n.node_id, n.store, n.revoked_at, c.not_after FROM node_certs c
                 JOIN nodes n ON n.node_id = c.node_id WHERE c.cert_sha256 = ?1",
            )?
            .query_row(params![cert_sha256], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        Ok(row.and_then(|(node, store, revoked_at, not_after)| {
            Some(CertOwner {
                node: node.parse().ok()?,
                store: store.parse().ok()?,
                revoked_at,
                not_after,
            })
        }))
    }

    fn node(&self, node: &NodeId) -> Result<Option<(StoreCode, Option<i64>)>, DbError> {
        let row: Option<(String, Option<i64>)> = self
            .prepare_cached("SELECT store, revoked_at FROM nodes WHERE node_id = ?1")?
            .query_row(params![node.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.and_then(|(s, r)| Some((s.parse().ok()?, r))))
    }

    fn revoke_node(&self, node: &NodeId, now: i64) -> Result<Option<StoreCode>, DbError> {
        self.prepare_cached("UPDATE nodes SET revoked_at = COALESCE(revoked_at, ?2) WHERE node_id = ?1")?
            .execute(params![node.to_string(), now])?;
        Ok(TrustDb::node(self, node)?.map(|(s, _)| s))
    }

    fn touch_node(&self, node: &NodeId, now: i64) -> Result<(), DbError> {
        self.prepare_cached("UPDATE nodes SET last_contact = ?2 WHERE node_id = ?1")?
            .execute(params![node.to_string(), now])?;
        Ok(())
    }

    fn list_nodes(&self) -> Result<Vec<NodeRow>, DbError> {
        let mut stmt = self.prepare_cached(
            "SELECT n.node_id, n.store, n.enrolled_at, COALESCE(MAX(c.not_after), 0), n.revoked_at, n.last_contact
             FROM nodes n LEFT JOIN node_certs c ON c.node_id = n.node_id
             GROUP BY n.node_id ORDER BY n.enrolled_at, n.node_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (node, store, enrolled_at, cert_not_after, revoked_at, last_contact) = row?;
            let (Ok(node), Ok(store)) = (node.parse(), store.parse()) else {
                continue;
            };
            out.push(NodeRow {
                node,
                store,
                enrolled_at,
                cert_not_after,
                revoked_at,
                last_contact,
            });
        }
        Ok(out)
    }

    fn revoked_among(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>, DbError> {
        let mut stmt =
            self.prepare_cached("SELECT 1 FROM nodes WHERE node_id = ?1 AND revoked_at IS NOT NULL")?;
        let mut out = Vec::new();
        for n in nodes {
            if stmt.exists(params![n.to_string()])? {
                out.push(*n);
            }
        }
        Ok(out)
    }
}
