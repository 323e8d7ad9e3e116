//! The node's SQLite schema: documents (from `caja_shared::docstore`) and projections.
//!
//! Projections are derived from the documents and can be rebuilt from them; they are
//! written in the same transaction as the document change that causes them.

use rusqlite::Connection;

use super::StoreError;

/// Projection tables. Idempotent (`IF NOT EXISTS`); a future change adds numbered
/// migrations recorded in `meta.schema_version`.
const PROJECTIONS: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    sku           TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    unit_price    TEXT NOT NULL,
    tax_rate      TEXT NOT NULL,
    barcode       TEXT,
    category      TEXT,
    stock_tracked INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS products_by_barcode ON products(barcode);
CREATE VIRTUAL TABLE IF NOT EXISTS products_fts USING fts5(
    sku, name, category, content='products', content_rowid='rowid'
);
CREATE TRIGGER IF NOT EXISTS products_ai AFTER INSERT ON products BEGIN
    INSERT INTO products_fts(rowid, sku, name, category) VALUES (new.rowid, new.sku, new.name, new.category);
END;
CREATE TRIGGER IF NOT EXISTS products_ad AFTER DELETE ON products BEGIN
    INSERT INTO products_fts(products_fts, rowid, sku, name, category)
    VALUES ('delete', old.rowid, old.sku, old.name, old.category);
END;
CREATE TRIGGER IF NOT EXISTS products_au AFTER UPDATE ON products BEGIN
    INSERT INTO products_fts(products_fts, rowid, sku, name, category)
    VALUES ('delete', old.rowid, old.sku, old.name, old.category);
    INSERT INTO products_fts(rowid, sku, name, category) VALUES (new.rowid, new.sku, new.name, new.category);
END;
CREATE TABLE IF NOT EXISTS facts (
    fact_id       TEXT PRIMARY KEY,
    doc_id        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    business_date TEXT NOT NULL,
    occurred_at   TEXT NOT NULL,
    hlc_wall      INTEGER NOT NULL,
    hlc_counter   INTEGER NOT NULL,
    receipt_no    TEXT,
    original_sale TEXT,
    total_minor   INTEGER NOT NULL,
    tax_minor     INTEGER NOT NULL,
    local         INTEGER NOT NULL,
    acked         INTEGER NOT NULL DEFAULT 0,
    body          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS facts_pending ON facts(doc_id) WHERE acked = 0;
CREATE INDEX IF NOT EXISTS facts_by_day ON facts(business_date, kind);
CREATE INDEX IF NOT EXISTS facts_by_original ON facts(original_sale) WHERE original_sale IS NOT NULL;
CREATE TABLE IF NOT EXISTS fact_tenders (
    fact_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    amount_minor INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fact_tenders_by_fact ON fact_tenders(fact_id);
CREATE TABLE IF NOT EXISTS stock_moves (
    fact_id   TEXT NOT NULL,
    sku       TEXT NOT NULL,
    qty_milli INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stock_moves_by_sku ON stock_moves(sku);
CREATE TABLE IF NOT EXISTS idempotency (
    key          TEXT PRIMARY KEY,
    route        TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS card_payments (
    tender_id    TEXT PRIMARY KEY,
    sale_id      TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    receipt_no   TEXT,
    amount_minor INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    mode         TEXT NOT NULL,
    state        TEXT NOT NULL,
    forward_by   TEXT,
    provider_ref TEXT,
    code         TEXT,
    message      TEXT,
    stored_at_ms INTEGER NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS card_payments_by_sale ON card_payments(sale_id);
CREATE INDEX IF NOT EXISTS card_payments_by_state ON card_payments(state, node_id);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Applies connection settings for the writer: WAL, `synchronous=FULL` (a committed
/// transaction survives power loss: SQLite syncs the WAL on every commit), foreign keys,
/// a busy timeout.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(crate) fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA wal_autocheckpoint = 20000;",
    )?;
    // Checkpoints normally run on the maintenance connection (`PASSIVE`, every second);
    // the high autocheckpoint above is only a safety net if that thread stalls.
    Ok(())
}

/// Settings for the maintenance connection (compaction, checkpoints).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(crate) fn configure_maintenance(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;")?;
    Ok(())
}

/// Settings for read connections.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(crate) fn configure_reader(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")?;
    Ok(())
}

/// Creates every table.
///
/// # Errors
/// [`StoreError::Sqlite`] or [`StoreError::Doc`].
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    caja_shared::docstore::migrate(conn)?;
    conn.execute_batch(PROJECTIONS)?;
    super::auth_schema::migrate(conn)?;
    Ok(())
}
