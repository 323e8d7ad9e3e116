//! Route handlers, one module per resource.
//!
//! - [`auth`] holds login, refresh, logout and who am I.
//! - [`stores`] holds register and list stores, and issue enrollment codes.
//! - [`users`] and [`roles`] hold head office's users and custom roles.
//! - [`nodes`] holds enrolled nodes and their revocation.
//! - [`audit`] holds the security audit log.
//! - [`facts`] holds one projected fact.
//! - [`products`] holds write and read catalog products.
//! - [`catalog`] holds the catalog's heads and size.
//! - [`reports`] holds the chain sales report and the offline-payments report.
//! - [`reconciliation`] holds the reconciliation queue.
//! - [`health`] holds liveness and readiness.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod facts;
pub mod health;
pub mod nodes;
pub mod products;
pub mod reconciliation;
pub mod reports;
pub mod roles;
pub mod stores;
pub mod users;
