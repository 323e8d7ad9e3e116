//! Users and custom roles at head office: the `users` and `roles` tables, their rules,
//! and how they reach the stores.
//!
//! Head office owns every user. A user's row holds their argon2id hashes, roles and the
//! stores they may work in; the same user (as a [`StaffUser`]) is written into the
//! `store/<s>` document of exactly those stores ([`crate::stores::storedoc`]) in the same SQLite
//! transaction as the row, and removed from the documents of stores no longer listed.
//! Custom roles go into every store's document. Hashing runs on a blocking thread before
//! the core lock is taken.

use std::collections::{BTreeMap, BTreeSet};

use caja_shared::auth::permissions::{self, parse_permissions_lenient};
use caja_shared::auth::secrets::{self, Secret};
use caja_shared::auth::{Permission, RoleTable};
use caja_shared::docs::store::{self, StaffUser};
use caja_shared::ids::StoreCode;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::json;

use crate::audit::{self, Actor, NewEntry};
use crate::db::{StoreDb, UserDb};
use crate::error::ServerError;
use crate::server::hub::Core;
use crate::stores::storedoc;
use crate::users::{NewUser, UserInfo, UserPatch};

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;

/// A user as stored at head office.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub pin_hash: Option<String>,
    pub roles: Vec<String>,
    pub stores: Vec<StoreCode>,
    pub disabled: bool,
    pub sessions_valid_after: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl UserRow {
    /// The user as store documents hold them.
    pub fn staff(&self) -> StaffUser {
        StaffUser {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            roles: self.roles.clone(),
            password_hash: self.password_hash.clone(),
            pin_hash: self.pin_hash.clone(),
            disabled: self.disabled,
            sessions_valid_after: self.sessions_valid_after,
            updated_at: DateTime::from_timestamp(self.updated_at, 0).unwrap_or_default(),
        }
    }

    /// The user as the admin API shows them (no hashes).
    pub fn info(&self) -> UserInfo {
        UserInfo {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            roles: self.roles.clone(),
            stores: self.stores.clone(),
            disabled: self.disabled,
            has_password: self.password_hash.is_some(),
            has_pin: self.pin_hash.is_some(),
        }
    }
}

/// The user with this id.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn by_id(db: &impl UserDb, id: &str) -> Result<Option<UserRow>, ServerError> {
    Ok(db.user_by_id(id)?)
}

/// The user with this username.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn by_username(db: &impl UserDb, username: &str) -> Result<Option<UserRow>, ServerError> {
    Ok(db.user_by_username(username)?)
}

/// Every user, by username.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn all(db: &impl UserDb) -> Result<Vec<UserRow>, ServerError> {
    Ok(db.all_users()?)
}

fn save(db: &impl UserDb, u: &UserRow, insert: bool) -> Result<(), ServerError> {
    if db.save_user(u, insert)? {
        Ok(())
    } else {
        Err(ServerError::Conflict(format!(
            "username {:?} is taken",
            u.username
        )))
    }
}

/// The custom roles stored: name -> permission names.
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn custom_roles(db: &impl UserDb) -> Result<BTreeMap<String, Vec<String>>, ServerError> {
    Ok(db.custom_roles()?)
}

/// The roles in force: built-in plus the stored custom roles (unknown permission names,
/// from a newer build, grant nothing).
///
/// # Errors
/// [`ServerError::Sqlite`].
pub(crate) fn role_table(conn: &impl UserDb) -> Result<RoleTable, ServerError> {
    let mut t = RoleTable::new();
    for (name, perms) in custom_roles(conn)? {
        let (known, _) = parse_permissions_lenient(&perms);
        if t.define(&name, known).is_err() {
            tracing::warn!(role = %name, "stored custom role has a bad name; ignored");
        }
    }
    Ok(t)
}

fn invalid(field: &'static str, reason: impl ToString) -> ServerError {
    ServerError::InvalidField {
        field,
        reason: reason.to_string(),
    }
}

/// Checks and trims a display name: 1-100 characters, no control characters.
fn display_name(name: &str) -> Result<String, ServerError> {
    let n = name.trim();
    let len = n.chars().count();
    if len == 0 || len > MAX_DISPLAY_NAME || n.chars().any(char::is_control) {
        return Err(invalid(
            "display_name",
            format!("must be 1-{MAX_DISPLAY_NAME} characters without control characters"),
        ));
    }
    Ok(n.to_string())
}

/// Checks role names against the roles in force; returns them sorted and deduplicated.
fn check_roles(table: &RoleTable, roles: &[String]) -> Result<Vec<String>, ServerError> {
    if roles.is_empty() {
        return Err(invalid(
            "roles",
            "give at least one role (cashier, manager, admin or a custom role)",
        ));
    }
    let set: BTreeSet<String> = roles.iter().map(|r| r.trim().to_string()).collect();
    if let Some(bad) = set.iter().find(|r| !table.knows(r)) {
        return Err(invalid("roles", permissions::RoleError::UnknownRole(bad.clone())));
    }
    Ok(set.into_iter().collect())
}

/// Checks that every store exists; returns them sorted and deduplicated.
fn check_stores(conn: &impl StoreDb, stores: &[StoreCode]) -> Result<Vec<StoreCode>, ServerError> {
    let set: BTreeSet<StoreCode> = stores.iter().cloned().collect();
    for s in &set {
        if !conn.store_exists(s)? {
            return Err(invalid("stores", format!("store {s} does not exist")));
        }
    }
    Ok(set.into_iter().collect())
}

/// Hashes a password and a PIN (each optional) on a blocking thread.
async fn hash_secrets(
    password: Option<Secret>,
    pin: Option<Secret>,
) -> Result<(Option<String>, Option<String>), ServerError> {
    if let Some(p) = &password {
        secrets::check_password(p.expose()).map_err(|e| invalid("password", e))?;
    }
    if let Some(p) = &pin {
        secrets::check_pin(p.expose()).map_err(|e| invalid("pin", e))?;
    }
    tokio::task::spawn_blocking(move || {
        let pw = password
            .map(|p| secrets::hash_password(p.expose()))
            .transpose()
            .map_err(|e| invalid("password", e))?;
        let pin = pin
            .map(|p| secrets::hash_pin(p.expose()))
            .transpose()
            .map_err(|e| invalid("pin", e))?;
        Ok((pw, pin))
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))?
}

/// What a write changed, for the caller to broadcast.
pub(crate) type Touched = Vec<StoreCode>;

/// Runs `f` in one transaction over the core; on failure forgets the store documents in
/// `stores` so memory never runs ahead of disk.
fn in_tx<R>(
    core: &mut Core,
    stores: &[StoreCode],
    f: impl FnOnce(
        &Connection,
        &mut caja_shared::docstore::DocCache,
        &automerge::ActorId,
        &RoleTable,
    ) -> Result<R, ServerError>,
) -> Result<R, ServerError> {
    let Core {
        conn,
        cache,
        actor,
        roles,
        ..
    } = core;
    let result = (|| {
        let tx = conn.transaction()?;
        let r = f(&tx, cache, actor, roles)?;
        tx.commit()?;
        Ok(r)
    })();
    if result.is_err() {
        storedoc::forget(cache, stores);
    }
    result
}

/// Why a user with no store needs a password.
const NO_STORE_NEEDS_PASSWORD: &str = "a user with no store logs in only at head office's admin API, which takes a password: \
     keep one, or give the user a store (where a PIN works at the tills)";

/// Creates a user (see [`crate::SyncServer::create_user`]).
pub(crate) async fn create(
    hub: &crate::server::hub::Hub,
    by: Actor,
    user: NewUser,
) -> Result<(UserInfo, Touched), ServerError> {
    store::check_username(&user.username).map_err(|e| invalid("username", e))?;
    let display = display_name(&user.display_name)?;
    if user.password.is_none() && user.pin.is_none() {
        return Err(invalid(
            "password",
            "a user needs a password (admin API and node logins), a PIN (tills), or both",
        ));
    }
    let (password_hash, pin_hash) = hash_secrets(user.password, user.pin).await?;
    let now = Utc::now().timestamp();
    hub.with_core(move |core| {
        let roles = check_roles(&core.roles, &user.roles)?;
        let stores = check_stores(&core.conn, &user.stores)?;
        if stores.is_empty() && password_hash.is_none() {
            return Err(invalid("password", NO_STORE_NEEDS_PASSWORD));
        }
        let row = UserRow {
            id: uuid::Uuid::now_v7().to_string(),
            username: user.username.clone(),
            display_name: display,
            password_hash,
            pin_hash,
            roles,
            stores: stores.clone(),
            disabled: false,
            sessions_valid_after: 0,
            updated_at: now,
        };
        in_tx(core, &stores, |tx, cache, actor, _| {
            save(tx, &row, true)?;
            for s in &row.stores {
                storedoc::edit(tx, cache, actor, s, |am| {
                    store::put_users(am, &[row.staff()], &[])
                })?;
            }
            audit::record(
                tx,
                &NewEntry::new(
                    "user.created",
                    json!({"user": row.id, "username": row.username, "roles": row.roles,
                           "stores": row.stores.iter().map(|s| s.to_string()).collect::<Vec<_>>()}),
                )
                .by(&by),
            )?;
            Ok((row.info(), row.stores.clone()))
        })
    })
    .await?
}

/// Changes a user (see [`crate::SyncServer::update_user`]).
pub(crate) async fn update(
    hub: &crate::server::hub::Hub,
    by: Actor,
    id: String,
    patch: UserPatch,
) -> Result<(UserInfo, Touched), ServerError> {
    let display = patch.display_name.as_deref().map(display_name).transpose()?;
    for (field, removes, sets) in [
        ("password", patch.remove_password, patch.password.is_some()),
        ("pin", patch.remove_pin, patch.pin.is_some()),
    ] {
        if removes && sets {
            return Err(invalid(field, "cannot be set and removed in one change"));
        }
    }
    let (password_hash, pin_hash) = hash_secrets(patch.password, patch.pin).await?;
    let now = Utc::now().timestamp();
    hub.with_core(move |core| {
        let old = by_id(&core.conn, &id)?
            .ok_or_else(|| ServerError::NotFound(format!("no user with id {id:?}")))?;
        let mut new = old.clone();
        if let Some(d) = display {
            new.display_name = d;
        }
        if password_hash.is_some() {
            new.password_hash = password_hash;
        }
        if pin_hash.is_some() {
            new.pin_hash = pin_hash;
        }
        if patch.remove_password {
            new.password_hash = None;
        }
        if patch.remove_pin {
            new.pin_hash = None;
        }
        if new.password_hash.is_none() && new.pin_hash.is_none() {
            let field = if patch.remove_password { "password" } else { "pin" };
            return Err(invalid(
                field,
                "a user needs a password (admin API and node logins), a PIN (tills), or both: this change would leave neither",
            ));
        }
        if let Some(r) = &patch.roles {
            new.roles = check_roles(&core.roles, r)?;
        }
        if let Some(s) = &patch.stores {
            new.stores = check_stores(&core.conn, s)?;
        }
        if new.stores.is_empty() && new.password_hash.is_none() {
            return Err(invalid("password", NO_STORE_NEEDS_PASSWORD));
        }
        if let Some(d) = patch.disabled {
            new.disabled = d;
        }
        new.updated_at = now;
        // A changed or removed secret signs the user out everywhere (OWASP session
        // management: renew sessions when credentials change), here and at every store.
        let secrets_changed = old.password_hash != new.password_hash || old.pin_hash != new.pin_hash;
        if secrets_changed {
            new.sessions_valid_after = now;
        }
        let removed: Vec<StoreCode> = old
            .stores
            .iter()
            .filter(|s| !new.stores.contains(s))
            .cloned()
            .collect();
        let touched: Vec<StoreCode> = new.stores.iter().chain(&removed).cloned().collect();
        let removed_secrets: Vec<&str> = [
            ("password", old.password_hash.is_some() && new.password_hash.is_none()),
            ("pin", old.pin_hash.is_some() && new.pin_hash.is_none()),
        ]
        .into_iter()
        .filter_map(|(n, r)| r.then_some(n))
        .collect();
        let mut changed = Vec::new();
        for (name, differs) in [
            ("display_name", old.display_name != new.display_name),
            ("password", old.password_hash != new.password_hash),
            ("pin", old.pin_hash != new.pin_hash),
            ("roles", old.roles != new.roles),
            ("stores", old.stores != new.stores),
            ("disabled", old.disabled != new.disabled),
        ] {
            if differs {
                changed.push(name);
            }
        }
        in_tx(core, &touched, |tx, cache, actor, _| {
            save(tx, &new, false)?;
            if secrets_changed {
                revoke_admin_sessions(tx, &new.id, "password or PIN changed", now)?;
            }
            for s in &new.stores {
                storedoc::edit(tx, cache, actor, s, |am| {
                    store::put_users(am, &[new.staff()], &[])
                })?;
            }
            for s in &removed {
                storedoc::edit(tx, cache, actor, s, |am| {
                    store::put_users(am, &[], std::slice::from_ref(&new.id))
                })?;
            }
            let who = json!({"user": new.id, "username": new.username});
            audit::record(
                tx,
                &NewEntry::new(
                    "user.updated",
                    json!({"user": new.id, "username": new.username, "changed": changed,
                           "removed": removed_secrets}),
                )
                .by(&by),
            )?;
            if old.roles != new.roles {
                audit::record(
                    tx,
                    &NewEntry::new(
                        "user.roles_changed",
                        json!({"user": who, "from": old.roles, "to": new.roles}),
                    )
                    .by(&by),
                )?;
            }
            if old.disabled != new.disabled {
                let kind = if new.disabled {
                    "user.disabled"
                } else {
                    "user.enabled"
                };
                audit::record(tx, &NewEntry::new(kind, who.clone()).by(&by))?;
                if new.disabled {
                    revoke_admin_sessions(tx, &new.id, "user disabled", now)?;
                }
            }
            Ok((new.info(), touched.clone()))
        })
    })
    .await?
}

/// Revokes every admin API session of a user.
fn revoke_admin_sessions(
    conn: &Connection,
    user: &str,
    reason: &str,
    now: i64,
) -> Result<usize, ServerError> {
    let families = conn.open_session_families(user)?;
    for f in &families {
        caja_shared::auth::sessions::revoke(conn, f, reason, now)?;
    }
    Ok(families.len())
}

/// Signs a user out everywhere (see [`crate::SyncServer::revoke_user_sessions`]).
pub(crate) async fn revoke_sessions(
    hub: &crate::server::hub::Hub,
    by: Actor,
    id: String,
) -> Result<Touched, ServerError> {
    let now = Utc::now().timestamp();
    hub.with_core(move |core| {
        let mut row =
            by_id(&core.conn, &id)?.ok_or_else(|| ServerError::NotFound(format!("no user with id {id:?}")))?;
        row.sessions_valid_after = now;
        row.updated_at = now;
        let stores = row.stores.clone();
        in_tx(core, &stores, |tx, cache, actor, _| {
            save(tx, &row, false)?;
            for s in &row.stores {
                storedoc::edit(tx, cache, actor, s, |am| store::put_users(am, &[row.staff()], &[]))?;
            }
            let n = revoke_admin_sessions(tx, &row.id, "signed out everywhere by head office", now)?;
            audit::record(
                tx,
                &NewEntry::new(
                    "user.sessions_revoked",
                    json!({"user": row.id, "username": row.username, "admin_sessions": n, "valid_after": now}),
                )
                .by(&by),
            )?;
            Ok(row.stores.clone())
        })
    })
    .await?
}

fn all_stores(conn: &impl StoreDb) -> Result<Vec<StoreCode>, ServerError> {
    Ok(conn.list_stores()?.into_iter().map(|s| s.code).collect())
}

/// Defines or replaces a custom role (see [`crate::SyncServer::define_role`]).
pub(crate) async fn define_role(
    hub: &crate::server::hub::Hub,
    by: Actor,
    name: String,
    perms: BTreeSet<Permission>,
) -> Result<Touched, ServerError> {
    permissions::check_role_name(&name).map_err(|e| invalid("name", e))?;
    let names: Vec<String> = perms.iter().map(|p| p.name().to_string()).collect();
    let now = Utc::now().timestamp();
    hub.with_core(move |core| {
        let stores = all_stores(&core.conn)?;
        let previous = custom_roles(&core.conn)?.get(&name).cloned();
        let touched = in_tx(core, &stores, |tx, cache, actor, _| {
            tx.put_role(&name, &names, now)?;
            let one = BTreeMap::from([(name.clone(), names.clone())]);
            for s in &stores {
                storedoc::edit(tx, cache, actor, s, |am| store::put_roles(am, &one, &[]))?;
            }
            audit::record(
                tx,
                &NewEntry::new(
                    "role.defined",
                    json!({"role": name, "permissions": names, "previous": previous}),
                )
                .by(&by),
            )?;
            Ok(stores.clone())
        })?;
        core.roles.define(&name, perms).map_err(|e| invalid("name", e))?;
        Ok(touched)
    })
    .await?
}

/// Deletes a custom role no user holds.
pub(crate) async fn delete_role(
    hub: &crate::server::hub::Hub,
    by: Actor,
    name: String,
) -> Result<Touched, ServerError> {
    hub.with_core(move |core| {
        if !custom_roles(&core.conn)?.contains_key(&name) {
            return Err(ServerError::NotFound(format!("no custom role {name:?}")));
        }
        let holders: Vec<String> = all(&core.conn)?
            .into_iter()
            .filter(|u| u.roles.contains(&name))
            .map(|u| u.username)
            .collect();
        if !holders.is_empty() {
            return Err(ServerError::Conflict(format!(
                "role {name:?} is held by {}: take it away from them first",
                holders.join(", ")
            )));
        }
        let stores = all_stores(&core.conn)?;
        let touched = in_tx(core, &stores, |tx, cache, actor, _| {
            tx.delete_role(&name)?;
            for s in &stores {
                storedoc::edit(tx, cache, actor, s, |am| {
                    store::put_roles(am, &BTreeMap::new(), std::slice::from_ref(&name))
                })?;
            }
            audit::record(tx, &NewEntry::new("role.deleted", json!({"role": name})).by(&by))?;
            Ok(stores.clone())
        })?;
        core.roles = role_table(&core.conn)?;
        Ok(touched)
    })
    .await?
}

/// Writes a store's document for the first time: genesis, custom roles, and the users
/// allowed there.
///
/// # Errors
/// [`ServerError`] from SQLite or automerge.
pub(crate) fn create_store_doc(core: &mut Core, store_code: &StoreCode) -> Result<(), ServerError> {
    let roles = custom_roles(&core.conn)?;
    let staff: Vec<StaffUser> = all(&core.conn)?
        .iter()
        .filter(|u| u.stores.contains(store_code))
        .map(UserRow::staff)
        .collect();
    in_tx(core, std::slice::from_ref(store_code), |tx, cache, actor, _| {
        storedoc::fill(tx, cache, actor, store_code, &roles, &staff)?;
        Ok(())
    })
}
