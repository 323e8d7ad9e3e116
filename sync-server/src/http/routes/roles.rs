//! `/v1/roles`: the built-in roles and head office's custom roles (define, replace,
//! delete); custom roles replicate to every store.

use std::collections::BTreeSet;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use caja_shared::auth::Permission;
use caja_shared::auth::permissions::{BUILT_IN_ROLES, built_in};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::SyncServer;
use crate::http::auth::Principal;
use crate::http::error::{ApiError, ApiJson, ApiPath, Problem};

/// A role and what it grants.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleOut {
    /// Role name.
    pub name: String,
    /// Whether it is built in (cashier, manager, admin).
    pub built_in: bool,
    /// Permission names.
    pub permissions: Vec<String>,
}

/// Body of `PUT /v1/roles/{name}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleIn {
    /// Permission names, e.g. `["report.read", "audit.read"]`.
    pub permissions: Vec<String>,
}

/// Lists built-in and custom roles.
#[utoipa::path(get, path = "/v1/roles", tag = "roles", security(("bearer" = [])),
    responses((status = 200, description = "Roles", body = [RoleOut])))]
pub async fn list(State(server): State<SyncServer>) -> Result<axum::Json<Vec<RoleOut>>, ApiError> {
    let mut out: Vec<RoleOut> = BUILT_IN_ROLES
        .iter()
        .map(|r| RoleOut {
            name: r.to_string(),
            built_in: true,
            permissions: built_in(r)
                .unwrap_or_default()
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
        })
        .collect();
    out.extend(
        server
            .custom_roles()
            .await?
            .into_iter()
            .map(|(name, permissions)| RoleOut {
                name,
                built_in: false,
                permissions,
            }),
    );
    Ok(axum::Json(out))
}

/// Defines or replaces a custom role.
#[utoipa::path(put, path = "/v1/roles/{name}", tag = "roles", request_body = RoleIn, security(("bearer" = [])),
    params(("name" = String, Path, description = "Role name: 1-40 characters of a-z, 0-9, '-' and '_'")),
    responses(
        (status = 200, description = "The role as stored", body = RoleOut),
        (status = 422, description = "Bad or built-in name, unknown permission", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RoleIn>,
) -> Result<axum::Json<RoleOut>, ApiError> {
    me.chain_wide(&format!("defining role {name}"))?;
    let permissions = body
        .permissions
        .iter()
        .map(|p| {
            p.parse::<Permission>().map_err(|e| ApiError::Invalid {
                field: "permissions",
                reason: e.to_string(),
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    me.may_grant(&format!("role {name}"), &permissions)?;
    server
        .define_role(&me.actor(), &name, permissions.clone())
        .await?;
    Ok(axum::Json(RoleOut {
        name,
        built_in: false,
        permissions: permissions.iter().map(|p| p.name().to_string()).collect(),
    }))
}

/// Deletes a custom role no user holds.
#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "roles", security(("bearer" = [])),
    params(("name" = String, Path, description = "Role name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such custom role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A user holds it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    me.chain_wide(&format!("deleting role {name}"))?;
    server.delete_role(&me.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
