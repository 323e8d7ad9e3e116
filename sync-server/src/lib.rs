//! Caja sync server: the QUIC hub store nodes replicate their documents with, and the
//! admin REST API for head office.
//!
//! Modules:
//! - [`admin`] holds head office's trust operations: enrollment codes, nodes, users, roles.
//! - [`server`] holds [`SyncServer`], the entry point (open, serve, admin operations).
//! - [`config`] holds command-line and environment settings of the `caja-sync` binary.
//! - [`error`] holds [`ServerError`].
//! - [`tls`] holds the server's CA and certificate (rcgen), QUIC server TLS config.
//! - [`client`], [`wire`]: re-exports of [`caja_shared::net`] (the node's side of the
//!   link, frames on QUIC streams).
//! - [`db`] holds the SQLite database: opening, stores.
//! - [`trust`] holds enrollment codes, enrolled nodes and their certificates.
//! - [`ca`] holds CSR checks and the signing of node certificates.
//! - [`audit`] holds the security audit log.
//! - `users`, `storedoc`, `watch` (private): users and roles, head office's writes to
//!   the store documents, the watcher of other processes' writes.
//! - [`projection`] holds facts received, as rows for reports.
//! - [`report`] holds the chain sales report.
//! - `hub`, `host`, `catalog`, `quic` (private): shared state, the server's document
//!   host, catalog operations, the QUIC accept loop and sessions.
//! - [`http`] holds the admin API (axum, problem+json, OpenAPI).

pub mod admin;
pub mod audit;
pub mod ca;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod lockout;
pub mod projection;
pub mod report;
pub mod server;
pub mod tls;
pub mod trust;

// The node's side of the link and the frame codec live in caja-shared; these paths stay
// for head office's own code.
pub use caja_shared::net::{client, wire};

mod catalog;
mod host;
mod hub;
mod quic;
mod storedoc;
mod users;
mod watch;

pub use admin::{EnrollmentCode, NewUser, NodeInfo, ServerOptions, UserInfo, UserPatch};
pub use audit::{Actor, AuditEntry, AuditQuery};
pub use catalog::validate_product;
pub use error::ServerError;
pub use report::{SalesReport, StoreReport, Totals};
pub use server::{CatalogSummary, StoreStatus, SyncServer};
