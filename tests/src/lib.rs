//! Caja end-to-end tests and benchmarks: real servers and nodes on loopback.
//!
//! - [`expected`]: expected replay figures computed straight from the real data files,
//!   independently of the product.
//! - [`harness`]: the workspace's one test harness: start and restart head office
//!   (`spawn_hq`), start nodes (`spawn_node`, `TestNode::start`), typed and raw calls to
//!   the node API, raw QUIC peers, and polling with timeouts; used by the `e2e` test
//!   binary (`tests/e2e.rs`) and, as a dev-dependency, by the integration tests of
//!   `caja-node` and `caja-sync-server`.

pub mod expected;
pub mod harness;
