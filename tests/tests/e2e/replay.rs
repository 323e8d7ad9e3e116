//! Replays of the real data files (`shared/data`) through an in-process chain (a sync
//! server and one node per store, over real QUIC and HTTP): the sync server's report must
//! equal, to the cent, the figures `caja_tests::expected` computes from the files without
//! the product's parser.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, ensure};
use caja_demo::demo::{self, DemoOptions};
use caja_demo::replay::plan::Format;
use caja_sync_server::{SalesReport, Totals};
use caja_tests::expected::{self, DayTotals, Expected};
use caja_tests::harness::{TestDir, data_file};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::Value;

/// Trading days of December 2010 in the online-retail file (2010-12-01 to 2010-12-23,
/// counted from the file's `InvoiceDate`s): "one month" of trading.
const DECEMBER_2010_DAYS: u32 = 20;

fn dec(s: &str) -> anyhow::Result<Decimal> {
    s.parse().with_context(|| format!("{s:?} is not a decimal"))
}

fn same(got: &Totals, want: &DayTotals) -> anyhow::Result<bool> {
    Ok(got.sales == want.sales
        && got.refunds == want.refunds
        && dec(&got.gross)? == want.gross
        && dec(&got.refunded)? == want.refunded
        && dec(&got.net)? == want.net)
}

fn show(t: &Totals) -> String {
    format!(
        "{} sales {} refunds gross {} refunded {} net {}",
        t.sales, t.refunds, t.gross, t.refunded, t.net
    )
}

/// Every difference between the server's report and the expected figures: per store per
/// day, per store tenders, and the chain totals. Exact decimal equality.
fn compare(report: &SalesReport, want: &Expected) -> anyhow::Result<Vec<String>> {
    let mut diffs = Vec::new();
    for (store, days) in &want.stores {
        let got = report.stores.get(store);
        for (day, w) in days {
            match got.and_then(|s| s.days.get(day)) {
                Some(g) if same(g, w)? => {}
                Some(g) => diffs.push(format!("{store} {day}: server {}, expected {w:?}", show(g))),
                None => diffs.push(format!("{store} {day}: missing at the server, expected {w:?}")),
            }
        }
    }
    for (store, s) in &report.stores {
        for (day, g) in &s.days {
            if !want.stores.get(store).is_some_and(|d| d.contains_key(day)) {
                diffs.push(format!("{store} {day}: not expected, server has {}", show(g)));
            }
        }
        let got: BTreeMap<String, Decimal> = s
            .tenders
            .iter()
            .map(|(k, v)| Ok((k.clone(), dec(v)?)))
            .collect::<anyhow::Result<_>>()?;
        let empty = BTreeMap::new();
        let w = want.tenders.get(store).unwrap_or(&empty);
        if &got != w {
            diffs.push(format!("{store} tenders: server {got:?}, expected {w:?}"));
        }
    }
    if !same(&report.totals, &want.totals)? {
        diffs.push(format!(
            "totals: server {}, expected {:?}",
            show(&report.totals),
            want.totals
        ));
    }
    Ok(diffs)
}

/// Runs the replay of `path` on a chain in `dir`, compares the sync server's report with
/// `want`, shuts the chain down, and returns the demo's JSON report.
async fn replay_and_compare(
    dir: &Path,
    path: &Path,
    format: Format,
    days: Option<u32>,
    want: &Expected,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let (chain, json, _temp) = demo::run(&DemoOptions {
        orders: Some(path.to_path_buf()),
        format: Some(format),
        days,
        outage: false,
        data_dir: Some(dir.to_path_buf()),
        ..DemoOptions::default()
    })
    .await
    .with_context(|| format!("replaying {}", path.display()))?;
    let report = chain.server.sales_report(None, None).await;
    chain.shutdown().await;
    let report = report?;
    eprintln!(
        "{format} replay: {} sales, {} refunds, gross {}, net {} in {:.1} s (trading {} s, convergence {} s)",
        report.totals.sales,
        report.totals.refunds,
        report.totals.gross,
        report.totals.net,
        started.elapsed().as_secs_f64(),
        json["trading_seconds"],
        json["convergence_seconds"],
    );
    let diffs = compare(&report, want)?;
    ensure!(
        diffs.is_empty(),
        "{} differences between the server's report and the file:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    ensure!(
        json["operations"]["refused"] == 0,
        "nodes refused operations: {}",
        json["operations"]
    );
    Ok(json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supermarket_file_replays_to_the_cent() -> anyhow::Result<()> {
    let path = data_file("supermarket-sales-3-branches.csv");
    let want = expected::supermarket(&path)?;
    ensure!(want.totals.sales == 1000 && want.stores.len() == 3);
    let dir = TestDir::new("replay-supermarket")?;
    let json = replay_and_compare(&dir.join("chain"), &path, Format::Supermarket, None, &want).await?;
    ensure!(json["skipped"]["bad_rows"] == 0, "{}", json["skipped"]);
    for store in want.stores.keys() {
        let tenders: Vec<&String> = want.tenders[store].keys().collect();
        ensure!(
            tenders == ["Cash", "Credit card", "Ewallet"],
            "{store}: {tenders:?}"
        );
    }
    // The file's Total has 4 decimals; the POS rounds every line to the cent.
    let file_total = want.file_total.context("the file's own Total")?;
    eprintln!(
        "supermarket: our gross {} (rounded to the cent per sale) vs the sum of the file's Total column {file_total}: \
         difference {}",
        want.totals.gross,
        want.totals.gross - file_total
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_month_of_online_retail_replays_to_the_cent() -> anyhow::Result<()> {
    let path = data_file("online-retail-2010-12-to-2011-09.csv.gz");
    let want = expected::online_retail(&path, Some(DECEMBER_2010_DAYS))?;
    let days: std::collections::BTreeSet<NaiveDate> =
        want.stores.values().flat_map(|d| d.keys().copied()).collect();
    ensure!(
        days.len() == DECEMBER_2010_DAYS as usize && days.iter().all(|d| (d.year(), d.month()) == (2010, 12)),
        "the first {DECEMBER_2010_DAYS} trading days are not December 2010: {days:?}"
    );
    let dir = TestDir::new("replay-online-retail")?;
    let json = replay_and_compare(
        &dir.join("chain"),
        &path,
        Format::OnlineRetail,
        Some(DECEMBER_2010_DAYS),
        &want,
    )
    .await?;
    // The plan counts adjustments over the whole file, whatever days are replayed.
    let whole = expected::online_retail(&path, None)?;
    ensure!(
        json["skipped"]["adjustments"] == whole.adjustments,
        "skipped adjustments: replay {}, file {} ({} in December 2010)",
        json["skipped"]["adjustments"],
        whole.adjustments,
        want.adjustments
    );
    eprintln!(
        "online-retail December 2010: {} stores, {} adjustments skipped in the month, {} in the file",
        want.stores.len(),
        want.adjustments,
        whole.adjustments
    );
    Ok(())
}
