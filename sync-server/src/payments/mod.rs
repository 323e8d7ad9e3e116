//! Card store-and-forward at head office (issue #8): stored-offline card tenders arrive
//! inside the stores' sale facts; head office queues each (`card_forwards`, keyed by
//! tender id, rows kept at least 30 days after their final state), forwards it to the
//! provider exactly once, records every outcome as a payment fact in the store's ledger,
//! and sends declines and expiries to the reconciliation queue ([`crate::reconcile`]).
//!
//! Modules:
//! - `queue` (crate) turns a projected sale's stored-offline tenders into queue rows.
//! - `forward` (crate) is the background forwarder.
//! - `ledger` (crate) writes head office's payment facts into the store ledgers.

pub(crate) mod forward;
pub(crate) mod ledger;
pub(crate) mod queue;
