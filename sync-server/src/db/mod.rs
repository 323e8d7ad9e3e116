//! The server's SQLite database: opening it, its own tables (stores, the facts
//! projection, settings, and the trust tables of [`crate::stores::trust`], `users` and
//! [`crate::audit`]) beside the document tables of [`caja_shared::docstore`] and the
//! login sessions of [`caja_shared::auth::sessions`], and the store queries.
//!
//! One file, `caja-sync.db` in the data dir, in WAL mode with `synchronous=FULL`: a
//! committed transaction survives a power cut.

use std::path::Path;

use caja_shared::docstore;
use caja_shared::ids::StoreCode;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::ServerError;

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
/// [`ServerError::Io`] if the directory cannot be created; [`ServerError::Sqlite`] and
/// [`ServerError::DocStore`] if the database cannot be opened or migrated.
pub fn open(data_dir: &Path) -> Result<Connection, ServerError> {
    std::fs::create_dir_all(data_dir).map_err(|e| ServerError::io(data_dir, e))?;
    // The user directory (argon2id hashes), the CA key and the sessions live here: owner only.
    caja_shared::auth::tokens::make_private(data_dir).map_err(|e| ServerError::io(data_dir, e))?;
    let path = data_dir.join(DB_FILE);
    let conn = Connection::open(&path)?;
    caja_shared::auth::tokens::make_private(&path).map_err(|e| ServerError::io(&path, e))?;
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
/// [`ServerError::Sqlite`] / [`ServerError::DocStore`].
pub fn migrate(conn: &Connection) -> Result<(), ServerError> {
    docstore::migrate(conn)?;
    conn.execute_batch(SCHEMA)?;
    drop_store_tokens(conn)?;
    conn.execute_batch(crate::stores::trust::SCHEMA)?;
    conn.execute_batch(crate::users::directory::SCHEMA)?;
    conn.execute_batch(crate::audit::SCHEMA)?;
    conn.execute_batch(crate::users::lockout::SCHEMA)?;
    caja_shared::auth::sessions::migrate(conn)?;
    Ok(())
}

/// Removes the walking skeleton's `stores.token_sha256` column from a database created
/// before enrollment existed: nodes authenticate with client certificates now, and an old
/// token must not keep working. SQLite (3.35+) rebuilds the table itself for
/// `ALTER TABLE ... DROP COLUMN`, so no hand-written copy is needed.
fn drop_store_tokens(conn: &Connection) -> Result<(), ServerError> {
    let has_token: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('stores') WHERE name = 'token_sha256'")?
        .exists([])?;
    if has_token {
        conn.execute_batch("ALTER TABLE stores DROP COLUMN token_sha256")?;
        tracing::info!("removed the old store tokens: nodes now enroll with client certificates");
    }
    Ok(())
}

/// A setting, if set.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn setting(conn: &Connection, key: &str) -> Result<Option<String>, ServerError> {
    Ok(conn
        .query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Sets a setting.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<(), ServerError> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Current UTC time as RFC 3339 with seconds (`2024-01-01T12:00:00Z`).
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Registers a store.
///
/// # Errors
/// [`ServerError::StoreExists`] if the code is taken, [`ServerError::Invalid`] for a bad
/// name, [`ServerError::Sqlite`].
pub fn create_store(conn: &Connection, code: &StoreCode, name: &str) -> Result<(), ServerError> {
    crate::stores::validate_store_name(name)?;
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO stores (code, name, created_at) VALUES (?1, ?2, ?3)",
        params![code.as_str(), name.trim(), now_rfc3339()],
    )?;
    if inserted == 0 {
        return Err(ServerError::StoreExists(code.clone()));
    }
    Ok(())
}

/// Whether a store with this code is registered.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn store_exists(conn: &Connection, code: &StoreCode) -> Result<bool, ServerError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM stores WHERE code = ?1",
            params![code.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Records that a node of the store was heard from now.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn touch_store(conn: &Connection, code: &StoreCode) -> Result<(), ServerError> {
    conn.execute(
        "UPDATE stores SET last_contact = ?2 WHERE code = ?1",
        params![code.as_str(), now_rfc3339()],
    )?;
    Ok(())
}

/// One registered store as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRow {
    /// The store code.
    pub code: StoreCode,
    /// Its display name.
    pub name: String,
    /// When a node of the store last spoke to the server (UTC), if ever.
    pub last_contact: Option<DateTime<Utc>>,
    /// Facts of the store the server has projected.
    pub facts: u64,
}

/// Every registered store, by code.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub fn list_stores(conn: &Connection) -> Result<Vec<StoreRow>, ServerError> {
    let mut stmt = conn.prepare_cached(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_duplicates() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let a: StoreCode = "a".parse().unwrap();
        create_store(&conn, &a, "Store A").unwrap();
        assert!(matches!(
            create_store(&conn, &a, "again"),
            Err(ServerError::StoreExists(_))
        ));
        assert!(store_exists(&conn, &a).unwrap());
        assert!(!store_exists(&conn, &"b".parse().unwrap()).unwrap());
        touch_store(&conn, &a).unwrap();
        let list = list_stores(&conn).unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].last_contact.is_some());
        assert!(matches!(
            create_store(&conn, &"c".parse().unwrap(), "  "),
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
        assert_eq!(list_stores(&conn).unwrap()[0].name, "United Kingdom");
    }
}
