//! The ONE access check of the admin API (`authorize`, a middleware every route of the
//! table gets with its [`Access`]), the logged-in [`Principal`] it hands to handlers, and
//! the issuing of access tokens.
//!
//! A request to a protected route needs `Authorization: Bearer <access token>`. In
//! order: the token verifies ([`caja_shared::auth::TokenKeys::verify`]: algorithm EdDSA,
//! this server's key, audience `caja-sync`, time, store `hq`), its user exists and is
//! enabled, it is not revoked (logout, session revoked), the user has not been signed out
//! everywhere since the token was issued, and the route's permission is granted by the user's CURRENT
//! roles that the token also carries (a role taken away works at once; a role added needs a
//! new login). A user tied to stores, an admin included, acts only on those stores
//! ([`Principal::scope`]): reads (reports, facts, the store list, nodes, users, the audit
//! log) show only them, and writes are refused outside them or when they are chain-wide
//! (new stores, custom roles, store-less users). Head office's own users are the ones tied
//! to no store. A refusal is 401 with the token error's problem type (`token-expired`, …)
//! and `WWW-Authenticate`, or 403 `forbidden` naming the missing permission.

use std::collections::BTreeSet;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use caja_shared::auth::sessions;
use caja_shared::auth::tokens::{self, AccessClaims, HQ_STORE, SERVER_AUDIENCE};
use caja_shared::auth::{Permission, TokenError};

use super::access::Access;
use super::error::ApiError;
use crate::audit::Actor;
use crate::users::directory as users;
use crate::{ServerError, SyncServer};

/// The issuer of the admin API's tokens.
pub const ISSUER: &str = "caja-sync";

/// The user a request was authenticated as (in the request extensions).
#[derive(Debug, Clone)]
pub struct Principal {
    /// The verified claims of the access token.
    pub claims: AccessClaims,
    /// The user's display name now.
    pub display_name: String,
    /// The roles in force: the user's current roles that the token also carries.
    pub roles: Vec<String>,
    /// The permissions those roles grant.
    pub permissions: BTreeSet<Permission>,
    /// The stores this user may act on through the admin API: `None` for head office's
    /// own users (tied to no store), else the user's stores, whatever their roles. A store
    /// manager's or store admin's account exists at head office too; this keeps it to its
    /// stores.
    pub scope: Option<BTreeSet<String>>,
}

impl Principal {
    /// Refuses to hand out `granted` permissions (roles given to a user, or a custom role
    /// defined) that this user does not hold: `user.manage` must not be a way to become
    /// admin.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] naming the permissions missing.
    pub fn may_grant(&self, what: &str, granted: &BTreeSet<Permission>) -> Result<(), ApiError> {
        let missing: Vec<&str> = granted.difference(&self.permissions).map(|p| p.name()).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{what} grants {} that {} does not have; only someone who holds a permission can hand it out",
                missing.join(", "),
                self.claims.name
            )))
        }
    }

    /// Whether this user may read `store`'s data.
    pub fn sees(&self, store: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(store))
    }

    /// Refuses a chain-wide change (`what`: a new store, a custom role) to a user tied to
    /// stores.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`].
    pub fn chain_wide(&self, what: &str) -> Result<(), ApiError> {
        match &self.scope {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden(format!(
                "{what} is a chain-wide change: {} works for stores {}, and only head office's users (tied to no store) make those",
                self.claims.name,
                self.stores_text()
            ))),
        }
    }

    /// Refuses acting on `stores` (`what`) unless all of them are this user's. An empty
    /// set means head office's own (store-less) scope, which a user tied to stores may
    /// not touch either.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`].
    pub fn within<'a>(&self, what: &str, stores: impl IntoIterator<Item = &'a str>) -> Result<(), ApiError> {
        let stores: Vec<&str> = stores.into_iter().collect();
        if self.covers(&stores) {
            return Ok(());
        }
        let outside: Vec<&str> = stores.iter().copied().filter(|s| !self.sees(s)).collect();
        if stores.is_empty() {
            return Err(ApiError::Forbidden(format!(
                "{what} concerns head office itself (no store); {} works for stores {} only",
                self.claims.name,
                self.stores_text()
            )));
        }
        Err(ApiError::Forbidden(format!(
            "{what} concerns stores {} outside {}'s stores ({})",
            outside.join(", "),
            self.claims.name,
            self.stores_text()
        )))
    }

    /// Whether this user may act on `stores`: head office's users on anything; a user
    /// tied to stores on a non-empty set of their own stores only.
    pub fn covers(&self, stores: &[&str]) -> bool {
        self.scope.is_none() || (!stores.is_empty() && stores.iter().all(|s| self.sees(s)))
    }

    fn stores_text(&self) -> String {
        self.scope
            .as_ref()
            .map(|s| s.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    }

    /// The audit actor of this user.
    pub fn actor(&self) -> Actor {
        Actor::user(&self.claims.sub, &self.claims.name)
    }
}

/// The bearer token of a request.
fn bearer(req: &Request) -> Result<&str, TokenError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(TokenError::Missing)?
        .to_str()
        .map_err(|_| TokenError::Malformed("the Authorization header is not text".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| TokenError::Malformed("expected Authorization: Bearer <token>".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Malformed(format!(
            "the Authorization scheme is {scheme:?}, not Bearer"
        )));
    }
    Ok(token.trim())
}

/// Checks a token against the database: revocation and the user's state; returns the
/// principal.
async fn principal(server: &SyncServer, claims: AccessClaims) -> Result<Principal, ApiError> {
    let r = server
        .hub()
        .with_core(
            move |core| -> Result<Result<Principal, TokenError>, ServerError> {
                let Some(user) = users::by_id(&core.conn, &claims.sub)? else {
                    return Ok(Err(TokenError::UserDisabled(claims.name.clone())));
                };
                if user.disabled {
                    return Ok(Err(TokenError::UserDisabled(user.username)));
                }
                if let Some(reason) = sessions::revoked(&core.conn, &claims.jti, &claims.fam)? {
                    return Ok(Err(TokenError::Revoked(reason)));
                }
                if claims.iat < user.sessions_valid_after {
                    return Ok(Err(TokenError::Revoked(
                        "signed out everywhere by head office".into(),
                    )));
                }
                let roles: Vec<String> = user
                    .roles
                    .iter()
                    .filter(|r| claims.roles.contains(r))
                    .cloned()
                    .collect();
                let permissions = core.roles.permissions(&roles);
                let scope =
                    (!user.stores.is_empty()).then(|| user.stores.iter().map(|s| s.to_string()).collect());
                Ok(Ok(Principal {
                    claims,
                    display_name: user.display_name,
                    roles,
                    permissions,
                    scope,
                }))
            },
        )
        .await
        .map_err(ApiError::from)?;
    r.map_err(ApiError::from)?.map_err(ApiError::Token)
}

/// The middleware: checks `access` for the request and inserts the [`Principal`].
pub(crate) async fn authorize(
    State((server, access)): State<(SyncServer, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    if access == Access::Public {
        return next.run(req).await;
    }
    let claims = match bearer(&req).and_then(|t| {
        server
            .keys()
            .verify(t, SERVER_AUDIENCE, HQ_STORE, tokens::now_secs())
    }) {
        Ok(c) => c,
        Err(e) => return ApiError::Token(e).into_response(),
    };
    let principal = match principal(&server, claims).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Access::Permission(p) = access
        && !principal.permissions.contains(&p)
    {
        tracing::info!(user = %principal.claims.name, permission = %p, "forbidden");
        return ApiError::Forbidden(format!(
            "this needs the permission {p}, which the roles {:?} of {} do not grant",
            principal.roles, principal.claims.name
        ))
        .into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Issues an access token for a user in session `family`.
///
/// # Errors
/// [`ApiError::Internal`] if signing fails (a broken key).
pub(crate) fn issue(
    server: &SyncServer,
    user: &users::UserRow,
    family: &str,
    now: i64,
) -> Result<(String, i64), ApiError> {
    let ttl = server.options().access_token_ttl.as_secs() as i64;
    let claims = AccessClaims {
        iss: ISSUER.into(),
        aud: SERVER_AUDIENCE.into(),
        sub: user.id.clone(),
        name: user.username.clone(),
        store: HQ_STORE.into(),
        roles: user.roles.clone(),
        jti: uuid::Uuid::now_v7().to_string(),
        fam: family.to_string(),
        term: None,
        iat: now,
        nbf: now,
        exp: now + ttl,
    };
    let token = server.keys().issue(&claims).map_err(|e| {
        tracing::error!(error = %e, "could not sign an access token");
        ApiError::Internal
    })?;
    Ok((token, ttl))
}
