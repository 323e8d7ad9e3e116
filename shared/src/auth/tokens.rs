//! Access tokens: short-lived JWTs (RFC 7519) signed with Ed25519 (`alg: EdDSA`, RFC 8037)
//! by the node or sync server that issued them, and verified only by that issuer.
//!
//! Verification accepts exactly one algorithm (EdDSA) and one key, so `alg: none`, an
//! HS256 token keyed with our public key (the classic algorithm-confusion attack) or a
//! token of another key are all refused, each with its own [`TokenError`] so the client
//! learns what was wrong. Claims are checked after the signature: audience, store, expiry
//! (`exp`), not-before (`nbf`) and issued-at (`iat`, not in the future), on the issuer's own
//! clock with no leeway ([`LEEWAY_SECS`]). Revocation and user state are checked by the caller
//! (they live in its database).

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// Clock leeway for `exp`, `nbf` and `iat`, in seconds: none. A token is checked only by
/// the node or server that issued it, on the clock that stamped it, so there is no skew to
/// forgive, and an expired token must not work a moment longer.
pub const LEEWAY_SECS: i64 = 0;

/// Audience of tokens a store node issues.
pub const NODE_AUDIENCE: &str = "caja-node";
/// Audience of tokens the sync server's admin API issues.
pub const SERVER_AUDIENCE: &str = "caja-sync";
/// The `store` claim of head-office tokens (sync server admin API).
pub const HQ_STORE: &str = "hq";

/// The claims of a Caja access token.
///
/// Compatibility rule: claims are append-only; a new claim is `Option` or
/// `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: `node:<node id>` or `caja-sync`.
    pub iss: String,
    /// Audience: [`NODE_AUDIENCE`] or [`SERVER_AUDIENCE`].
    pub aud: String,
    /// The user id (UUIDv7).
    pub sub: String,
    /// The username, for logs and receipts.
    pub name: String,
    /// The store the token is valid at ([`HQ_STORE`] for the admin API).
    pub store: String,
    /// The user's role names when the token was issued.
    pub roles: Vec<String>,
    /// Token id (UUIDv7): what a logout revokes.
    pub jti: String,
    /// Session (refresh-token family) id: revoking the session revokes its tokens.
    pub fam: String,
    /// The terminal of a PIN login.
    #[serde(default)]
    pub term: Option<String>,
    /// Issued at, seconds since the Unix epoch (UTC).
    pub iat: i64,
    /// Not valid before, seconds since the Unix epoch (UTC).
    pub nbf: i64,
    /// Expires at, seconds since the Unix epoch (UTC).
    pub exp: i64,
}

/// Why a token was refused. Each variant has its own problem type at the HTTP layer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error("no access token: send Authorization: Bearer <token> (log in with POST /v1/auth/login first)")]
    Missing,
    /// Not three base64url parts with a JSON header and claims.
    #[error("the access token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// Signed (or not signed) with an algorithm we do not accept.
    #[error("token algorithm {0:?} is not accepted: Caja tokens are signed with EdDSA (Ed25519)")]
    Algorithm(String),
    /// The signature does not verify with this issuer's key: another key, or the token
    /// was altered.
    #[error("the token's signature does not verify: it was not issued here or was altered")]
    Signature,
    /// Past its `exp`.
    #[error("the access token expired; refresh it (POST /v1/auth/refresh) or log in again")]
    Expired,
    /// Before its `nbf` or `iat`.
    #[error("the access token is not valid yet (nbf or iat is in the future)")]
    NotYetValid,
    /// Issued for another audience (node vs sync server).
    #[error("the access token was issued for {0:?}, not for this service")]
    Audience(String),
    /// Issued for another store.
    #[error("the access token is for store {token:?}, not this store {here:?}")]
    WrongStore {
        /// The store in the token.
        token: String,
        /// This store.
        here: String,
    },
    /// Revoked (logout, a reused refresh token, head office).
    #[error("the access token was revoked ({0}); log in again")]
    Revoked(String),
    /// The user is disabled or unknown here.
    #[error("user {0:?} is disabled or no longer allowed here")]
    UserDisabled(String),
}

impl TokenError {
    /// The stable slug of the problem type (`https://caja.dev/problems/<slug>`).
    pub fn slug(&self) -> &'static str {
        crate::problem::ProblemType::of_token(self).name()
    }
}

/// Errors creating or loading a signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The stored bytes are not an Ed25519 PKCS#8 key.
    #[error("{0}: not an Ed25519 PKCS#8 private key")]
    Invalid(std::path::PathBuf),
    /// Key generation or signing failed.
    #[error("crypto: {0}")]
    Crypto(String),
}

/// An Ed25519 signing key and its verifying key. `Debug` never shows the private key.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("public", &hex::encode(&self.public))
            .field("private", &"<redacted>")
            .finish()
    }
}

impl TokenKeys {
    /// A fresh key pair (ring, from the operating system's randomness), and its PKCS#8
    /// encoding to store.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if the system has no randomness.
    pub fn generate() -> Result<(TokenKeys, Vec<u8>), KeyError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let keys = Self::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| KeyError::Crypto("generated key unusable".into()))?;
        Ok((keys, pkcs8.as_ref().to_vec()))
    }

    /// Keys from a PKCS#8 Ed25519 private key (DER).
    ///
    /// # Errors
    /// [`KeyError::Crypto`] when the bytes are not one.
    pub fn from_pkcs8(der: &[u8]) -> Result<TokenKeys, KeyError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(TokenKeys {
            encoding: EncodingKey::from_ed_der(der),
            decoding: DecodingKey::from_ed_der(&public),
            public,
        })
    }

    /// Loads the key from `path`, or generates one and writes it there (mode 0600 on Unix,
    /// synced) on first use.
    ///
    /// # Errors
    /// [`KeyError::Io`], [`KeyError::Invalid`] for a file that is not a key.
    pub fn load_or_create(path: &Path) -> Result<TokenKeys, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(der) => Self::from_pkcs8(&der).map_err(|_| KeyError::Invalid(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (keys, der) = Self::generate()?;
                write_secret_file(path, &der).map_err(io)?;
                Ok(keys)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// Signs claims into a compact JWT.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] (only on a broken key).
    pub fn issue(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.encoding)
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Verifies a compact JWT issued with these keys for `audience` and `store`, at time
    /// `now` (seconds since the epoch).
    ///
    /// # Errors
    /// The [`TokenError`] saying what is wrong, checked in this order: shape, algorithm,
    /// signature, audience, time, store.
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        store: &str,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        let alg = header_alg(token)?;
        if alg != "EdDSA" {
            return Err(TokenError::Algorithm(alg));
        }
        let mut v = Validation::new(Algorithm::EdDSA);
        // Time is checked below against the caller's clock, so tests can pin it.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &v)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidEddsaKey => TokenError::Signature,
                ErrorKind::InvalidAlgorithm => TokenError::Algorithm(alg.clone()),
                ErrorKind::Json(_) | ErrorKind::MissingRequiredClaim(_) => {
                    TokenError::Malformed("the claims are not Caja access-token claims".into())
                }
                _ => TokenError::Malformed(e.to_string()),
            })?
            .claims;
        if claims.aud != audience {
            return Err(TokenError::Audience(claims.aud));
        }
        if claims.exp + LEEWAY_SECS <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now + LEEWAY_SECS || claims.iat > now + LEEWAY_SECS {
            return Err(TokenError::NotYetValid);
        }
        if claims.store != store {
            return Err(TokenError::WrongStore {
                token: claims.store,
                here: store.to_string(),
            });
        }
        Ok(claims)
    }
}

/// The `alg` of a JWT's header, read without trusting anything else in the token.
fn header_alg(token: &str) -> Result<String, TokenError> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("expected three dot-separated parts".into()));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("the header is not base64url".into()))?;
    #[derive(Deserialize)]
    struct H {
        alg: Option<String>,
    }
    let header: H =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("the header is not JSON".into()))?;
    Ok(header.alg.unwrap_or_else(|| "(none given)".into()))
}

/// Writes a secret file: created with mode 0600 on Unix (never world-readable, even
/// briefly), written, synced, then renamed into place so a crash never leaves half a key.
///
/// # Errors
/// The I/O error.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Makes a data directory or file readable by its owner only (0700 / 0600 on Unix; a
/// no-op elsewhere): data directories hold staff hashes and keys. For an SQLite database,
/// call it before the first write: SQLite gives its `-wal` and `-shm` files the database
/// file's mode; existing ones are restricted here too.
///
/// # Errors
/// The I/O error.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)?;
        let mode = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.permissions().mode() & 0o777 != mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        if meta.is_file() {
            for ext in ["-wal", "-shm"] {
                let mut side = path.as_os_str().to_owned();
                side.push(ext);
                let side = std::path::PathBuf::from(side);
                if side.is_file() {
                    std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600))?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Seconds since the Unix epoch now (UTC).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "node:x".into(),
            aud: NODE_AUDIENCE.into(),
            sub: "u1".into(),
            name: "ana".into(),
            store: "uk".into(),
            roles: vec!["cashier".into()],
            jti: "j1".into(),
            fam: "f1".into(),
            term: Some("T1".into()),
            iat: now,
            nbf: now,
            exp: now + 900,
        }
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn issues_and_verifies_then_refuses_every_attack() {
        let (keys, _) = TokenKeys::generate().unwrap();
        let now = 1_800_000_000;
        let t = keys.issue(&claims(now)).unwrap();
        assert_eq!(keys.verify(&t, NODE_AUDIENCE, "uk", now).unwrap(), claims(now));

        // alg: none, no signature.
        let payload = b64(&serde_json::to_vec(&claims(now)).unwrap());
        let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(
            keys.verify(&none, NODE_AUDIENCE, "uk", now),
            Err(TokenError::Algorithm("none".into()))
        );
        // HS256 keyed with our public key.
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(now),
            &EncodingKey::from_secret(keys.public_key()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            keys.verify(&hs, NODE_AUDIENCE, "uk", now),
            Err(TokenError::Algorithm("HS256".into()))
        );
        // Another key.
        let (other, _) = TokenKeys::generate().unwrap();
        let t2 = other.issue(&claims(now)).unwrap();
        assert_eq!(
            keys.verify(&t2, NODE_AUDIENCE, "uk", now),
            Err(TokenError::Signature)
        );
        // Tampered claims (roles raised to admin), original signature.
        let mut c = claims(now);
        c.roles = vec!["admin".into()];
        let parts: Vec<&str> = t.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_vec(&c).unwrap()),
            parts[2]
        );
        assert_eq!(
            keys.verify(&tampered, NODE_AUDIENCE, "uk", now),
            Err(TokenError::Signature)
        );
        // Time, audience, store.
        assert_eq!(
            keys.verify(&t, NODE_AUDIENCE, "uk", now + 906),
            Err(TokenError::Expired)
        );
        assert_eq!(
            keys.verify(&t, NODE_AUDIENCE, "uk", now - 60),
            Err(TokenError::NotYetValid)
        );
        assert!(matches!(
            keys.verify(&t, SERVER_AUDIENCE, "uk", now),
            Err(TokenError::Audience(_))
        ));
        assert!(matches!(
            keys.verify(&t, NODE_AUDIENCE, "fr", now),
            Err(TokenError::WrongStore { .. })
        ));
        // Garbage.
        for bad in ["", "abc", "a.b", "a.b.c.d", "!!.x.y"] {
            assert!(
                matches!(
                    keys.verify(bad, NODE_AUDIENCE, "uk", now),
                    Err(TokenError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_persist_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt.key");
        let a = TokenKeys::load_or_create(&path).unwrap();
        let b = TokenKeys::load_or_create(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert!(!format!("{a:?}").contains(&hex::encode(std::fs::read(&path).unwrap())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&path, b"junk").unwrap();
        assert!(matches!(
            TokenKeys::load_or_create(&path),
            Err(KeyError::Invalid(_))
        ));
    }
}
