//! Staff: the projection of the `store/<store>` document into the `staff` and
//! `custom_roles` tables, lookups for logins and tokens, and the local users of a
//! standalone node.
//!
//! The projection is rebuilt whole whenever the document changes (a store has tens of
//! staff, not thousands); every difference from the previous projection (a user added,
//! removed, disabled, given other roles, signed out everywhere, a custom role changed) is
//! written to the audit log in the same transaction.
//!
//! "Sign out everywhere" (a new `sessions_valid_after`), disabling and removal revoke the
//! user's sessions at this node when the change is projected, so a token issued here
//! before the node learned of it dies, and one issued after lives: no comparison of head
//! office's clock with this node's, which may differ by minutes.

use std::collections::BTreeMap;

use caja_shared::auth::RoleTable;
use caja_shared::auth::permissions::parse_permissions_lenient;
use caja_shared::docs::store::StaffUser;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use caja_shared::audit::AuditKind;

use crate::store::StoreError;
use crate::store::audit;

fn row_to_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<StaffUser> {
    let roles: String = r.get(3)?;
    let updated: String = r.get(8)?;
    Ok(StaffUser {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        password_hash: r.get(4)?,
        pin_hash: r.get(5)?,
        disabled: r.get(6)?,
        sessions_valid_after: r.get(7)?,
        updated_at: chrono::DateTime::parse_from_rfc3339(&updated)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default(),
    })
}

const COLUMNS: &str = "user_id, username, display_name, roles, password_hash, pin_hash, disabled, sessions_valid_after, updated_at";

/// The user with this username, if they are staff here.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn by_username(conn: &Connection, username: &str) -> Result<Option<StaffUser>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM staff WHERE username = ?1"))?
        .query_row(params![username], row_to_user)
        .optional()?)
}

/// The user with this id, if they are staff here.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn by_id(conn: &Connection, id: &str) -> Result<Option<StaffUser>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM staff WHERE user_id = ?1"))?
        .query_row(params![id], row_to_user)
        .optional()?)
}

/// Every member of staff, by username.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn all(conn: &Connection) -> Result<Vec<StaffUser>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM staff ORDER BY username"))?;
    let rows = stmt.query_map([], row_to_user)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The built-in roles plus the custom roles of the store document. Permission names this
/// build does not know are ignored (they can only take rights away).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn role_table(conn: &Connection) -> Result<RoleTable, StoreError> {
    let mut table = RoleTable::new();
    let mut stmt = conn.prepare_cached("SELECT name, permissions FROM custom_roles")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (name, perms) = row?;
        let names: Vec<String> = serde_json::from_str(&perms).unwrap_or_default();
        let (known, _unknown) = parse_permissions_lenient(&names);
        if let Err(e) = table.define(&name, known) {
            tracing::warn!(role = %name, error = %e, "custom role ignored");
        }
    }
    Ok(table)
}

/// Replaces the projection with `users` and `roles` (as read from the store document) and
/// audits every difference. Users that do not decode were already dropped by the caller
/// (and logged there). Returns the number of audit entries written.
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn project(
    conn: &Connection,
    users: &[StaffUser],
    roles: &BTreeMap<String, Vec<String>>,
) -> Result<usize, StoreError> {
    let before: BTreeMap<String, StaffUser> = all(conn)?.into_iter().map(|u| (u.id.clone(), u)).collect();
    let after: BTreeMap<&str, &StaffUser> = users.iter().map(|u| (u.id.as_str(), u)).collect();
    let now = chrono::Utc::now();
    let mut entries = 0;
    let mut revoke: Vec<(&str, &'static str)> = Vec::new();
    let mut log = |kind: AuditKind, u: &StaffUser, detail: serde_json::Value| -> Result<(), StoreError> {
        entries += 1;
        audit::insert(
            conn,
            now,
            kind,
            Some(&u.id),
            Some(&u.username),
            None,
            None,
            &detail,
        )
    };
    for u in users {
        match before.get(&u.id) {
            None => log(
                AuditKind::UserCreated,
                u,
                json!({"roles": u.roles, "disabled": u.disabled}),
            )?,
            Some(old) => {
                if old.roles != u.roles {
                    log(
                        AuditKind::UserRolesChanged,
                        u,
                        json!({"from": old.roles, "to": u.roles}),
                    )?;
                }
                if old.disabled != u.disabled {
                    log(
                        if u.disabled {
                            AuditKind::UserDisabled
                        } else {
                            AuditKind::UserEnabled
                        },
                        u,
                        json!({}),
                    )?;
                    if u.disabled {
                        revoke.push((&u.id, "user disabled by head office"));
                    }
                }
                if old.sessions_valid_after != u.sessions_valid_after {
                    log(
                        AuditKind::UserSessionsRevoked,
                        u,
                        json!({"valid_after": u.sessions_valid_after}),
                    )?;
                    revoke.push((&u.id, "signed out everywhere by head office"));
                }
                if old.password_hash != u.password_hash {
                    log(
                        AuditKind::UserPasswordChanged,
                        u,
                        json!({"removed": u.password_hash.is_none()}),
                    )?;
                }
                if old.pin_hash != u.pin_hash {
                    log(
                        AuditKind::UserPinChanged,
                        u,
                        json!({"removed": u.pin_hash.is_none()}),
                    )?;
                }
                if old.username != u.username {
                    log(AuditKind::UserRenamed, u, json!({"from": old.username}))?;
                }
            }
        }
    }
    let removed: Vec<&StaffUser> = before
        .values()
        .filter(|o| !after.contains_key(o.id.as_str()))
        .collect();
    for old in &removed {
        log(AuditKind::UserRemoved, old, json!({}))?;
        revoke.push((&old.id, "no longer allowed in this store"));
    }
    let secs = now.timestamp();
    for (user, reason) in revoke {
        conn.execute(
            "UPDATE auth_sessions SET revoked_at = ?2, revoked_reason = ?3 WHERE user_id = ?1 AND revoked_at IS NULL",
            params![user, secs, reason],
        )?;
    }
    conn.execute("DELETE FROM staff", [])?;
    let mut insert = conn.prepare_cached(&format!(
        "INSERT OR IGNORE INTO staff ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?;
    for u in users {
        // Two users with one username (a head-office mistake) must not wedge the sync:
        // the first (by id) keeps the name, the other cannot log in here until fixed.
        let inserted = insert.execute(params![
            u.id,
            u.username,
            u.display_name,
            serde_json::to_string(&u.roles).unwrap_or_else(|_| "[]".into()),
            u.password_hash,
            u.pin_hash,
            u.disabled,
            u.sessions_valid_after,
            u.updated_at.to_rfc3339(),
        ])?;
        if inserted == 0 {
            tracing::warn!(user = %u.id, username = %u.username, "two staff entries share this username; this one is ignored");
        }
    }
    let old_roles: BTreeMap<String, String> = {
        let mut stmt = conn.prepare_cached("SELECT name, permissions FROM custom_roles")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    conn.execute("DELETE FROM custom_roles", [])?;
    for (name, perms) in roles {
        let text = serde_json::to_string(perms).unwrap_or_else(|_| "[]".into());
        if old_roles.get(name) != Some(&text) {
            entries += 1;
            audit::insert(
                conn,
                now,
                AuditKind::RoleDefined,
                None,
                None,
                None,
                None,
                &json!({"role": name, "permissions": perms}),
            )?;
        }
        conn.execute(
            "INSERT INTO custom_roles (name, permissions) VALUES (?1, ?2)",
            params![name, text],
        )?;
    }
    for name in old_roles.keys().filter(|n| !roles.contains_key(*n)) {
        entries += 1;
        audit::insert(
            conn,
            now,
            AuditKind::RoleDeleted,
            None,
            None,
            None,
            None,
            &json!({"role": name}),
        )?;
    }
    Ok(entries)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str, roles: &[&str]) -> StaffUser {
        StaffUser {
            id: id.into(),
            username: name.into(),
            display_name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            password_hash: None,
            pin_hash: None,
            disabled: false,
            sessions_valid_after: 0,
            updated_at: chrono::Utc::now(),
        }
    }

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        crate::store::auth_schema::migrate(&c).unwrap();
        c
    }

    #[test]
    fn projection_audits_changes_and_revokes_sessions() {
        let c = db();
        let roles = BTreeMap::from([(
            "clerk".to_string(),
            vec!["stock.read".to_string(), "time.travel".to_string()],
        )]);
        assert_eq!(
            project(&c, &[user("u1", "ana", &["cashier"])], &roles).unwrap(),
            2
        );
        let s = caja_shared::auth::sessions::start(&c, "u1", "ana", "pin", Some("T1"), 1, 3600).unwrap();
        // Custom roles resolve; unknown permissions are dropped.
        let t = role_table(&c).unwrap();
        assert_eq!(
            t.permissions(&["clerk"]),
            [caja_shared::auth::Permission::StockRead].into()
        );
        // Signed out everywhere: the session dies when the change is projected.
        let mut u = user("u1", "ana", &["cashier", "clerk"]);
        u.sessions_valid_after = 99;
        assert_eq!(project(&c, &[u.clone()], &roles).unwrap(), 2);
        assert!(
            caja_shared::auth::sessions::revoked(&c, "j", &s.session.family)
                .unwrap()
                .is_some()
        );
        // Removed from the store.
        assert_eq!(project(&c, &[], &BTreeMap::new()).unwrap(), 2);
        assert!(by_id(&c, "u1").unwrap().is_none());
        let kinds: Vec<String> = crate::store::audit::list(&c, 0, None, None, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "user.created",
                "role.defined",
                "user.roles_changed",
                "user.sessions_revoked",
                "user.removed",
                "role.deleted"
            ]
        );
        assert!(
            kinds
                .iter()
                .all(|k| caja_shared::audit::AuditKind::parse(k).is_some())
        );
    }

    #[test]
    fn a_duplicate_username_is_skipped_not_fatal() {
        let c = db();
        project(
            &c,
            &[user("u1", "ana", &["cashier"]), user("u2", "ana", &["admin"])],
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(by_username(&c, "ana").unwrap().unwrap().id, "u1");
        assert!(by_id(&c, "u2").unwrap().is_none());
    }
}
