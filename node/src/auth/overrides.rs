//! Manager overrides: a second user's PIN authorising ONE action the requesting user may
//! not do alone (a refund without receipt, a price override).
//!
//! 1. The cashier's till calls `POST /v1/auth/override` with the manager's username and
//!    PIN (typed by the manager) and the permission needed. The PIN is checked with the
//!    same rules and lockout as a PIN login on that terminal; the manager must have the
//!    permission. The node records an `override_granted` security fact and answers a
//!    one-time override token, valid `override_ttl` (default 2 minutes).
//! 2. The cashier's request for the action carries it in the `Caja-Override` header. In
//!    the same transaction as the fact it authorises, the override is consumed (single
//!    use, only by the user who asked for it, only for that permission) and the fact
//!    records [`Authorization`] (who authorised, which permission, which override).
//!
//! Only the SHA-256 of an override token is stored.

use caja_shared::auth::Permission;
use caja_shared::auth::secrets::{self, Secret};
use caja_shared::auth::tokens::now_secs;
use caja_shared::facts::{Authorization, LoginMethod, SecurityEvent};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::login::{self, Attempt};
use super::{AuthCtx, AuthError, Principal, staff};
use crate::store::facts::Author;
use crate::store::{Ctx, StoreError};

/// The request header that carries an override token.
pub const HEADER: &str = "caja-override";

/// `POST /v1/auth/override` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The authorising user's username (a manager).
    pub username: String,
    /// Their PIN.
    #[schema(value_type = String)]
    pub pin: Secret,
    /// The permission to lend for one action, e.g. `refund.no_receipt`.
    pub permission: String,
}

/// Who authorised an override.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Authoriser {
    /// User id.
    pub user_id: String,
    /// Username.
    pub username: String,
}

/// `POST /v1/auth/override` answer.
#[derive(Clone, Serialize, ToSchema)]
pub struct OverrideGranted {
    /// Send this in the `Caja-Override` header of the one request it authorises.
    pub override_token: String,
    /// The override's id (facts and the audit log name it).
    pub override_id: String,
    /// The permission lent.
    pub permission: String,
    /// Who authorised it.
    pub authorized_by: Authoriser,
    /// Seconds until it can no longer be used.
    pub expires_in: i64,
}

impl std::fmt::Debug for OverrideGranted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverrideGranted")
            .field("override_token", &"<redacted>")
            .field("override_id", &self.override_id)
            .field("permission", &self.permission)
            .finish()
    }
}

/// Grants an override for `requester`.
///
/// # Errors
/// [`AuthError::Invalid`] for an unknown permission or a malformed PIN; the login
/// refusals of `login::verify_attempt` (401 / 423); [`AuthError::Override`] when the
/// authoriser lacks the permission or is the requester.
pub async fn grant(
    cx: AuthCtx<'_>,
    requester: Principal,
    req: OverrideRequest,
) -> Result<OverrideGranted, AuthError> {
    let permission: Permission = req
        .permission
        .parse()
        .map_err(|e: caja_shared::auth::RoleError| AuthError::Invalid {
            field: "permission",
            reason: e.to_string(),
        })?;
    secrets::check_pin(req.pin.expose()).map_err(|e| AuthError::Invalid {
        field: "pin",
        reason: e.to_string(),
    })?;
    let terminal = requester
        .terminal
        .clone()
        .unwrap_or_else(|| cx.identity.terminal.clone());
    let username = req.username.trim().to_string();
    let (user, secret_ok) = login::check_pin_of(cx, &username, &terminal, req.pin).await?;
    let (auth, ident) = (cx.auth.clone(), cx.identity.clone());
    let ttl = cx.auth.settings().override_ttl.as_secs() as i64;
    cx
        .db
        .write(move |ctx| -> Result<Result<OverrideGranted, AuthError>, StoreError> {
            let attempt = Attempt {
                user,
                method: LoginMethod::Pin,
                terminal: terminal.clone(),
                username,
                secret_ok,
                context: "override: ",
            };
            let manager = match login::verify_attempt(ctx, &auth, &ident, attempt)? {
                Ok(u) => u,
                Err(e) => return Ok(Err(e)),
            };
            if manager.id == requester.user_id {
                return Ok(Err(AuthError::Override(
                    "an override must be authorised by another user".into(),
                )));
            }
            let table = staff::role_table(ctx.conn)?;
            if !table.permissions(&manager.roles).contains(&permission) {
                return Ok(Err(AuthError::Override(format!(
                    "{} does not have permission {permission} to lend",
                    manager.username
                ))));
            }
            let token = secrets::random_token();
            let override_id = uuid::Uuid::now_v7().to_string();
            let now = now_secs();
            ctx.conn.execute(
                "INSERT INTO overrides (token_sha256, override_id, user_id, username, permission, requested_by, expires_at, terminal)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    secrets::token_digest(&token),
                    override_id,
                    manager.id,
                    manager.username,
                    permission.name(),
                    requester.user_id,
                    now + ttl,
                    terminal
                ],
            )?;
            let author = Author {
                user_id: Some(manager.id.clone()),
                user_name: Some(manager.username.clone()),
                authorized_by: None,
            };
            login::record(
                ctx,
                &ident,
                &terminal,
                &author,
                SecurityEvent::OverrideGranted {
                    permission: permission.name().into(),
                    override_id: override_id.clone(),
                    requested_by: Some(requester.user_id.clone()),
                },
            )?;
            Ok(Ok(OverrideGranted {
                override_token: token,
                override_id,
                permission: permission.name().into(),
                authorized_by: Authoriser {
                    user_id: manager.id,
                    username: manager.username,
                },
                expires_in: ttl,
            }))
        })
        .await?
}

/// A stored override: `(override_id, user_id, username, permission, requested_by,
/// expires_at, used_by_fact, terminal)`.
type OverrideRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    String,
);

/// Authorises `permission` for `p` in the current writer job: `Ok(None)` when `p` has it,
/// `Ok(Some(authorization))` when an override token was given and is consumed now (the
/// caller puts it in the fact), else the refusal.
///
/// # Errors
/// [`AuthError::Forbidden`] without the permission or an override;
/// [`AuthError::Override`] for an unknown, used, expired or misdirected override.
pub fn authorize(
    ctx: &Ctx<'_>,
    p: &Principal,
    permission: Permission,
    action: &str,
    token: Option<&Secret>,
    terminal: &str,
) -> Result<Option<Authorization>, AuthError> {
    if p.permissions.contains(&permission) {
        return Ok(None);
    }
    let Some(token) = token else {
        return Err(AuthError::forbidden(
            p,
            permission,
            action,
            AuthError::OVERRIDE_HINT,
        ));
    };
    let store = |e: rusqlite::Error| AuthError::Override(format!("could not read overrides: {e}"));
    let row: Option<OverrideRow> = ctx
        .conn
        .prepare_cached(
            "SELECT override_id, user_id, username, permission, requested_by, expires_at, used_by_fact, terminal
             FROM overrides WHERE token_sha256 = ?1",
        )
        .map_err(store)?
        .query_row(params![secrets::token_digest(token.expose())], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .optional()
        .map_err(store)?;
    let Some((id, user, username, granted, requested_by, expires_at, used, granted_at)) = row else {
        return Err(AuthError::Override("unknown override token".into()));
    };
    if used.is_some() {
        return Err(AuthError::Override("this override was already used".into()));
    }
    if expires_at <= now_secs() {
        return Err(AuthError::Override("this override expired; ask again".into()));
    }
    if requested_by != p.user_id {
        return Err(AuthError::Override(
            "this override was given to another user".into(),
        ));
    }
    if granted_at != terminal {
        return Err(AuthError::Override(format!(
            "this override was given at terminal {granted_at}, not {terminal}: the manager authorises at the till where it is used"
        )));
    }
    if granted != permission.name() {
        return Err(AuthError::Override(format!(
            "this override lends {granted}, but {action} needs {permission}"
        )));
    }
    ctx.conn
        .execute(
            "UPDATE overrides SET used_by_fact = 'used' WHERE token_sha256 = ?1",
            params![secrets::token_digest(token.expose())],
        )
        .map_err(store)?;
    Ok(Some(Authorization {
        user,
        user_name: username,
        permission: granted,
        override_id: id,
    }))
}
