//! Route handlers, one module per resource.
//!
//! - [`stores`] holds register and list stores.
//! - [`products`] holds write and read catalog products.
//! - [`catalog`] holds the catalog's heads and size.
//! - [`reports`] holds the chain sales report.
//! - [`health`] holds liveness and readiness.

pub mod catalog;
pub mod health;
pub mod products;
pub mod reports;
pub mod stores;
