//! Route handlers, one module per resource.

pub mod audit;
pub mod auth;
pub mod health;
pub mod products;
pub mod reports;
pub mod sales;
pub mod stock;
pub mod sync;
