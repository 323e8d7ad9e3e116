//! The node's auth tables: the staff projection of the `store/<store>` document, PIN
//! lockouts, manager overrides, the local audit log, and the login sessions of
//! `caja_shared::auth::sessions`.
//!
//! `staff` and `custom_roles` are projections (rebuilt from the document whenever it
//! changes); `pin_lockouts`, `overrides` and the sessions are this node's own state;
//! `audit_log` indexes security facts and changes of staff seen by this node.

use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS staff (
    user_id              TEXT PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    display_name         TEXT NOT NULL,
    roles                TEXT NOT NULL,
    password_hash        TEXT,
    pin_hash             TEXT,
    disabled             INTEGER NOT NULL,
    sessions_valid_after INTEGER NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS custom_roles (
    name        TEXT PRIMARY KEY,
    permissions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pin_lockouts (
    user_id      TEXT NOT NULL,
    terminal     TEXT NOT NULL,
    failures     INTEGER NOT NULL,
    lockouts     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    PRIMARY KEY (user_id, terminal)
);
CREATE TABLE IF NOT EXISTS overrides (
    token_sha256 TEXT PRIMARY KEY,
    override_id  TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL,
    username     TEXT NOT NULL,
    permission   TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    terminal     TEXT NOT NULL DEFAULT '',
    expires_at   INTEGER NOT NULL,
    used_by_fact TEXT
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    user_id  TEXT,
    username TEXT,
    terminal TEXT,
    fact_id  TEXT UNIQUE,
    detail   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log(at);
";

/// Creates the auth tables. Idempotent.
///
/// # Errors
/// SQLite errors.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    caja_shared::auth::sessions::migrate(conn)?;
    conn.execute_batch(SCHEMA)
}
