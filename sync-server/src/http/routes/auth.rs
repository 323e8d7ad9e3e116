//! `/v1/auth`: admin API login (username + password), refresh-token rotation, logout,
//! and who am I.
//!
//! Login answers the same `login-failed` problem for an unknown user, a user without a
//! password and a wrong password, and spends one argon2 verification in each case, so
//! neither the answer nor its timing tells whether a username exists. Wrong passwords
//! lock the username (`crate::users::lockout`: 423 `login-locked`, audited `login.locked`),
//! known or not. A refresh token is single use; presenting one twice revokes its whole
//! session (`refresh-reused`).

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Extensions, StatusCode};
use caja_shared::auth::secrets::{self, Secret};
use caja_shared::auth::sessions::{self, RefreshError};
use caja_shared::auth::tokens;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, Actor, NewEntry};
use crate::http::auth::{Principal, issue};
use crate::http::error::{ApiError, ApiJson, Problem};
use crate::users::{directory as users, lockout};
use crate::{ServerError, SyncServer};

/// Body of `POST /v1/auth/login`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// Username.
    pub username: String,
    /// Password.
    #[schema(value_type = String)]
    pub password: Secret,
}

/// Body of `POST /v1/auth/refresh`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    /// The refresh token from the last login or refresh (single use).
    #[schema(value_type = String)]
    pub refresh_token: Secret,
}

/// The logged-in user, in a token answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserBrief {
    /// User id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role names.
    pub roles: Vec<String>,
}

/// Answer of login and refresh (RFC 6749 section 5.1 names).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TokensOut {
    /// The access token (JWT, EdDSA): send it as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token (single use; 64 hex digits).
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
    /// The user.
    pub user: UserBrief,
}

impl std::fmt::Debug for TokensOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokensOut")
            .field("user", &self.user.username)
            .finish_non_exhaustive()
    }
}

/// Answer of `GET /v1/auth/me`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeOut {
    /// The user.
    pub user: UserBrief,
    /// Permissions granted now (dotted names).
    pub permissions: Vec<String>,
    /// When the access token expires (seconds since the epoch).
    pub expires_at: i64,
}

fn remote(ext: &Extensions) -> String {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

fn brief(u: &users::UserRow) -> UserBrief {
    UserBrief {
        id: u.id.clone(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        roles: u.roles.clone(),
    }
}

fn login_failed() -> ApiError {
    ApiError::Unauthenticated {
        slug: "login-failed",
        detail: "wrong username or password".into(),
    }
}

/// Logs in with username and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginIn,
    responses(
        (status = 200, description = "Logged in", body = TokensOut),
        (status = 401, description = "login-failed or user-disabled", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "login-locked: too many wrong passwords for this username (Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many logins from this address", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(server): State<SyncServer>,
    ext: Extensions,
    ApiJson(body): ApiJson<LoginIn>,
) -> Result<axum::Json<TokensOut>, ApiError> {
    let remote = remote(&ext);
    let username: String = body.username.chars().take(64).collect();
    let lookup = username.clone();
    let (row, locked) = server
        .hub()
        .with_core(move |core| -> Result<_, ServerError> {
            let now_ms = chrono::Utc::now().timestamp_millis();
            Ok((
                users::by_username(&core.conn, &lookup)?,
                lockout::locked_until(&core.conn, &lookup, now_ms)?,
            ))
        })
        .await??;
    if let Some(until_ms) = locked {
        // The password is not even checked: guesses during a lock learn nothing.
        tracing::info!(%username, "admin login refused: locked");
        server
            .record_audit(NewEntry::new(
                "login.failed",
                json!({"username": username, "reason": "locked", "remote": remote}),
            ))
            .await?;
        return Err(ApiError::Locked { until_ms });
    }
    let password = body.password;
    let (row, verdict) = tokio::task::spawn_blocking(move || {
        let verdict = match row.as_ref().and_then(|u| u.password_hash.as_deref()) {
            Some(hash) => {
                if secrets::verify(password.expose(), hash).unwrap_or(false) {
                    None
                } else {
                    Some("wrong password")
                }
            }
            None => {
                secrets::verify_dummy(password.expose());
                Some(if row.is_some() {
                    "no password set"
                } else {
                    "unknown user"
                })
            }
        };
        (row, verdict)
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))?;
    let fail = |reason: &str| {
        NewEntry::new(
            "login.failed",
            json!({"username": username, "reason": reason, "remote": remote}),
        )
    };
    let user = match (row, verdict) {
        (Some(u), None) if !u.disabled => u,
        (Some(u), None) => {
            server
                .record_audit(fail("disabled").by(&Actor::user(&u.id, &u.username)))
                .await?;
            return Err(ApiError::Token(caja_shared::auth::TokenError::UserDisabled(
                u.username,
            )));
        }
        (_, Some(reason)) => {
            tracing::info!(%username, "admin login failed");
            let policy = lockout::Policy {
                attempts: server.options().login_attempts,
                lockout_ms: server.options().lockout.as_millis() as i64,
                max_ms: server.options().lockout_max.as_millis() as i64,
            };
            let entry = fail(reason);
            let (name, remote) = (username.clone(), remote.clone());
            let locked = server
                .hub()
                .with_core(move |core| -> Result<Option<i64>, ServerError> {
                    let tx = core.conn.transaction()?;
                    audit::record(&tx, &entry)?;
                    let now_ms = chrono::Utc::now().timestamp_millis();
                    let locked = lockout::failed(&*tx, &name, now_ms, policy)?;
                    if let Some(until) = locked {
                        let until_at = chrono::DateTime::from_timestamp_millis(until).unwrap_or_default();
                        audit::record(
                            &tx,
                            &NewEntry::new(
                                "login.locked",
                                json!({"username": name, "failures": policy.attempts, "remote": remote,
                                       "until": until_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
                            ),
                        )?;
                    }
                    tx.commit()?;
                    Ok(locked)
                })
                .await??;
            if let Some(until_ms) = locked {
                tracing::warn!(%username, "admin login locked after too many failures");
                return Err(ApiError::Locked { until_ms });
            }
            return Err(login_failed());
        }
        (None, None) => return Err(login_failed()),
    };
    let now = tokens::now_secs();
    let ttl = server.options().session_ttl.as_secs() as i64;
    let (uid, uname, remote2) = (user.id.clone(), user.username.clone(), remote.clone());
    let issued = server
        .hub()
        .with_core(move |core| -> Result<sessions::Issued, ServerError> {
            let tx = core.conn.transaction()?;
            let issued = sessions::start(&tx, &uid, &uname, "password", None, now, ttl)?;
            lockout::succeeded(&*tx, &uname)?;
            audit::record(
                &tx,
                &NewEntry::new(
                    "login.succeeded",
                    json!({"session": issued.session.family, "remote": remote2}),
                )
                .by(&Actor::user(&uid, &uname)),
            )?;
            tx.commit()?;
            Ok(issued)
        })
        .await??;
    tracing::info!(user = %user.username, "admin logged in");
    let (access_token, expires_in) = issue(&server, &user, &issued.session.family, now)?;
    Ok(axum::Json(TokensOut {
        access_token,
        token_type: "Bearer".into(),
        expires_in,
        refresh_token: issued.token.clone(),
        refresh_expires_in: issued.expires_at - now,
        user: brief(&user),
    }))
}

/// The outcome of a refresh in the database.
enum Rotated {
    Ok(Box<sessions::Issued>, Box<users::UserRow>),
    Refused(ApiError),
}

/// Exchanges a refresh token for a new access token and a new refresh token.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshIn,
    responses(
        (status = 200, description = "New tokens", body = TokensOut),
        (status = 401, description = "refresh-unknown, refresh-expired, refresh-revoked, refresh-reused (the session is revoked) or user-disabled", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(server): State<SyncServer>,
    ext: Extensions,
    ApiJson(body): ApiJson<RefreshIn>,
) -> Result<axum::Json<TokensOut>, ApiError> {
    let remote = remote(&ext);
    let now = tokens::now_secs();
    let ttl = server.options().session_ttl.as_secs() as i64;
    let token = body.refresh_token;
    let rotated = server
        .hub()
        .with_core(move |core| -> Result<Rotated, ServerError> {
            let tx = core.conn.transaction()?;
            let out = match sessions::rotate(&tx, token.expose(), now, ttl) {
                Ok(issued) => match users::by_id(&*tx, &issued.session.user_id)? {
                    Some(u) if !u.disabled => Rotated::Ok(Box::new(issued), Box::new(u)),
                    _ => {
                        sessions::revoke(&tx, &issued.session.family, "user disabled", now)?;
                        return Ok(Rotated::Refused(ApiError::Token(
                            caja_shared::auth::TokenError::UserDisabled(issued.session.username),
                        )));
                    }
                },
                Err(RefreshError::Reused { session }) => {
                    audit::record(
                        &tx,
                        &NewEntry::new(
                            "session.refresh_reused",
                            json!({"session": session.family, "remote": remote,
                                   "reason": "a refresh token was used twice; the session is revoked"}),
                        )
                        .by(&Actor::user(&session.user_id, &session.username)),
                    )?;
                    tracing::warn!(user = %session.username, "refresh token reused; session revoked");
                    Rotated::Refused(ApiError::Unauthenticated {
                        slug: "refresh-reused",
                        detail: RefreshError::Reused { session }.to_string(),
                    })
                }
                Err(RefreshError::Sqlite(e)) => return Err(ServerError::Invalid(format!("sqlite: {e}"))),
                Err(e) => {
                    let slug = match e {
                        RefreshError::Expired => "refresh-expired",
                        RefreshError::Revoked(_) => "refresh-revoked",
                        _ => "refresh-unknown",
                    };
                    Rotated::Refused(ApiError::Unauthenticated {
                        slug,
                        detail: e.to_string(),
                    })
                }
            };
            // Commits the family's revocation of a reused token too.
            tx.commit()?;
            Ok(out)
        })
        .await??;
    let (issued, user) = match rotated {
        Rotated::Ok(i, u) => (i, u),
        Rotated::Refused(e) => return Err(e),
    };
    let (access_token, expires_in) = issue(&server, &user, &issued.session.family, now)?;
    Ok(axum::Json(TokensOut {
        access_token,
        token_type: "Bearer".into(),
        expires_in,
        refresh_token: issued.token.clone(),
        refresh_expires_in: issued.expires_at - now,
        user: brief(&user),
    }))
}

/// Logs out: revokes the session (its refresh tokens) and this access token.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(
    State(server): State<SyncServer>,
    Extension(me): Extension<Principal>,
) -> Result<StatusCode, ApiError> {
    let claims = me.claims.clone();
    let actor = me.actor();
    server
        .hub()
        .with_core(move |core| -> Result<(), ServerError> {
            let tx = core.conn.transaction()?;
            sessions::revoke(&tx, &claims.fam, "logged out", tokens::now_secs())?;
            sessions::revoke_token(&tx, &claims.jti, claims.exp)?;
            audit::record(
                &tx,
                &NewEntry::new("logout", json!({"session": claims.fam})).by(&actor),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// The logged-in user and what they may do now.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = MeOut),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(Extension(me): Extension<Principal>) -> axum::Json<MeOut> {
    axum::Json(MeOut {
        user: UserBrief {
            id: me.claims.sub.clone(),
            username: me.claims.name.clone(),
            display_name: me.display_name.clone(),
            roles: me.roles.clone(),
        },
        permissions: me.permissions.iter().map(|p| p.name().to_string()).collect(),
        expires_at: me.claims.exp,
    })
}
