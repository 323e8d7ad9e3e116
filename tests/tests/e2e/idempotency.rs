//! Idempotency after a dropped response: a checkout is sent over a raw TCP connection
//! that is dropped without reading the answer, then retried with the same
//! `Idempotency-Key`. Exactly one sale must exist, at the node and at the sync server.

use std::time::Duration;

use anyhow::{Context, ensure};
use caja_shared::docs::Product;
use caja_shared::money::Currency;
use caja_tests::harness::{Api, TestDir, TestNode, spawn_hq_in, wait_catalog, wait_synced, wait_until};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Security facts the node records besides sales: the harness's one login.
const LOGINS: u64 = 1;

/// How long any one wait may take.
const WAIT: Duration = Duration::from_secs(30);

/// Writes a complete `POST /v1/sales` request by hand on a fresh connection and returns
/// the connection without reading from it.
async fn send_raw(api: &Api, body: &Value, key: &str) -> anyhow::Result<TcpStream> {
    let body = serde_json::to_string(body)?;
    let token = api.token().context("not logged in")?;
    let request = format!(
        "POST /v1/sales HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\nContent-Length: {len}\r\n\r\n{body}",
        host = api.authority(),
        len = body.len()
    );
    let mut stream = tokio::time::timeout(WAIT, TcpStream::connect(api.authority()))
        .await
        .context("connect timed out")??;
    tokio::time::timeout(WAIT, stream.write_all(request.as_bytes()))
        .await
        .context("write timed out")??;
    stream.flush().await?;
    Ok(stream)
}

/// Retries the request with reqwest: it must be `201 Created` and replayed; returns the
/// sale id.
async fn retry(api: &Api, body: &Value, key: &str) -> anyhow::Result<String> {
    let res = api.post_sale_raw(body, Some(key)).await?;
    let status = res.status();
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let sale: Value = res.json().await?;
    ensure!(status == reqwest::StatusCode::CREATED, "retry: {status} {sale}");
    ensure!(
        replayed.as_deref() == Some("true"),
        "retry not replayed: {replayed:?}"
    );
    sale["id"].as_str().map(str::to_string).context("sale without id")
}

async fn sales_today(api: &Api) -> anyhow::Result<u64> {
    Ok(api.daily_report(None).await?.sales)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_checkout_is_recorded_once_at_the_node_and_the_server() -> anyhow::Result<()> {
    let dir = TestDir::new("idempotency")?;
    let server = spawn_hq_in(&dir.join("server")).await;
    let target = server.create_store("shop", "Shop").await?;
    let node = TestNode::start(&dir.join("shop"), "shop", Currency::GBP, Some(target)).await?;
    server
        .server()
        .put_products(
            &caja_sync_server::Actor::local(),
            vec![Product {
                sku: "TEA".into(),
                name: "Tea".into(),
                unit_price: Decimal::new(250, 2),
                tax_rate: Decimal::new(20, 2),
                barcode: None,
                category: None,
                stock_tracked: true,
            }],
        )
        .await?;
    wait_catalog(server.server(), &node.api, 1, WAIT).await?;
    let api = &node.api;
    let body = json!({"lines": [{"sku": "TEA", "quantity": "2"}],
                      "tenders": [{"kind": "cash", "amount": "10.00"}]});

    // 1. The response is lost after the sale was recorded: the request is processed (the
    //    connection stays open until the sale shows in the report), then the connection
    //    is dropped unread.
    let stream = send_raw(api, &body, "lost-response-1").await?;
    wait_until("the first request to be recorded", WAIT, || async {
        Ok(sales_today(api).await? == 1)
    })
    .await?;
    drop(stream);
    let id = retry(api, &body, "lost-response-1").await?;
    ensure!(
        retry(api, &body, "lost-response-1").await? == id,
        "second retry: another sale"
    );
    ensure!(sales_today(api).await? == 1);
    let sale = api.sale(&id).await?;
    ensure!(
        sale.total == Decimal::new(600, 2) && sale.change == Decimal::new(400, 2),
        "{sale:?}"
    );
    // The same key with another body is refused, not recorded.
    let other = json!({"lines": [{"sku": "TEA", "quantity": "1"}],
                       "tenders": [{"kind": "cash", "amount": "10.00"}]});
    let res = api.post_sale_raw(&other, Some("lost-response-1")).await?;
    ensure!(
        res.status() == reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        res.status()
    );
    ensure!(sales_today(api).await? == 1);

    // The server holds the sale and one security fact: the admin's login.
    wait_synced(server.server(), &[api], 1 + LOGINS, WAIT).await?;
    let report = server.server().sales_report(None, None).await?;
    ensure!(
        report.totals.sales == 1 && report.totals.gross == "6.00",
        "server: {:?}",
        report.totals
    );
    ensure!(server.server().fact_count().await? == 1 + LOGINS);

    // 2. The connection is dropped at once: whether or not the node got to record the
    //    sale, the retry leaves exactly one.
    let stream = send_raw(api, &body, "dropped-2").await?;
    drop(stream);
    let id2 = retry_created(api, &body, "dropped-2").await?;
    ensure!(id2 != id, "a new key must make a new sale");
    ensure!(retry(api, &body, "dropped-2").await? == id2);
    ensure!(sales_today(api).await? == 2);
    wait_synced(server.server(), &[api], 2 + LOGINS, WAIT).await?;
    let report = server.server().sales_report(None, None).await?;
    ensure!(
        report.totals.sales == 2 && report.totals.gross == "12.00",
        "server: {:?}",
        report.totals
    );
    ensure!(server.server().fact_count().await? == 2 + LOGINS);

    node.stop().await;
    let mut server = server;
    server.stop().await;
    Ok(())
}

/// A retry whose first attempt may or may not have been recorded: `201 Created` either
/// way; returns the sale id.
async fn retry_created(api: &Api, body: &Value, key: &str) -> anyhow::Result<String> {
    let sale = api.post_sale(body, Some(key)).await?;
    Ok(sale.id)
}
