//! Users and roles at head office: who may log in where, with which permissions.
//!
//! Modules:
//! - `directory`: the `users` and `roles` rows, their rules, and how users and
//!   custom roles reach the store documents.
//! - `roles`: the custom-role operations.
//! - `lockout`: the per-username lock after wrong passwords.
//!
//! This file holds the user types callers exchange with [`SyncServer`] and its user
//! operations; each change takes the acting [`Actor`] the audit log records.

pub(crate) mod directory;
pub(crate) mod lockout;
pub(crate) mod roles;

use caja_shared::auth::secrets::Secret;
use caja_shared::ids::StoreCode;

use crate::audit::Actor;
use crate::error::ServerError;
use crate::server::SyncServer;

/// A new user, as head office creates them.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name (`caja_shared::docs::store::check_username`), unique in the chain.
    pub username: String,
    /// Name on screens and receipts.
    pub display_name: String,
    /// Password (10-128 characters), for password logins.
    pub password: Option<Secret>,
    /// PIN (4-8 digits), for PIN logins at a terminal.
    pub pin: Option<Secret>,
    /// Role names: built-in or custom (defined first).
    pub roles: Vec<String>,
    /// Stores the user may work in (their credentials replicate to exactly these).
    pub stores: Vec<StoreCode>,
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New password.
    pub password: Option<Secret>,
    /// New PIN.
    pub pin: Option<Secret>,
    /// New role names.
    pub roles: Option<Vec<String>>,
    /// New set of stores.
    pub stores: Option<Vec<StoreCode>>,
    /// Disable (true) or enable (false).
    pub disabled: Option<bool>,
    /// Remove the password (the user keeps only their PIN). Refused together with a new
    /// `password`, or when the user would be left with neither.
    pub remove_password: bool,
    /// Remove the PIN (the user keeps only their password). Refused together with a new
    /// `pin`, or when the user would be left with neither.
    pub remove_pin: bool,
}

/// A user as head office sees them (never their hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User id (UUIDv7).
    pub id: String,
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Stores the user may work in.
    pub stores: Vec<StoreCode>,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// Whether a password is set.
    pub has_password: bool,
    /// Whether a PIN is set.
    pub has_pin: bool,
}

impl SyncServer {
    /// Creates a user on behalf of `by` and writes them into the documents of their
    /// stores.
    ///
    /// # Errors
    /// [`ServerError::InvalidField`] for a bad username, display name, password, PIN, role
    /// or store (naming the field); [`ServerError::Conflict`] for a taken username.
    pub async fn create_user(&self, by: &Actor, user: NewUser) -> Result<UserInfo, ServerError> {
        let (info, touched) = directory::create(self.hub(), by.clone(), user).await?;
        self.broadcast_stores(&touched);
        Ok(info)
    }

    /// Changes a user on behalf of `by` and rewrites the documents of every store
    /// concerned (removing the user from stores no longer listed). Disabling a user also
    /// revokes their admin API sessions.
    ///
    /// # Errors
    /// As [`SyncServer::create_user`]; [`ServerError::NotFound`] for an unknown id.
    pub async fn update_user(&self, by: &Actor, id: &str, patch: UserPatch) -> Result<UserInfo, ServerError> {
        let (info, touched) = directory::update(self.hub(), by.clone(), id.to_string(), patch).await?;
        self.broadcast_stores(&touched);
        Ok(info)
    }

    /// Signs a user out everywhere on behalf of `by`: `sessions_valid_after` becomes now
    /// (it replicates, so nodes refuse older tokens) and their admin API sessions are
    /// revoked.
    ///
    /// # Errors
    /// [`ServerError::NotFound`] for an unknown id; [`ServerError::Sqlite`].
    pub async fn revoke_user_sessions(&self, by: &Actor, id: &str) -> Result<(), ServerError> {
        let touched = directory::revoke_sessions(self.hub(), by.clone(), id.to_string()).await?;
        self.broadcast_stores(&touched);
        Ok(())
    }

    /// Every user, by username.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn users(&self) -> Result<Vec<UserInfo>, ServerError> {
        let rows = self.hub().with_core(|core| directory::all(&core.conn)).await??;
        Ok(rows.iter().map(directory::UserRow::info).collect())
    }

    /// One user, or `None`.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub(crate) async fn user(&self, id: &str) -> Result<Option<UserInfo>, ServerError> {
        let id = id.to_string();
        let row = self
            .hub()
            .with_core(move |core| directory::by_id(&core.conn, &id))
            .await??;
        Ok(row.map(|r| r.info()))
    }
}
