//! Who is calling: a bearer token checked into a [`Principal`].
//!
//! Checks, in order: the `Authorization: Bearer` header, the token's signature and claims
//! ([`TokenKeys::verify`](caja_shared::auth::TokenKeys::verify): EdDSA only, this node's
//! key, audience `caja-node`, this store, time), then this node's database: the user is
//! still staff here and not disabled, and the token and its session are not revoked
//! (logout, refresh-token reuse, or head office signing the user out, which revokes the
//! sessions when it replicates). Permissions are those of the roles the token names that
//! the user still has (so a role taken away at head office stops working as soon as the
//! change replicates, without waiting for the token to expire).

use std::collections::BTreeSet;

use axum::http::HeaderMap;
use caja_shared::auth::tokens::{NODE_AUDIENCE, now_secs};
use caja_shared::auth::{AccessClaims, Permission, TokenError, sessions};
use rusqlite::Connection;
use serde::Serialize;
use utoipa::ToSchema;

use super::{AuthCtx, AuthError, staff};
use crate::store::StoreError;
use crate::store::audit::Who;
use crate::store::facts::Author;

/// An authenticated user of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Principal {
    /// User id.
    pub user_id: String,
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Roles in force for this token.
    pub roles: Vec<String>,
    /// What those roles allow.
    #[schema(value_type = Vec<String>)]
    pub permissions: BTreeSet<Permission>,
    /// The terminal of a PIN login.
    pub terminal: Option<String>,
    /// The session (refresh-token family) id.
    pub session: String,
    /// The access token's id.
    #[serde(skip)]
    pub jti: String,
    /// When the access token expires, seconds since the epoch (UTC).
    pub expires_at: i64,
}

impl Principal {
    /// The author of facts this user makes.
    pub fn author(&self) -> Author {
        Author {
            user_id: Some(self.user_id.clone()),
            user_name: Some(self.username.clone()),
            authorized_by: None,
        }
    }

    /// This user as the maker of an audited change.
    pub fn who(&self) -> Who<'_> {
        Who {
            user_id: &self.user_id,
            username: &self.username,
            terminal: self.terminal.as_deref(),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
///
/// # Errors
/// [`TokenError::Missing`] without the header, [`TokenError::Malformed`] for another scheme.
pub fn bearer(headers: &HeaderMap) -> Result<&str, TokenError> {
    let Some(v) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(TokenError::Missing);
    };
    let v = v
        .to_str()
        .map_err(|_| TokenError::Malformed("the Authorization header is not visible ASCII".into()))?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim())
        }
        _ => Err(TokenError::Malformed(
            "expected Authorization: Bearer <token>".into(),
        )),
    }
}

/// Checks verified claims against this node's database and builds the principal.
///
/// # Errors
/// [`TokenError::Revoked`] or [`TokenError::UserDisabled`] (as [`AuthError::Token`]);
/// [`StoreError`].
pub(crate) fn load(
    conn: &Connection,
    claims: &AccessClaims,
) -> Result<Result<Principal, AuthError>, StoreError> {
    let Some(user) = staff::by_id(conn, &claims.sub)? else {
        return Ok(Err(TokenError::UserDisabled(claims.name.clone()).into()));
    };
    if user.disabled {
        return Ok(Err(TokenError::UserDisabled(user.username).into()));
    }
    // Logout, refresh-token reuse, and head office's "sign out everywhere" (which revokes
    // this node's sessions of the user when it replicates, see `staff::project`).
    if let Some(reason) = sessions::revoked(conn, &claims.jti, &claims.fam)? {
        return Ok(Err(TokenError::Revoked(reason).into()));
    }
    let roles: Vec<String> = claims
        .roles
        .iter()
        .filter(|r| user.roles.contains(r))
        .cloned()
        .collect();
    let table = staff::role_table(conn)?;
    Ok(Ok(Principal {
        permissions: super::permissions_of(&table, &roles),
        user_id: user.id,
        username: user.username,
        display_name: user.display_name,
        roles,
        terminal: claims.term.clone(),
        session: claims.fam.clone(),
        jti: claims.jti.clone(),
        expires_at: claims.exp,
    }))
}

/// Authenticates a request's headers.
///
/// # Errors
/// [`AuthError::Token`] (401) or [`AuthError::Store`].
pub async fn authenticate(cx: AuthCtx<'_>, headers: &HeaderMap) -> Result<Principal, AuthError> {
    let token = bearer(headers).map_err(AuthError::from)?;
    let claims = cx
        .auth
        .keys()
        .verify(token, NODE_AUDIENCE, cx.identity.store.as_str(), now_secs())
        .map_err(AuthError::from)?;
    cx.db
        .read(move |c| load(c, &claims).map_err(AuthError::from))
        .await?
}
