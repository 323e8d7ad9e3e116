//! The demo's card scene: a store that has lost its link takes card payments offline
//! (stored for head office to forward, under the store's floor limit and caps); after it
//! reconnects, head office forwards them to the card provider (the simulator) exactly
//! once, and the one the bank declines lands in the reconciliation queue.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use caja_shared::docs::Product;
use caja_shared::facts::Line;
use caja_shared::money::{Currency, format_minor};
use reqwest::Method;
use serde_json::{Value, json};

use crate::chain::{Chain, ChainNode};
use crate::client::NodeClient;

/// Card tokens of the offline sales: three the bank approves, one it declines.
const TOKENS: [&str; 4] = ["tok_approve", "tok_approve", "tok_approve", "tok_decline"];

/// At an offline store: the cashier takes four card payments of one `product` each;
/// they are stored offline. Prints the receipts.
///
/// # Errors
/// When a sale is refused (it must be within the store's offline rules).
pub async fn take_offline(n: &ChainNode, product: &Product, currency: Currency) -> anyhow::Result<()> {
    let till = NodeClient::new(&n.url, None)?;
    let cashier = &n.staff.cashier;
    till.login_pin("T3", &cashier.username, &cashier.pin)
        .await
        .context("cashier PIN login for the card sales")?;
    let line = Line::priced(
        &product.sku,
        "",
        1.into(),
        product.unit_price,
        false,
        product.tax_rate,
        false,
        currency,
        1,
    )?;
    let total = format_minor(line.total_minor, currency);
    let mut receipts = Vec::new();
    for token in TOKENS {
        let sale = till
            .json(
                Method::POST,
                "/v1/sales",
                Some(&json!({"lines": [{"sku": product.sku, "quantity": "1"}],
                             "tenders": [{"kind": "card", "amount": total, "card_token": token}]})),
            )
            .await
            .context("an offline card sale")?;
        let state = sale["tenders"][0]["card"]["state"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        receipts.push(format!(
            "{} ({state})",
            sale["receipt_no"].as_str().unwrap_or("?")
        ));
    }
    println!(
        "  takes {} card payments of {total} offline, stored for head office to forward: {}",
        TOKENS.len(),
        receipts.join(", ")
    );
    till.send(Method::POST, "/v1/auth/logout", None, &[]).await?;
    Ok(())
}

/// After the store reconnected: waits until head office has forwarded every stored card
/// payment, prints the outcome (captures at the provider, declines in the reconciliation
/// queue) and returns it as JSON (`{"captured", "declined", "open_cases"}`).
///
/// # Errors
/// When head office's admin API does not answer, or forwarding does not finish within
/// `timeout`.
pub async fn forwarded(chain: &Chain, timeout: Duration) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/v1/auth/login", chain.server_url))
        .json(&json!({"username": chain.hq_admin.username,
                      "password": chain.hq_admin.password.as_ref().map(|p| p.expose())}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["access_token"].as_str().unwrap_or_default().to_string();
    let get = |path: &str| {
        http.get(format!("{}{path}", chain.server_url))
            .bearer_auth(&token)
            .send()
    };
    let started = Instant::now();
    let (captured, declined) = loop {
        let report: Value = get("/v1/reports/offline-payments")
            .await?
            .error_for_status()?
            .json()
            .await?;
        let sum = |state: &str| -> i64 {
            report["stores"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s[state]["count"].as_i64().unwrap_or(0))
                .sum()
        };
        let (stored, open) = (sum("stored"), sum("pending") + sum("forwarding"));
        if stored > 0 && open == 0 {
            break (sum("captured"), sum("declined"));
        }
        if started.elapsed() > timeout {
            bail!("head office had not forwarded the stored card payments after {timeout:?}: {report}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cases: Value = get("/v1/reconciliation?status=open")
        .await?
        .error_for_status()?
        .json()
        .await?;
    let cases = cases.as_array().cloned().unwrap_or_default();
    println!(
        "head office forwarded the stored card payments in {:.1} s: {captured} captured (the provider recorded {} captures), {declined} declined",
        started.elapsed().as_secs_f64(),
        chain.payments.simulator().captures().len()
    );
    for c in &cases {
        let amount = match (
            c["amount_minor"].as_i64(),
            c["currency"].as_str().and_then(|t| t.parse::<Currency>().ok()),
        ) {
            (Some(m), Some(cur)) => format!("{} {cur}", format_minor(m, cur)),
            _ => "?".into(),
        };
        println!(
            "  reconciliation queue: {} at store {}, {amount} (sale {}), status {}",
            c["kind"].as_str().unwrap_or("?"),
            c["store"].as_str().unwrap_or("?"),
            c["sale"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?")
        );
    }
    Ok(json!({"captured": captured, "declined": declined, "open_cases": cases.len()}))
}
