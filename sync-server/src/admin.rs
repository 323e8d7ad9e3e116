//! Head office's operations on the chain's trust: stores' enrollment codes, enrolled
//! nodes, users and roles, and the audit log. The admin REST API, the `caja-sync` CLI,
//! the demo and the tests all call these.
//!
//! Each operation that changes something has an `_as` form taking the [`Actor`] the audit
//! log records (the admin API passes the logged-in user); the plain form records the local
//! operator.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use caja_shared::auth::Permission;
use caja_shared::auth::secrets::Secret;
use caja_shared::docs::DocId;
use caja_shared::ids::{NodeId, StoreCode};
use caja_shared::protocol::ErrorCode;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Actor, AuditEntry, AuditQuery, NewEntry};
use crate::{ServerError, SyncServer, trust, users};

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
    /// Live QUIC connections allowed per remote IP address; default 64 (a store node
    /// keeps one). See `quic::limits`.
    pub connections_per_ip: u32,
    /// QUIC handshakes allowed per remote IP address per minute (a burst of this many,
    /// then evenly spread); default 300. Over it, an unvalidated address gets a Retry and a
    /// validated one is refused.
    pub handshakes_per_minute: u32,
    /// Admin API login attempts allowed per client IP per minute; default 10.
    pub logins_per_minute: u32,
    /// Wrong passwords in a row for one username before it is locked; default 5.
    pub login_attempts: u32,
    /// First lock of a username; default 30 s, doubling per further lock in a row.
    pub lockout: Duration,
    /// Longest lock; default 1 hour.
    pub lockout_max: Duration,
    /// Admin API requests allowed per client IP per second (all routes); default 50.
    pub requests_per_second: u32,
    /// Largest admin API request body, in bytes; default 1 MiB.
    pub body_limit: usize,
    /// Longest an admin API request may take; default 30 s.
    pub request_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            node_cert_validity: Duration::from_secs(90 * 86_400),
            access_token_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(12 * 3600),
            enrollments_per_minute: 10,
            connections_per_ip: 64,
            handshakes_per_minute: 300,
            logins_per_minute: 10,
            login_attempts: 5,
            lockout: Duration::from_secs(30),
            lockout_max: Duration::from_secs(3600),
            requests_per_second: 50,
            body_limit: 1 << 20,
            request_timeout: Duration::from_secs(30),
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

fn ts(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

impl SyncServer {
    fn broadcast_stores(&self, stores: &[StoreCode]) {
        for s in stores {
            self.hub().changed(DocId::Store { store: s.clone() });
        }
    }

    /// Issues a one-time enrollment code for `store`, valid for `ttl`.
    ///
    /// # Errors
    /// [`ServerError::UnknownStore`], [`ServerError::Sqlite`].
    pub async fn enrollment_code(
        &self,
        store: &StoreCode,
        ttl: Duration,
    ) -> Result<EnrollmentCode, ServerError> {
        self.enrollment_code_as(&Actor::local(), store, ttl).await
    }

    /// [`SyncServer::enrollment_code`] on behalf of `by`.
    ///
    /// # Errors
    /// As [`SyncServer::enrollment_code`]; [`ServerError::InvalidField`] for a zero or
    /// over-30-day `ttl`.
    pub async fn enrollment_code_as(
        &self,
        by: &Actor,
        store: &StoreCode,
        ttl: Duration,
    ) -> Result<EnrollmentCode, ServerError> {
        let (store, by) = (store.clone(), by.clone());
        self.hub()
            .with_core(move |core| issue_code(&core.conn, &by, &store, ttl))
            .await?
    }

    /// Creates a user and writes them into the documents of their stores.
    ///
    /// # Errors
    /// [`ServerError::InvalidField`] for a bad username, display name, password, PIN, role
    /// or store (naming the field); [`ServerError::Conflict`] for a taken username.
    pub async fn create_user(&self, user: NewUser) -> Result<UserInfo, ServerError> {
        self.create_user_as(&Actor::local(), user).await
    }

    /// [`SyncServer::create_user`] on behalf of `by`.
    ///
    /// # Errors
    /// As [`SyncServer::create_user`].
    pub async fn create_user_as(&self, by: &Actor, user: NewUser) -> Result<UserInfo, ServerError> {
        let (info, touched) = users::create(self.hub(), by.clone(), user).await?;
        self.broadcast_stores(&touched);
        Ok(info)
    }

    /// Changes a user and rewrites the documents of every store concerned (removing the
    /// user from stores no longer listed). Disabling a user also revokes their admin API
    /// sessions.
    ///
    /// # Errors
    /// As [`SyncServer::create_user`]; [`ServerError::NotFound`] for an unknown id.
    pub async fn update_user(&self, id: &str, patch: UserPatch) -> Result<UserInfo, ServerError> {
        self.update_user_as(&Actor::local(), id, patch).await
    }

    /// [`SyncServer::update_user`] on behalf of `by`.
    ///
    /// # Errors
    /// As [`SyncServer::update_user`].
    pub async fn update_user_as(
        &self,
        by: &Actor,
        id: &str,
        patch: UserPatch,
    ) -> Result<UserInfo, ServerError> {
        let (info, touched) = users::update(self.hub(), by.clone(), id.to_string(), patch).await?;
        self.broadcast_stores(&touched);
        Ok(info)
    }

    /// Signs a user out everywhere: `sessions_valid_after` becomes now (it replicates, so
    /// nodes refuse older tokens) and their admin API sessions are revoked.
    ///
    /// # Errors
    /// [`ServerError::NotFound`] for an unknown id; [`ServerError::Sqlite`].
    pub async fn revoke_user_sessions(&self, id: &str) -> Result<(), ServerError> {
        self.revoke_user_sessions_as(&Actor::local(), id).await
    }

    /// [`SyncServer::revoke_user_sessions`] on behalf of `by`.
    ///
    /// # Errors
    /// As [`SyncServer::revoke_user_sessions`].
    pub async fn revoke_user_sessions_as(&self, by: &Actor, id: &str) -> Result<(), ServerError> {
        let touched = users::revoke_sessions(self.hub(), by.clone(), id.to_string()).await?;
        self.broadcast_stores(&touched);
        Ok(())
    }

    /// Every user, by username.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn users(&self) -> Result<Vec<UserInfo>, ServerError> {
        let rows = self.hub().with_core(|core| users::all(&core.conn)).await??;
        Ok(rows.iter().map(users::UserRow::info).collect())
    }

    /// One user, or `None`.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn user(&self, id: &str) -> Result<Option<UserInfo>, ServerError> {
        let id = id.to_string();
        let row = self
            .hub()
            .with_core(move |core| users::by_id(&core.conn, &id))
            .await??;
        Ok(row.map(|r| r.info()))
    }

    /// Defines or replaces a custom role in every store's document.
    ///
    /// # Errors
    /// [`ServerError::InvalidField`] (`name`) for a built-in or bad name.
    pub async fn define_role(
        &self,
        name: &str,
        permissions: BTreeSet<Permission>,
    ) -> Result<(), ServerError> {
        self.define_role_as(&Actor::local(), name, permissions).await
    }

    /// [`SyncServer::define_role`] on behalf of `by`.
    ///
    /// # Errors
    /// As [`SyncServer::define_role`].
    pub async fn define_role_as(
        &self,
        by: &Actor,
        name: &str,
        permissions: BTreeSet<Permission>,
    ) -> Result<(), ServerError> {
        let touched = users::define_role(self.hub(), by.clone(), name.to_string(), permissions).await?;
        self.broadcast_stores(&touched);
        Ok(())
    }

    /// Deletes a custom role that no user holds, from the server and every store.
    ///
    /// # Errors
    /// [`ServerError::NotFound`]; [`ServerError::Conflict`] while a user holds it.
    pub async fn delete_role_as(&self, by: &Actor, name: &str) -> Result<(), ServerError> {
        let touched = users::delete_role(self.hub(), by.clone(), name.to_string()).await?;
        self.broadcast_stores(&touched);
        Ok(())
    }

    /// The custom roles: name -> permission names.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn custom_roles(&self) -> Result<BTreeMap<String, Vec<String>>, ServerError> {
        self.hub()
            .with_core(|core| users::custom_roles(&core.conn))
            .await?
    }

    /// The permissions `roles` grant (built-in and current custom roles).
    ///
    /// # Errors
    /// [`ServerError::Task`] when the core cannot be reached.
    pub async fn role_permissions(&self, roles: Vec<String>) -> Result<BTreeSet<Permission>, ServerError> {
        self.hub()
            .with_core(move |core| core.roles.permissions(&roles))
            .await
    }

    /// Every enrolled node.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ServerError> {
        let rows = self
            .hub()
            .with_core(|core| trust::list_nodes(&core.conn))
            .await??;
        Ok(rows
            .into_iter()
            .map(|r| NodeInfo {
                connected: self.hub().is_node_connected(&r.node),
                node: r.node,
                store: r.store,
                enrolled_at: ts(r.enrolled_at),
                cert_not_after: ts(r.cert_not_after),
                revoked_at: r.revoked_at.map(ts),
            })
            .collect())
    }

    /// Revokes a node: disconnects it now (QUIC close code `Unauthorized`, reason `node
    /// revoked`) and refuses its certificates from then on.
    ///
    /// # Errors
    /// [`ServerError::NotFound`] for an unknown node; [`ServerError::Sqlite`].
    pub async fn revoke_node(&self, node: NodeId) -> Result<(), ServerError> {
        self.revoke_node_as(&Actor::local(), node).await
    }

    /// [`SyncServer::revoke_node`] on behalf of `by`.
    ///
    /// # Errors
    /// As [`SyncServer::revoke_node`].
    pub async fn revoke_node_as(&self, by: &Actor, node: NodeId) -> Result<(), ServerError> {
        let by = by.clone();
        self.hub()
            .with_core(move |core| revoke(&core.conn, &by, &node))
            .await??;
        let n = self
            .hub()
            .disconnect(&node, ErrorCode::Unauthorized as u32, "node revoked");
        tracing::info!(%node, connections = n, "node revoked");
        Ok(())
    }

    /// Audit entries matching `query`, newest first.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, ServerError> {
        self.hub()
            .with_core(move |core| audit::list(&core.conn, &query))
            .await?
    }

    /// Writes an audit entry.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn record_audit(&self, entry: NewEntry) -> Result<(), ServerError> {
        self.hub()
            .with_core(move |core| audit::record(&core.conn, &entry))
            .await?
    }

    /// A projected fact as its JSON (with `user`, `user_name`, `authorized_by`), or `None`.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub async fn fact(&self, id: &str) -> Result<Option<serde_json::Value>, ServerError> {
        let id = id.to_string();
        let body: Option<String> = self
            .hub()
            .with_core(move |core| crate::projection::fact_body(&core.conn, &id))
            .await??;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }
}

/// Longest an enrollment code may live.
pub const MAX_CODE_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Issues a code on `conn` and audits it (the CLI calls this directly).
///
/// # Errors
/// [`ServerError::InvalidField`] for a bad `ttl`; [`ServerError::UnknownStore`];
/// [`ServerError::Sqlite`].
pub fn issue_code(
    conn: &rusqlite::Connection,
    by: &Actor,
    store: &StoreCode,
    ttl: Duration,
) -> Result<EnrollmentCode, ServerError> {
    if ttl.is_zero() || ttl > MAX_CODE_TTL {
        return Err(ServerError::InvalidField {
            field: "ttl",
            reason: "an enrollment code lives from 1 second to 30 days".into(),
        });
    }
    let now = Utc::now().timestamp();
    let expires = now + ttl.as_secs() as i64;
    let code = trust::issue_code(conn, store, now, expires)?;
    audit::record(
        conn,
        &NewEntry::new("enrollment_code.issued", json!({"expires_at": expires}))
            .store(store)
            .by(by),
    )?;
    Ok(EnrollmentCode {
        store: store.clone(),
        code: Secret::new(code),
        expires_at: ts(expires),
    })
}

/// Revokes a node on `conn` and audits it (the CLI calls this directly; a running server
/// notices within a second and disconnects it).
///
/// # Errors
/// [`ServerError::NotFound`] for an unknown node; [`ServerError::Sqlite`].
pub fn revoke(conn: &rusqlite::Connection, by: &Actor, node: &NodeId) -> Result<(), ServerError> {
    let Some(store) = trust::revoke(conn, node, Utc::now().timestamp())? else {
        return Err(ServerError::NotFound(format!("no enrolled node {node}")));
    };
    audit::record(
        conn,
        &NewEntry::new("node.revoked", json!({}))
            .node(node)
            .store(&store)
            .by(by),
    )
}
