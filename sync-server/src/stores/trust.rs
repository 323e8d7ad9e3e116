//! Which nodes head office trusts: one-time enrollment codes, enrolled nodes and the
//! client certificates issued to them, in SQLite.
//!
//! A code is stored only as the SHA-256 of its normalised form; it is checked and
//! consumed in the same transaction that creates the node and records its certificates
//! ([`consume_code`] is meant to run inside it), so two nodes racing with one code cannot
//! both enroll. A node is identified on every connection by the SHA-256 of the client
//! certificate it presents ([`identify`]); revoking a node ([`revoke`]) refuses all its
//! certificates at once.
//!
//! Times are seconds since the Unix epoch (UTC).

use caja_shared::ids::{NodeId, StoreCode};
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::error::ServerError;

/// The tables this module owns. Idempotent.
pub const SCHEMA: &str = "
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

/// Crockford's base32 alphabet (no I, L, O, U): what enrollment codes are written in.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Symbols in an enrollment code: 20 of 5 bits each, 100 bits of entropy.
const CODE_SYMBOLS: usize = 20;

/// A fresh enrollment code: 20 random Crockford base32 symbols (100 bits from the
/// operating system's CSPRNG through `rand`'s `ThreadRng`), in groups of five:
/// `7K2QX-9MZ4T-H3D8R-W1CVN`.
///
/// Why not a 64-hex-digit [`caja_shared::auth::secrets::random_token`]: someone types
/// this code at a store's till, often read out over the phone. 100 bits are far beyond
/// guessing for a code that is single-use, expires (24 h by default) and is rate-limited
/// per address; base32 without look-alike letters, case-insensitive, in groups, is
/// typable. The ten-line alphabet map is ours because no workspace crate provides
/// Crockford base32 and it is not worth a dependency.
pub fn new_code() -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(CODE_SYMBOLS + CODE_SYMBOLS / 5);
    for i in 0..CODE_SYMBOLS {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[rng.random_range(0..32)]));
    }
    out
}

/// The form a code is hashed in: separators and spaces dropped, upper case, and the
/// look-alikes Crockford allows (`I`, `L` → `1`, `O` → `0`) mapped.
pub fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect()
}

/// Lowercase hex SHA-256 of a normalised code: how it is stored and looked up. A code
/// with 100 random bits needs no slow hash.
pub fn code_digest(code: &str) -> String {
    hex::encode(Sha256::digest(normalise_code(code).as_bytes()))
}

/// Stores a new code for `store` valid until `expires_at`; returns the code.
///
/// # Errors
/// [`ServerError::UnknownStore`], [`ServerError::Sqlite`].
pub fn issue_code(
    conn: &Connection,
    store: &StoreCode,
    now: i64,
    expires_at: i64,
) -> Result<String, ServerError> {
    if !crate::db::store_exists(conn, store)? {
        return Err(ServerError::UnknownStore(store.clone()));
    }
    let code = new_code();
    conn.prepare_cached(
        "INSERT INTO enrollment_codes (code_sha256, store, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![code_digest(&code), store.as_str(), now, expires_at])?;
    Ok(code)
}

/// Why an enrollment code was refused. The `Display` text goes back to the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeRefusal {
    /// No such code.
    #[error("unknown enrollment code")]
    Unknown,
    /// The code was used before.
    #[error("enrollment code already used")]
    Used {
        /// Its store.
        store: String,
    },
    /// The code is past its expiry.
    #[error("enrollment code expired")]
    Expired {
        /// Its store.
        store: String,
    },
}

/// Checks a code and marks it used by `node`, inside the caller's transaction. Returns its
/// store.
///
/// # Errors
/// `Ok(Err(refusal))` for a code that cannot be used; `Err` for SQLite failures.
pub fn consume_code(
    conn: &Connection,
    code: &str,
    node: &NodeId,
    now: i64,
) -> Result<Result<StoreCode, CodeRefusal>, ServerError> {
    let digest = code_digest(code);
    let row: Option<(String, i64, Option<i64>)> = conn
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
    conn.prepare_cached(
        "UPDATE enrollment_codes SET used_at = ?2, used_by_node = ?3 WHERE code_sha256 = ?1",
    )?
    .execute(params![digest, now, node.to_string()])?;
    Ok(Ok(code))
}

/// Records a newly enrolled node.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn insert_node(conn: &Connection, node: &NodeId, store: &StoreCode, now: i64) -> Result<(), ServerError> {
    conn.prepare_cached("INSERT INTO nodes (node_id, store, enrolled_at) VALUES (?1, ?2, ?3)")?
        .execute(params![node.to_string(), store.as_str(), now])?;
    Ok(())
}

/// Records a certificate issued to `node`.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn insert_cert(
    conn: &Connection,
    sha256: &str,
    node: &NodeId,
    not_after: i64,
    now: i64,
) -> Result<(), ServerError> {
    conn.prepare_cached(
        "INSERT INTO node_certs (cert_sha256, node_id, not_after, issued_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![sha256, node.to_string(), not_after, now])?;
    Ok(())
}

/// The node a client certificate was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertOwner {
    /// The node.
    pub node: NodeId,
    /// Its store.
    pub store: StoreCode,
    /// When the node was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// When this certificate expires.
    pub not_after: i64,
}

/// Looks up the owner of the certificate whose DER has this SHA-256 (lowercase hex).
///
/// # Errors
/// [`ServerError::Sqlite`]; rows with unparsable ids count as unknown.
pub fn identify(conn: &Connection, cert_sha256: &str) -> Result<Option<CertOwner>, ServerError> {
    let row: Option<(String, String, Option<i64>, i64)> = conn
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

/// The store of a node and when it was revoked, if it is known.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn node(conn: &Connection, node: &NodeId) -> Result<Option<(StoreCode, Option<i64>)>, ServerError> {
    let row: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT store, revoked_at FROM nodes WHERE node_id = ?1")?
        .query_row(params![node.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(s, r)| Some((s.parse().ok()?, r))))
}

/// Marks a node revoked (keeping the first revocation time). Returns its store, or `None`
/// for an unknown node.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn revoke(conn: &Connection, node_id: &NodeId, now: i64) -> Result<Option<StoreCode>, ServerError> {
    conn.prepare_cached("UPDATE nodes SET revoked_at = COALESCE(revoked_at, ?2) WHERE node_id = ?1")?
        .execute(params![node_id.to_string(), now])?;
    Ok(node(conn, node_id)?.map(|(s, _)| s))
}

/// Records that a node was heard from now.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn touch_node(conn: &Connection, node: &NodeId, now: i64) -> Result<(), ServerError> {
    conn.prepare_cached("UPDATE nodes SET last_contact = ?2 WHERE node_id = ?1")?
        .execute(params![node.to_string(), now])?;
    Ok(())
}

/// One enrolled node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// The node.
    pub node: NodeId,
    /// Its store.
    pub store: StoreCode,
    /// When it enrolled.
    pub enrolled_at: i64,
    /// When its newest certificate expires.
    pub cert_not_after: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// When it was last heard from, if ever.
    pub last_contact: Option<i64>,
}

/// Every enrolled node, by enrollment time.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn list_nodes(conn: &Connection) -> Result<Vec<NodeRow>, ServerError> {
    let mut stmt = conn.prepare_cached(
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

/// The revoked nodes among `nodes`.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn revoked_among(conn: &Connection, nodes: &[NodeId]) -> Result<Vec<NodeId>, ServerError> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM nodes WHERE node_id = ?1 AND revoked_at IS NOT NULL")?;
    let mut out = Vec::new();
    for n in nodes {
        if stmt.exists(params![n.to_string()])? {
            out.push(*n);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        crate::db::create_store(&conn, &"uk".parse().unwrap(), "UK").unwrap();
        conn
    }

    #[test]
    fn codes_are_typable_and_normalised() {
        let c = new_code();
        assert_eq!(c.len(), 23, "{c}");
        assert!(c.split('-').all(|g| g.len() == 5));
        assert_ne!(c, new_code());
        assert_eq!(code_digest(&c), code_digest(&c.to_lowercase().replace('-', " ")));
        assert_eq!(normalise_code("io-L0"), "1010");
    }

    #[test]
    fn codes_are_single_use_and_expire() {
        let conn = db();
        let uk: StoreCode = "uk".parse().unwrap();
        assert!(matches!(
            issue_code(&conn, &"nope".parse().unwrap(), 0, 10),
            Err(ServerError::UnknownStore(_))
        ));
        let code = issue_code(&conn, &uk, 100, 200).unwrap();
        let late = issue_code(&conn, &uk, 100, 150).unwrap();
        let (n1, n2) = (NodeId::new(), NodeId::new());
        assert_eq!(
            consume_code(&conn, "nope", &n1, 120).unwrap(),
            Err(CodeRefusal::Unknown)
        );
        assert_eq!(
            consume_code(&conn, &late, &n1, 150).unwrap(),
            Err(CodeRefusal::Expired { store: "uk".into() })
        );
        assert_eq!(consume_code(&conn, &code, &n1, 120).unwrap(), Ok(uk.clone()));
        assert_eq!(
            consume_code(&conn, &code, &n2, 121).unwrap(),
            Err(CodeRefusal::Used { store: "uk".into() })
        );
        insert_node(&conn, &n1, &uk, 120).unwrap();
        insert_cert(&conn, "abc", &n1, 999, 120).unwrap();
        let owner = identify(&conn, "abc").unwrap().unwrap();
        assert_eq!((owner.node, owner.revoked_at), (n1, None));
        assert!(identify(&conn, "def").unwrap().is_none());
        assert_eq!(revoke(&conn, &n1, 130).unwrap(), Some(uk));
        assert_eq!(
            revoke(&conn, &n1, 140).unwrap().map(|s| s.to_string()),
            Some("uk".into())
        );
        assert_eq!(identify(&conn, "abc").unwrap().unwrap().revoked_at, Some(130));
        assert_eq!(revoke(&conn, &n2, 130).unwrap(), None);
        assert_eq!(revoked_among(&conn, &[n1, n2]).unwrap(), vec![n1]);
        assert_eq!(list_nodes(&conn).unwrap()[0].cert_not_after, 999);
    }
}
