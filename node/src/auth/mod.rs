//! Staff authentication and authorisation at the node, all of it offline-capable: the
//! staff and their argon2id hashes come from the replicated `store/<store>` document, and
//! this node signs and checks its own access tokens.
//!
//! The auth tables and the audit log are storage's (`store::auth_schema`,
//! [`crate::store::audit`]); this layer returns its own [`AuthError`], which the HTTP layer
//! maps to problems in one place (`http::error`).
//!
//! - [`staff`]: the staff projection and lookups.
//! - [`login`]: password and PIN logins, PIN lockouts, refresh, logout.
//! - [`principal`]: checking a bearer token into a [`Principal`].
//! - [`overrides`]: manager overrides (a second user's PIN authorising one action).
//! - [`local`]: users of a standalone (never enrolled) node.

pub mod local;
pub mod login;
pub mod overrides;
pub mod principal;
pub mod staff;

use std::collections::BTreeSet;
use std::sync::Arc;

use caja_shared::auth::sessions::RefreshError;
use caja_shared::auth::tokens::KeyError;
use caja_shared::auth::{Permission, TokenError, TokenKeys};
use chrono::{DateTime, Utc};

use crate::config::AuthSettings;
use crate::identity::Identity;
use crate::store::{Db, StoreError};

pub use principal::Principal;

/// File name of the node's token signing key inside the data directory.
pub const KEY_FILE: &str = "jwt.key";

/// The node's token keys and auth settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Auth(Arc<AuthInner>);

#[derive(Debug)]
struct AuthInner {
    keys: TokenKeys,
    settings: AuthSettings,
}

impl Auth {
    /// Loads (or creates, on first start) the Ed25519 signing key in `data_dir`.
    ///
    /// # Errors
    /// [`KeyError`] when the key file cannot be read, written or parsed.
    pub fn open(data_dir: &std::path::Path, settings: AuthSettings) -> Result<Auth, KeyError> {
        let keys = TokenKeys::load_or_create(&data_dir.join(KEY_FILE))?;
        Ok(Auth(Arc::new(AuthInner { keys, settings })))
    }

    /// The signing keys.
    pub fn keys(&self) -> &TokenKeys {
        &self.0.keys
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.0.settings
    }
}

/// What the auth services work with: the node's database, token keys and settings, and
/// who the node is. Borrowed, so cheap to copy.
#[derive(Clone, Copy)]
pub struct AuthCtx<'a> {
    /// The database (staff projection, sessions, lockouts, overrides, audit log).
    pub db: &'a Db,
    /// The token keys and auth settings.
    pub auth: &'a Auth,
    /// This node's identity (store, terminal).
    pub identity: &'a Identity,
}

/// Why an authentication or authorisation step failed. The HTTP layer gives each variant
/// its own status and problem type.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The bearer token was refused (401).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Wrong username or secret, or a user who may not log in here (401). The message
    /// does not say which, so usernames cannot be probed.
    #[error("wrong username or {0}")]
    LoginFailed(&'static str),
    /// Too many wrong PINs: locked on this terminal (or every terminal) until then (423).
    #[error("too many failed logins: {username} is locked {} until {}", terminal.as_ref().map_or("on every terminal".to_string(), |t| format!("on terminal {t}")), until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))]
    Locked {
        /// The username given.
        username: String,
        /// The terminal, or `None` for every terminal.
        terminal: Option<String>,
        /// When the lock ends (UTC).
        until: DateTime<Utc>,
    },
    /// A refresh token was refused (401).
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    /// The user lacks the permission (403).
    #[error("{action} needs permission {permission}, which {username} does not have{hint}")]
    Forbidden {
        /// The user.
        username: String,
        /// The permission needed.
        permission: Permission,
        /// What was attempted, e.g. `POST /v1/refunds` or `a refund without receipt`.
        action: String,
        /// How to get it done anyway (e.g. ask for a manager override), or empty.
        hint: &'static str,
    },
    /// A manager override that cannot be used (403).
    #[error("manager override refused: {0}")]
    Override(String),
    /// A request field is invalid (422).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The request conflicts with what is stored: a taken username, or a local user on an
    /// enrolled node (409).
    #[error("{0}")]
    Conflict(String),
    /// Storage failed (500; boxed: storage errors are large and rare).
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl From<caja_shared::docs::DocError> for AuthError {
    fn from(e: caja_shared::docs::DocError) -> Self {
        StoreError::Schema(e).into()
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(Box::new(e))
    }
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e).into()
    }
}

impl AuthError {
    /// The hint for data-dependent permissions that a manager can lend.
    pub const OVERRIDE_HINT: &'static str = "; a user who has it can authorise this one action with their PIN (POST /v1/auth/override, then send the Caja-Override header)";

    /// A refusal for a missing permission.
    pub fn forbidden(
        p: &Principal,
        permission: Permission,
        action: impl Into<String>,
        hint: &'static str,
    ) -> Self {
        AuthError::Forbidden {
            username: p.username.clone(),
            permission,
            action: action.into(),
            hint,
        }
    }
}

/// Checks that `p` has `permission`.
///
/// # Errors
/// [`AuthError::Forbidden`].
pub fn require(p: &Principal, permission: Permission, action: &str) -> Result<(), AuthError> {
    if p.permissions.contains(&permission) {
        Ok(())
    } else {
        Err(AuthError::forbidden(p, permission, action, ""))
    }
}

/// The permissions of `roles` here (built-in and this store's custom roles).
pub(crate) fn permissions_of(table: &caja_shared::auth::RoleTable, roles: &[String]) -> BTreeSet<Permission> {
    table.permissions(roles)
}

/// The user acting in a write request, with the manager override token the request
/// carries (`Caja-Override` header), if any.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The authenticated user.
    pub principal: Principal,
    /// An override token to consume if the action needs a permission the user lacks.
    pub override_token: Option<caja_shared::auth::secrets::Secret>,
}

impl Actor {
    /// The actor of a request: its principal and its `Caja-Override` header.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] for a header that is not visible ASCII.
    pub fn from_request(principal: Principal, headers: &axum::http::HeaderMap) -> Result<Actor, AuthError> {
        let override_token = match headers.get(overrides::HEADER) {
            None => None,
            Some(v) => Some(caja_shared::auth::secrets::Secret::new(
                v.to_str()
                    .map_err(|_| AuthError::Invalid {
                        field: "Caja-Override",
                        reason: "must be the override token, visible ASCII".into(),
                    })?
                    .trim(),
            )),
        };
        Ok(Actor {
            principal,
            override_token,
        })
    }

    /// Authorises every data-dependent permission an action needs: `Ok(None)` when the
    /// user has them all; when exactly one is missing, the request's override for it
    /// ([`overrides::authorize`]); when several are missing, a refusal (one override lends
    /// one permission: a manager must do this one).
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] / [`AuthError::Override`].
    pub fn authorize_all(
        &self,
        ctx: &crate::store::Ctx<'_>,
        needed: &[(Permission, &str)],
        terminal: &str,
    ) -> Result<Option<caja_shared::facts::Authorization>, AuthError> {
        let missing: Vec<&(Permission, &str)> = needed
            .iter()
            .filter(|(p, _)| !self.principal.permissions.contains(p))
            .collect();
        match missing.as_slice() {
            [] => Ok(None),
            [(p, action)] => self.authorize(ctx, *p, action, terminal),
            [(p, action), ..] => Err(AuthError::forbidden(
                &self.principal,
                *p,
                format!(
                    "{action} (and more: it needs several rights one override cannot lend; a manager must make it)"
                ),
                "",
            )),
        }
    }

    /// Authorises a data-dependent `permission` for a fact of `terminal` (see
    /// [`overrides::authorize`]: an override works only at the terminal it was given at).
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] / [`AuthError::Override`].
    pub fn authorize(
        &self,
        ctx: &crate::store::Ctx<'_>,
        permission: Permission,
        action: &str,
        terminal: &str,
    ) -> Result<Option<caja_shared::facts::Authorization>, AuthError> {
        overrides::authorize(
            ctx,
            &self.principal,
            permission,
            action,
            self.override_token.as_ref(),
            terminal,
        )
    }
}
