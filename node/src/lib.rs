//! Caja store node: sells, refunds and counts stock offline, stores every fact durably in
//! SQLite, serves a REST API on the store LAN and replicates with the sync server over QUIC.
//!
//! - [`cli`]: the `caja-node` command line.
//! - [`config`]: settings and their validation.
//! - [`auth`]: staff logins (password, PIN), tokens, lockouts, overrides, audit.
//! - [`enroll`]: enrollment with head office and the node's certificates.
//! - [`app`]: [`Node`]: open, serve, shut down.
//! - [`identity`]: node id, store, terminal, currency.
//! - [`store`]: SQLite writer (group commit), read pool, projections.
//! - [`catalog`], [`sales`], [`inventory`], [`reports`]: domain services, each with its
//!   own error (`CatalogError`, `SaleError`, `InventoryError`; reports fail only in storage).
//! - [`http`]: REST routes, problem+json errors, OpenAPI.
//! - [`sync`]: the QUIC sync client.
//! - [`decimal`]: decimal input helpers.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod decimal;
pub mod enroll;
pub mod http;
pub mod identity;
pub mod inventory;
pub mod reports;
pub mod sales;
pub mod store;
pub mod sync;
pub mod timestamp;

pub use app::Node;
pub use config::{NodeConfig, SyncTarget};

/// Installs the ring crypto provider as the process default for rustls (reqwest needs
/// one). Idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
