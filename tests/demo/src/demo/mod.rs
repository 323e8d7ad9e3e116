//! The demo and replays: a small chain trading on loopback, one store losing its link
//! and selling on, a head-office price change during the outage, reconnection, and the
//! converged chain report from the sync server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use caja_shared::docs::Product;
use caja_shared::facts::{MovementReason, TenderKind};
use caja_shared::ids::StoreCode;
use caja_shared::money::{Currency, format_minor};
use chrono::{Duration as Days, NaiveTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::chain::Chain;

mod cards;
mod staff;
use crate::replay::drive::{DriveOutcome, drive};
use crate::replay::plan::{self, Format, Op, OpLine, OpTender, ReplayPlan};
pub use staff::print_try_it;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Where the chain keeps its files; default a temporary directory removed at the end.
    pub data_dir: Option<PathBuf>,
    /// A real file to replay instead of synthetic trading.
    pub orders: Option<PathBuf>,
    /// Its layout.
    pub format: Option<Format>,
    /// Keep only the first N business days of the file.
    pub days: Option<u32>,
    /// Where to write the chain report as JSON.
    pub report_json: Option<PathBuf>,
    /// Take one store offline for the middle third of the trading.
    pub outage: bool,
}

/// A deterministic synthetic plan: 3 stores, 30 products with barcodes, 3 days of sales,
/// refunds and stock receipts.
pub fn synthetic_plan() -> ReplayPlan {
    let mut rng = StdRng::seed_from_u64(2026);
    let stores: Vec<(StoreCode, String)> = ["north", "south", "east"]
        .iter()
        .filter_map(|s| s.parse().ok().map(|c| (c, format!("Caja {s}"))))
        .collect();
    let names = [
        "Tea", "Coffee", "Milk", "Bread", "Butter", "Jam", "Eggs", "Apples", "Pasta", "Rice",
    ];
    let catalog: Vec<Product> = (0..30)
        .map(|i| {
            let data: Vec<u8> = format!("{:012}", 500_000_000_000u64 + i as u64)
                .bytes()
                .map(|b| b - b'0')
                .collect();
            let check = caja_shared::barcode::check_digit(&data);
            Product {
                sku: format!("SKU-{i:03}"),
                name: format!(
                    "{} {}",
                    names[i % names.len()],
                    ["small", "medium", "large"][i % 3]
                ),
                unit_price: Decimal::new(rng.random_range(49..2000), 2),
                tax_rate: Decimal::new(if i % 4 == 0 { 0 } else { 20 }, 2),
                barcode: Some(format!(
                    "{}{check}",
                    data.iter().map(|d| (b'0' + d) as char).collect::<String>()
                )),
                category: Some(names[i % names.len()].to_string()),
                stock_tracked: true,
            }
        })
        .collect();
    let today = Utc::now().date_naive();
    // Each run's sales and refunds are new trading (a second run on the same --data-dir adds
    // to the chain's report); the opening delivery is once per store and day.
    let run = Utc::now().timestamp_millis();
    let mut ops = Vec::new();
    for day in 0..3 {
        // The three days before today: a sale cannot be dated in the future.
        let date = today - Days::days(3 - day);
        for (store, _) in &stores {
            let at = |h: u32, m: u32| {
                date.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default())
                    .and_utc()
            };
            if day == 0 {
                for (line, p) in catalog.iter().enumerate() {
                    ops.push(Op::Stock {
                        store: store.clone(),
                        occurred_at: at(7, 0),
                        reference: format!("{store}-{date}-receipt"),
                        line,
                        sku: p.sku.clone(),
                        quantity: Decimal::from(100),
                        reason: MovementReason::Receipt,
                        note: Some("opening delivery".into()),
                    });
                }
            }
            for n in 0..60u32 {
                let lines: Vec<OpLine> = (0..rng.random_range(1..5))
                    .map(|_| {
                        let p = &catalog[rng.random_range(0..catalog.len())];
                        OpLine {
                            sku: p.sku.clone(),
                            quantity: Decimal::from(rng.random_range(1..4)),
                            unit_price: p.unit_price,
                        }
                    })
                    .collect();
                let tender = if rng.random_bool(0.5) {
                    OpTender {
                        kind: TenderKind::Card,
                        label: None,
                    }
                } else {
                    OpTender {
                        kind: TenderKind::Cash,
                        label: None,
                    }
                };
                ops.push(Op::Sale {
                    store: store.clone(),
                    occurred_at: at(8 + n / 6, (n % 6) * 10),
                    reference: format!("{store}-{date}-{n}-run{run}"),
                    lines,
                    tender,
                });
                if n % 20 == 19 {
                    let p = &catalog[rng.random_range(0..catalog.len())];
                    ops.push(Op::Refund {
                        store: store.clone(),
                        occurred_at: at(8 + n / 6, (n % 6) * 10 + 5),
                        reference: format!("{store}-{date}-r{n}-run{run}"),
                        lines: vec![OpLine {
                            sku: p.sku.clone(),
                            quantity: Decimal::ONE,
                            unit_price: p.unit_price,
                        }],
                    });
                }
            }
        }
    }
    ops.sort_by_key(|o| o.occurred_at());
    ReplayPlan {
        format: Format::OnlineRetail,
        currency: Currency::GBP,
        catalog,
        stores,
        ops,
        skipped_adjustments: 0,
        bad_rows: vec![],
        rows_read: 0,
    }
}

/// One row of a node's own daily figures: (day, sales, refunds, gross minor, refunded minor).
type DayRow = (String, i64, i64, i64, i64);

/// Per store and day: (sales, refunds, gross minor, refunded minor) from a node's own
/// projection, to check the server's report against.
async fn node_totals(chain: &Chain) -> anyhow::Result<BTreeMap<(String, String), (i64, i64, i64, i64)>> {
    let mut out = BTreeMap::new();
    for n in &chain.nodes {
        let rows = n
            .node
            .db()
            .read(|c| -> Result<Vec<DayRow>, caja_node::store::StoreError> {
                let mut stmt = c.prepare(
                    "SELECT business_date, SUM(kind = 'sale'), SUM(kind = 'refund'),
                            COALESCE(SUM(CASE WHEN kind = 'sale' THEN total_minor END), 0),
                            COALESCE(SUM(CASE WHEN kind = 'refund' THEN total_minor END), 0)
                     FROM facts WHERE local = 1 AND kind IN ('sale', 'refund') GROUP BY business_date",
                )?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        for (d, s, r, g, rf) in rows {
            out.insert((n.store.to_string(), d), (s, r, g, rf));
        }
    }
    Ok(out)
}

/// Compares the server's report with the nodes' own figures; returns the differences.
fn cross_check(
    report: &Value,
    nodes: &BTreeMap<(String, String), (i64, i64, i64, i64)>,
    c: Currency,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for ((store, day), (s, r, g, rf)) in nodes {
        let d = &report["stores"][store][day];
        let ok = d["sales"].as_i64() == Some(*s)
            && d["refunds"].as_i64() == Some(*r)
            && d["gross"].as_str() == Some(&format_minor(*g, c))
            && d["refunded"].as_str() == Some(&format_minor(*rf, c));
        if !ok {
            diffs.push(format!(
                "{store} {day}: node says {s} sales {} / {r} refunds {}, server says {d}",
                format_minor(*g, c),
                format_minor(*rf, c)
            ));
        }
    }
    diffs
}

fn print_summary(report: &Value, plan: &ReplayPlan, outcome: &DriveOutcome) {
    println!();
    println!(
        "{:<24} {:>7} {:>7} {:>14} {:>12} {:>14}",
        "store", "sales", "refunds", "gross", "refunded", "net"
    );
    // Every store of the chain, those without trading too (a replay limited with --days
    // may leave some countries with none), so the table matches the header's count.
    let mut quiet = 0usize;
    for (code, _) in &plan.stores {
        let store = code.to_string();
        let Some(days) = report["stores"].get(&store).and_then(Value::as_object) else {
            quiet += 1;
            let zero = format_minor(0, plan.currency);
            println!(
                "{store:<24} {:>7} {:>7} {zero:>14} {zero:>12} {zero:>14}  (no trading)",
                0, 0
            );
            continue;
        };
        let (mut s, mut r, mut g, mut rf) = (0i64, 0i64, Decimal::ZERO, Decimal::ZERO);
        for (k, d) in days {
            if k == "tenders" {
                continue;
            }
            s += d["sales"].as_i64().unwrap_or(0);
            r += d["refunds"].as_i64().unwrap_or(0);
            g += d["gross"]
                .as_str()
                .and_then(|x| x.parse::<Decimal>().ok())
                .unwrap_or_default();
            rf += d["refunded"]
                .as_str()
                .and_then(|x| x.parse::<Decimal>().ok())
                .unwrap_or_default();
        }
        println!("{store:<24} {s:>7} {r:>7} {g:>14} {rf:>12} {:>14}", g + rf);
    }
    if quiet > 0 {
        println!(
            "({quiet} of {} stores had no trading in the replayed days)",
            plan.stores.len()
        );
    }
    let t = &report["totals"];
    println!(
        "{:<24} {:>7} {:>7} {:>14} {:>12} {:>14}",
        "TOTAL (sync server)",
        t["sales"].as_i64().unwrap_or(0),
        t["refunds"].as_i64().unwrap_or(0),
        t["gross"].as_str().unwrap_or(""),
        t["refunded"].as_str().unwrap_or(""),
        t["net"].as_str().unwrap_or("")
    );
    println!(
        "currency {}; skipped: {} accounting adjustments, {} bad rows; {} operations refused by nodes",
        plan.currency,
        plan.skipped_adjustments,
        plan.bad_rows.len(),
        outcome.rejected
    );
    for r in outcome.rejections.iter().take(5) {
        println!("  refused: {r}");
    }
    for b in plan.bad_rows.iter().take(5) {
        println!("  bad row at line {}: {}", b.line, b.reason);
    }
}

/// Runs the demo (or a replay): returns the chain and the report; the caller decides
/// whether to keep serving.
///
/// # Errors
/// When the chain cannot start, the file cannot be read, or the chain does not converge
/// within 10 minutes.
pub async fn run(opts: &DemoOptions) -> anyhow::Result<(Chain, Value, Option<tempfile::TempDir>)> {
    caja_node::install_crypto();
    let mut plan = match (&opts.orders, opts.format) {
        (Some(path), Some(format)) => {
            println!("reading {} ({format})", path.display());
            plan::read_plan(path, format).with_context(|| format!("reading {}", path.display()))?
        }
        (Some(_), None) => bail!("--orders needs --format online-retail|supermarket"),
        (None, _) => synthetic_plan(),
    };
    if let Some(days) = opts.days {
        plan::limit_days(&mut plan, days);
    }
    let (dir, temp) = match &opts.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new().prefix("caja-demo-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    println!(
        "chain: {} stores, {} products, {} operations; data in {}{}",
        plan.stores.len(),
        plan.catalog.len(),
        plan.ops.len(),
        dir.display(),
        if temp.is_some() {
            " (removed on exit; --data-dir keeps it)"
        } else {
            ""
        }
    );
    let chain = Chain::start(&dir, &plan.stores, plan.currency).await?;
    println!(
        "sync server: admin API {} , QUIC {}\n  CA fingerprint (what nodes pin) {}",
        chain.server_url,
        chain.server_quic,
        chain.server.ca_fingerprint()
    );
    staff::print_enrollment(&chain);
    chain
        .server
        .put_products(&caja_sync_server::Actor::local(), plan.catalog.clone())
        .await
        .context("loading the catalog")?;
    let t = chain.wait_catalog(Duration::from_secs(120)).await?;
    println!(
        "catalog of {} products replicated to every node in {:.2} s",
        plan.catalog.len(),
        t.as_secs_f64()
    );

    let started = Instant::now();
    let mut outcome = DriveOutcome::default();
    let n = plan.ops.len();
    let offline = if opts.outage && plan.stores.len() > 1 {
        // The store with the second most trading goes offline for the middle third.
        let mut counts: BTreeMap<&StoreCode, usize> = BTreeMap::new();
        for op in &plan.ops {
            *counts.entry(op.store()).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.get(1).map(|(s, _)| (*s).clone())
    } else {
        None
    };
    match &offline {
        Some(store) => {
            let node = chain.node(store).context("offline store has no node")?;
            let o1 = drive(&chain, &plan, &plan.ops[..n / 3], "trading (all online)").await?;
            node.node.link().set_enabled(false);
            println!("store {store} lost its link: it keeps selling offline");
            let o2 = drive(
                &chain,
                &plan,
                &plan.ops[n / 3..2 * n / 3],
                "trading (one store offline)",
            )
            .await?;
            if let Some(p) = plan.catalog.iter().find(|p| p.unit_price > Decimal::ZERO) {
                let mut changed = p.clone();
                changed.unit_price = (p.unit_price * Decimal::new(110, 2)).round_dp(2);
                println!(
                    "head office changes the price of {} from {} to {} during the outage",
                    p.sku, p.unit_price, changed.unit_price
                );
                chain
                    .server
                    .put_products(&caja_sync_server::Actor::local(), vec![changed])
                    .await?;
            }
            // Only in the synthetic demo: a replay's report must be the file's alone.
            if opts.orders.is_none()
                && let Some(p) = plan.catalog.iter().find(|p| p.unit_price > Decimal::ZERO)
            {
                staff::offline_override(node, p, plan.currency).await?;
                cards::take_offline(node, p, plan.currency).await?;
            }
            let pending = node
                .node
                .db()
                .read(|c| -> Result<i64, caja_node::store::StoreError> {
                    Ok(c.query_row(
                        "SELECT COUNT(*) FROM facts WHERE local = 1 AND acked = 0",
                        [],
                        |r| r.get(0),
                    )?)
                })
                .await?;
            println!("store {store} has {pending} facts waiting; reconnecting");
            node.node.link().set_enabled(true);
            let o3 = drive(&chain, &plan, &plan.ops[2 * n / 3..], "trading (reconnected)").await?;
            for o in [o1, o2, o3] {
                outcome.sales += o.sales;
                outcome.refunds += o.refunds;
                outcome.stock_movements += o.stock_movements;
                outcome.rejected += o.rejected;
                outcome.rejections.extend(o.rejections);
            }
        }
        None => outcome = drive(&chain, &plan, &plan.ops, "trading").await?,
    }
    let trading = started.elapsed();
    let converge_start = Instant::now();
    chain.wait_converged(Duration::from_secs(600)).await?;
    chain.wait_catalog(Duration::from_secs(60)).await?;
    let convergence = converge_start.elapsed();
    let mut report = serde_json::to_value(chain.server.sales_report(None, None).await?)?;
    report["skipped"] = json!({"adjustments": plan.skipped_adjustments, "bad_rows": plan.bad_rows.len()});
    report["convergence_seconds"] = json!((convergence.as_secs_f64() * 1000.0).round() / 1000.0);
    report["trading_seconds"] = json!((trading.as_secs_f64() * 1000.0).round() / 1000.0);
    report["operations"] = json!({"sales": outcome.sales, "refunds": outcome.refunds,
        "stock_movements": outcome.stock_movements, "refused": outcome.rejected});
    print_summary(&report, &plan, &outcome);
    if let Some(store) = &offline {
        staff::print_head_office_view(&chain, store).await?;
    }
    let diffs = cross_check(&report, &node_totals(&chain).await?, plan.currency);
    if diffs.is_empty() {
        println!("every node's own figures equal the sync server's report, to the cent");
    } else {
        println!("MISMATCH between nodes and server:");
        for d in &diffs {
            println!("  {d}");
        }
    }
    println!(
        "traded {} operations in {:.1} s; converged {:.3} s after trading ended",
        n,
        trading.as_secs_f64(),
        convergence.as_secs_f64()
    );
    // The card scene ran only in the synthetic demo's outage: show head office forwarding
    // the stored payments and the decline in the reconciliation queue.
    if opts.orders.is_none() && offline.is_some() {
        report["cards"] = cards::forwarded(&chain, Duration::from_secs(60)).await?;
    }
    if let Some(path) = &opts.report_json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    if !diffs.is_empty() {
        bail!("{} store-days differ between nodes and server", diffs.len());
    }
    Ok((chain, report, temp))
}
