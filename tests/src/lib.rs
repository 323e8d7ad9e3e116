//! Caja end-to-end tests and benchmarks: real servers and nodes on loopback.
//!
//! - [`expected`]: expected replay figures computed straight from the real data files,
//!   independently of the product.
//! - [`harness`]: start and restart a sync server, start nodes, typed calls to the node
//!   API, and polling with timeouts; used by the `e2e` test binary (`tests/e2e.rs`).

pub mod expected;
pub mod harness;
