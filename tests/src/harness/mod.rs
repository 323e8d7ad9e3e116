//! The one test harness of the workspace: head office and nodes on loopback, typed and raw
//! HTTP clients, raw QUIC peers, and polling with explicit timeouts. The e2e scenarios
//! (`tests/tests/e2e`) and the integration tests of `caja-node` and `caja-sync-server`
//! (through a dev-dependency) all use it.
//!
//! - [`hq`]: [`spawn_hq`] / [`spawn_hq_with`] start a [`SyncServer`](caja_sync_server::SyncServer)
//!   serving QUIC and its admin API ([`TestHq`]: stop, restart on the same QUIC address,
//!   stores with staff and enrollment tickets).
//! - [`node`]: [`spawn_node`] / [`spawn_node_with`] start a standalone node logged in as
//!   `admin`; [`TestNode::start`] starts one for a store, enrolled with a [`Ticket`] or
//!   standalone. One [`TestNode`] type either way, with both clients below.
//! - [`api`]: [`Api`], typed calls to a node's REST API, and [`Reply`], a raw response with
//!   status and RFC 9457 problem assertions.
//! - [`quic`]: raw protocol peers for head office's QUIC tests: an in-memory document host,
//!   enrollment with a real CSR, a minimal syncing node, close codes.
//! - here: [`TestDir`], [`wait_until`] / [`eventually`], [`data_file`] and the credentials
//!   and dates every test shares.
//!
//! Set-up and tear-down ([`spawn_hq`], [`spawn_node`], `stop`, `restart`) panic with a
//! message naming what failed: a harness that cannot start is a failed test. Calls a test
//! may expect to fail (an enrollment refused, an HTTP call) return a `Result`. Nothing
//! sleeps for correctness: every wait is a poll of a real outcome with a timeout that
//! names what it was waiting for.

pub mod api;
pub mod hq;
pub mod node;
pub mod quic;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use api::{Api, Client, DailyReport, LineView, ProductView, Reply, SaleView, SyncStatus, TenderView};
pub use hq::{
    HqOptions, Staff, TestHq, Ticket, spawn_hq, spawn_hq_in, spawn_hq_with, wait_catalog, wait_synced,
};
pub use node::{TestNode, spawn_node, spawn_node_with, wait_for_staff};

/// How long one HTTP request to a node may take before the test fails.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server or node may take to stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Interval between two checks of [`wait_until`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The day every test transaction happens on unless it says otherwise (no test depends on
/// the wall clock's date).
pub const DAY: &str = "2024-03-15";

/// A time on [`DAY`].
pub const AT: &str = "2024-03-15T10:30:00Z";

/// The password of every test user with a password.
pub const PASSWORD: &str = "correct horse battery staple";

/// The PIN of the test user of a role: `admin` 11111111, `manager` 22223333, anything else
/// (`cashier`) 44445555 (8 digits, so they cannot appear by chance in a log line).
pub fn pin_of(role: &str) -> &'static str {
    match role {
        "admin" => "11111111",
        "manager" => "22223333",
        _ => "44445555",
    }
}

/// A directory for one test's files: removed when dropped, unless the environment
/// variable `KEEP_TEST_DIRS` is set, in which case it is kept and its path printed.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl TestDir {
    /// Creates `caja-test-<name>-XXXX` in the system temporary directory.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new(name: &str) -> anyhow::Result<TestDir> {
        let temp = tempfile::Builder::new()
            .prefix(&format!("caja-test-{name}-"))
            .tempdir()
            .context("creating a temporary directory")?;
        if std::env::var_os("KEEP_TEST_DIRS").is_some() {
            let path = temp.keep();
            eprintln!("KEEP_TEST_DIRS: keeping {}", path.display());
            Ok(TestDir { path, _temp: None })
        } else {
            Ok(TestDir {
                path: temp.path().to_path_buf(),
                _temp: Some(temp),
            })
        }
    }

    /// A directory the caller owns (e.g. inside its own [`TestDir`]): never removed by this
    /// value.
    pub fn borrowed(path: &Path) -> TestDir {
        TestDir {
            path: path.to_path_buf(),
            _temp: None,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

/// Polls `check` every [`POLL_INTERVAL`] until it returns `Ok(true)`. An `Err` counts as
/// "not yet" (a server restarting, say) and is reported if the time runs out. Each check
/// is itself cut off at the deadline. Returns how long it took.
///
/// # Errors
/// After `timeout`, naming `what` and the last error.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(true)) => return Ok(start.elapsed()),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            match last_error {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`wait_until`] for a condition that cannot fail, in a test that panics instead of
/// returning an error.
///
/// # Panics
/// After `timeout`, naming `what` (a timeout, not a timing assertion).
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let outcome = wait_until(what, timeout, || {
        let holds = check();
        async move { Ok(holds.await) }
    })
    .await;
    if let Err(e) = outcome {
        panic!("{e:#}");
    }
}

/// The path of a file in `shared/data` (read-only real data next to the repository).
pub fn data_file(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")).join(name)
}
