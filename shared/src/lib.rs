//! Caja shared domain: the types every component agrees on.
//!
//! - [`auth`]: permissions and roles, argon2id secrets, signed access tokens, sessions.
//! - [`money`]: exact amounts in minor units, ISO 4217 currencies and the one rounding rule.
//! - [`ids`]: UUIDv7 id newtypes and store codes.
//! - [`hlc`]: the hybrid logical clock that orders facts.
//! - [`payments`]: card payment events, card tenders, the store's offline-card rules.
//! - [`facts`]: immutable business events (sales, refunds, stock movements).
//! - [`docs`]: document ids and the automerge schemas of the catalog and the ledgers.
//! - [`docstore`]: automerge documents stored as chunks in SQLite, with an LRU cache.
//! - [`pin`]: certificate pinning (the one TLS verifier nodes and tills use).
//! - [`protocol`]: the versioned QUIC wire frames.
//! - [`settings`]: layered settings (defaults, TOML file, environment, flags) for both binaries.
//! - [`sync`]: the sans-IO sync session (no sockets, no clock, no tokio).
//! - [`barcode`]: GTIN (EAN-13 / UPC-A) check digits.
//! - [`problem`]: the RFC 9457 problem body and the one problem-type vocabulary of the
//!   HTTP APIs (with the `http` feature, its axum glue).
//! - [`audit`]: the one audit-kind vocabulary of node and head office.
//! - `openapi` (feature `http`): the OpenAPI glue both HTTP APIs share (the bearer scheme).

pub mod audit;
pub mod auth;
pub mod barcode;
pub mod docs;
pub mod docstore;
pub mod facts;
pub mod hlc;
pub mod ids;
pub mod money;
pub mod net;
pub mod payments;
pub mod pin;
pub mod problem;
pub mod protocol;
pub mod settings;
pub mod sync;

#[cfg(feature = "http")]
pub mod openapi;
