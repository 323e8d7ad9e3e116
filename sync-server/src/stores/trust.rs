//! Which nodes head office trusts: the rules of one-time enrollment codes, enrolled nodes
//! and the client certificates issued to them. The rows are kept through
//! `crate::db::TrustDb`.
//!
//! A code is stored only as the SHA-256 of its normalised form; it is checked and
//! consumed in the same transaction that creates the node and records its certificates
//! (`consume_code` is meant to run inside it), so two nodes racing with one code cannot
//! both enroll. A node is identified on every connection by the SHA-256 of the client
//! certificate it presents (`TrustDb::identify`); revoking a node
//! (`TrustDb::revoke_node`) refuses all its certificates at once.
//!
//! Times are seconds since the Unix epoch (UTC).

use caja_shared::ids::{NodeId, StoreCode};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::db::{StoreDb, TrustDb};
use crate::error::ServerError;

/// Crockford's base32 alphabet (no I, L, O, U): what enrollment codes are written in.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Symbols in an enrollment code: 20 of 5 bits each, 100 bits of entropy.
const CODE_SYMBOLS: usize = 20;

/// A fresh enrollment code: 20 random Crockford base32 symbols (100 bits from the
/// operating system's CSPRNG through `rand`'s `ThreadRng`), in groups of five:
/// `7K2QX-9MZ4T-H3D8R-W1CVN`.
///
/// Why not a 64-hex-digit [`caja_shared::auth::secrets::random_token`]: someone types
/// this code at a store's till, often read out over the phone. 100 bits are far beyond
/// guessing for a code that is single-use, expires (24 h by default) and is rate-limited
/// per address; base32 without look-alike letters, case-insensitive, in groups, is
/// typable. The ten-line alphabet map is ours because no workspace crate provides
/// Crockford base32 and it is not worth a dependency.
pub fn new_code() -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(CODE_SYMBOLS + CODE_SYMBOLS / 5);
    for i in 0..CODE_SYMBOLS {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[rng.random_range(0..32)]));
    }
    out
}

/// The form a code is hashed in: separators and spaces dropped, upper case, and the
/// look-alikes Crockford allows (`I`, `L` → `1`, `O` → `0`) mapped.
pub fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect()
}

/// Lowercase hex SHA-256 of a normalised code: how it is stored and looked up. A code
/// with 100 random bits needs no slow hash.
pub fn code_digest(code: &str) -> String {
    hex::encode(Sha256::digest(normalise_code(code).as_bytes()))
}

/// Stores a new code for `store` valid until `expires_at`; returns the code.
///
/// # Errors
/// [`ServerError::UnknownStore`], [`ServerError::Sqlite`].
pub(crate) fn issue_code(
    db: &(impl StoreDb + TrustDb),
    store: &StoreCode,
    now: i64,
    expires_at: i64,
) -> Result<String, ServerError> {
    if !db.store_exists(store)? {
        return Err(ServerError::UnknownStore(store.clone()));
    }
    let code = new_code();
    db.insert_code(&code_digest(&code), store, now, expires_at)?;
    Ok(code)
}

/// Why an enrollment code was refused. The `Display` text goes back to the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeRefusal {
    /// No such code.
    #[error("unknown enrollment code")]
    Unknown,
    /// The code was used before.
    #[error("enrollment code already used")]
    Used {
        /// Its store.
        store: String,
    },
    /// The code is past its expiry.
    #[error("enrollment code expired")]
    Expired {
        /// Its store.
        store: String,
    },
}

/// Checks a code and marks it used by `node`, inside the caller's transaction. Returns its
/// store.
///
/// # Errors
/// `Ok(Err(refusal))` for a code that cannot be used; `Err` for storage failures.
pub(crate) fn consume_code(
    db: &impl TrustDb,
    code: &str,
    node: &NodeId,
    now: i64,
) -> Result<Result<StoreCode, CodeRefusal>, ServerError> {
    Ok(db.consume_code(&code_digest(code), node, now)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&conn).unwrap();
        crate::stores::register_store(&conn, &"uk".parse().unwrap(), "UK").unwrap();
        conn
    }

    #[test]
    fn codes_are_typable_and_normalised() {
        let c = new_code();
        assert_eq!(c.len(), 23, "{c}");
        assert!(c.split('-').all(|g| g.len() == 5));
        assert_ne!(c, new_code());
        assert_eq!(code_digest(&c), code_digest(&c.to_lowercase().replace('-', " ")));
        assert_eq!(normalise_code("io-L0"), "1010");
    }

    #[test]
    fn codes_are_single_use_and_expire() {
        let conn = db();
        let uk: StoreCode = "uk".parse().unwrap();
        assert!(matches!(
            issue_code(&conn, &"nope".parse().unwrap(), 0, 10),
            Err(ServerError::UnknownStore(_))
        ));
        let code = issue_code(&conn, &uk, 100, 200).unwrap();
        let late = issue_code(&conn, &uk, 100, 150).unwrap();
        let (n1, n2) = (NodeId::new(), NodeId::new());
        assert_eq!(
            consume_code(&conn, "nope", &n1, 120).unwrap(),
            Err(CodeRefusal::Unknown)
        );
        assert_eq!(
            consume_code(&conn, &late, &n1, 150).unwrap(),
            Err(CodeRefusal::Expired { store: "uk".into() })
        );
        assert_eq!(consume_code(&conn, &code, &n1, 120).unwrap(), Ok(uk.clone()));
        assert_eq!(
            consume_code(&conn, &code, &n2, 121).unwrap(),
            Err(CodeRefusal::Used { store: "uk".into() })
        );
        conn.insert_node(&n1, &uk, 120).unwrap();
        conn.insert_cert("abc", &n1, 999, 120).unwrap();
        let owner = conn.identify("abc").unwrap().unwrap();
        assert_eq!((owner.node, owner.revoked_at), (n1, None));
        assert!(conn.identify("def").unwrap().is_none());
        assert_eq!(conn.revoke_node(&n1, 130).unwrap(), Some(uk));
        assert_eq!(
            conn.revoke_node(&n1, 140).unwrap().map(|s| s.to_string()),
            Some("uk".into())
        );
        assert_eq!(conn.identify("abc").unwrap().unwrap().revoked_at, Some(130));
        assert_eq!(conn.revoke_node(&n2, 130).unwrap(), None);
        assert_eq!(conn.revoked_among(&[n1, n2]).unwrap(), vec![n1]);
        assert_eq!(conn.list_nodes().unwrap()[0].cert_not_after, 999);
    }
}
