//! Users of a standalone node: a one-till shop that never enrolled with a sync server is
//! its own head office, so it writes its own `store/<store>` document (`caja-node user
//! add`, or [`crate::Node::add_local_user`]). Once a node is enrolled, only head office
//! writes that document: the sync server refuses changes to it from nodes, and enrolling
//! drops the local one.

use caja_shared::auth::secrets::{self, Secret};
use caja_shared::docs::DocId;
use caja_shared::docs::store::{self as store_doc, StaffUser, check_username};
use serde::Serialize;

use super::{AuthError, staff};
use crate::store::{Ctx, StoreError};

/// A user to create on a standalone node.
#[derive(Debug, Clone)]
pub struct LocalUser {
    /// Username (`check_username`).
    pub username: String,
    /// Display name; default the username.
    pub display_name: Option<String>,
    /// Password (10-128 characters).
    pub password: Option<Secret>,
    /// PIN (4-8 digits).
    pub pin: Option<Secret>,
    /// Built-in role names (`cashier`, `manager`, `admin`).
    pub roles: Vec<String>,
}

/// What was created.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// The new user's id.
    pub id: String,
    /// Their username.
    pub username: String,
}

/// Validates and hashes (argon2id, on the caller's thread: call it off the executor).
///
/// # Errors
/// [`AuthError::Invalid`] naming the field.
pub fn prepare(u: &LocalUser) -> Result<StaffUser, AuthError> {
    let username = u.username.trim().to_string();
    check_username(&username).map_err(|reason| AuthError::Invalid {
        field: "username",
        reason,
    })?;
    if u.roles.is_empty() {
        return Err(AuthError::Invalid {
            field: "roles",
            reason: "at least one role is required".into(),
        });
    }
    for r in &u.roles {
        if caja_shared::auth::permissions::built_in(r).is_none() {
            return Err(AuthError::Invalid {
                field: "roles",
                reason: format!(
                    "{r:?} is not a built-in role (cashier, manager, admin); custom roles come from head office"
                ),
            });
        }
    }
    if u.password.is_none() && u.pin.is_none() {
        return Err(AuthError::Invalid {
            field: "password",
            reason: "give a password, a PIN or both".into(),
        });
    }
    let bad = |field: &'static str| {
        move |e: secrets::SecretError| AuthError::Invalid {
            field,
            reason: e.to_string(),
        }
    };
    let password_hash = u
        .password
        .as_ref()
        .map(|p| secrets::hash_password(p.expose()))
        .transpose()
        .map_err(bad("password"))?;
    let pin_hash = u
        .pin
        .as_ref()
        .map(|p| secrets::hash_pin(p.expose()))
        .transpose()
        .map_err(bad("pin"))?;
    Ok(StaffUser {
        id: uuid::Uuid::now_v7().to_string(),
        display_name: u.display_name.clone().unwrap_or_else(|| username.clone()),
        username,
        roles: u.roles.clone(),
        password_hash,
        pin_hash,
        disabled: false,
        sessions_valid_after: 0,
        updated_at: chrono::Utc::now(),
    })
}

/// Whether this node is enrolled with a sync server (then head office owns its staff).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub fn enrolled(conn: &rusqlite::Connection) -> Result<bool, StoreError> {
    Ok(crate::identity::meta(conn, crate::enroll::META_SERVER)?.is_some())
}

/// Writes a prepared user into this store's document and projection, in the caller's
/// writer job.
///
/// # Errors
/// [`AuthError::Conflict`] when the node is enrolled or the username is taken;
/// [`AuthError::Store`].
pub fn write(
    ctx: &mut Ctx<'_>,
    store: &caja_shared::ids::StoreCode,
    user: StaffUser,
) -> Result<Created, AuthError> {
    if enrolled(ctx.conn)? {
        return Err(AuthError::Conflict(
            "this node is enrolled: head office manages its staff (caja-sync user add, or the admin API)"
                .into(),
        ));
    }
    if staff::by_username(ctx.conn, &user.username)?.is_some() {
        return Err(AuthError::Conflict(format!(
            "username {} is taken",
            user.username
        )));
    }
    let doc = DocId::Store { store: store.clone() };
    let am = ctx.doc(&doc)?;
    let before = am.get_heads();
    store_doc::put_users(am, std::slice::from_ref(&user), &[])?;
    let users: Vec<StaffUser> = store_doc::users(am)?.into_iter().filter_map(Result::ok).collect();
    let roles = store_doc::roles(am)?;
    ctx.persist(&doc, &before)?;
    staff::project(ctx.conn, &users, &roles)?;
    Ok(Created {
        id: user.id,
        username: user.username,
    })
}
