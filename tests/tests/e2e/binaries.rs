//! The README's roll-out with the real binaries, as separate processes: head office
//! registers a store (`caja-sync store add` prints a one-time enrollment code), creates an
//! admin and a store manager (`caja-sync user add`, passwords from the environment) and
//! starts `caja-sync serve`; the store runs `caja-node enroll` with the code and the CA
//! fingerprint, then `caja-node serve`. The manager logs in at the node, head office
//! changes a product through its admin API, the manager sells, head office's report has
//! the sale. The used code cannot enroll a second node, a wrong fingerprint is refused,
//! and `caja-sync node revoke` cuts the node off while everything runs.
//!
//! The binaries are the ones cargo built next to this test (`cargo nextest run
//! --workspace --all-targets` builds them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use caja_tests::harness::{TestDir, wait_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const ADMIN_PASSWORD: &str = "head office password 1";
const MANAGER_PASSWORD: &str = "store manager password";

/// A binary built by cargo in the same target directory as this test.
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is not built: run the tests with `cargo nextest run --workspace --all-targets` (or `cargo build --workspace --bins` first)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs a command with no `CAJA_*` variables from the caller's environment.
fn run(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CAJA_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null());
    Ok(cmd.output()?)
}

fn ok(out: &Output, what: &str) -> anyhow::Result<String> {
    ensure!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn(bin: &Path, args: &[&str], log: &Path) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CAJA_") {
            cmd.env_remove(k);
        }
    }
    let log = std::fs::File::create(log)?;
    Ok(Proc(
        cmd.args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    ))
}

async fn login(http: &reqwest::Client, base: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let res = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await?;
    let status = res.status();
    let v: Value = res.json().await?;
    ensure!(status.is_success(), "login of {user} at {base}: {status} {v}");
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .context("no access token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_and_serve_with_the_real_binaries() -> anyhow::Result<()> {
    caja_node::install_crypto();
    let (sync, node) = (binary("caja-sync")?, binary("caja-node")?);
    let dir = TestDir::new("binaries")?;
    let (hq, shop) = (dir.join("hq"), dir.join("shop"));
    let hq_s = hq.to_str().context("path")?;

    // Head office: a store, its enrollment code, an admin and the store's manager.
    let out = ok(
        &run(
            &sync,
            &[
                "store",
                "add",
                "shop",
                "--name",
                "The Shop",
                "--init",
                "--data-dir",
                hq_s,
            ],
            &[],
        )?,
        "store add",
    )?;
    let code = out.lines().next().context("no code printed")?.trim().to_string();
    ensure!(code.len() >= 20, "{out}");
    ok(
        &run(
            &sync,
            &["user", "add", "boss", "--role", "admin", "--data-dir", hq_s],
            &[("CAJA_SYNC_PASSWORD", ADMIN_PASSWORD)],
        )?,
        "user add boss",
    )?;
    ok(
        &run(
            &sync,
            &[
                "user",
                "add",
                "mgr",
                "--role",
                "manager",
                "--store",
                "shop",
                "--data-dir",
                hq_s,
            ],
            &[
                ("CAJA_SYNC_PASSWORD", MANAGER_PASSWORD),
                ("CAJA_SYNC_PIN", "24681357"),
            ],
        )?,
        "user add mgr",
    )?;
    let fp = ok(
        &run(&sync, &["ca-fingerprint", "--data-dir", hq_s], &[])?,
        "ca-fingerprint",
    )?
    .trim()
    .to_string();
    let (quic, http_port) = (free_udp_port()?, free_port()?);
    let _server = spawn(
        &sync,
        &[
            "serve",
            "--data-dir",
            hq_s,
            "--listen-quic",
            &format!("127.0.0.1:{quic}"),
            "--listen-http",
            &format!("127.0.0.1:{http_port}"),
        ],
        &dir.join("hq.log"),
    )?;
    let hq_url = format!("http://127.0.0.1:{http_port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    wait_until("the sync server to answer", WAIT, || async {
        Ok(http
            .get(format!("{hq_url}/health/ready"))
            .send()
            .await?
            .status()
            .is_success())
    })
    .await?;

    // A wrong fingerprint is refused before the code is spent.
    let server_addr = format!("127.0.0.1:{quic}");
    let shop_s = shop.to_str().context("path")?;
    let wrong = run(
        &node,
        &[
            "enroll",
            "--data-dir",
            shop_s,
            "--server",
            &server_addr,
            "--ca-fingerprint",
            &"0".repeat(64),
        ],
        &[("CAJA_NODE_ENROLLMENT_CODE", &code)],
    )?;
    ensure!(!wrong.status.success(), "enrolled with a wrong CA fingerprint");
    let msg = String::from_utf8_lossy(&wrong.stderr);
    ensure!(msg.contains("fingerprint"), "{msg}");
    // The store enrolls with the code.
    let out = ok(
        &run(
            &node,
            &[
                "enroll",
                "--data-dir",
                shop_s,
                "--server",
                &server_addr,
                "--ca-fingerprint",
                &fp,
            ],
            &[("CAJA_NODE_ENROLLMENT_CODE", &code)],
        )?,
        "enroll",
    )?;
    ensure!(
        out.contains("enrolled: node") && out.contains("store shop"),
        "{out}"
    );
    // The code was single use (given as the flag this time).
    let again = run(
        &node,
        &[
            "enroll",
            "--data-dir",
            dir.join("second").to_str().context("path")?,
            "--server",
            &server_addr,
            "--code",
            &code,
            "--ca-fingerprint",
            &fp,
        ],
        &[],
    )?;
    ensure!(!again.status.success());
    ensure!(
        String::from_utf8_lossy(&again.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // An enrolled node's staff come from head office: adding one locally is refused.
    let local = run(
        &node,
        &["user", "add", "local", "--role", "admin", "--data-dir", shop_s],
        &[("CAJA_NODE_PASSWORD", "a long local password")],
    )?;
    ensure!(!local.status.success(), "added a local user to an enrolled node");
    let msg = String::from_utf8_lossy(&local.stderr);
    ensure!(
        msg.contains("enrolled with head office") && msg.contains("caja-sync user add"),
        "{msg}"
    );

    let node_port = free_port()?;
    let _node = spawn(
        &node,
        &[
            "serve",
            "--data-dir",
            shop_s,
            "--listen",
            &format!("127.0.0.1:{node_port}"),
        ],
        &dir.join("shop.log"),
    )?;
    let shop_url = format!("http://127.0.0.1:{node_port}");
    // The manager's credentials replicate from head office; then they log in offline-capably.
    wait_until("the manager to be able to log in at the node", WAIT, || async {
        login(&http, &shop_url, "mgr", MANAGER_PASSWORD)
            .await
            .map(|_| true)
    })
    .await?;
    let token = login(&http, &shop_url, "mgr", MANAGER_PASSWORD).await?;
    let boss = login(&http, &hq_url, "boss", ADMIN_PASSWORD).await?;
    let put = http
        .put(format!("{hq_url}/v1/products/TEA-1"))
        .bearer_auth(&boss)
        .json(&json!({"name": "Green tea", "unit_price": "2.55", "tax_rate": "0.20"}))
        .send()
        .await?;
    ensure!(put.status().is_success(), "{}", put.text().await?);
    // Head office's admin API refuses the store manager's node token outright.
    let cross = http
        .get(format!("{hq_url}/v1/stores"))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(
        cross.status() == reqwest::StatusCode::UNAUTHORIZED,
        "{}",
        cross.status()
    );
    wait_until("the product to reach the node", WAIT, || async {
        Ok(http
            .get(format!("{shop_url}/v1/products/TEA-1"))
            .bearer_auth(&token)
            .send()
            .await?
            .status()
            .is_success())
    })
    .await?;
    let sale = http
        .post(format!("{shop_url}/v1/sales"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "binaries-1")
        .json(&json!({"lines": [{"sku": "TEA-1", "quantity": 2}], "tenders": [{"kind": "cash", "amount": "10.00"}]}))
        .send()
        .await?;
    ensure!(
        sale.status() == reqwest::StatusCode::CREATED,
        "{}",
        sale.text().await?
    );
    wait_until("head office to report the sale", WAIT, || async {
        let r: Value = http
            .get(format!("{hq_url}/v1/reports/sales"))
            .bearer_auth(&boss)
            .send()
            .await?
            .json()
            .await?;
        Ok(r["totals"]["sales"] == 1 && r["totals"]["gross"] == "6.12")
    })
    .await?;

    // Head office revokes the node from the command line while both run: it is cut off.
    let nodes: Value = http
        .get(format!("{hq_url}/v1/nodes"))
        .bearer_auth(&boss)
        .send()
        .await?
        .json()
        .await?;
    let node_id = nodes[0]["node"]
        .as_str()
        .or_else(|| nodes[0]["node_id"].as_str())
        .context("node id")?
        .to_string();
    ok(
        &run(&sync, &["node", "revoke", &node_id, "--data-dir", hq_s], &[])?,
        "node revoke",
    )?;
    wait_until("the node to be disconnected and refused", WAIT, || async {
        let st: Value = http
            .get(format!("{shop_url}/v1/sync/status"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        Ok(st["connected"] == false && st["last_error"].as_str().is_some_and(|e| e.contains("revoked")))
    })
    .await?;
    // The store keeps selling on its own.
    let sale = http
        .post(format!("{shop_url}/v1/sales"))
        .bearer_auth(&token)
        .json(&json!({"lines": [{"sku": "TEA-1", "quantity": 1}], "tenders": [{"kind": "card", "amount": "3.06"}]}))
        .send()
        .await?;
    ensure!(
        sale.status() == reqwest::StatusCode::CREATED,
        "{}",
        sale.text().await?
    );
    Ok(())
}
