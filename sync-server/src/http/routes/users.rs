//! `/v1/users`: head office's users (create, list, read, change, sign out everywhere).
//! Answers never contain a hash; requests with a password or PIN never appear in logs.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use caja_shared::auth::secrets::Secret;
use caja_shared::ids::StoreCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::auth::Principal;
use crate::http::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::{NewUser, SyncServer, UserInfo, UserPatch};

/// Body of `POST /v1/users`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    /// Login name: 1-64 characters of a-z, 0-9, '.', '_' and '-'.
    pub username: String,
    /// Name on screens and receipts (default: the username).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Password, 10-128 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    /// PIN, 4-8 digits.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub pin: Option<Secret>,
    /// Role names (built-in or custom).
    pub roles: Vec<String>,
    /// Stores the user may work in.
    #[serde(default)]
    pub stores: Vec<String>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`, through
/// `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `PATCH /v1/users/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchIn {
    /// New display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// New password; `null` removes it (the user keeps only a PIN).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Option<Secret>>,
    /// New PIN (4-8 digits); `null` removes it (the user keeps only a password).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub pin: Option<Option<Secret>>,
    /// New role names.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// New set of stores.
    #[serde(default)]
    pub stores: Option<Vec<String>>,
    /// Disable (true) or enable (false).
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// A user as the API shows them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserOut {
    /// User id (UUIDv7).
    pub id: String,
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Stores the user may work in.
    pub stores: Vec<String>,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// Whether a password is set.
    pub has_password: bool,
    /// Whether a PIN is set.
    pub has_pin: bool,
}

impl From<UserInfo> for UserOut {
    fn from(u: UserInfo) -> Self {
        UserOut {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            roles: u.roles,
            stores: u.stores.iter().map(|s| s.to_string()).collect(),
            disabled: u.disabled,
            has_password: u.has_password,
            has_pin: u.has_pin,
        }
    }
}

fn stores(codes: &[String]) -> Result<Vec<StoreCode>, ApiError> {
    codes
        .iter()
        .map(|c| {
            c.parse()
                .map_err(|e: caja_shared::ids::StoreCodeError| ApiError::Invalid {
                    field: "stores",
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// Creates a user; their credentials replicate to the stores listed.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = UserIn, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = UserOut),
        (status = 409, description = "Username taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiJson(body): ApiJson<UserIn>,
) -> Result<(StatusCode, axum::Json<UserOut>), ApiError> {
    me.within(
        &format!("creating user {}", body.username),
        body.stores.iter().map(String::as_str),
    )?;
    me.may_grant(
        &format!("giving roles {}", body.roles.join(", ")),
        &server.role_permissions(body.roles.clone()).await?,
    )?;
    let user = NewUser {
        display_name: body.display_name.unwrap_or_else(|| body.username.clone()),
        username: body.username,
        password: body.password,
        pin: body.pin,
        roles: body.roles,
        stores: stores(&body.stores)?,
    };
    let info = server.create_user(&me.actor(), user).await?;
    Ok((StatusCode::CREATED, axum::Json(info.into())))
}

/// Lists every user.
#[utoipa::path(get, path = "/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "Users by username", body = [UserOut])))]
pub async fn list(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
) -> Result<axum::Json<Vec<UserOut>>, ApiError> {
    Ok(axum::Json(
        server
            .users()
            .await?
            .into_iter()
            .filter(|u| manages(&me, u))
            .map(Into::into)
            .collect(),
    ))
}

/// Whether `me` may see and manage `u`: head office's users anyone; others only users
/// all of whose stores are theirs (so never head office's own, store-less users).
fn manages(me: &Principal, u: &crate::UserInfo) -> bool {
    me.covers(&u.stores.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

/// Reads one user.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = UserOut),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<UserOut>, ApiError> {
    match server.user(&id).await? {
        Some(u) if manages(&me, &u) => Ok(axum::Json(u.into())),
        _ => Err(ApiError::NotFound(format!("no user with id {id:?}"))),
    }
}

/// Changes a user (display name, password, PIN, roles, stores, disabled).
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", request_body = UserPatchIn, security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user as changed", body = UserOut),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UserPatchIn>,
) -> Result<axum::Json<UserOut>, ApiError> {
    may_manage(&server, &me, &id).await?;
    if let Some(stores) = &body.stores {
        me.within("moving a user to stores", stores.iter().map(String::as_str))?;
    }
    if let Some(roles) = &body.roles {
        me.may_grant(
            &format!("giving roles {}", roles.join(", ")),
            &server.role_permissions(roles.clone()).await?,
        )?;
    }
    let patch = UserPatch {
        display_name: body.display_name,
        remove_password: matches!(body.password, Some(None)),
        remove_pin: matches!(body.pin, Some(None)),
        password: body.password.flatten(),
        pin: body.pin.flatten(),
        roles: body.roles,
        stores: body.stores.as_deref().map(stores).transpose()?,
        disabled: body.disabled,
    };
    Ok(axum::Json(
        server.update_user(&me.actor(), &id, patch).await?.into(),
    ))
}

/// Signs a user out everywhere: their admin sessions end, and nodes refuse tokens issued
/// before now once the change replicates.
#[utoipa::path(post, path = "/v1/users/{id}/revoke-sessions", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Signed out everywhere"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_sessions(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    may_manage(&server, &me, &id).await?;
    server.revoke_user_sessions(&me.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses changing a user who holds permissions `me` does not: resetting their password
/// would hand those permissions over.
/// A user outside `me`'s stores is "not found".
async fn may_manage(server: &SyncServer, me: &Principal, id: &str) -> Result<(), ApiError> {
    let Some(target) = server.user(id).await?.filter(|u| manages(me, u)) else {
        return Err(ApiError::NotFound(format!("no user with id {id:?}")));
    };
    let theirs = server.role_permissions(target.roles.clone()).await?;
    me.may_grant(&format!("changing user {}, who", target.username), &theirs)
}
