//! Head office's storage: every query of the server's own tables sits behind the
//! repository traits of this module, one per domain, with a method per business
//! operation (`StoreDb`, `TrustDb`, `UserDb`, `LockoutDb`, `FactDb`, `AuditDb`); together
//! they are `Database`. Domain code (`crate::stores`, `crate::users`, `crate::reports`,
//! `crate::quic`) and the admin API's handlers call these methods and never write SQL.
//! Errors are [`DbError`].
//!
//! Modules:
//! - [`cases`] holds the reconciliation queue's trait (`ReconcileDb`) and rows.
//! - [`sqlite`] holds the SQLite backend, the one in use: opening the data dir's database
//!   (`caja-sync.db`, WAL, `synchronous=FULL`), the schema and its migrations, and the
//!   traits implemented for [`rusqlite::Connection`].
//!
//! The methods are synchronous: the server runs them on a blocking thread with the core
//! locked (`crate::server::hub::Hub::with_core`). They take `&self`, so a SQLite
//! transaction (a `rusqlite::Transaction` dereferences to its `Connection`) composes
//! several of them, and head office's automerge writes ([`caja_shared::docstore`]) join
//! the same transaction.
//!
//! # Adding PostgreSQL
//! A PostgreSQL backend is a sibling module (`db/postgres.rs`, with `postgres` or
//! `sqlx` behind a feature) that implements these traits for its connection (or a
//! transaction of it) with the same semantics: `create_store` reports a taken code as
//! `Ok(false)`, `consume_code` checks and marks a code in the caller's transaction, times
//! are Unix seconds (milliseconds for `LockoutDb`). Then:
//! 1. `crate::server::hub::Core` holds the backend's connection instead of a
//!    `rusqlite::Connection` (generic over `D: Database`, or a `Box<dyn ...>` per trait);
//!    `SyncServer::open_with` picks the backend once, from the configuration, at start-up.
//! 2. The two tables that are not ours yet follow: the document store
//!    ([`caja_shared::docstore`]) and the admin API's sessions
//!    ([`caja_shared::auth::sessions`]) take a `rusqlite::Connection` today and need the
//!    same kind of trait in `caja-shared`.
//! 3. The watcher of other processes' writes (`crate::server::watch`) polls SQLite's
//!    `PRAGMA data_version`; PostgreSQL would use `LISTEN`/`NOTIFY` instead.
//!
//! Handlers and the domain code do not change.

pub mod cases;
pub mod sqlite;

use caja_shared::docstore::DocStoreError;
use caja_shared::facts::Fact;
use caja_shared::ids::{NodeId, StoreCode};
use chrono::{DateTime, Utc};

use crate::error::ServerError;
use crate::stores::trust::CodeRefusal;
use crate::users::directory::UserRow;

pub(crate) use cases::ReconcileDb;
pub use cases::{Case, CaseFilter, CaseStatus};
pub use sqlite::{DB_FILE, migrate, open, setting};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The SQLite database failed (I/O, constraint, corrupt file).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The document tables failed.
    #[error(transparent)]
    DocStore(Box<DocStoreError>),
    /// The data dir or the database file could not be created or made private.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl From<DocStoreError> for DbError {
    fn from(e: DocStoreError) -> Self {
        DbError::DocStore(Box::new(e))
    }
}

impl From<DbError> for ServerError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Sqlite(e) => ServerError::Sqlite(e),
            DbError::DocStore(e) => ServerError::DocStore(e),
            DbError::Io { path, source } => ServerError::Io { path, source },
        }
    }
}

/// One registered store as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRow {
    /// The store code.
    pub code: StoreCode,
    /// Its display name.
    pub name: String,
    /// When a node of the store last spoke to the server (UTC), if ever.
    pub last_contact: Option<DateTime<Utc>>,
    /// Facts of the store the server has projected.
    pub facts: u64,
}

/// Settings and stores.
pub(crate) trait StoreDb {
    /// A setting, if set.
    ///
    /// # Errors
    /// [`DbError`].
    fn setting(&self, key: &str) -> Result<Option<String>, DbError>;

    /// Sets a setting.
    ///
    /// # Errors
    /// [`DbError`].
    fn set_setting(&self, key: &str, value: &str) -> Result<(), DbError>;

    /// Registers a store named `name` (already checked) created at `now` (RFC 3339);
    /// `Ok(false)` if the code is taken.
    ///
    /// # Errors
    /// [`DbError`].
    fn create_store(&self, code: &StoreCode, name: &str, now: &str) -> Result<bool, DbError>;

    /// Whether a store with this code is registered.
    ///
    /// # Errors
    /// [`DbError`].
    fn store_exists(&self, code: &StoreCode) -> Result<bool, DbError>;

    /// Records that a node of the store was heard from at `now` (RFC 3339).
    ///
    /// # Errors
    /// [`DbError`].
    fn touch_store(&self, code: &StoreCode, now: &str) -> Result<(), DbError>;

    /// Every registered store, by code.
    ///
    /// # Errors
    /// [`DbError`].
    fn list_stores(&self) -> Result<Vec<StoreRow>, DbError>;

    /// The stores that have no `store/<store>` document yet, by code.
    ///
    /// # Errors
    /// [`DbError`].
    fn stores_without_document(&self) -> Result<Vec<StoreCode>, DbError>;

    /// Whether the document `doc_id` has anything stored.
    ///
    /// # Errors
    /// [`DbError`].
    fn document_stored(&self, doc_id: &str) -> Result<bool, DbError>;

    /// Whether the database answers.
    fn ping(&self) -> bool;
}

/// The node a client certificate was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertOwner {
    /// The node.
    pub node: NodeId,
    /// Its store.
    pub store: StoreCode,
    /// When the node was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// When this certificate expires.
    pub not_after: i64,
}

/// One enrolled node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// The node.
    pub node: NodeId,
    /// Its store.
    pub store: StoreCode,
    /// When it enrolled.
    pub enrolled_at: i64,
    /// When its newest certificate expires.
    pub cert_not_after: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// When it was last heard from, if ever.
    pub last_contact: Option<i64>,
}

/// Enrollment codes, enrolled nodes and their certificates (see `crate::stores::trust`).
/// Times are Unix seconds (UTC).
pub(crate) trait TrustDb {
    /// Stores the digest of a new code for `store`, valid until `expires_at`.
    ///
    /// # Errors
    /// [`DbError`].
    fn insert_code(&self, digest: &str, store: &StoreCode, now: i64, expires_at: i64) -> Result<(), DbError>;

    /// Checks the code with this digest and marks it used by `node`, inside the caller's
    /// transaction; returns its store, or why it cannot be used.
    ///
    /// # Errors
    /// [`DbError`].
    fn consume_code(
        &self,
        digest: &str,
        node: &NodeId,
        now: i64,
    ) -> Result<Result<StoreCode, CodeRefusal>, DbError>;

    /// Records a newly enrolled node.
    ///
    /// # Errors
    /// [`DbError`].
    fn insert_node(&self, node: &NodeId, store: &StoreCode, now: i64) -> Result<(), DbError>;

    /// Records a certificate issued to `node`.
    ///
    /// # Errors
    /// [`DbError`].
    fn insert_cert(&self, sha256: &str, node: &NodeId, not_after: i64, now: i64) -> Result<(), DbError>;

    /// The owner of the certificate whose DER has this SHA-256 (lowercase hex); rows with
    /// unparsable ids count as unknown.
    ///
    /// # Errors
    /// [`DbError`].
    fn identify(&self, cert_sha256: &str) -> Result<Option<CertOwner>, DbError>;

    /// The store of a node and when it was revoked, if the node is known.
    ///
    /// # Errors
    /// [`DbError`].
    fn node(&self, node: &NodeId) -> Result<Option<(StoreCode, Option<i64>)>, DbError>;

    /// Marks a node revoked (keeping the first revocation time). Returns its store, or
    /// `None` for an unknown node.
    ///
    /// # Errors
    /// [`DbError`].
    fn revoke_node(&self, node: &NodeId, now: i64) -> Result<Option<StoreCode>, DbError>;

    /// Records that a node was heard from at `now`.
    ///
    /// # Errors
    /// [`DbError`].
    fn touch_node(&self, node: &NodeId, now: i64) -> Result<(), DbError>;

    /// Every enrolled node, by enrollment time.
    ///
    /// # Errors
    /// [`DbError`].
    fn list_nodes(&self) -> Result<Vec<NodeRow>, DbError>;

    /// The revoked nodes among `nodes`.
    ///
    /// # Errors
    /// [`DbError`].
    fn revoked_among(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>, DbError>;
}

/// Users and custom roles (see `crate::users::directory`).
pub(crate) trait UserDb {
    /// One user by id.
    ///
    /// # Errors
    /// [`DbError`].
    fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, DbError>;

    /// One user by username.
    ///
    /// # Errors
    /// [`DbError`].
    fn user_by_username(&self, username: &str) -> Result<Option<UserRow>, DbError>;

    /// Every user, by username.
    ///
    /// # Errors
    /// [`DbError`].
    fn all_users(&self) -> Result<Vec<UserRow>, DbError>;

    /// Inserts (`insert`) or updates a user; `Ok(false)` when the username is taken
    /// (a unique constraint).
    ///
    /// # Errors
    /// [`DbError`].
    fn save_user(&self, user: &UserRow, insert: bool) -> Result<bool, DbError>;

    /// The custom roles: name -> permission names.
    ///
    /// # Errors
    /// [`DbError`].
    fn custom_roles(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>, DbError>;

    /// Defines or replaces a custom role at `now` (Unix seconds).
    ///
    /// # Errors
    /// [`DbError`].
    fn put_role(&self, name: &str, permissions: &[String], now: i64) -> Result<(), DbError>;

    /// Deletes a custom role.
    ///
    /// # Errors
    /// [`DbError`].
    fn delete_role(&self, name: &str) -> Result<(), DbError>;

    /// The families of the admin API sessions of `user` that are not revoked.
    ///
    /// # Errors
    /// [`DbError`].
    fn open_session_families(&self, user: &str) -> Result<Vec<String>, DbError>;
}

/// The login lockout counters (see `crate::users::lockout`). Times are Unix milliseconds.
pub(crate) trait LockoutDb {
    /// When the lock on `username` ends, if one was ever set.
    ///
    /// # Errors
    /// [`DbError`].
    fn lock_end(&self, username: &str) -> Result<Option<i64>, DbError>;

    /// The failures and locks in a row of `username` (zeros when unknown).
    ///
    /// # Errors
    /// [`DbError`].
    fn lock_counts(&self, username: &str) -> Result<(u32, u32), DbError>;

    /// Saves the counters of `username` at `now_ms`, keeping a later lock end.
    ///
    /// # Errors
    /// [`DbError`].
    fn save_lock(
        &self,
        username: &str,
        failures: u32,
        lockouts: u32,
        until: i64,
        now_ms: i64,
    ) -> Result<(), DbError>;

    /// Deletes the counters untouched since `before_ms` whose lock ended before `now_ms`.
    ///
    /// # Errors
    /// [`DbError`].
    fn prune_locks(&self, before_ms: i64, now_ms: i64) -> Result<(), DbError>;

    /// Deletes the counters of `username`.
    ///
    /// # Errors
    /// [`DbError`].
    fn clear_lock(&self, username: &str) -> Result<(), DbError>;
}

/// A fact as projected for reports.
#[derive(Debug, Clone)]
pub(crate) struct FactRow<'a> {
    /// The fact.
    pub fact: &'a Fact,
    /// Its kind (`sale`, `refund`, ...).
    pub kind: &'static str,
    /// Its currency code, for sales and refunds.
    pub currency: Option<String>,
    /// Its takings, minor units.
    pub total_minor: i64,
    /// Takings per tender name, minor units, in order.
    pub tenders: Vec<(String, i64)>,
}

/// Sales or refunds of one store on one business day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DayTotal {
    /// The store code.
    pub store: String,
    /// The business day, `YYYY-MM-DD`.
    pub date: String,
    /// `sale` or `refund`.
    pub kind: String,
    /// How many.
    pub count: i64,
    /// Their total, minor units.
    pub sum_minor: i64,
}

/// Takings of one tender at one store on one business day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenderTotal {
    /// The store code.
    pub store: String,
    /// The business day, `YYYY-MM-DD`.
    pub date: String,
    /// The tender's report name.
    pub name: String,
    /// The total, minor units.
    pub sum_minor: i64,
}

/// The projection of received facts (see `crate::reports`).
pub(crate) trait FactDb {
    /// Stores a fact's row; `Ok(false)` if it was projected before.
    ///
    /// # Errors
    /// [`DbError`].
    fn insert_fact(&self, row: &FactRow<'_>) -> Result<bool, DbError>;

    /// Number of projected facts, all stores.
    ///
    /// # Errors
    /// [`DbError`].
    fn fact_count(&self) -> Result<u64, DbError>;

    /// The stored JSON of one projected fact.
    ///
    /// # Errors
    /// [`DbError`].
    fn fact_body(&self, id: &str) -> Result<Option<String>, DbError>;

    /// Sales and refunds in `currency` per store, day and kind, for business days
    /// `from..=to` (`YYYY-MM-DD`, either optional).
    ///
    /// # Errors
    /// [`DbError`].
    fn day_totals(
        &self,
        currency: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<DayTotal>, DbError>;

    /// Takings in `currency` per store, day and tender, for business days `from..=to`.
    ///
    /// # Errors
    /// [`DbError`].
    fn tender_totals(
        &self,
        currency: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<TenderTotal>, DbError>;
}

/// One row of the audit log to write (times in Unix seconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuditRow<'a> {
    /// When it happened.
    pub at: i64,
    /// The store concerned.
    pub store: Option<&'a str>,
    /// The node concerned.
    pub node: Option<&'a str>,
    /// The acting user's id.
    pub actor_id: Option<&'a str>,
    /// The acting user's name.
    pub actor_name: Option<&'a str>,
    /// The audit kind (`crate::audit::KINDS`).
    pub kind: &'a str,
    /// Details, a JSON object as text.
    pub detail: &'a str,
    /// The ledger fact it was projected from: unique, so a fact is recorded once.
    pub fact_id: Option<&'a str>,
}

/// The security audit log (see `crate::audit`).
pub(crate) trait AuditDb {
    /// Writes a row; `Ok(false)` when a row of the same `fact_id` exists.
    ///
    /// # Errors
    /// [`DbError`].
    fn insert_audit(&self, row: &AuditRow<'_>) -> Result<bool, DbError>;

    /// Rows matching `q`, newest first, at most `limit`.
    ///
    /// # Errors
    /// [`DbError`].
    fn list_audit(
        &self,
        q: &crate::audit::AuditQuery,
        limit: u32,
    ) -> Result<Vec<crate::audit::AuditEntry>, DbError>;
}

/// The forward state of a stored-offline card tender (`card_forwards.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ForwardState {
    /// Waiting to be sent to the provider (or to be retried).
    Pending,
    /// Marked durably just before the provider is called; a restart finds it and sends
    /// the same idempotency key again.
    Forwarding,
    /// Captured: final.
    Captured,
    /// Refused by the provider: final, a reconciliation case.
    Declined,
    /// Not forwarded before its deadline: final, a reconciliation case.
    Expired,
}

impl ForwardState {
    /// Every state, in life order.
    pub const ALL: [ForwardState; 5] = [
        ForwardState::Pending,
        ForwardState::Forwarding,
        ForwardState::Captured,
        ForwardState::Declined,
        ForwardState::Expired,
    ];

    /// The stored name (`pending`, `forwarding`, `captured`, `declined`, `expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardState::Pending => "pending",
            ForwardState::Forwarding => "forwarding",
            ForwardState::Captured => "captured",
            ForwardState::Declined => "declined",
            ForwardState::Expired => "expired",
        }
    }

    /// The state stored as `name`, if any.
    pub fn parse(name: &str) -> Option<ForwardState> {
        ForwardState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether nothing follows this state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ForwardState::Captured | ForwardState::Declined | ForwardState::Expired
        )
    }
}

/// A stored-offline card tender head office forwards to the provider exactly once (one
/// row per tender id, kept at least 30 days after its final state: providers keep
/// idempotency keys only about 24 h, so this row is what stops a second capture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardForward {
    /// The tender id (primary key; the provider idempotency keys derive from it).
    pub tender: String,
    /// The store code.
    pub store: String,
    /// The sale fact holding the tender.
    pub sale: String,
    /// The sale's receipt number.
    pub receipt_no: String,
    /// Amount, minor units of `currency` (positive).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The provider's card token.
    pub token: String,
    /// The forwarding deadline, Unix seconds.
    pub forward_by: i64,
    /// Where it is.
    pub state: ForwardState,
    /// Provider calls started so far.
    pub attempts: i64,
    /// The provider's payment id, once known.
    pub provider_ref: Option<String>,
    /// The decline code, or why it expired.
    pub code: Option<String>,
    /// A sentence a manager can read.
    pub message: Option<String>,
    /// When the row was made, Unix seconds.
    pub created_at: i64,
    /// When it last changed, Unix seconds.
    pub updated_at: i64,
    /// Not retried before this time, Unix seconds (backoff).
    pub next_attempt_at: i64,
}

/// Counts and amounts of one store's card forwards in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTotal {
    /// The store code.
    pub store: String,
    /// The state.
    pub state: ForwardState,
    /// ISO 4217 code.
    pub currency: String,
    /// How many tenders.
    pub count: i64,
    /// Their amount, minor units.
    pub amount_minor: i64,
}

/// Card store-and-forward: the durable forward queue (`card_forwards`).
pub(crate) trait PaymentDb {
    /// Queues a tender; `Ok(false)` if its id is queued already (a replayed fact).
    ///
    /// # Errors
    /// [`DbError`].
    fn insert_card_forward(&self, row: &CardForward) -> Result<bool, DbError>;

    /// One queued tender.
    ///
    /// # Errors
    /// [`DbError`].
    fn card_forward(&self, tender: &str) -> Result<Option<CardForward>, DbError>;

    /// Tenders in `state`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// [`DbError`].
    fn card_forwards_in(&self, state: ForwardState, limit: u32) -> Result<Vec<CardForward>, DbError>;

    /// Writes a row's mutable fields (state, attempts, provider ref, code, message,
    /// updated and next-attempt times) by tender id.
    ///
    /// # Errors
    /// [`DbError`].
    fn update_card_forward(&self, row: &CardForward) -> Result<(), DbError>;

    /// The earliest `next_attempt_at` of pending rows, Unix seconds, if any.
    ///
    /// # Errors
    /// [`DbError`].
    fn next_forward_due(&self) -> Result<Option<i64>, DbError>;

    /// Counts and amounts per store, state and currency of tenders created in
    /// `from..to` (Unix seconds, either optional).
    ///
    /// # Errors
    /// [`DbError`].
    fn forward_totals(&self, from: Option<i64>, to: Option<i64>) -> Result<Vec<ForwardTotal>, DbError>;
}

/// Everything head office stores: what a backend implements.
pub(crate) trait Database:
    StoreDb + TrustDb + UserDb + LockoutDb + FactDb + AuditDb + PaymentDb + ReconcileDb
{
}

impl<T: StoreDb + TrustDb + UserDb + LockoutDb + FactDb + AuditDb + PaymentDb + ReconcileDb> Database for T {}

/// Current UTC time as RFC 3339 with seconds (`2024-01-01T12:00:00Z`), as the `stores`
/// table keeps times.
pub(crate) fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
