//! Users' trust: what roles may do, how secrets are stored, how access tokens are signed
//! and checked, and how login sessions rotate and are revoked. Shared by the node (offline
//! logins at the store) and the sync server (head office's admin API), so both follow the
//! same rules.
//!
//! - [`permissions`]: permissions, built-in and custom roles (the one table in code).
//! - [`secrets`]: argon2id hashes of passwords and PINs, random opaque tokens.
//! - [`tokens`]: Ed25519-signed JWT access tokens and why one is refused.
//! - [`sessions`]: refresh-token families in SQLite, reuse detection, revocation.

pub mod permissions;
pub mod secrets;
pub mod sessions;
pub mod tokens;

pub use permissions::{Access, Permission, RoleError, RoleTable};
pub use tokens::{AccessClaims, TokenError, TokenKeys};

/// How long the `nth` lock in a row lasts (1 = the first), in milliseconds: `first_ms`,
/// doubled for each further lock, never more than `longest_ms` (nor less than
/// `first_ms`, nor under 1 ms). The one lockout rule of the node's PIN and password logins
/// and of head office's admin logins.
pub fn lock_length_ms(first_ms: i64, longest_ms: i64, nth: u32) -> i64 {
    let first = first_ms.max(1);
    first
        .saturating_mul(1i64 << nth.saturating_sub(1).min(20))
        .min(longest_ms.max(first))
}

#[cfg(test)]
mod tests {
    #[test]
    fn locks_double_up_to_the_longest() {
        let len = |nth| super::lock_length_ms(30_000, 3_600_000, nth);
        assert_eq!(
            [len(0), len(1), len(2), len(3)],
            [30_000, 30_000, 60_000, 120_000]
        );
        assert_eq!(len(8), 3_600_000);
        assert_eq!(len(u32::MAX), 3_600_000);
        assert_eq!(super::lock_length_ms(0, 0, 1), 1);
        assert_eq!(
            super::lock_length_ms(5_000, 1_000, 3),
            5_000,
            "never under the first"
        );
    }
}
