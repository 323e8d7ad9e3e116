//! `caja-bench`: the benchmarks of BENCHMARKS.md, as a program that prints figures.
//!
//! ```sh
//! cargo run --release -p caja-demo --bin caja-bench -- [checkout|catchup|replay|all]
//! ```
//! - `checkout`: sales at one node over HTTP at 1, 8 and 64 concurrent clients (durable
//!   writes), throughput and p50/p99 latency; beside it, plain rusqlite inserts of the same
//!   rows with the same durability (one transaction per row, WAL, `synchronous=FULL`).
//! - `catchup`: a node sells 10,000 sales offline, reconnects: seconds until the server has
//!   them all, and bytes sent/received on the QUIC link.
//! - `replay`: the full online-retail file through an in-process chain: wall time, facts per
//!   second, peak RSS of the process (server and nodes together).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use caja_demo::chain::Chain;
use caja_demo::client::NodeClient;
use caja_demo::demo::{self, DemoOptions};
use caja_demo::replay::plan::Format;
use caja_node::auth::local::LocalUser;
use caja_node::{Node, NodeConfig};
use caja_shared::auth::secrets::Secret;
use caja_shared::docs::Product;
use caja_shared::money::Currency;
use rust_decimal::Decimal;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")).join(name)
}

fn products(n: usize) -> Vec<Product> {
    (0..n)
        .map(|i| Product {
            sku: format!("B{i:04}"),
            name: format!("bench item {i}"),
            unit_price: Decimal::new(100 + i as i64 * 7, 2),
            tax_rate: Decimal::new(20, 2),
            barcode: None,
            category: None,
            stock_tracked: true,
        })
        .collect()
}

fn sale_body(i: usize) -> serde_json::Value {
    json!({"lines": [{"sku": format!("B{:04}", i % 100), "quantity": 2}, {"sku": format!("B{:04}", (i * 7) % 100), "quantity": 1}],
           "tenders": [{"kind": "cash", "amount": "100.00"}]})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A standalone node with a cashier logged in by PIN; returns the node, its URL, the
/// cashier's access token and the stop switch. Every sale then pays the full cost of
/// authentication (EdDSA check, revocation and staff lookup) as a real till's would.
async fn standalone_node(dir: &std::path::Path) -> anyhow::Result<(Node, String, String, CancellationToken)> {
    let mut config = NodeConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        ..NodeConfig::default()
    };
    // The load generator is one client address.
    config.limits.requests_per_second = 1_000_000;
    let node = Node::open(config).await?;
    let pin = Secret::new("48151623");
    node.add_local_user(LocalUser {
        username: "bench".into(),
        display_name: None,
        password: None,
        pin: Some(pin.clone()),
        roles: vec!["cashier".into()],
    })
    .await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let (n, s) = (node.clone(), stop.clone());
    tokio::spawn(async move { n.serve(listener, s).await });
    let client = NodeClient::new(&url, None)?;
    client.login_pin("T1", "bench", &pin).await?;
    let token = client.access_token().context("no token")?.expose().to_string();
    Ok((node, url, token, stop))
}

/// An HTTP client that sends `token` as its bearer token.
fn bearer_client(token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    Ok(reqwest::Client::builder().default_headers(headers).build()?)
}

async fn checkout() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (node, url, token, stop) = standalone_node(dir.path()).await?;
    let client = bearer_client(&token)?;
    let ps = products(100);
    node.db()
        .write(move |ctx| caja_node::catalog::put(ctx, &ps))
        .await?;
    for i in 0..200 {
        client
            .post(format!("{url}/v1/sales"))
            .json(&sale_body(i))
            .send()
            .await?
            .error_for_status()?;
    }
    println!("## (a) checkout over HTTP at one node (durable: WAL + synchronous=FULL, group commit)");
    println!("| clients | sales | throughput (sales/s) | p50 (ms) | p99 (ms) |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for clients in [1usize, 8, 64] {
        let per = if clients == 1 { 2000 } else { 4000 / clients };
        let total = per * clients;
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for c in 0..clients {
            let (client, url) = (client.clone(), url.clone());
            set.spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let t = Instant::now();
                    let r = client
                        .post(format!("{url}/v1/sales"))
                        .header("Idempotency-Key", format!("bench-{clients}-{c}-{i}"))
                        .json(&sale_body(c * per + i))
                        .send()
                        .await?;
                    if !r.status().is_success() {
                        bail!("sale refused: {}", r.text().await.unwrap_or_default());
                    }
                    lat.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(lat)
            });
        }
        let mut lat = Vec::with_capacity(total);
        while let Some(r) = set.join_next().await {
            lat.extend(r??);
        }
        let elapsed = start.elapsed();
        lat.sort();
        println!(
            "| {clients} | {total} | {:.0} | {:.2} | {:.2} |",
            total as f64 / elapsed.as_secs_f64(),
            percentile(&lat, 0.5).as_secs_f64() * 1000.0,
            percentile(&lat, 0.99).as_secs_f64() * 1000.0
        );
    }
    // What authentication costs per request: a public route against one whose guard checks
    // the token (EdDSA verify) and reads the node's database (revocation, staff, roles).
    println!("\n## (a2) authentication cost per request, 1 client, 3000 requests each");
    println!("| route | mean (µs) | p99 (µs) |");
    println!("| --- | ---: | ---: |");
    for path in ["/health/live", "/v1/auth/me"] {
        let mut lat = Vec::with_capacity(3000);
        for _ in 0..3000 {
            let t = Instant::now();
            let r = client.get(format!("{url}{path}")).send().await?;
            if !r.status().is_success() {
                bail!("{path}: {}", r.status());
            }
            r.bytes().await?;
            lat.push(t.elapsed());
        }
        let mean = lat.iter().sum::<Duration>().as_secs_f64() / lat.len() as f64;
        lat.sort();
        println!(
            "| `GET {path}` | {:.0} | {:.0} |",
            mean * 1e6,
            percentile(&lat, 0.99).as_secs_f64() * 1e6
        );
    }
    stop.cancel();
    // The physical limit: plain inserts of the same rows, same durability, one transaction each.
    let rows: Vec<String> = node
        .db()
        .read(|c| -> anyhow::Result<Vec<String>> {
            let mut s = c.prepare("SELECT body FROM facts LIMIT 2000")?;
            Ok(s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
        .await?;
    let raw = tempfile::tempdir()?;
    let conn = rusqlite::Connection::open(raw.path().join("raw.sqlite"))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")?;
    let start = Instant::now();
    for r in &rows {
        conn.execute("INSERT INTO t (body) VALUES (?1)", [r])?;
    }
    let e = start.elapsed();
    println!(
        "\nplain rusqlite, one transaction per row, same rows ({} bytes avg), WAL + synchronous=FULL: {:.0} rows/s ({:.3} ms/row)",
        rows.iter().map(String::len).sum::<usize>() / rows.len().max(1),
        rows.len() as f64 / e.as_secs_f64(),
        e.as_secs_f64() * 1000.0 / rows.len().max(1) as f64
    );
    Ok(())
}

async fn catchup() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store: caja_shared::ids::StoreCode = "bench".parse()?;
    let chain = Chain::start(dir.path(), &[(store.clone(), "Bench".into())], Currency::GBP).await?;
    chain
        .server
        .put_products(&caja_sync_server::Actor::local(), products(100))
        .await?;
    chain.wait_catalog(Duration::from_secs(60)).await?;
    let n = chain.node(&store).context("node")?;
    n.node.link().set_enabled(false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let token = n.manager.access_token().context("not logged in")?;
    let client = bearer_client(token.expose())?;
    let sales = 10_000usize;
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let url = Arc::new(n.url.clone());
    for c in 0..8 {
        let (client, url) = (client.clone(), url.clone());
        set.spawn(async move {
            for i in (c..sales).step_by(8) {
                client
                    .post(format!("{url}/v1/sales"))
                    .json(&sale_body(i))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let offline = start.elapsed();
    let before = n.node.link().status();
    let t0 = Instant::now();
    n.node.link().set_enabled(true);
    chain.wait_converged(Duration::from_secs(300)).await?;
    let secs = t0.elapsed().as_secs_f64();
    let after = n.node.link().status();
    println!(
        "## (b) catch-up after {sales} offline sales (sold offline in {:.1} s)",
        offline.as_secs_f64()
    );
    println!(
        "seconds until the server has all {} facts: {:.2}; QUIC bytes sent by the node: {} ({:.1} per sale), received: {}",
        chain.server.fact_count().await?,
        secs,
        after.bytes_sent - before.bytes_sent,
        (after.bytes_sent - before.bytes_sent) as f64 / sales as f64,
        after.bytes_received - before.bytes_received
    );
    chain.shutdown().await;
    Ok(())
}

async fn replay() -> anyhow::Result<()> {
    let path = data_file("online-retail-2010-12-to-2011-09.csv.gz");
    let start = Instant::now();
    let (chain, report, _temp) = demo::run(&DemoOptions {
        orders: Some(path),
        format: Some(Format::OnlineRetail),
        outage: false,
        ..DemoOptions::default()
    })
    .await?;
    let wall = start.elapsed().as_secs_f64();
    let ops = &report["operations"];
    let facts = ops["sales"].as_u64().unwrap_or(0)
        + ops["refunds"].as_u64().unwrap_or(0)
        + ops["stock_movements"].as_u64().unwrap_or(0);
    let trading = report["trading_seconds"].as_f64().unwrap_or(0.0);
    println!("## (c) full replay of online-retail-2010-12-to-2011-09.csv.gz");
    println!(
        "wall time {wall:.1} s (parse + catalog + trading + convergence); trading {trading:.1} s; {facts} facts, {:.0} facts/s during trading; convergence {} s; peak RSS of the process (server + {} nodes in one process) {:.0} MiB",
        facts as f64 / trading.max(0.001),
        report["convergence_seconds"],
        chain.nodes.len(),
        peak_rss_mib()
    );
    chain.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    caja_node::install_crypto();
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    println!(
        "caja-bench on {} cores, {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    match what.as_str() {
        "checkout" => checkout().await?,
        "catchup" => catchup().await?,
        "replay" => replay().await?,
        "all" => {
            checkout().await?;
            catchup().await?;
            replay().await?;
        }
        other => bail!("unknown benchmark {other:?}: use checkout, catchup, replay or all"),
    }
    Ok(())
}
