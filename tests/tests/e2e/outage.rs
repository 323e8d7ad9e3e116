//! Outage: store `a` loses its link and sells on (sales, refunds with and without
//! receipt) while store `b` sells online; head office changes a price during the outage;
//! the sync server is stopped and started again on the same port and data directory.
//! Once `a` reconnects, the server's report must equal, to the cent, the sum of what the
//! nodes acknowledged; both catalogs must equal the server's; and the sales made offline
//! keep the price they were sold at.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use anyhow::{Context, ensure};
use caja_shared::docs::Product;
use caja_shared::money::Currency;
use caja_sync_server::{SalesReport, Totals};
use caja_tests::expected::round_cents;
use caja_tests::harness::{
    Api, SaleView, TestDir, TestNode, spawn_hq_in, wait_catalog, wait_synced, wait_until,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// How long any one convergence may take.
const WAIT: Duration = Duration::from_secs(60);

/// The product whose price head office changes during the outage.
const CHANGED: &str = "P05";

/// Number of products in the catalog.
const PRODUCTS: usize = 20;

fn catalog() -> Vec<Product> {
    (0..PRODUCTS)
        .map(|i| Product {
            sku: format!("P{i:02}"),
            name: format!("Product {i}"),
            // P07 costs 0.165: three decimals, so line amounts must round half away from zero.
            unit_price: if i == 7 {
                Decimal::new(165, 3)
            } else {
                Decimal::new(99 + (i as i64 * 137) % 1900, 2)
            },
            tax_rate: if i % 4 == 0 {
                Decimal::ZERO
            } else {
                Decimal::new(20, 2)
            },
            barcode: None,
            category: Some("outage test".into()),
            stock_tracked: true,
        })
        .collect()
}

/// SKU -> (unit price, tax rate) as a node will charge it.
type Prices = BTreeMap<String, (Decimal, Decimal)>;

fn prices(products: &[Product]) -> Prices {
    products
        .iter()
        .map(|p| (p.sku.clone(), (p.unit_price, p.tax_rate)))
        .collect()
}

/// A line's total, tax included, computed here (not by the product): net rounded to the
/// cent half away from zero, tax on the rounded net rounded the same way.
fn line_total(prices: &Prices, sku: &str, quantity: u32) -> anyhow::Result<Decimal> {
    let (price, rate) = prices.get(sku).with_context(|| format!("no price for {sku}"))?;
    let net = round_cents(*price * Decimal::from(quantity));
    Ok(net + round_cents(net * *rate))
}

/// Sale number `i`: its request body and the total it must come to. Every tenth sale
/// (when `with_changed`) sells [`CHANGED`]; tenders rotate through card (exact), cash with
/// change, cash (exact) and a labelled other tender.
fn sale_request(i: usize, prices: &Prices, with_changed: bool) -> anyhow::Result<(Value, Decimal)> {
    let mut lines: Vec<(String, u32)> = Vec::new();
    for k in 0..1 + i % 3 {
        let mut idx = (i * 7 + k * 5) % PRODUCTS;
        if format!("P{idx:02}") == CHANGED && !with_changed {
            idx += 1;
        }
        lines.push((format!("P{idx:02}"), 1 + ((i + k) % 3) as u32));
    }
    if with_changed && i.is_multiple_of(10) && !lines.iter().any(|(s, _)| s == CHANGED) {
        lines.push((CHANGED.into(), 1));
    }
    let mut total = Decimal::ZERO;
    for (sku, q) in &lines {
        total += line_total(prices, sku, *q)?;
    }
    let tender = match i % 4 {
        0 => json!({"kind": "card", "amount": total.to_string()}),
        1 => {
            // Round up past the total to the next £5: change is due.
            let given = (total / Decimal::from(5)).floor() * Decimal::from(5) + Decimal::from(5);
            json!({"kind": "cash", "amount": given.to_string()})
        }
        2 => json!({"kind": "cash", "amount": total.to_string()}),
        _ => json!({"kind": "other", "label": "Voucher", "amount": total.to_string()}),
    };
    let body = json!({
        "lines": lines.iter().map(|(s, q)| json!({"sku": s, "quantity": q.to_string()})).collect::<Vec<_>>(),
        "tenders": [tender],
    });
    Ok((body, total))
}

/// Sells sales `range` at a node, checking each total against [`sale_request`].
async fn sell(
    api: &Api,
    store: &str,
    range: Range<usize>,
    prices: &Prices,
    with_changed: bool,
) -> anyhow::Result<Vec<SaleView>> {
    let mut out = Vec::with_capacity(range.len());
    for i in range {
        let (body, total) = sale_request(i, prices, with_changed)?;
        let key = format!("outage-{store}-sale-{i}");
        let sale = api
            .post_sale(&body, Some(&key))
            .await
            .with_context(|| format!("store {store} sale {i}"))?;
        ensure!(
            sale.total == total,
            "store {store} sale {i}: node charged {} but the lines come to {total}: {body}",
            sale.total
        );
        let given: Decimal = sale.tenders.iter().map(|t| t.amount).sum();
        ensure!(
            sale.change == given - total,
            "sale {i}: change {} of {given}",
            sale.change
        );
        out.push(sale);
    }
    Ok(out)
}

/// What the nodes acknowledged (every 2xx sale and refund), to compare with the server.
#[derive(Default)]
struct Acked {
    /// (store, business day) -> (sales, refunds, gross, refunded).
    days: BTreeMap<(String, NaiveDate), (u64, u64, Decimal, Decimal)>,
    /// store -> tender name -> takings (cash net of change; refunds negative).
    tenders: BTreeMap<String, BTreeMap<String, Decimal>>,
    /// Number of facts (sales + refunds).
    facts: u64,
}

impl Acked {
    fn record(&mut self, store: &str, v: &SaleView) {
        let day = self.days.entry((store.to_string(), v.business_date)).or_default();
        if v.kind == "refund" {
            day.1 += 1;
            day.3 += v.total;
        } else {
            day.0 += 1;
            day.2 += v.total;
        }
        let mut change = v.change;
        for t in &v.tenders {
            let mut amount = t.amount;
            if t.kind == "cash" && change > Decimal::ZERO && amount > Decimal::ZERO {
                let take = change.min(amount);
                amount -= take;
                change -= take;
            }
            let name = t.label.clone().unwrap_or_else(|| t.kind.clone());
            *self
                .tenders
                .entry(store.to_string())
                .or_default()
                .entry(name)
                .or_default() += amount;
        }
        self.facts += 1;
    }

    fn record_all(&mut self, store: &str, vs: &[SaleView]) {
        for v in vs {
            self.record(store, v);
        }
    }
}

fn dec(s: &str) -> anyhow::Result<Decimal> {
    s.parse().with_context(|| format!("{s:?} is not a decimal"))
}

fn figures(t: &Totals) -> anyhow::Result<(u64, u64, Decimal, Decimal, Decimal)> {
    Ok((
        t.sales,
        t.refunds,
        dec(&t.gross)?,
        dec(&t.refunded)?,
        dec(&t.net)?,
    ))
}

/// Every difference between the server's report and what the nodes acknowledged.
fn compare(report: &SalesReport, acked: &Acked) -> anyhow::Result<Vec<String>> {
    let mut diffs = Vec::new();
    let mut want_total = (0u64, 0u64, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let mut seen = 0;
    for ((store, day), (s, r, g, rf)) in &acked.days {
        let want = (*s, *r, *g, *rf, *g + *rf);
        want_total = (
            want_total.0 + s,
            want_total.1 + r,
            want_total.2 + g,
            want_total.3 + rf,
            want_total.4 + g + rf,
        );
        match report.stores.get(store).and_then(|st| st.days.get(day)) {
            Some(t) => {
                seen += 1;
                let got = figures(t)?;
                if got != want {
                    diffs.push(format!("{store} {day}: server {got:?}, nodes {want:?}"));
                }
            }
            None => diffs.push(format!("{store} {day}: missing at the server; nodes {want:?}")),
        }
    }
    let server_days: usize = report.stores.values().map(|s| s.days.len()).sum();
    if server_days != seen {
        diffs.push(format!(
            "the server reports {server_days} store-days, the nodes {seen}"
        ));
    }
    for (store, want) in &acked.tenders {
        let got: BTreeMap<String, Decimal> = match report.stores.get(store) {
            Some(s) => s
                .tenders
                .iter()
                .map(|(k, v)| Ok((k.clone(), dec(v)?)))
                .collect::<anyhow::Result<_>>()?,
            None => BTreeMap::new(),
        };
        if &got != want {
            diffs.push(format!("{store} tenders: server {got:?}, nodes {want:?}"));
        }
    }
    let got = figures(&report.totals)?;
    if got != want_total {
        diffs.push(format!("totals: server {got:?}, nodes {want_total:?}"));
    }
    Ok(diffs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_store_and_server_restart_converge_to_the_cent() -> anyhow::Result<()> {
    let dir = TestDir::new("outage")?;
    let mut server = spawn_hq_in(&dir.join("server")).await;
    let target_a = server.create_store("a", "Store A").await?;
    let target_b = server.create_store("b", "Store B").await?;
    let a = TestNode::start(&dir.join("a"), "a", Currency::GBP, Some(target_a)).await?;
    let b = TestNode::start(&dir.join("b"), "b", Currency::GBP, Some(target_b)).await?;

    let products = catalog();
    let old = prices(&products);
    server
        .server()
        .put_products(&caja_sync_server::Actor::local(), products.clone())
        .await?;
    for n in [&a, &b] {
        wait_catalog(server.server(), &n.api, PRODUCTS as u64, WAIT).await?;
    }

    // Store a goes offline.
    let st = a.api.set_link(false).await?;
    ensure!(!st.enabled, "link still enabled: {st:?}");
    wait_until("store a to disconnect", WAIT, || async {
        Ok(!a.api.sync_status().await?.connected)
    })
    .await?;

    // Both trade: a offline, b online.
    let (a1, b1) = tokio::join!(
        sell(&a.api, "a", 0..100, &old, true),
        sell(&b.api, "b", 0..25, &old, false)
    );
    let (a1, b1) = (a1?, b1?);

    // Head office changes a price during the outage: b gets it, a cannot.
    let mut changed = products
        .iter()
        .find(|p| p.sku == CHANGED)
        .context("changed product")?
        .clone();
    let old_price = changed.unit_price;
    let new_price = (old_price * Decimal::new(110, 2)).round_dp(2);
    changed.unit_price = new_price;
    server
        .server()
        .put_products(&caja_sync_server::Actor::local(), vec![changed])
        .await?;
    wait_catalog(server.server(), &b.api, PRODUCTS as u64, WAIT).await?;
    ensure!(b.api.product(CHANGED).await?.unit_price == new_price);
    let a_status = a.api.sync_status().await?;
    ensure!(
        a_status.catalog_heads != server.server().catalog_heads().await?,
        "store a got the price change while offline"
    );
    ensure!(a.api.product(CHANGED).await?.unit_price == old_price);

    let mut new = old.clone();
    new.insert(CHANGED.into(), (new_price, old[CHANGED].1));
    let (a2, b2) = tokio::join!(
        sell(&a.api, "a", 100..200, &old, true),
        sell(&b.api, "b", 25..50, &new, false)
    );
    let (a2, b2) = (a2?, b2?);
    let a_sales: Vec<SaleView> = a1.into_iter().chain(a2).collect();

    // Refunds at a, still offline: two with the receipt, three without.
    let with_changed = a_sales
        .iter()
        .find(|s| s.lines.iter().any(|l| l.sku == CHANGED))
        .context("no offline sale sold the changed product")?;
    let first_line = &a_sales[1].lines[0];
    let refunds = [
        (
            json!({"original_sale": a_sales[1].id, "lines": [{"sku": first_line.sku, "quantity": "1"}],
                   "tender": {"kind": "card"}, "reason": "faulty"}),
            -line_total(&old, &first_line.sku, 1)?,
        ),
        (
            json!({"original_sale": with_changed.id, "lines": [{"sku": CHANGED, "quantity": "1"}],
                   "tender": {"kind": "cash"}, "reason": "changed mind"}),
            -line_total(&old, CHANGED, 1)?,
        ),
        (
            json!({"lines": [{"sku": "P01", "quantity": "1"}], "tender": {"kind": "cash"}}),
            -line_total(&old, "P01", 1)?,
        ),
        (
            json!({"lines": [{"sku": CHANGED, "quantity": "2"}], "tender": {"kind": "card"}}),
            -line_total(&old, CHANGED, 2)?,
        ),
        (
            json!({"lines": [{"sku": "P12", "quantity": "1"}],
                   "tender": {"kind": "other", "label": "Store credit"}}),
            -line_total(&old, "P12", 1)?,
        ),
    ];
    let mut a_refunds = Vec::new();
    for (i, (body, total)) in refunds.iter().enumerate() {
        let r = a
            .api
            .post_refund(body, Some(&format!("outage-a-refund-{i}")))
            .await
            .with_context(|| format!("refund {i}"))?;
        ensure!(
            r.kind == "refund" && r.total == *total,
            "refund {i}: {r:?}, want {total}"
        );
        ensure!(r.original_sale == body["original_sale"].as_str().map(str::to_string));
        a_refunds.push(r);
    }
    ensure!(
        a.api.sync_status().await?.pending_facts >= 205,
        "store a should hold its offline facts"
    );

    // The server stops; b keeps selling; the server comes back on the same port.
    server.stop().await;
    wait_until("store b to notice the server is gone", WAIT, || async {
        Ok(!b.api.sync_status().await?.connected)
    })
    .await?;
    let b3 = sell(&b.api, "b", 50..55, &new, false).await?;
    server.restart().await;
    a.api.set_link(true).await?;

    let mut acked = Acked::default();
    acked.record_all("a", &a_sales);
    acked.record_all("a", &a_refunds);
    for s in [&b1, &b2, &b3] {
        acked.record_all("b", s);
    }
    let t = wait_synced(server.server(), &[&a.api, &b.api], acked.facts, WAIT).await?;
    eprintln!(
        "{} facts at the server {:.2} s after the restart",
        acked.facts,
        t.as_secs_f64()
    );
    for n in [&a, &b] {
        wait_catalog(server.server(), &n.api, PRODUCTS as u64, WAIT).await?;
    }

    // Back online, a charges the new price; its offline sales keep the old one.
    let after = sell(&a.api, "a", 1000..1001, &new, true).await?;
    ensure!(
        after[0]
            .lines
            .iter()
            .any(|l| l.sku == CHANGED && l.unit_price == new_price),
        "{:?}",
        after[0]
    );
    acked.record_all("a", &after);
    for s in &a_sales {
        for l in s.lines.iter().filter(|l| l.sku == CHANGED) {
            ensure!(
                l.unit_price == old_price,
                "offline sale {} at {}",
                s.id,
                l.unit_price
            );
        }
    }
    let stored = a.api.sale(&with_changed.id).await?;
    ensure!(
        stored
            .lines
            .iter()
            .filter(|l| l.sku == CHANGED)
            .all(|l| l.unit_price == old_price),
        "the stored offline sale changed its price: {stored:?}"
    );
    wait_synced(server.server(), &[&a.api, &b.api], acked.facts, WAIT).await?;

    // The server's report equals what the nodes acknowledged.
    let report = server.server().sales_report(None, None).await?;
    let diffs = compare(&report, &acked)?;
    ensure!(diffs.is_empty(), "server report differs:\n{}", diffs.join("\n"));
    ensure!(report.stores.keys().collect::<Vec<_>>() == ["a", "b"]);
    ensure!(report.totals.sales == 256 && report.totals.refunds == 5);
    eprintln!(
        "converged: {} sales, {} refunds, gross {}, refunded {}, net {}",
        report.totals.sales,
        report.totals.refunds,
        report.totals.gross,
        report.totals.refunded,
        report.totals.net
    );

    // Both catalogs equal the server's, product by product.
    let heads = server.server().catalog_heads().await?;
    for n in [&a, &b] {
        ensure!(n.api.sync_status().await?.catalog_heads == heads);
        for p in &products {
            let want = server
                .server()
                .product(&p.sku)
                .await?
                .context("product at server")?;
            let got = n.api.product(&p.sku).await?;
            ensure!(
                got.unit_price == want.unit_price && got.tax_rate == want.tax_rate,
                "{}: node {got:?}, server {want:?}",
                p.sku
            );
        }
        ensure!(n.api.product(CHANGED).await?.unit_price == new_price);
    }

    a.stop().await;
    b.stop().await;
    server.stop().await;
    Ok(())
}
