//! Logins at the node, offline: username + password, or username + PIN at a terminal;
//! refresh-token rotation; logout. Every login, failure, lock and logout is a security
//! fact in the store's ledger (who, when, which terminal; never the secret).
//!
//! Lockout: after `pin_attempts` (default 5) consecutive wrong PINs or passwords for one
//! user on one terminal (a password login without a terminal counts on the node's own),
//! that user is locked on that terminal for `lockout` (default 30 s), doubled for every
//! further lock in a row up to `lockout_max` (default 1 h). Other users and other
//! terminals are unaffected; a correct secret clears the count. The count is kept per
//! terminal so a colleague fat-fingering at another till cannot lock someone out
//! everywhere. As the terminal id is whatever the client says, 15 failures (3 x
//! `pin_attempts`) for one user within 15 minutes across terminals lock that user on every
//! terminal of the node (same escalation); the rate limits on the credential routes bound
//! guessing per address.
//!
//! The argon2id check runs on a blocking thread before the writer job; the job then
//! re-checks the lock, so concurrent guesses cannot slip past it.

use caja_shared::audit::AuditKind;
use caja_shared::auth::AccessClaims;
use caja_shared::auth::secrets::{self, Secret};
use caja_shared::auth::sessions::{self, Issued, RefreshError};
use caja_shared::auth::tokens::{NODE_AUDIENCE, now_secs};
use caja_shared::docs::store::StaffUser;
use caja_shared::facts::{FactBody, LoginMethod, SecurityEvent};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Auth, AuthCtx, AuthError, Principal, staff};
use crate::config::check_terminal;
use crate::identity::Identity;
use crate::store::facts::{self as ledger, Author};
use crate::store::{Ctx, StoreError};

/// `POST /v1/auth/login` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username.
    pub username: String,
    /// Password.
    #[schema(value_type = String)]
    pub password: Secret,
    /// The terminal logging in, if any (recorded in the session and the facts).
    #[serde(default)]
    pub terminal: Option<String>,
}

/// `POST /v1/auth/pin` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// The terminal (till) id, 1-16 letters or digits.
    pub terminal: String,
    /// Username (usually picked from the staff list on the till).
    pub username: String,
    /// The 4-8 digit PIN.
    #[schema(value_type = String)]
    pub pin: Secret,
}

/// `POST /v1/auth/refresh` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the last login or refresh (single use).
    #[schema(value_type = String)]
    pub refresh_token: Secret,
}

/// A login's or refresh's answer.
#[derive(Clone, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (a JWT signed with EdDSA): send it as `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token (single use: each refresh returns the next one).
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
    /// Who is logged in and what they may do.
    pub user: Principal,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("user", &self.user.username)
            .finish()
    }
}

/// The username given, as recorded in a failure fact: trimmed, at most 64 characters,
/// control characters escaped (`bo\u{0}ss` stays distinguishable from `boss`).
fn recorded_name(name: &str) -> String {
    name.trim()
        .chars()
        .take(64)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<char>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Records a security fact of this node now.
///
/// # Errors
/// [`StoreError`].
pub(crate) fn record(
    ctx: &mut Ctx<'_>,
    ident: &Identity,
    terminal: &str,
    author: &Author,
    event: SecurityEvent,
) -> Result<(), StoreError> {
    let fact = ledger::envelope(
        ctx,
        ident,
        terminal.to_string(),
        Utc::now(),
        author,
        FactBody::Security(event),
    );
    ledger::record(ctx, &fact)?;
    Ok(())
}

fn author_of(u: &StaffUser) -> Author {
    Author {
        user_id: Some(u.id.clone()),
        user_name: Some(u.username.clone()),
        authorized_by: None,
    }
}

/// Signs an access token for `user` in `session` (permissions from `conn`'s role table).
fn issue(
    conn: &rusqlite::Connection,
    auth: &Auth,
    ident: &Identity,
    user: &StaffUser,
    issued: &Issued,
    now: i64,
) -> Result<TokenResponse, StoreError> {
    let ttl = auth.settings().access_token_ttl.as_secs() as i64;
    let exp = (now + ttl).min(issued.session.expires_at.max(now + 1));
    let claims = AccessClaims {
        iss: format!("node:{}", ident.node_id),
        aud: NODE_AUDIENCE.into(),
        sub: user.id.clone(),
        name: user.username.clone(),
        store: ident.store.to_string(),
        roles: user.roles.clone(),
        jti: uuid::Uuid::now_v7().to_string(),
        fam: issued.session.family.clone(),
        term: issued.session.terminal.clone(),
        iat: now,
        nbf: now,
        exp,
    };
    let access_token = auth
        .keys()
        .issue(&claims)
        .map_err(|e| StoreError::Task(format!("signing a token: {e}")))?;
    let table = staff::role_table(conn)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: exp - now,
        refresh_token: issued.token.clone(),
        refresh_expires_in: issued.expires_at - now,
        user: Principal {
            user_id: user.id.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            permissions: super::permissions_of(&table, &user.roles),
            roles: user.roles.clone(),
            terminal: claims.term,
            session: claims.fam,
            jti: claims.jti,
            expires_at: exp,
        },
    })
}

/// Milliseconds since the Unix epoch now (locks are kept to the millisecond: a 1 s lock
/// must not end after 10 ms because of rounding).
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The `pin_lockouts` terminal key of a lock that holds on every terminal.
pub(crate) const ALL_TERMINALS: &str = "*";

/// Wrong PINs for one user across all terminals, within [`ALL_TERMINALS_WINDOW_MS`], that
/// lock the user on every terminal: this many times `pin_attempts` (3 x 5 = 15).
const ALL_TERMINALS_FACTOR: u32 = 3;

/// The window of [`ALL_TERMINALS_FACTOR`]: 15 minutes.
const ALL_TERMINALS_WINDOW_MS: i64 = 15 * 60 * 1000;

/// Login failures (PIN or password, logins and overrides, any terminal, any reason but a
/// lock) recorded for a user since `since_ms`; for a name that is not staff here (`user`
/// is `None`), those recorded under that username.
fn recent_failures(
    conn: &rusqlite::Connection,
    user: Option<&str>,
    username: &str,
    since_ms: i64,
) -> Result<u32, StoreError> {
    let since = at(since_ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM audit_log WHERE kind = ?4 AND at >= ?3
             AND ((?1 IS NOT NULL AND user_id = ?1) OR (?1 IS NULL AND user_id IS NULL AND username = ?2))
             AND json_extract(detail, '$.reason') NOT LIKE '%locked'",
        )?
        .query_row(
            params![user, username, since, AuditKind::LoginFailed.as_str()],
            |r| r.get(0),
        )?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// What a new lock needs to know.
struct Lock<'a> {
    ident: &'a Identity,
    settings: &'a crate::config::AuthSettings,
    author: &'a Author,
    /// The `pin_lockouts` key: the user id, or [`unknown_key`].
    key: &'a str,
    username: &'a str,
    terminal: &'a str,
    now_ms: i64,
}

impl Lock<'_> {
    /// Locks the user on `key` (a terminal or [`ALL_TERMINALS`]) for the `lockouts`-th lock
    /// in a row (`lockout` doubled each time, at most `lockout_max`), records the `locked`
    /// fact and returns when it ends.
    fn apply(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        lockouts: u32,
        failures: u32,
    ) -> Result<DateTime<Utc>, StoreError> {
        let ms = caja_shared::auth::lock_length_ms(
            i64::try_from(self.settings.lockout.as_millis()).unwrap_or(i64::MAX),
            i64::try_from(self.settings.lockout_max.as_millis()).unwrap_or(i64::MAX),
            lockouts,
        );
        let until = self.now_ms + ms;
        ctx.conn.execute(
            "INSERT INTO pin_lockouts (user_id, terminal, failures, lockouts, locked_until) VALUES (?1, ?2, 0, ?3, ?4)
             ON CONFLICT (user_id, terminal) DO UPDATE SET failures = 0, lockouts = ?3, locked_until = ?4",
            params![self.key, key, lockouts, until],
        )?;
        let all_terminals = key == ALL_TERMINALS;
        record(
            ctx,
            self.ident,
            self.terminal,
            self.author,
            SecurityEvent::Locked {
                username: self.username.to_string(),
                failures,
                until: at(until),
                all_terminals,
            },
        )?;
        tracing::warn!(user = %self.username, terminal = %self.terminal, all_terminals, lock_ms = ms, "login lockout (PIN or password)");
        Ok(at(until))
    }
}

/// Whether the user is locked on `terminal` now (or on every terminal).
///
/// # Errors
/// [`StoreError::Sqlite`].
pub(crate) fn is_locked(conn: &rusqlite::Connection, user: &str, terminal: &str) -> Result<bool, StoreError> {
    let now = now_ms();
    Ok(lockout(conn, user, terminal)?.2 > now || lockout(conn, user, ALL_TERMINALS)?.2 > now)
}

/// A lockout row: `(failures, lockouts, locked_until in ms since the epoch)`.
pub(crate) fn lockout(
    conn: &rusqlite::Connection,
    user: &str,
    terminal: &str,
) -> Result<(u32, u32, i64), StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT failures, lockouts, locked_until FROM pin_lockouts WHERE user_id = ?1 AND terminal = ?2",
        )?
        .query_row(params![user, terminal], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or((0, 0, 0)))
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Checks a secret against a stored hash on a blocking thread; `None` spends the same
/// time against a dummy hash (no user enumeration by timing).
pub(crate) async fn check_secret(secret: Secret, hash: Option<String>) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => secrets::verify(secret.expose(), &h).unwrap_or(false),
        None => {
            secrets::verify_dummy(secret.expose());
            false
        }
    })
    .await
    .map_err(|e| AuthError::from(StoreError::Task(e.to_string())))
}

/// What a login (or override) attempt found before the writer job.
pub(crate) struct Attempt {
    /// The user of the username given, if any.
    pub user: Option<StaffUser>,
    /// Password or PIN.
    pub method: LoginMethod,
    /// The terminal.
    pub terminal: String,
    /// The username given.
    pub username: String,
    /// Whether the secret matched (checked off the writer thread).
    pub secret_ok: bool,
    /// Prefix of failure reasons (`"override: "` for overrides).
    pub context: &'static str,
}

/// The writer-job half of checking credentials: re-checks the user and the lock, records
/// every failure (and a lock) as a security fact, counts PIN failures. Returns the user
/// or the refusal; the outer result is storage only, so refusals commit their facts.
pub(crate) fn verify_attempt(
    ctx: &mut Ctx<'_>,
    node_auth: &Auth,
    ident: &Identity,
    a: Attempt,
) -> Result<Result<StaffUser, AuthError>, StoreError> {
    let failed = |ctx: &mut Ctx<'_>, author: &Author, reason: &str| {
        record(
            ctx,
            ident,
            &a.terminal,
            author,
            SecurityEvent::LoginFailed {
                method: a.method,
                username: recorded_name(&a.username),
                reason: format!("{}{reason}", a.context),
            },
        )
    };
    let pin = a.method == LoginMethod::Pin;
    let what = if pin { "PIN" } else { "password" };
    // Every failure counts the same way, for a real user or not, PIN or password: a lock
    // that only real users reach would tell which usernames exist.
    let author = a.user.as_ref().map(author_of).unwrap_or_default();
    // Why the attempt fails, if it does (before any lock).
    let refusal = match &a.user {
        None => Some("unknown user"),
        Some(u) if u.disabled => Some("disabled"),
        Some(u) if pin && u.pin_hash.is_none() => Some("no PIN set"),
        Some(u) if !pin && u.password_hash.is_none() => Some("no password set"),
        Some(_) if !a.secret_ok => Some(if pin { "wrong PIN" } else { "wrong password" }),
        Some(_) => None,
    };
    {
        let key = match &a.user {
            Some(u) => u.id.clone(),
            None => unknown_key(&a.username),
        };
        let name = a
            .user
            .as_ref()
            .map_or_else(|| recorded_name(&a.username), |u| u.username.clone());
        let settings = node_auth.settings();
        let now_ms = now_ms();
        let (failures, lockouts, until) = lockout(ctx.conn, &key, &a.terminal)?;
        let (_, all_lockouts, all_until) = lockout(ctx.conn, &key, ALL_TERMINALS)?;
        if until.max(all_until) > now_ms {
            failed(ctx, &author, "locked")?;
            return Ok(Err(AuthError::Locked {
                username: name,
                terminal: (all_until <= until).then(|| a.terminal.clone()),
                until: at(until.max(all_until)),
            }));
        }
        if let Some(reason) = refusal {
            failed(ctx, &author, reason)?;
            let failures = failures + 1;
            let lock = Lock {
                ident,
                settings,
                author: &author,
                key: &key,
                username: &name,
                terminal: &a.terminal,
                now_ms,
            };
            if failures >= settings.pin_attempts {
                let until = lock.apply(ctx, &a.terminal, lockouts + 1, failures)?;
                return Ok(Err(AuthError::Locked {
                    username: name,
                    terminal: Some(a.terminal.clone()),
                    until,
                }));
            }
            ctx.conn.execute(
                "INSERT INTO pin_lockouts (user_id, terminal, failures, lockouts, locked_until) VALUES (?1, ?2, ?3, ?4, 0)
                 ON CONFLICT (user_id, terminal) DO UPDATE SET failures = ?3",
                params![key, a.terminal, failures, lockouts],
            )?;
            // The terminal id is the client's word: someone naming a new terminal every few
            // guesses meets the lock on every terminal instead.
            let recent = recent_failures(
                ctx.conn,
                a.user.as_ref().map(|u| u.id.as_str()),
                &name,
                now_ms - ALL_TERMINALS_WINDOW_MS,
            )?;
            if recent >= ALL_TERMINALS_FACTOR * settings.pin_attempts {
                let until = lock.apply(ctx, ALL_TERMINALS, all_lockouts + 1, recent)?;
                return Ok(Err(AuthError::Locked {
                    username: name,
                    terminal: None,
                    until,
                }));
            }
            return Ok(Err(AuthError::LoginFailed(what)));
        }
        ctx.conn.execute(
            "DELETE FROM pin_lockouts WHERE user_id = ?1 AND terminal IN (?2, ?3)",
            params![key, a.terminal, ALL_TERMINALS],
        )?;
    }
    match a.user {
        Some(u) => Ok(Ok(u)),
        // Unreachable: no user is a refusal above; answered as a failed login all the same.
        None => Ok(Err(AuthError::LoginFailed(what))),
    }
}

/// The `pin_lockouts` key of a username that is not staff here (`?` cannot start a user
/// id), so unknown names lock like real ones.
fn unknown_key(username: &str) -> String {
    format!("?{}", recorded_name(username).to_lowercase())
}

/// The writer-job half of a login: [`verify_attempt`], then the session and its first
/// tokens, and the `login_succeeded` fact (`login.succeeded` in the audit log).
fn finish_login(
    ctx: &mut Ctx<'_>,
    node_auth: &Auth,
    ident: &Identity,
    a: Attempt,
) -> Result<Result<TokenResponse, AuthError>, StoreError> {
    let (method_kind, terminal_name) = (a.method, a.terminal.clone());
    let user = match verify_attempt(ctx, node_auth, ident, a)? {
        Ok(u) => u,
        Err(e) => return Ok(Err(e)),
    };
    let now = now_secs();
    let author = author_of(&user);
    let a = (method_kind, terminal_name);
    let method = match a.0 {
        LoginMethod::Password => "password",
        LoginMethod::Pin => "pin",
    };
    let terminal = (a.0 == LoginMethod::Pin).then_some(a.1.as_str());
    let ttl = node_auth.settings().session_ttl.as_secs() as i64;
    let issued = sessions::start(ctx.conn, &user.id, &user.username, method, terminal, now, ttl)?;
    record(
        ctx,
        ident,
        &a.1,
        &author,
        SecurityEvent::LoginSucceeded {
            method: a.0,
            session: issued.session.family.clone(),
        },
    )?;
    Ok(Ok(issue(ctx.conn, node_auth, ident, &user, &issued, now)?))
}

async fn run_login(
    cx: AuthCtx<'_>,
    a_user: Option<StaffUser>,
    a: Attempt,
) -> Result<TokenResponse, AuthError> {
    let (auth, ident) = (cx.auth.clone(), cx.identity.clone());
    let a = Attempt { user: a_user, ..a };
    cx.db
        .write(move |ctx| finish_login(ctx, &auth, &ident, a))
        .await?
}

/// The user of `username` and whether `pin` is theirs, checked off the writer thread. A
/// disabled or locked user's PIN is not even checked (the writer job records the attempt
/// and refuses it); an unknown user costs the same argon2 time as a wrong PIN.
///
/// # Errors
/// Storage failures.
pub(crate) async fn check_pin_of(
    cx: AuthCtx<'_>,
    username: &str,
    terminal: &str,
    pin: Secret,
) -> Result<(Option<StaffUser>, bool), AuthError> {
    let (u, t) = (username.to_string(), terminal.to_string());
    let (user, locked) = cx
        .db
        .read(move |c| -> Result<_, AuthError> {
            let user = staff::by_username(c, &u)?;
            let locked = match &user {
                Some(user) => is_locked(c, &user.id, &t)?,
                None => false,
            };
            Ok((user, locked))
        })
        .await?;
    let hash = user
        .as_ref()
        .filter(|u| !u.disabled && !locked)
        .and_then(|u| u.pin_hash.clone());
    let secret_ok = check_secret(pin, hash).await?;
    Ok((user, secret_ok))
}

/// `POST /v1/auth/login`: username and password.
///
/// # Errors
/// [`AuthError::LoginFailed`] (401) for a wrong or unknown username or password, a
/// disabled user or one without a password; [`AuthError::Locked`] (423) while locked
/// (module docs), including for the attempt that causes the lock; [`AuthError::Invalid`]
/// for a bad terminal.
pub async fn password(cx: AuthCtx<'_>, req: LoginRequest) -> Result<TokenResponse, AuthError> {
    let terminal = match &req.terminal {
        Some(t) => {
            check_terminal(t).map_err(|reason| AuthError::Invalid {
                field: "terminal",
                reason,
            })?;
            t.clone()
        }
        None => cx.identity.terminal.clone(),
    };
    let username = req.username.trim().to_string();
    let user = {
        let u = username.clone();
        cx.db
            .read(move |c| staff::by_username(c, &u).map_err(AuthError::from))
            .await?
    };
    let hash = user
        .as_ref()
        .filter(|u| !u.disabled)
        .and_then(|u| u.password_hash.clone());
    let secret_ok = check_secret(req.password, hash).await?;
    run_login(
        cx,
        user,
        Attempt {
            user: None,
            method: LoginMethod::Password,
            terminal,
            username,
            secret_ok,
            context: "",
        },
    )
    .await
}

/// `POST /v1/auth/pin`: username and PIN at a terminal, with lockout.
///
/// # Errors
/// [`AuthError::Invalid`] for a bad terminal or a PIN that is not 4-8 digits;
/// [`AuthError::LoginFailed`] (401); [`AuthError::Locked`] (423) while locked, including
/// for the attempt that causes the lock.
pub async fn pin(cx: AuthCtx<'_>, req: PinRequest) -> Result<TokenResponse, AuthError> {
    check_terminal(&req.terminal).map_err(|reason| AuthError::Invalid {
        field: "terminal",
        reason,
    })?;
    secrets::check_pin(req.pin.expose()).map_err(|e| AuthError::Invalid {
        field: "pin",
        reason: e.to_string(),
    })?;
    let username = req.username.trim().to_string();
    let (user, secret_ok) = check_pin_of(cx, &username, &req.terminal, req.pin).await?;
    run_login(
        cx,
        user,
        Attempt {
            user: None,
            method: LoginMethod::Pin,
            terminal: req.terminal,
            username,
            secret_ok,
            context: "",
        },
    )
    .await
}

/// `POST /v1/auth/refresh`: rotates the refresh token and issues a new access token with
/// the user's current roles. A refresh token used twice revokes its whole session (and
/// that is recorded as a security fact).
///
/// # Errors
/// [`AuthError::Refresh`] (401): unknown, expired, revoked or reused;
/// [`AuthError::Token`] `user-disabled` when the user may no longer work here (a session
/// head office signed out was revoked when that arrived: `refresh-revoked`).
pub async fn refresh(cx: AuthCtx<'_>, req: RefreshRequest) -> Result<TokenResponse, AuthError> {
    let (auth, ident) = (cx.auth.clone(), cx.identity.clone());
    cx
        .db
        .write(move |ctx| -> Result<Result<TokenResponse, AuthError>, StoreError> {
            let now = now_secs();
            let ttl = auth.settings().session_ttl.as_secs() as i64;
            let issued = match sessions::rotate(ctx.conn, req.refresh_token.expose(), now, ttl) {
                Ok(i) => i,
                Err(RefreshError::Reused { session }) => {
                    let author = Author {
                        user_id: Some(session.user_id.clone()),
                        user_name: Some(session.username.clone()),
                        authorized_by: None,
                    };
                    let terminal = session.terminal.clone().unwrap_or_else(|| ident.terminal.clone());
                    record(
                        ctx,
                        &ident,
                        &terminal,
                        &author,
                        SecurityEvent::SessionRevoked {
                            session: session.family.clone(),
                            reason: "refresh token reused".into(),
                        },
                    )?;
                    tracing::warn!(user = %session.username, session = %session.family, "refresh token reused: session revoked");
                    return Ok(Err(RefreshError::Reused { session }.into()));
                }
                Err(RefreshError::Sqlite(e)) => return Err(StoreError::Task(e)),
                Err(e) => return Ok(Err(e.into())),
            };
            let user = match staff::by_id(ctx.conn, &issued.session.user_id)? {
                Some(u) if !u.disabled => u,
                _ => {
                    sessions::revoke(ctx.conn, &issued.session.family, "user disabled", now)?;
                    return Ok(Err(caja_shared::auth::TokenError::UserDisabled(issued.session.username.clone()).into()));
                }
            };
            Ok(Ok(issue(ctx.conn, &auth, &ident, &user, &issued, now)?))
        })
        .await?
}

/// `POST /v1/auth/logout`: revokes the caller's session and access token.
///
/// # Errors
/// Storage failures.
pub async fn logout(cx: AuthCtx<'_>, p: Principal) -> Result<(), AuthError> {
    let ident = cx.identity.clone();
    cx.db
        .write(move |ctx| -> Result<(), StoreError> {
            let now = now_secs();
            sessions::revoke(ctx.conn, &p.session, "logout", now)?;
            sessions::revoke_token(ctx.conn, &p.jti, p.expires_at)?;
            let terminal = p.terminal.clone().unwrap_or_else(|| ident.terminal.clone());
            record(
                ctx,
                &ident,
                &terminal,
                &p.author(),
                SecurityEvent::Logout {
                    session: p.session.clone(),
                },
            )
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::recorded_name;

    #[test]
    fn recorded_names_are_trimmed_bounded_and_show_control_characters() {
        assert_eq!(recorded_name("  boss "), "boss");
        // A NUL or an escape sequence stays visible, so `bo\0ss` is not mistaken for `boss`
        // and a terminal reading the audit log is not driven by it.
        assert_eq!(recorded_name("bo\u{0}ss"), "bo\\u{0}ss");
        assert_eq!(recorded_name("x\u{1b}[2J"), "x\\u{1b}[2J");
        assert_eq!(recorded_name(&"a".repeat(100)).len(), 64);
    }
}
