//! Route handlers, one module per resource.

pub mod health;
pub mod products;
pub mod reports;
pub mod sales;
pub mod stock;
pub mod sync;
