//! The SQLite backend: the data dir's `caja-sync.db` and the repository traits of
//! [`crate::db`] implemented for [`rusqlite::Connection`] (and so, by dereference, for a
//! `rusqlite::Transaction`).
//!
//! One file, `caja-sync.db` in the data dir, in WAL mode with `synchronous=FULL`: a
//! committed transaction survives a power cut. It holds the server's own tables (settings,
//! stores, the facts projection, and those of `trust` and `users`), the audit log's
//! (`crate::audit`), the document tables of [`caja_shared::docstore`] and the admin API's
//! sessions of [`caja_shared::auth::sessions`].
//!
//! Modules:
//! - `trust` holds enrollment codes, nodes and their certificates.
//! - `users` holds users, custom roles and the login lockout counters.
//! - `facts` holds the facts projection and the report queries.
//! - `cases` holds the reconciliation queue.
//! - `payments` holds the forward queue of stored-offline card tenders.

mod audit;
mod cases;

pub use audit::AUDIT_SCHEMA;
mod facts;
mod payments;
mod trust;
mod users;

use std::path::Path;

use caja_shared::docstore;
use caja_shared::ids::StoreCode;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{Database, DbError, StoreDb, StoreRow};

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "caja-sync.db";

/// The server's own tables. Idempotent.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stores (
    code         TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_contact TEXT
);
CREATE TABLE IF NOT EXISTS facts (
    id            TEXT PRIMARY KEY,
    store         TEXT NOT NULL,
    business_date TEXT NOT NULL,
    kind          TEXT NOT NULL,
    currency      TEXT,
    total_minor   INTEGER NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS facts_by_store_day ON facts(store, business_date);
CREATE TABLE IF NOT EXISTS fact_tenders (
    fact_id      TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    PRIMARY KEY (fact_id, idx)
);
";

/// Opens (creating if needed) the database in `data_dir` with WAL and
/// `synchronous=FULL`, and creates the tables.
///
/// # Errors
/// [`DbError::Io`] if the directory cannot be created; [`DbError::Sqlite`] and
/// [`DbError::DocStore`] if the database cannot be opened or migrated.
pub fn open(data_dir: &Path) -> Result<Connection, DbError> {
    std::fs::create_dir_all(data_dir).map_err(|e| io(data_dir, e))?;
    // The user directory (argon2id hashes), the CA key and the sessions live here: owner only.
    caja_shared::auth::tokens::make_private(data_dir).map_err(|e| io(data_dir, e))?;
    let path = data_dir.join(DB_FILE);
    let conn = Connection::open(&path)?;
    caja_shared::auth::tokens::make_private(&path).map_err(|e| io(&path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&conn)?;
    Ok(conn)
}

/// Creates every table (documents and the server's own) on an open connection.
///
/// # Errors
/// [`DbError::Sqlite`] / [`DbError::DocStore`].
pub fn migrate(conn: &Connection) -> Result<(), DbError> {
    docstore::migrate(conn)?;
    conn.execute_batch(SCHEMA)?;
    drop_store_tokens(conn)?;
    conn.execute_batch(trust::SCHEMA)?;
    conn.execute_batch(users::SCHEMA)?;
    conn.execute_batch(AUDIT_SCHEMA)?;
    conn.execute_batch(users::LOCKOUT_SCHEMA)?;
    conn.execute_batch(payments::SCHEMA)?;
    conn.execute_batch(cases::SCHEMA)?;
    caja_shared::auth::sessions::migrate(conn)?;
    Ok(())
}

/// Removes the walking skeleton's `stores.token_sha256` column from a database created
/// before enrollment existed: nodes authenticate with client certificates now, and an old
/// token must not keep working. SQLite (3.35+) rebuilds the table itself for
/// `ALTER TABLE ... DROP COLUMN`, so no hand-written copy is needed.
fn drop_store_tokens(conn: &Connection) -> Result<(), DbError> {
    let has_token: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('stores') WHERE name = 'token_sha256'")?
        .exists([])?;
    if has_token {
        conn.execute_batch("ALTER TABLE stores DROP COLUMN token_sha256")?;
        tracing::info!("removed the old store tokens: nodes now enroll with client certificates");
    }
    Ok(())
}

/// The SQLite connection is a whole [`Database`] (checked at compile time).
const _: fn() = || {
    fn is_database<D: Database>() {}
    is_database::<Connection>();
};

/// SQLite's `PRAGMA data_version`: changes when another connection (another process)
/// commits, which is how `crate::server::watch` notices the CLI's writes.
///
/// # Errors
/// [`rusqlite::Error`].
pub(crate) fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

/// A setting of an open database, if set (the CLI reads the data dir's currency).
///
/// # Errors
/// [`DbError::Sqlite`].
pub fn setting(conn: &Connection, key: &str) -> Result<Option<String>, DbError> {
    StoreDb::setting(conn, key)
}

fn io(path: &Path, source: std::io::Error) -> DbError {
    DbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl StoreDb for Connection {
    fn setting(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), DbError> {
        self.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn create_store(&self, code: &StoreCode, name: &str, now: &str) -> Result<bool, DbError> {
        let inserted = self.execute(
            "INSERT OR IGNORE INTO stores (code, name, created_at) VALUES (?1, ?2, ?3)",
            params![code.as_str(), name, now],
        )?;
        Ok(inserted > 0)
    }

    fn store_exists(&self, code: &StoreCode) -> Result<bool, DbError> {
        Ok(self
            .prepare_cached("SELECT 1 FROM stores WHERE code = ?1")?
            .exists(params![code.as_str()])?)
    }

    fn touch_store(&self, code: &StoreCode, now: &str) -> Result<(), DbError> {
        self.execute(
            "UPDATE stores SET last_contact = ?2 WHERE code = ?1",
            params![code.as_str(), now],
        )?;
        Ok(())
    }

    fn list_stores(&self) -> Result<Vec<StoreRow>, DbError> {
        let mut stmt = self.prepare_cached(
            "SELECT s.code, s.name, s.last_contact,
                    (SELECT COUNT(*) FROM facts f WHERE f.store = s.code)
             FROM stores s ORDER BY s.code",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (code, name, last, facts) = row?;
            let Ok(code) = code.parse::<StoreCode>() else {
                continue;
            };
            out.push(StoreRow {
                code,
                name,
                last_contact: last
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&Utc)),
                facts: u64::try_from(facts).unwrap_or(0),
            });
        }
        Ok(out)
    }

    fn stores_without_document(&self) -> Result<Vec<StoreCode>, DbError> {
        let mut stmt = self.prepare_cached(
            "SELECT code FROM stores WHERE 'store/' || code NOT IN (SELECT doc_id FROM doc_heads) ORDER BY code",
        )?;
        let codes = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for c in codes {
            if let Ok(c) = c?.parse() {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn document_stored(&self, doc_id: &str) -> Result<bool, DbError> {
        Ok(self
            .prepare_cached("SELECT 1 FROM doc_heads WHERE doc_id = ?1")?
            .exists(params![doc_id])?)
    }

    fn ping(&self) -> bool {
        matches!(self.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)), Ok(1))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::ServerError;
    use crate::stores::register_store;

    #[test]
    fn stores_and_duplicates() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let a: StoreCode = "a".parse().unwrap();
        register_store(&conn, &a, "Store A").unwrap();
        assert!(matches!(
            register_store(&conn, &a, "again"),
            Err(ServerError::StoreExists(_))
        ));
        assert!(conn.store_exists(&a).unwrap());
        assert!(!conn.store_exists(&"b".parse().unwrap()).unwrap());
        conn.touch_store(&a, "2024-01-01T00:00:00Z").unwrap();
        let list = conn.list_stores().unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].last_contact.is_some());
        assert!(matches!(
            register_store(&conn, &"c".parse().unwrap(), "  "),
            Err(ServerError::Invalid(_))
        ));
    }

    #[test]
    fn old_databases_lose_their_store_tokens() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE stores (code TEXT PRIMARY KEY, name TEXT NOT NULL, token_sha256 BLOB NOT NULL,
                                  created_at TEXT NOT NULL, last_contact TEXT);
             INSERT INTO stores VALUES ('uk', 'United Kingdom', x'00', '2024-01-01T00:00:00Z', NULL);",
        )
        .unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap();
        let cols: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('stores')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(cols, ["code", "name", "created_at", "last_contact"]);
        assert_eq!(conn.list_stores().unwrap()[0].name, "United Kingdom");
    }
}
