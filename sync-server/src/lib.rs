//! Caja sync server ("head office"): the QUIC hub store nodes replicate their documents
//! with, and the admin REST API. Arranged by domain, like the node.
//!
//! Modules:
//! - [`server`] holds [`SyncServer`], the entry point (open, serve), and [`ServerOptions`];
//!   its crate-private `hub` is the shared state and `watch` notices other processes'
//!   writes.
//! - [`stores`] holds stores, their enrollment codes, enrolled nodes and the trust rules,
//!   and head office's writes to the store documents.
//! - [`users`] holds users, custom roles and the login lockout.
//! - [`catalog`] holds the chain catalog operations and [`validate_product`].
//! - [`reports`] holds the projection of received facts and the chain sales report.
//! - [`payments`] holds card store-and-forward: the forward queue of stored-offline card
//!   tenders.
//! - [`reconcile`] holds the reconciliation queue (declined and expired card payments).
//! - [`db`] holds storage: the repository traits (`Database`) and their SQLite
//!   implementation (opening, schema, queries).
//! - `quic` (crate) holds the QUIC accept loop, enrollment, sessions and the server's
//!   document host.
//! - [`http`] holds the admin API (axum, problem+json, OpenAPI).
//! - [`audit`] holds the security audit log and [`Actor`], who did something.
//! - [`config`] holds command-line and environment settings of the `caja-sync` binary.
//! - [`error`] holds [`ServerError`].
//! - [`tls`] holds the server's CA and certificate (rcgen), QUIC server TLS config.
//! - [`ca`] holds CSR checks and the signing of node certificates.
//!
//! Every operation that changes something takes the acting [`Actor`] the audit log
//! records: the admin API passes the logged-in user, the CLI and in-process callers
//! [`Actor::local`].

pub mod audit;
pub mod ca;
pub mod catalog;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod payments;
pub(crate) mod quic;
pub mod reconcile;
pub mod reports;
pub mod server;
pub mod stores;
pub mod tls;
pub mod users;

pub use audit::{Actor, AuditEntry, AuditQuery};
pub use catalog::{CatalogSummary, validate_product};
pub use error::ServerError;
pub use reports::{SalesReport, StoreReport, Totals};
pub use server::{ProviderOptions, ServerOptions, SyncServer};
pub use stores::{EnrollmentCode, NodeInfo, StoreStatus};
pub use users::{NewUser, UserInfo, UserPatch};
