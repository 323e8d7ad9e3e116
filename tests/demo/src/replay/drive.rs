//! Drives a replay plan through the nodes' REST APIs: each store's operations go, in
//! order, to that store's node over real HTTP, as the store's manager (replayed prices are
//! price overrides and the file's refunds have no receipt: both manager rights), with an
//! `Idempotency-Key` per operation so a re-run never records anything twice.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use caja_shared::facts::{Line, TenderKind};
use caja_shared::money::format_minor;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::plan::{Op, ReplayPlan};
use crate::chain::Chain;

/// What happened to the operations sent.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DriveOutcome {
    /// Sales the nodes accepted.
    pub sales: u64,
    /// Refunds accepted.
    pub refunds: u64,
    /// Stock movements accepted.
    pub stock_movements: u64,
    /// Operations a node refused (with the first reasons in `rejections`).
    pub rejected: u64,
    /// Up to 20 refusals: `"<reference>: <status> <problem detail>"`.
    pub rejections: Vec<String>,
}

impl DriveOutcome {
    fn add(&mut self, o: &DriveOutcome) {
        self.sales += o.sales;
        self.refunds += o.refunds;
        self.stock_movements += o.stock_movements;
        self.rejected += o.rejected;
        for r in &o.rejections {
            if self.rejections.len() < 20 {
                self.rejections.push(r.clone());
            }
        }
    }
}

fn kind_name(k: TenderKind) -> &'static str {
    match k {
        TenderKind::Cash => "cash",
        TenderKind::Card => "card",
        TenderKind::Other => "other",
    }
}

/// The request for one operation: `(path, idempotency key, body)`.
fn request(plan: &ReplayPlan, tax: &HashMap<&str, Decimal>, op: &Op) -> (&'static str, String, Value) {
    let fmt = plan.format.name();
    let lines = |lines: &[super::plan::OpLine]| -> Vec<Value> {
        lines
            .iter()
            .map(|l| json!({"sku": l.sku, "quantity": l.quantity.to_string(), "unit_price": l.unit_price.to_string()}))
            .collect()
    };
    match op {
        Op::Sale {
            occurred_at,
            reference,
            lines: ls,
            tender,
            ..
        } => {
            // The tender covers the total exactly, priced by the same rule the node uses.
            let total: i64 = ls
                .iter()
                .filter_map(|l| {
                    let rate = tax.get(l.sku.as_str()).copied().unwrap_or_default();
                    Line::priced(
                        &l.sku,
                        "",
                        l.quantity,
                        l.unit_price,
                        false,
                        rate,
                        false,
                        plan.currency,
                        1,
                    )
                    .ok()
                })
                .map(|l| l.total_minor)
                .sum();
            let mut t = json!({"kind": kind_name(tender.kind), "amount": format_minor(total, plan.currency)});
            if let Some(label) = &tender.label {
                t["label"] = json!(label);
            }
            (
                "/v1/sales",
                format!("replay-{fmt}-sale-{reference}"),
                json!({"lines": lines(ls), "tenders": [t], "occurred_at": occurred_at.to_rfc3339()}),
            )
        }
        Op::Refund {
            occurred_at,
            reference,
            lines: ls,
            ..
        } => (
            "/v1/refunds",
            format!("replay-{fmt}-refund-{reference}"),
            json!({"lines": lines(ls), "tender": {"kind": "card"}, "reason": "refund without receipt (replay)",
                   "occurred_at": occurred_at.to_rfc3339()}),
        ),
        Op::Stock {
            occurred_at,
            reference,
            line,
            sku,
            quantity,
            reason,
            note,
            ..
        } => (
            "/v1/stock/movements",
            format!("replay-{fmt}-stock-{reference}-{line}"),
            json!({"sku": sku, "quantity": quantity.to_string(), "reason": reason, "note": note,
                   "occurred_at": occurred_at.to_rfc3339()}),
        ),
    }
}

/// Sends `ops` (a slice of `plan.ops`) to the chain: stores in parallel, each store's
/// operations in order. Shows a progress bar on a terminal, else a line per 10 %.
///
/// # Errors
/// Only when a node cannot be reached at all; refusals are counted in the outcome.
pub async fn drive(
    chain: &Chain,
    plan: &ReplayPlan,
    ops: &[Op],
    label: &str,
) -> anyhow::Result<DriveOutcome> {
    let tax: HashMap<&str, Decimal> = plan
        .catalog
        .iter()
        .map(|p| (p.sku.as_str(), p.tax_rate))
        .collect();
    let mut per_store: BTreeMap<String, Vec<(&'static str, String, Value)>> = BTreeMap::new();
    for op in ops {
        per_store
            .entry(op.store().to_string())
            .or_default()
            .push(request(plan, &tax, op));
    }
    let total = ops.len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(label.to_string());
        Some(b)
    } else {
        None
    };
    let mut set = tokio::task::JoinSet::new();
    for (store, reqs) in per_store {
        let (url, client) = chain
            .nodes
            .iter()
            .find(|n| n.store.as_str() == store)
            .map(|n| (n.url.clone(), n.manager.clone()))
            .with_context(|| format!("no node for store {store}"))?;
        let (client, done, bar, label) = (client.clone(), done.clone(), bar.clone(), label.to_string());
        set.spawn(async move {
            let mut out = DriveOutcome::default();
            for (path, key, body) in reqs {
                let res = client
                    .send(
                        reqwest::Method::POST,
                        path,
                        Some(&body),
                        &[("Idempotency-Key", &key)],
                    )
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => match path {
                        "/v1/sales" => out.sales += 1,
                        "/v1/refunds" => out.refunds += 1,
                        _ => out.stock_movements += 1,
                    },
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        out.rejected += 1;
                        if out.rejections.len() < 20 {
                            out.rejections.push(format!("{key}: {status} {text}"));
                        }
                    }
                    Err(e) => return Err(anyhow::anyhow!("node {url} unreachable: {e}")),
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                match &bar {
                    Some(b) => b.set_position(n),
                    None if total >= 10 && (n % (total / 10).max(1) == 0 || n == total) => {
                        eprintln!("{label}: {n}/{total} operations ({}%)", n * 100 / total)
                    }
                    None => {}
                }
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    let mut outcome = DriveOutcome::default();
    while let Some(r) = set.join_next().await {
        outcome.add(&r.context("replay task panicked")??);
    }
    if let Some(b) = bar {
        b.finish();
    }
    Ok(outcome)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::replay::plan::{Format, parse_plan};

    #[test]
    fn every_operation_of_a_file_has_its_own_idempotency_key() {
        // Two free lines of one SKU in one invoice (the real file has them) are two
        // movements: one key for both would make the node refuse the second.
        let csv = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536414,22139,,56,2010-12-01 11:52:00,0,,United Kingdom
536414,22139,,10,2010-12-01 11:52:00,0,,United Kingdom
536415,22139,TOY,2,2010-12-01 11:53:00,1.25,,United Kingdom
C536416,22139,TOY,-1,2010-12-01 11:54:00,1.25,,United Kingdom
";
        let plan = parse_plan(csv.as_bytes(), Format::OnlineRetail).unwrap();
        let tax = HashMap::new();
        let keys: Vec<String> = plan.ops.iter().map(|op| request(&plan, &tax, op).1).collect();
        assert_eq!(keys.len(), 4);
        let distinct: std::collections::HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), 4, "{keys:?}");
        // Stable across runs of the same file, which is what makes a re-run harmless.
        let again: Vec<String> = plan.ops.iter().map(|op| request(&plan, &tax, op).1).collect();
        assert_eq!(keys, again);
    }
}
