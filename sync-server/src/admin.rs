//! Head office's operations on the chain's trust: stores' enrollment codes, enrolled
//! nodes, users and roles. The admin REST API, the `caja-sync` CLI, the demo and the tests
//! all call these.
//!
//! STUB (issue 3 in progress): the signatures are the contract between the node side and
//! the server side; the bodies are being implemented.

use std::collections::BTreeSet;
use std::time::Duration;

use caja_shared::auth::Permission;
use caja_shared::auth::secrets::Secret;
use caja_shared::ids::{NodeId, StoreCode};
use chrono::{DateTime, Utc};

use crate::{ServerError, SyncServer};

/// Settings of a running server that tests and deployments tune.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Validity of a node's client certificate; default 90 days. A node renews when less
    /// than a third of it is left.
    pub node_cert_validity: Duration,
    /// Lifetime of admin API access tokens; default 15 minutes.
    pub access_token_ttl: Duration,
    /// Lifetime of admin API sessions (refresh tokens); default 12 hours.
    pub session_ttl: Duration,
    /// Enrollment attempts allowed per remote IP address per minute; default 10.
    pub enrollments_per_minute: u32,
    /// Admin API login attempts allowed per client IP per minute; default 10.
    pub logins_per_minute: u32,
    /// Admin API requests allowed per client IP per second (all routes); default 50.
    pub requests_per_second: u32,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            node_cert_validity: Duration::from_secs(90 * 86_400),
            access_token_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(12 * 3600),
            enrollments_per_minute: 10,
            logins_per_minute: 10,
            requests_per_second: 50,
        }
    }
}

/// A one-time enrollment code for a store: shown once, stored only as its SHA-256.
#[derive(Debug, Clone)]
pub struct EnrollmentCode {
    /// The store a node enrolled with this code will belong to.
    pub store: StoreCode,
    /// The code to give the person installing the node.
    pub code: Secret,
    /// When it stops working (UTC).
    pub expires_at: DateTime<Utc>,
}

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

/// An enrolled node as head office sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node id.
    pub node: NodeId,
    /// Its store.
    pub store: StoreCode,
    /// When it enrolled (UTC).
    pub enrolled_at: DateTime<Utc>,
    /// When its newest client certificate expires (UTC).
    pub cert_not_after: DateTime<Utc>,
    /// When head office revoked it, if it did.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether it is connected now.
    pub connected: bool,
}

fn todo() -> ServerError {
    ServerError::Invalid("not implemented yet (issue 3 in progress)".into())
}

impl SyncServer {
    /// Issues a one-time enrollment code for `store`, valid for `ttl`.
    ///
    /// # Errors
    /// [`ServerError::UnknownStore`], [`ServerError::Sqlite`].
    pub async fn enrollment_code(
        &self,
        store: &StoreCode,
        ttl: Duration,
    ) -> Result<EnrollmentCode, ServerError> {
        let _ = (store, ttl);
        Err(todo())
    }

    /// Creates a user and writes them into the documents of their stores.
    ///
    /// # Errors
    /// [`ServerError::Invalid`] for a bad username, password, PIN, role or store;
    /// [`ServerError::Conflict`]-like errors for a taken username.
    pub async fn create_user(&self, user: NewUser) -> Result<UserInfo, ServerError> {
        let _ = user;
        Err(todo())
    }

    /// Changes a user and rewrites the documents of every store concerned.
    ///
    /// # Errors
    /// As [`SyncServer::create_user`]; unknown id.
    pub async fn update_user(&self, id: &str, patch: UserPatch) -> Result<UserInfo, ServerError> {
        let _ = (id, patch);
        Err(todo())
    }

    /// Defines or replaces a custom role in every store's document.
    ///
    /// # Errors
    /// [`ServerError::Invalid`] for a built-in or bad name.
    pub async fn define_role(
        &self,
        name: &str,
        permissions: BTreeSet<Permission>,
    ) -> Result<(), ServerError> {
        let _ = (name, permissions);
        Err(todo())
    }

    /// Every enrolled node.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ServerError> {
        Err(todo())
    }

    /// Revokes a node: disconnects it now and refuses its certificates from then on.
    ///
    /// # Errors
    /// Unknown node; [`ServerError::Sqlite`].
    pub async fn revoke_node(&self, node: NodeId) -> Result<(), ServerError> {
        let _ = node;
        Err(todo())
    }
}
