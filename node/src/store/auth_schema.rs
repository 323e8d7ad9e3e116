//! The node's auth tables (owned by storage, used by `auth`): the staff projection of the `store/<store>` document, PIN
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

/// Audit kinds renamed to the shared dotted vocabulary (`caja_shared::audit::AuditKind`):
/// `(old, new)`. Rows written before the rename are updated at start-up, so filters and the
/// lockout count (which reads `login.failed` rows) see them.
const RENAMED_KINDS: &[(&str, &str)] = &[
    ("login_succeeded", "login.succeeded"),
    ("login_failed", "login.failed"),
    ("locked", "login.locked"),
    ("session_revoked", "session.revoked"),
    ("override_granted", "override.granted"),
    ("override_used", "override.used"),
    ("user_added", "user.created"),
    ("user_removed", "user.removed"),
    ("user_disabled", "user.disabled"),
    ("user_enabled", "user.enabled"),
    ("username_changed", "user.renamed"),
    ("roles_changed", "user.roles_changed"),
    ("password_changed", "user.password_changed"),
    ("pin_changed", "user.pin_changed"),
    ("sessions_revoked", "user.sessions_revoked"),
    ("role_defined", "role.defined"),
    ("role_removed", "role.deleted"),
    ("catalog_changed", "catalog.changed"),
];

/// Creates the auth tables and renames audit kinds of older versions. Idempotent.
///
/// # Errors
/// SQLite errors.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    caja_shared::auth::sessions::migrate(conn)?;
    conn.execute_batch(SCHEMA)?;
    let mut rename = conn.prepare("UPDATE audit_log SET kind = ?2 WHERE kind = ?1")?;
    for (old, new) in RENAMED_KINDS {
        rename.execute([old, new])?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renamed_kinds_are_kinds_of_the_shared_vocabulary() {
        for (_, new) in RENAMED_KINDS {
            assert!(caja_shared::audit::AuditKind::parse(new).is_some(), "{new}");
        }
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn.execute(
            "INSERT INTO audit_log (at, kind, detail) VALUES ('t', 'login_failed', '{}')",
            [],
        )
        .unwrap();
        migrate(&conn).unwrap();
        let kind: String = conn
            .query_row("SELECT kind FROM audit_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kind, "login.failed");
    }
}
