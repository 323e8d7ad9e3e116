//! `/v1/auth`: logins (password, PIN), token refresh, logout, who am I, manager overrides.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};

use crate::app::Node;
use crate::auth::Principal;
use crate::auth::login::{self, LoginRequest, PinRequest, RefreshRequest, TokenResponse};
use crate::auth::overrides::{self, OverrideGranted, OverrideRequest};
use crate::http::body;
use crate::http::error::{ApiError, Problem};

/// Logs in with username and password; answers an access token (15 min) and a refresh
/// token. Works offline: staff come from the replicated store document.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest, security(()),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(node): State<Node>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let req: LoginRequest = body::json(&headers, &bytes?)?;
    Ok(Json(login::password(node.auth_ctx(), req).await?))
}

/// Logs in at a terminal with username and PIN. After 5 wrong PINs the user is locked on
/// that terminal (423 with `Retry-After`), for longer each time.
#[utoipa::path(post, path = "/v1/auth/pin", tag = "auth", request_body = PinRequest, security(()),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 423, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn pin(
    State(node): State<Node>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let req: PinRequest = body::json(&headers, &bytes?)?;
    Ok(Json(login::pin(node.auth_ctx(), req).await?))
}

/// Trades a refresh token for a new access token and the next refresh token. A refresh
/// token used twice revokes its session.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, security(()),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn refresh(
    State(node): State<Node>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let req: RefreshRequest = body::json(&headers, &bytes?)?;
    Ok(Json(login::refresh(node.auth_ctx(), req).await?))
}

/// Logs out: revokes this session's refresh tokens and this access token.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "logged out"), (status = 401, body = Problem)))]
pub async fn logout(State(node): State<Node>, p: Principal) -> Result<StatusCode, ApiError> {
    login::logout(node.auth_ctx(), p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the token belongs to and what they may do.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth",
    responses((status = 200, body = Principal), (status = 401, body = Problem)))]
pub async fn me(p: Principal) -> Json<Principal> {
    Json(p)
}

/// A second user (a manager) authorises ONE action of the caller with their PIN; send the
/// answered token in the `Caja-Override` header of that action's request.
#[utoipa::path(post, path = "/v1/auth/override", tag = "auth", request_body = OverrideRequest,
    responses((status = 200, body = OverrideGranted), (status = 401, body = Problem), (status = 403, body = Problem), (status = 423, body = Problem), (status = 422, body = Problem)))]
pub async fn grant_override(
    State(node): State<Node>,
    p: Principal,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<OverrideGranted>, ApiError> {
    let req: OverrideRequest = body::json(&headers, &bytes?)?;
    Ok(Json(overrides::grant(node.auth_ctx(), p, req).await?))
}
