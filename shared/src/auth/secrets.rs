//! Secrets at rest: passwords and PINs as argon2id hashes, random opaque tokens, and the
//! rules a password or PIN must meet.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with the argon2
//! crate's defaults, which are the OWASP Password Storage Cheat Sheet's first recommended
//! argon2id configuration (19 MiB, 2 iterations, 1 lane). About 20-30 ms per hash or check
//! on this machine's cores: run them on a blocking thread, never on the async executor.
//!
//! Nothing here logs, and no type here prints a secret in `Debug`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// Shortest password accepted, in characters (NIST SP 800-63B section 5.1.1.2 asks for at
/// least 8; we ask for 10 because passwords here guard admin rights).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, in characters (argon2 would take more; the bound keeps a
/// request body from costing unbounded work).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Why a secret was refused or could not be hashed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// A PIN that is not 4 to 8 ASCII digits.
    #[error("a PIN must be 4 to 8 digits")]
    BadPin,
    /// A password outside the length rules.
    #[error("a password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    BadPassword,
    /// A stored hash that is not an argon2id PHC string.
    #[error("stored credential hash is not an argon2id PHC string")]
    BadHash,
    /// argon2 failed (it does not, for valid parameters).
    #[error("argon2: {0}")]
    Argon2(String),
}

/// A secret typed by a person at a command line: from the environment variable `env`
/// when set and not empty; else at a hidden prompt (`prompt`, on stderr) when stdin is a
/// terminal; else one line of stdin (scripts). `None` when what was read is empty.
///
/// Never from a command-line flag: other users could read it in the process list.
///
/// # Errors
/// The I/O error reading the terminal or stdin.
pub fn read_secret(env: &str, prompt: &str) -> std::io::Result<Option<Secret>> {
    if let Ok(v) = std::env::var(env)
        && !v.is_empty()
    {
        return Ok(Some(Secret::new(v)));
    }
    use std::io::IsTerminal;
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{prompt} (or set {env}): "))?
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line
    };
    let text = text.trim_end_matches(['\r', '\n']).to_string();
    Ok((!text.is_empty()).then(|| Secret::new(text)))
}

/// A secret string from a request or a frame (password, PIN, refresh token, enrollment
/// code): serialized as the plain string, but `Debug` and `Display` print `<redacted>`, so
/// it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself: use it, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// Argon2 runs on this many dedicated threads per process (each computation takes 19 MiB):
/// the machine's cores, at least 2.
fn argon2_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
}

type Argon2Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on one of [`argon2_threads`] dedicated threads and waits for it.
///
/// Why not on the caller's thread: each argon2 computation allocates 19 MiB, and the
/// allocator keeps that memory in the arena of the thread that used it. Hashing on
/// whichever of tokio's hundreds of blocking threads happens to run the job grew a chain
/// of 37 nodes to 2.3 GiB; a fixed set of threads bounds it (and bounds how many run at
/// once). `std` has no thread pool and this is all one is needed for.
fn on_argon2_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex, OnceLock};
    static POOL: OnceLock<Mutex<mpsc::Sender<Argon2Job>>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Argon2Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..argon2_threads() {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("caja-argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            // A thread that cannot start leaves fewer workers; zero is handled below.
            let _ = spawned;
        }
        Mutex::new(tx)
    });
    let (done_tx, done_rx) = mpsc::sync_channel::<R>(1);
    let job: Argon2Job = Box::new(move || {
        let _ = done_tx.send(f());
    });
    let sent = pool.lock().map(|tx| tx.send(job));
    match sent {
        Ok(Ok(())) => {}
        // No worker could ever run it: compute here rather than fail a login.
        Ok(Err(mpsc::SendError(job))) => job(),
        Err(_) => {}
    }
    // Invariant: every job sent is run by a worker or above, and it always sends.
    #[allow(clippy::expect_used)]
    done_rx.recv().expect("argon2 job result")
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Checks a PIN: 4 to 8 ASCII digits.
///
/// # Errors
/// [`SecretError::BadPin`].
pub fn check_pin(pin: &str) -> Result<(), SecretError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(SecretError::BadPin)
    }
}

/// Checks a password: 10 to 128 characters (any characters; no composition rules, per
/// NIST SP 800-63B).
///
/// # Errors
/// [`SecretError::BadPassword`].
pub fn check_password(password: &str) -> Result<(), SecretError> {
    let n = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(SecretError::BadPassword)
    }
}

/// Random bytes from the operating system (ring's `SystemRandom`, the randomness rustls
/// uses too).
fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| SecretError::Argon2("the operating system gave no randomness".into()))?;
    Ok(b)
}

fn hash(secret: &str) -> Result<String, SecretError> {
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()?).map_err(|e| SecretError::Argon2(e.to_string()))?;
    let secret = secret.to_string();
    on_argon2_thread(move || {
        hasher()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| SecretError::Argon2(e.to_string()))
    })
}

/// Hashes a password (after [`check_password`]) as an argon2id PHC string.
///
/// # Errors
/// [`SecretError::BadPassword`], or [`SecretError::Argon2`].
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    check_password(password)?;
    hash(password)
}

/// Hashes a PIN (after [`check_pin`]) as an argon2id PHC string.
///
/// # Errors
/// [`SecretError::BadPin`], or [`SecretError::Argon2`].
pub fn hash_pin(pin: &str) -> Result<String, SecretError> {
    check_pin(pin)?;
    hash(pin)
}

/// Whether `secret` matches the PHC string `stored`. Only argon2id hashes are accepted.
///
/// # Errors
/// [`SecretError::BadHash`] when `stored` is not an argon2id PHC string.
pub fn verify(secret: &str, stored: &str) -> Result<bool, SecretError> {
    let parsed = PasswordHash::new(stored).map_err(|_| SecretError::BadHash)?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(SecretError::BadHash);
    }
    let (secret, stored) = (secret.to_string(), stored.to_string());
    Ok(on_argon2_thread(move || {
        PasswordHash::new(&stored).is_ok_and(|p| hasher().verify_password(secret.as_bytes(), &p).is_ok())
    }))
}

/// Spends the time of one [`verify`] without a stored hash, so a login for an unknown
/// user takes as long as a wrong password (no user enumeration by timing).
pub fn verify_dummy(secret: &str) {
    // A fixed, valid argon2id hash of a random string.
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$L8P3Qxvyx3nqtF3m3ZpJFa9c0cbnSXN7Xy7cg5ewqvs";
    let _ = verify(secret, DUMMY);
}

/// A fresh opaque secret: 32 random bytes from the operating system, as 64 lowercase hex
/// digits. Used for refresh tokens and enrollment codes.
///
/// # Panics
/// Only if the operating system has no randomness at all, when nothing secure can run.
pub fn random_token() -> String {
    // Invariant: a system without a CSPRNG cannot run Caja safely; stop rather than issue
    // a guessable token.
    #[allow(clippy::expect_used)]
    let b = random_bytes::<32>().expect("operating system randomness");
    hex::encode(b)
}

/// Lowercase hex SHA-256 of a token: how opaque tokens are stored and looked up (a
/// 256-bit random token needs no slow hash).
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_passwords_hash_and_verify() {
        let h = hash_pin("4821").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains("4821"));
        assert!(verify("4821", &h).unwrap());
        assert!(!verify("4822", &h).unwrap());
        // Two hashes of one PIN differ (random salt).
        assert_ne!(h, hash_pin("4821").unwrap());
        let p = hash_password("correct horse battery").unwrap();
        assert!(verify("correct horse battery", &p).unwrap());
        assert!(!verify("correct horse batterz", &p).unwrap());
        verify_dummy("anything");
    }

    #[test]
    fn rules_refuse_bad_secrets_and_hashes() {
        for bad in ["", "123", "123456789", "12a4", "١٢٣٤"] {
            assert_eq!(check_pin(bad), Err(SecretError::BadPin), "{bad:?}");
        }
        assert!(check_pin("0000").is_ok() && check_pin("87654321").is_ok());
        assert_eq!(check_password("short"), Err(SecretError::BadPassword));
        assert_eq!(check_password(&"x".repeat(129)), Err(SecretError::BadPassword));
        assert_eq!(verify("x", "plain"), Err(SecretError::BadHash));
        // A valid PHC string of another algorithm is refused, not "verified".
        assert_eq!(
            verify("x", "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpams"),
            Err(SecretError::BadHash)
        );
    }

    #[test]
    fn concurrent_hashing_is_bounded_and_all_finish() {
        let hashes: Vec<String> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|i| sc.spawn(move || hash_pin(&format!("{:04}", 1000 + i)).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, h) in hashes.iter().enumerate() {
            assert!(verify(&format!("{:04}", 1000 + i), h).unwrap());
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("80417263");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"80417263\"");
        assert_eq!(s.expose(), "80417263");
    }

    #[test]
    fn tokens_are_random_and_digests_stable() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_digest("abc"), token_digest("abc"));
        assert_ne!(token_digest(&a), a);
    }
}
