//! Crash safety of the real `caja-node` binary: sales acknowledged to clients survive a
//! `kill -9` in the middle of concurrent checkouts, none is stored twice, and the database
//! is intact.
//!
//! The node is started on a temporary data directory, 8 clients sell concurrently (each
//! sale with its own `Idempotency-Key`), the process is killed with SIGKILL, and a new
//! process opens the same directory. Sales in flight at the kill may or may not exist;
//! every sale that got a 2xx must.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use caja_shared::docs::{self, DocId};
use serde_json::{Value, json};

/// The business day of every sale.
const DAY: &str = "2024-03-15";
/// Concurrent clients.
const CLIENTS: usize = 8;
/// How long the clients sell before the kill (at least; see `MIN_ACKED`).
const SELL_FOR: Duration = Duration::from_millis(1500);
/// Acknowledged sales wanted before the kill, so the test always has something to check.
const MIN_ACKED: usize = 40;

/// A running `caja-node serve`; dropping it kills the process (a failing test never leaks
/// one).
struct NodeProcess {
    child: Child,
    url: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeProcess {
    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "{status:?}");
    }

    /// SIGTERM and wait for a clean exit.
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "caja-node exited with {status:?}");
                return;
            }
            assert!(Instant::now() < deadline, "caja-node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts `caja-node serve` on `dir` and waits until `/health/ready` answers 200. Retries
/// on another port when the process exits early (the port was taken in between).
async fn start(dir: &Path, client: &reqwest::Client) -> NodeProcess {
    let log_path = dir.join("node.log");
    for _attempt in 0..5 {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_caja-node"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CAJA_NODE_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["serve", "--init", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--requests-per-second", "100000"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut node = NodeProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if node.child.try_wait().unwrap().is_some() {
                break; // exited: most likely the port was taken; try another
            }
            if let Ok(r) = client.get(format!("{}/health/ready", node.url)).send().await
                && r.status() == 200
            {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "caja-node not ready within 60 s; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    panic!(
        "caja-node did not start; log:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

/// The sale body of client `c`'s `n`th sale (its lines vary so bodies differ).
fn sale_body(c: usize, n: usize) -> Value {
    let skus = ["TEA-1", "COF-1", "BAG-1"];
    json!({
        "lines": [
            {"sku": skus[(c + n) % 3], "quantity": 1 + (n % 3)},
            {"sku": skus[(c + n + 1) % 3], "quantity": "0.5"}
        ],
        "tenders": [{"kind": "cash", "amount": "50.00"}],
        "occurred_at": format!("{DAY}T12:00:00Z"),
    })
}

/// Sells in a loop until `stop` or the node goes away; returns `(key, sale id)` of every
/// sale answered with a 2xx.
async fn sell(
    client: reqwest::Client,
    url: String,
    c: usize,
    stop: Arc<AtomicBool>,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("crash-{c}-{n}");
        let res = client
            .post(format!("{url}/v1/sales"))
            .header("idempotency-key", &key)
            .json(&sale_body(c, n))
            .send()
            .await;
        let Ok(res) = res else { break };
        if !res.status().is_success() {
            let status = res.status();
            // A response cut by the kill is not an acknowledgement; anything else is a bug.
            match res.text().await {
                Ok(body) => panic!("sale refused with {status}: {body}"),
                Err(_) => break,
            }
        }
        let Ok(body) = res.json::<Value>().await else {
            break;
        };
        acked.push((key, body["id"].as_str().unwrap().to_string()));
        n += 1;
    }
    acked
}

/// Creates the node's first user with the real CLI (`caja-node user add`, password from
/// the environment), as the README tells a standalone shop to.
fn add_admin(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .args(["user", "add", "admin", "--role", "admin", "--data-dir"])
        .arg(dir.join("data"))
        .env("CAJA_NODE_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("user admin created"));
}

const PASSWORD: &str = "crash test password";

/// A client that sends `token` as its bearer token.
fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_sales_survive_kill_9() {
    caja_node::install_crypto();
    let tmp = tempfile::tempdir().unwrap();
    add_admin(tmp.path());
    let anonymous = reqwest::Client::new();
    let mut node = start(tmp.path(), &anonymous).await;
    let login: Value = anonymous
        .post(format!("{}/v1/auth/login", node.url))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The same token keeps working after the kill: the signing key is on disk.
    let client = client_with(login["access_token"].as_str().unwrap());

    for (sku, name, price) in [
        ("TEA-1", "Tea", "2.50"),
        ("COF-1", "Coffee", "4.75"),
        ("BAG-1", "Bag", "0.10"),
    ] {
        let r = client
            .put(format!("{}/v1/products/{sku}", node.url))
            .json(&json!({"name": name, "unit_price": price, "tax_rate": "0.2"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (client, url, stop) = (client.clone(), node.url.clone(), stop.clone());
        tasks.spawn(sell(client, url, c, stop));
    }
    // Sell for a while (and until enough sales were acknowledged), then kill -9 while the
    // clients are still sending.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let report = client
            .get(format!("{}/v1/reports/daily?date={DAY}", node.url))
            .send()
            .await;
        let count = match report {
            Ok(r) => r
                .json::<Value>()
                .await
                .map_or(0, |v| v["sales"].as_u64().unwrap_or(0) as usize),
            Err(_) => 0,
        };
        if started.elapsed() >= SELL_FOR && count >= MIN_ACKED {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {count} sales in 120 s"
        );
    }
    node.kill9();
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<(String, String)> = tasks.join_all().await.into_iter().flatten().collect();
    let acked_ids: BTreeSet<&str> = acked.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(acked_ids.len(), acked.len(), "one id answered twice");
    assert!(acked.len() >= MIN_ACKED / 2, "{} acknowledged", acked.len());

    // Restart on the same directory.
    let mut node = start(tmp.path(), &client).await;
    for (_, id) in &acked {
        let r = client
            .get(format!("{}/v1/sales/{id}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged sale {id} lost");
        assert_eq!(r.json::<Value>().await.unwrap()["id"], id.as_str());
    }
    // A client retrying an acknowledged sale gets the same sale back, not a second one.
    for (key, id) in acked.iter().take(3) {
        let (c, n) = key["crash-".len()..].split_once('-').unwrap();
        let r = client
            .post(format!("{}/v1/sales", node.url))
            .header("idempotency-key", key)
            .json(&sale_body(c.parse().unwrap(), n.parse().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers().get("idempotent-replayed").unwrap(), "true");
        assert_eq!(r.json::<Value>().await.unwrap()["id"], id.as_str());
    }
    let report: Value = client
        .get(format!("{}/v1/reports/daily?date={DAY}", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reported = report["sales"].as_i64().unwrap();
    assert!(reported >= acked.len() as i64, "{reported} < {}", acked.len());
    eprintln!(
        "{} sales acknowledged before the kill, {reported} stored",
        acked.len()
    );
    node.terminate();
    drop(node);

    // The database itself: intact, each sale once, projections agree with the ledger
    // documents, and every sale kept its idempotency record and a unique receipt number.
    let conn = rusqlite::Connection::open(tmp.path().join("data").join("node.sqlite")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (rows, distinct, receipts): (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT fact_id), COUNT(DISTINCT receipt_no) FROM facts WHERE kind = 'sale'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((rows, distinct, receipts), (reported, reported, reported));
    let other: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM facts WHERE kind NOT IN ('sale', 'security')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(other, 0);
    let keys: i64 = conn
        .query_row("SELECT COUNT(*) FROM idempotency", [], |r| r.get(0))
        .unwrap();
    assert_eq!(keys, reported);
    let ledgers: Vec<DocId> = caja_shared::docstore::list(&conn)
        .unwrap()
        .into_iter()
        .filter(|d| matches!(d, DocId::Ledger { date, .. } if date.to_string() == DAY))
        .collect();
    assert_eq!(ledgers.len(), 1, "{ledgers:?}");
    let doc = caja_shared::docstore::load(&conn, &ledgers[0]).unwrap().unwrap();
    assert_eq!(docs::ledger_len(&doc) as i64, reported);
    let in_doc: BTreeSet<String> = docs::ledger_facts(&doc)
        .into_iter()
        .map(|f| f.unwrap().id.to_string())
        .collect();
    let mut stmt = conn
        .prepare("SELECT fact_id FROM facts WHERE kind = 'sale'")
        .unwrap();
    let in_table: BTreeSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(in_doc, in_table);
    for id in &acked_ids {
        assert!(in_table.contains(*id), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_directory_is_announced_and_an_existing_one_is_not() {
    caja_node::install_crypto();
    let tmp = tempfile::tempdir().unwrap();
    let anonymous = reqwest::Client::new();
    let log = || std::fs::read_to_string(tmp.path().join("node.log")).unwrap_or_default();
    // A typo'd (or first) data directory: the node starts, and says it is a new one.
    let mut node = start(tmp.path(), &anonymous).await;
    node.terminate();
    assert!(log().contains("started a new, empty node"), "{}", log());
    // Started again on the same directory: not new any more.
    std::fs::remove_file(tmp.path().join("node.log")).unwrap();
    let mut node = start(tmp.path(), &anonymous).await;
    node.terminate();
    assert!(!log().contains("started a new, empty node"), "{}", log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lan_fingerprint_prints_what_tills_and_curl_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let fingerprint = |listen: &str| {
        Command::new(env!("CARGO_BIN_EXE_caja-node"))
            .args(["lan-fingerprint", "--listen", listen, "--data-dir"])
            .arg(tmp.path().join("data"))
            .env_remove("CAJA_NODE_LAN_NAMES")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // A data directory with no node (a typo) is refused, not filled with a certificate.
    let out = fingerprint("127.0.0.1:8443");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no node"), "{err}");
    assert!(!tmp.path().join("data").exists());

    add_admin(tmp.path());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let out = fingerprint(&listen);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].len() == 64 && lines[0].bytes().all(|b| b.is_ascii_hexdigit()),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("sha256//") && lines[1].len() == 8 + 44,
        "{stdout}"
    );

    let log = std::fs::File::create(tmp.path().join("tls.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .args(["serve", "--init", "--tls", "--listen", &listen, "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _node = NodeProcess {
        child,
        url: format!("https://{listen}"),
    };
    // curl with the printed public-key pin reaches the node; another pin does not.
    let curl = |pin: &str| {
        Command::new("curl")
            .args(["-sS", "-k", "--max-time", "5", "--pinnedpubkey", pin])
            .arg(format!("https://{listen}/health/live"))
            .output()
            .expect("curl is installed (tests/run-all.sh installs it)")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = curl(lines[1]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "curl with the pin failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(tmp.path().join("tls.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wrong = curl("sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert!(!wrong.status.success());
}

#[test]
fn a_failed_enrollment_leaves_no_node_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    // A server given without its port: refused by the client before any connection.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .args([
            "enroll",
            "--server",
            "localhost",
            "--code",
            "AAAAA-BBBBB-CCCCC-DDDDD",
        ])
        .args(["--ca-fingerprint", &"ab".repeat(32), "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HOST:PORT"),
        "{out:?}"
    );
    assert!(
        !dir.exists(),
        "a failed enrollment left {} behind, which serve would start as a standalone node",
        dir.display()
    );
}

#[test]
fn serve_with_unusable_tls_files_stops_before_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .args(["serve", "--init", "--listen", "127.0.0.1:0", "--tls"])
        .args([
            "--tls-cert",
            "/nonexistent/lan.pem",
            "--tls-key",
            "/nonexistent/lan.key.pem",
        ])
        .arg("--data-dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/lan.pem"), "{err}");
    assert!(
        !err.contains("caja-node serving"),
        "announced serving first: {err}"
    );
}
