//! Login sessions in SQLite, shared by the node and the sync server: rotating single-use
//! refresh tokens grouped in families, and revocation of sessions and single access tokens.
//!
//! A login starts a session (a refresh-token family, identified by a UUIDv7) and returns its
//! first refresh token. Redeeming a refresh token marks it used and returns the next one of
//! the same family. Redeeming a token that was already used means someone else holds a
//! copy: the whole family is revoked, so both the thief's and the user's tokens die (the
//! "refresh token reuse detection" of the OAuth 2.0 Security Best Current Practice, RFC 9700
//! section 4.14.2). Only the SHA-256 of a refresh token is stored.
//!
//! Every function takes a `Connection` so the caller owns the transaction (on the node it
//! is the writer's job, together with the security fact that records the event).

use rusqlite::{Connection, OptionalExtension, params};

use super::secrets::{random_token, token_digest};

/// The tables this module owns. Idempotent.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS auth_sessions (
    family         TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    username       TEXT NOT NULL,
    method         TEXT NOT NULL,
    terminal       TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS auth_sessions_by_user ON auth_sessions(user_id);
CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
    token_sha256 TEXT PRIMARY KEY,
    family       TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX IF NOT EXISTS auth_refresh_by_family ON auth_refresh_tokens(family);
CREATE TABLE IF NOT EXISTS auth_revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
";

/// Creates the tables.
///
/// # Errors
/// SQLite errors.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// One login session (a refresh-token family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Family id (UUIDv7): the `fam` claim of its access tokens.
    pub family: String,
    /// The user.
    pub user_id: String,
    /// The username at login.
    pub username: String,
    /// `password` or `pin`.
    pub method: String,
    /// The terminal of a PIN login.
    pub terminal: Option<String>,
    /// When the session ends for good, seconds since the epoch (UTC).
    pub expires_at: i64,
}

/// A new or rotated refresh token: give `token` to the client, once. `Debug` hides it.
pub struct Issued {
    /// The session.
    pub session: Session,
    /// The refresh token (64 hex digits).
    pub token: String,
    /// When this refresh token expires, seconds since the epoch (UTC).
    pub expires_at: i64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("session", &self.session)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a refresh token was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RefreshError {
    /// Not a refresh token this service issued.
    #[error("unknown refresh token; log in again")]
    Unknown,
    /// Past its expiry.
    #[error("the refresh token expired; log in again")]
    Expired,
    /// Its session was revoked (logout, head office, or an earlier reuse).
    #[error("the session was revoked ({0}); log in again")]
    Revoked(String),
    /// It was used before: a copy is in someone else's hands. The session is now revoked.
    #[error(
        "this refresh token was already used, so a copy may be in someone else's hands: the whole session is revoked; log in again"
    )]
    Reused {
        /// The session revoked because of it.
        session: Session,
    },
    /// Storage failed.
    #[error("sqlite: {0}")]
    Sqlite(String),
}

impl From<rusqlite::Error> for RefreshError {
    fn from(e: rusqlite::Error) -> Self {
        RefreshError::Sqlite(e.to_string())
    }
}

fn new_refresh(conn: &Connection, family: &str, now: i64, ttl: i64) -> rusqlite::Result<(String, i64)> {
    let token = random_token();
    let expires = now + ttl;
    conn.prepare_cached(
        "INSERT INTO auth_refresh_tokens (token_sha256, family, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![token_digest(&token), family, now, expires])?;
    Ok((token, expires))
}

/// Starts a session for a user who just logged in, valid for `ttl_secs`, and returns its
/// first refresh token.
///
/// # Errors
/// SQLite errors.
pub fn start(
    conn: &Connection,
    user_id: &str,
    username: &str,
    method: &str,
    terminal: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> rusqlite::Result<Issued> {
    let family = uuid::Uuid::now_v7().to_string();
    conn.prepare_cached(
        "INSERT INTO auth_sessions (family, user_id, username, method, terminal, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        family,
        user_id,
        username,
        method,
        terminal,
        now,
        now + ttl_secs
    ])?;
    let (token, expires_at) = new_refresh(conn, &family, now, ttl_secs)?;
    Ok(Issued {
        session: Session {
            family,
            user_id: user_id.into(),
            username: username.into(),
            method: method.into(),
            terminal: terminal.map(str::to_string),
            expires_at: now + ttl_secs,
        },
        token,
        expires_at,
    })
}

fn session(conn: &Connection, family: &str) -> rusqlite::Result<Option<(Session, Option<String>)>> {
    conn.prepare_cached(
        "SELECT family, user_id, username, method, terminal, expires_at, revoked_at, revoked_reason
         FROM auth_sessions WHERE family = ?1",
    )?
    .query_row(params![family], |r| {
        let revoked: Option<i64> = r.get(6)?;
        let reason: Option<String> = r.get(7)?;
        Ok((
            Session {
                family: r.get(0)?,
                user_id: r.get(1)?,
                username: r.get(2)?,
                method: r.get(3)?,
                terminal: r.get(4)?,
                expires_at: r.get(5)?,
            },
            revoked.map(|_| reason.unwrap_or_else(|| "revoked".into())),
        ))
    })
    .optional()
}

/// Redeems a refresh token: marks it used and issues the next one of its session, which
/// keeps its original end (`expires_at`). The next token lives `ttl_secs` or until the
/// session ends, whichever is sooner.
///
/// # Errors
/// [`RefreshError::Reused`] (and the session is revoked, in the caller's transaction, which
/// must commit even though this returns an error), [`RefreshError::Unknown`],
/// [`RefreshError::Expired`], [`RefreshError::Revoked`].
// `Reused` carries the revoked session on purpose (the caller audits it); a boxed error
// would change this shared API for a rare path.
#[allow(clippy::result_large_err)]
pub fn rotate(conn: &Connection, token: &str, now: i64, ttl_secs: i64) -> Result<Issued, RefreshError> {
    let row: Option<(String, i64, Option<i64>)> = conn
        .prepare_cached(
            "SELECT family, expires_at, used_at FROM auth_refresh_tokens WHERE token_sha256 = ?1",
        )?
        .query_row(params![token_digest(token)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((family, expires, used)) = row else {
        return Err(RefreshError::Unknown);
    };
    let Some((session, revoked)) = session(conn, &family)? else {
        return Err(RefreshError::Unknown);
    };
    if let Some(reason) = revoked {
        return Err(RefreshError::Revoked(reason));
    }
    if used.is_some() {
        revoke(conn, &family, "refresh token reused", now)?;
        return Err(RefreshError::Reused { session });
    }
    if expires <= now || session.expires_at <= now {
        return Err(RefreshError::Expired);
    }
    conn.prepare_cached("UPDATE auth_refresh_tokens SET used_at = ?2 WHERE token_sha256 = ?1")?
        .execute(params![token_digest(token), now])?;
    let ttl = ttl_secs.min(session.expires_at - now);
    let (token, expires_at) = new_refresh(conn, &family, now, ttl)?;
    Ok(Issued {
        session,
        token,
        expires_at,
    })
}

/// Revokes a session: its refresh tokens and its access tokens (by their `fam` claim).
/// Revoking twice keeps the first reason. Returns whether the session exists.
///
/// # Errors
/// SQLite errors.
pub fn revoke(conn: &Connection, family: &str, reason: &str, now: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "UPDATE auth_sessions SET revoked_at = COALESCE(revoked_at, ?2), revoked_reason = COALESCE(revoked_reason, ?3)
         WHERE family = ?1",
    )?
    .execute(params![family, now, reason])
    .map(|n| n > 0)
}

/// Revokes one access token by its `jti` until `expires_at` (after which it is dead anyway
/// and the row may be purged).
///
/// # Errors
/// SQLite errors.
pub fn revoke_token(conn: &Connection, jti: &str, expires_at: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO auth_revoked_tokens (jti, expires_at) VALUES (?1, ?2)")?
        .execute(params![jti, expires_at])?;
    Ok(())
}

/// Why an access token's session or id is revoked, if it is.
///
/// # Errors
/// SQLite errors.
pub fn revoked(conn: &Connection, jti: &str, family: &str) -> rusqlite::Result<Option<String>> {
    let token: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM auth_revoked_tokens WHERE jti = ?1")?
        .query_row(params![jti], |r| r.get(0))
        .optional()?;
    if token.is_some() {
        return Ok(Some("logged out".into()));
    }
    Ok(session(conn, family)?.and_then(|(_, r)| r))
}

/// Deletes what can no longer matter: revoked token ids and refresh tokens past expiry,
/// sessions ended more than a day ago. Returns the rows removed.
///
/// # Errors
/// SQLite errors.
pub fn purge(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    let mut n = conn.execute(
        "DELETE FROM auth_revoked_tokens WHERE expires_at < ?1",
        params![now],
    )?;
    n += conn.execute(
        "DELETE FROM auth_refresh_tokens WHERE expires_at < ?1",
        params![now],
    )?;
    n += conn.execute(
        "DELETE FROM auth_sessions WHERE expires_at < ?1",
        params![now - 86_400],
    )?;
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        migrate(&c).unwrap();
        c
    }

    #[test]
    fn rotation_is_single_use_and_reuse_revokes_the_family() {
        let c = db();
        let first = start(&c, "u1", "ana", "pin", Some("T1"), 1000, 3600).unwrap();
        assert!(!format!("{first:?}").contains(&first.token));
        let second = rotate(&c, &first.token, 1010, 3600).unwrap();
        assert_eq!(second.session.family, first.session.family);
        assert_ne!(second.token, first.token);
        // The session's end does not move with rotation.
        assert_eq!(second.expires_at, 1000 + 3600);
        // The thief replays the first token: the family dies, including the fresh token.
        let err = rotate(&c, &first.token, 1020, 3600).unwrap_err();
        assert!(matches!(err, RefreshError::Reused { .. }), "{err:?}");
        assert_eq!(
            rotate(&c, &second.token, 1030, 3600).unwrap_err(),
            RefreshError::Revoked("refresh token reused".into())
        );
        assert_eq!(
            revoked(&c, "any-jti", &first.session.family).unwrap(),
            Some("refresh token reused".into())
        );
        assert_eq!(rotate(&c, "nope", 1030, 3600).unwrap_err(), RefreshError::Unknown);
    }

    #[test]
    fn expiry_logout_and_purge() {
        let c = db();
        let s = start(&c, "u1", "ana", "password", None, 1000, 100).unwrap();
        assert_eq!(
            rotate(&c, &s.token, 1100, 100).unwrap_err(),
            RefreshError::Expired
        );
        let s2 = start(&c, "u1", "ana", "password", None, 2000, 100).unwrap();
        assert_eq!(revoked(&c, "j", &s2.session.family).unwrap(), None);
        revoke_token(&c, "j", 2900).unwrap();
        assert_eq!(
            revoked(&c, "j", &s2.session.family).unwrap(),
            Some("logged out".into())
        );
        assert!(revoke(&c, &s2.session.family, "logout", 2001).unwrap());
        assert!(matches!(
            rotate(&c, &s2.token, 2002, 100),
            Err(RefreshError::Revoked(_))
        ));
        assert!(purge(&c, 100_000).unwrap() >= 3);
        assert_eq!(revoked(&c, "j", "gone").unwrap(), None);
    }
}
