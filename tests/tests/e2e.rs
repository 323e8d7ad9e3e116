//! End-to-end tests: a real sync server and real nodes on loopback (QUIC between them,
//! HTTP to the nodes), one module per scenario.
//!
//! - `binaries`: the README's roll-out with the real `caja-sync` and `caja-node`
//!   processes: store, code, staff, enroll, serve, sell, revoke.
//! - `outage`: a store sells offline while another sells online, head office changes a
//!   price, the server restarts; everything converges to the cent.
//! - `idempotency`: a checkout whose response is lost is retried and recorded once, at the
//!   node and at the server.
//! - `renewal`: a node renews its short-lived certificate on a live session and
//!   reconnects with the new one after the old expired.
//! - `replay`: the real supermarket file and one month of the real online-retail file,
//!   replayed through the chain and checked against figures computed from the files.
//! - `head_office_changes`: custom roles, role removal, sign-out everywhere and disabling
//!   a user, decided at head office, bind tokens a node already issued.
//! - `offline_staff`: with the server stopped, a cashier logs in by PIN, sells, and a
//!   manager override authorises a refund without receipt; head office then sees who did
//!   what.
//! - `conn_limits`: a store over head office's per-address connection limit is refused
//!   and its sync status says why; the enrolled LAN certificate covers the node's machine.
//! - `currency`: a node takes the chain's currency at enrollment.
//! - `demo`: the synthetic demo with an outage, which cross-checks every node with the
//!   server.
//!
//! These tests run in the nextest test group `serial` (see `.config/nextest.toml`). Set
//! `KEEP_TEST_DIRS=1` to keep their data directories.

#[path = "e2e/binaries.rs"]
mod binaries;
#[path = "e2e/conn_limits.rs"]
mod conn_limits;
#[path = "e2e/currency.rs"]
mod currency;
#[path = "e2e/demo.rs"]
mod demo;
#[path = "e2e/head_office_changes.rs"]
mod head_office_changes;
#[path = "e2e/idempotency.rs"]
mod idempotency;
#[path = "e2e/offline_staff.rs"]
mod offline_staff;
#[path = "e2e/outage.rs"]
mod outage;
#[path = "e2e/renewal.rs"]
mod renewal;
#[path = "e2e/replay.rs"]
mod replay;
