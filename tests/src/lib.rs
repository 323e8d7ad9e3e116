//! Caja end-to-end tests and benchmarks: real servers and nodes on loopback.
//!
//! - [`expected`]: expected replay figures computed straight from the real data files,
//!   independently of the product.

pub mod expected;
