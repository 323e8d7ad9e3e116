//! [`UserDb`] and [`LockoutDb`] for SQLite: the `users` and `roles` tables (roles and
//! stores as JSON arrays) and the `login_lockouts` counters.

use std::collections::BTreeMap;

use caja_shared::ids::StoreCode;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{DbError, LockoutDb, UserDb};
use crate::users::directory::UserRow;

/// The tables this module owns. Idempotent.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id                   TEXT PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    display_name         TEXT NOT NULL,
    password_hash        TEXT,
    pin_hash             TEXT,
    roles                TEXT NOT NULL,
    stores               TEXT NOT NULL,
    disabled             INTEGER NOT NULL DEFAULT 0,
    sessions_valid_after INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS roles (
    name        TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
";

/// The lockout counters of `crate::users::lockout`. Idempotent.
pub(super) const LOCKOUT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS login_lockouts (
    username     TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    lockouts     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
";

const COLUMNS: &str = "id, username, display_name, password_hash, pin_hash, roles, stores, disabled,
                       sessions_valid_after, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    let roles: String = r.get(5)?;
    let stores: String = r.get(6)?;
    Ok(UserRow {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        password_hash: r.get(3)?,
        pin_hash: r.get(4)?,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        stores: serde_json::from_str::<Vec<String>>(&stores)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        disabled: r.get(7)?,
        sessions_valid_after: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

fn stores_json(stores: &[StoreCode]) -> String {
    serde_json::Value::from(stores.iter().map(|s| s.to_string()).collect::<Vec<_>>()).to_string()
}

impl UserDb for Connection {
    fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, DbError> {
        Ok(self
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?
            .query_row(params![id], row)
            .optional()?)
    }

    fn user_by_username(&self, username: &str) -> Result<Option<UserRow>, DbError> {
        Ok(self
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE username = ?1"))?
            .query_row(params![username], row)
            .optional()?)
    }

    fn all_users(&self) -> Result<Vec<UserRow>, DbError> {
        let mut stmt = self.prepare_cached(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))?;
        let rows = stmt.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn save_user(&self, u: &UserRow, insert: bool) -> Result<bool, DbError> {
        let roles = serde_json::Value::from(u.roles.clone()).to_string();
        let sql = if insert {
            "INSERT INTO users (id, username, display_name, password_hash, pin_hash, roles, stores, disabled,
                                sessions_valid_after, updated_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)"
        } else {
            "UPDATE users SET username = ?2, display_name = ?3, password_hash = ?4, pin_hash = ?5, roles = ?6,
                              stores = ?7, disabled = ?8, sessions_valid_after = ?9, updated_at = ?10
             WHERE id = ?1"
        };
        let r = self.prepare_cached(sql)?.execute(params![
            u.id,
            u.username,
            u.display_name,
            u.password_hash,
            u.pin_hash,
            roles,
            stores_json(&u.stores),
            u.disabled,
            u.sessions_valid_after,
            u.updated_at,
        ]);
        match r {
            Ok(_) => Ok(true),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn custom_roles(&self) -> Result<BTreeMap<String, Vec<String>>, DbError> {
        let mut stmt = self.prepare_cached("SELECT name, permissions FROM roles ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = BTreeMap::new();
        for r in rows {
            let (name, perms) = r?;
            out.insert(name, serde_json::from_str(&perms).unwrap_or_default());
        }
        Ok(out)
    }

    fn put_role(&self, name: &str, permissions: &[String], now: i64) -> Result<(), DbError> {
        self.prepare_cached(
            "INSERT INTO roles (name, permissions, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET permissions = excluded.permissions, updated_at = excluded.updated_at",
        )?
        .execute(params![name, serde_json::Value::from(permissions.to_vec()).to_string(), now])?;
        Ok(())
    }

    fn delete_role(&self, name: &str) -> Result<(), DbError> {
        self.execute("DELETE FROM roles WHERE name = ?1", params![name])?;
        Ok(())
    }

    fn open_session_families(&self, user: &str) -> Result<Vec<String>, DbError> {
        Ok(self
            .prepare_cached("SELECT family FROM auth_sessions WHERE user_id = ?1 AND revoked_at IS NULL")?
            .query_map(params![user], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }
}

impl LockoutDb for Connection {
    fn lock_end(&self, username: &str) -> Result<Option<i64>, DbError> {
        Ok(self
            .prepare_cached("SELECT locked_until FROM login_lockouts WHERE username = ?1")?
            .query_row(params![username], |r| r.get(0))
            .optional()?)
    }

    fn lock_counts(&self, username: &str) -> Result<(u32, u32), DbError> {
        Ok(self
            .prepare_cached("SELECT failures, lockouts FROM login_lockouts WHERE username = ?1")?
            .query_row(params![username], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0)))
    }

    fn save_lock(
        &self,
        username: &str,
        failures: u32,
        lockouts: u32,
        until: i64,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.prepare_cached(
            "INSERT INTO login_lockouts (username, failures, lockouts, locked_until, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (username) DO UPDATE SET failures = ?2, lockouts = ?3,
               locked_until = MAX(locked_until, ?4), updated_at = ?5",
        )?
        .execute(params![username, failures, lockouts, until, now_ms])?;
        Ok(())
    }

    fn prune_locks(&self, before_ms: i64, now_ms: i64) -> Result<(), DbError> {
        self.prepare_cached("DELETE FROM login_lockouts WHERE updated_at < ?1 AND locked_until < ?2")?
            .execute(params![before_ms, now_ms])?;
        Ok(())
    }

    fn clear_lock(&self, username: &str) -> Result<(), DbError> {
        self.prepare_cached("DELETE FROM login_lockouts WHERE username = ?1")?
            .execute(params![username])?;
        Ok(())
    }
}
