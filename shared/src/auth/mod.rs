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
