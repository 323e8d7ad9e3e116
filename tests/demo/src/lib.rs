//! Caja's demo, replays and load tools: not part of the product. They start a sync
//! server and store nodes in-process (the real libraries, real QUIC on loopback, real
//! HTTP, real SQLite files) and drive them only through their public APIs.
//!
//! - [`chain`]: an in-process chain (head office + enrolled store nodes) and its staff.
//! - [`client`]: a logged-in client of a node's REST API.
//! - [`replay`]: plans from real retail files (online-retail, supermarket) and the driver
//!   that trades them through each store's node.
//! - [`demo`]: the README's demo (synthetic trading or a file, an outage, the report).
//!
//! Binaries: `caja-demo` (the demo and `caja-demo replay`), `caja-bench` (BENCHMARKS.md).

// The node's `StoreError` is large; the demo's few reads through it are not a hot path.
#![allow(clippy::result_large_err)]

pub mod chain;
pub mod client;
pub mod demo;
pub mod replay;
