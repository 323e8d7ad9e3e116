//! Notices what other processes wrote to the database while the server runs: a node
//! revoked by `caja-sync node revoke` (its live connections are closed within
//! [`POLL`]) and a store registered by `caja-sync store add` (its `store/<store>`
//! document is created and announced). Also trims the enrollment rate limiter's memory.
//!
//! It polls `PRAGMA data_version` on its own read connection: the value changes whenever
//! another connection (the CLI's, or the server's own writer) commits, and only then are
//! the (small) queries run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caja_shared::docs::DocId;
use caja_shared::protocol::ErrorCode;
use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use crate::db::{DbError, StoreDb, TrustDb};
use crate::server::hub::Hub;

/// How often the database is polled.
pub const POLL: Duration = Duration::from_millis(250);

/// How often the rate limiters forget addresses that have been quiet.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// What one poll found.
#[derive(Default)]
struct Found {
    revoked: Vec<caja_shared::ids::NodeId>,
    missing: Vec<caja_shared::ids::StoreCode>,
}

fn poll(
    conn: &Connection,
    last: &mut Option<i64>,
    live: &[caja_shared::ids::NodeId],
) -> rusqlite::Result<Found> {
    let version = crate::db::sqlite::data_version(conn)?;
    if *last == Some(version) {
        return Ok(Found::default());
    }
    *last = Some(version);
    let revoked = conn.revoked_among(live).map_err(to_sqlite)?;
    let missing = conn.stores_without_document().map_err(to_sqlite)?;
    Ok(Found { revoked, missing })
}

fn to_sqlite(e: DbError) -> rusqlite::Error {
    match e {
        DbError::Sqlite(e) => e,
        other => rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(other.to_string()))),
    }
}

/// Runs until `shutdown`; `db_path` is the server's database file.
pub(crate) async fn run(
    hub: Hub,
    db_path: PathBuf,
    trims: Vec<Box<dyn Fn() + Send + Sync>>,
    shutdown: CancellationToken,
) {
    let conn = match Connection::open(&db_path).and_then(|c| {
        c.busy_timeout(Duration::from_secs(1))?;
        Ok(c)
    }) {
        Ok(c) => Arc::new(Mutex::new(c)),
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the database; CLI revocations need a restart to take effect");
            return;
        }
    };
    let mut last: Option<i64> = None;
    let mut trimmed = Instant::now();
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let live = hub.live_nodes();
        let conn2 = conn.clone();
        let found = tokio::task::spawn_blocking(move || {
            let c = conn2
                .lock()
                .map_err(|_| "watcher connection poisoned".to_string())?;
            poll(&c, &mut last, &live)
                .map(|f| (f, last))
                .map_err(|e| e.to_string())
        })
        .await;
        let found = match found {
            Ok(Ok((f, l))) => {
                last = l;
                f
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not poll the database");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "database poll task failed");
                continue;
            }
        };
        for node in found.revoked {
            let n = hub.disconnect(&node, ErrorCode::Unauthorized as u32, "node revoked");
            tracing::info!(%node, connections = n, "node revoked by another process; disconnected");
        }
        for store in found.missing {
            let s = store.clone();
            match hub
                .with_core(move |core| crate::users::directory::create_store_doc(core, &s))
                .await
            {
                Ok(Ok(())) => {
                    tracing::info!(%store, "created the document of a store registered by another process");
                    hub.changed(DocId::Store { store });
                }
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(%store, error = %e, "could not create the store's document")
                }
            }
        }
        if trimmed.elapsed() >= TRIM_EVERY {
            trimmed = Instant::now();
            hub.enroll_limiter.retain_recent();
            hub.conn_limits.retain_recent();
            for t in &trims {
                t();
            }
        }
    }
}
