//! Staff work offline: with the sync server stopped, a cashier logs in at a till with
//! their PIN, sells, is refused a refund without receipt and a price override, and a
//! manager's PIN authorises the refund; a wrong PIN is recorded too. Once the server is
//! back, head office sees who did what: the facts name the cashier and the manager who
//! authorised the refund, and the audit log has the PIN login, the failure, the override
//! granted and the override used.

use std::time::Duration;

use anyhow::{Context, ensure};
use caja_shared::docs::Product;
use caja_shared::money::Currency;
use caja_sync_server::audit::AuditQuery;
use caja_tests::harness::{TestDir, TestNode, pin_of, spawn_hq_in, wait_catalog, wait_synced, wait_until};
use rust_decimal::Decimal;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn tea() -> Product {
    Product {
        sku: "TEA".into(),
        name: "Tea".into(),
        unit_price: Decimal::new(250, 2),
        tax_rate: Decimal::new(20, 2),
        barcode: None,
        category: None,
        stock_tracked: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cashier_and_manager_work_offline_and_head_office_sees_who_did_what() -> anyhow::Result<()> {
    let dir = TestDir::new("offline-staff")?;
    let mut server = spawn_hq_in(&dir.join("server")).await;
    let ticket = server.create_store("a", "Store A").await?;
    let staff = ticket.staff.clone();
    let node = TestNode::start(&dir.join("a"), "a", Currency::GBP, Some(ticket)).await?;
    server
        .server()
        .put_products(&caja_sync_server::Actor::local(), vec![tea()])
        .await?;
    wait_catalog(server.server(), &node.api, 1, WAIT).await?;

    // Head office goes away.
    server.stop().await;
    wait_until("the node to notice the server is gone", WAIT, || async {
        Ok(!node.api.sync_status().await?.connected)
    })
    .await?;

    // A cashier logs in at till T2 with their PIN: the node checks it offline.
    let till = node.api.fresh();
    let login = till.login_pin("T2", &staff.cashier, pin_of("cashier")).await?;
    let cashier_id = login["user"]["user_id"].as_str().context("user id")?.to_string();
    ensure!(login["user"]["roles"] == json!(["cashier"]), "{login}");
    let sale = till
        .post_sale(
            &json!({"lines": [{"sku": "TEA", "quantity": "2"}], "tenders": [{"kind": "cash", "amount": "10.00"}]}),
            Some("offline-sale-1"),
        )
        .await?;
    ensure!(sale.total == Decimal::new(600, 2), "{sale:?}");

    // A refund without receipt and a price override are manager rights.
    let refund = json!({"lines": [{"sku": "TEA", "quantity": "1"}], "reason": "no receipt"});
    let res = till
        .request(reqwest::Method::POST, "/v1/refunds")
        .json(&refund)
        .send()
        .await?;
    ensure!(res.status() == reqwest::StatusCode::FORBIDDEN, "{}", res.status());
    let problem: Value = res.json().await?;
    ensure!(
        problem["type"] == "https://caja.dev/problems/forbidden",
        "{problem}"
    );
    let res = till
        .request(reqwest::Method::POST, "/v1/sales")
        .json(
            &json!({"lines": [{"sku": "TEA", "quantity": "1", "unit_price": "1.00"}],
                      "tenders": [{"kind": "cash", "amount": "5.00"}]}),
        )
        .send()
        .await?;
    ensure!(res.status() == reqwest::StatusCode::FORBIDDEN, "{}", res.status());

    // The manager types a wrong PIN, then the right one: the override authorises one refund.
    let ask = |pin: &str| {
        till.request(reqwest::Method::POST, "/v1/auth/override")
            .json(&json!({"username": staff.manager, "pin": pin, "permission": "refund.no_receipt"}))
            .send()
    };
    ensure!(ask("00000000").await?.status() == reqwest::StatusCode::UNAUTHORIZED);
    let granted: Value = ask(pin_of("manager")).await?.json().await?;
    let token = granted["override_token"]
        .as_str()
        .context("override token")?
        .to_string();
    let res = till
        .request(reqwest::Method::POST, "/v1/refunds")
        .header("Caja-Override", &token)
        .header("Idempotency-Key", "offline-refund-1")
        .json(&refund)
        .send()
        .await?;
    ensure!(res.status() == reqwest::StatusCode::CREATED, "{}", res.status());
    let refunded: Value = res.json().await?;
    let manager_id = granted["authorized_by"]["user_id"]
        .as_str()
        .context("manager id")?
        .to_string();
    ensure!(
        refunded["authorized_by"]["username"] == staff.manager.as_str(),
        "{refunded}"
    );
    ensure!(node.api.sync_status().await?.pending_facts >= 5);

    // Head office comes back; the store catches up.
    server.restart().await;
    let facts = node.node.db().read(|c| -> Result<i64, anyhow::Error> {
        Ok(c.query_row("SELECT COUNT(*) FROM facts WHERE local = 1", [], |r| r.get(0))?)
    });
    let recorded = facts.await? as u64;
    wait_synced(server.server(), &[&node.api], recorded, WAIT).await?;

    // The facts say who: the sale and refund by the cashier at T2, the refund authorised by
    // the manager.
    let at_hq = server
        .server()
        .fact(&sale.id)
        .await?
        .context("sale at head office")?;
    ensure!(
        at_hq["user"] == cashier_id.as_str() && at_hq["terminal"] == "T2",
        "{at_hq}"
    );
    let r = server
        .server()
        .fact(refunded["id"].as_str().context("refund id")?)
        .await?
        .context("refund at head office")?;
    ensure!(r["user"] == cashier_id.as_str(), "{r}");
    ensure!(r["authorized_by"]["user"] == manager_id.as_str(), "{r}");
    ensure!(r["authorized_by"]["permission"] == "refund.no_receipt", "{r}");

    // The audit log at head office: the PIN login, the wrong PIN, the override given and used.
    let audit = server
        .server()
        .audit(AuditQuery {
            store: Some("a".into()),
            ..Default::default()
        })
        .await?;
    let has = |kind: &str, who: &str| {
        audit
            .iter()
            .any(|e| e.kind == kind && e.actor_id.as_deref() == Some(who))
    };
    ensure!(has("fact.login.succeeded", &cashier_id), "{audit:#?}");
    ensure!(has("fact.login.failed", &manager_id), "{audit:#?}");
    ensure!(has("fact.override.granted", &manager_id), "{audit:#?}");
    ensure!(has("fact.override.used", &cashier_id), "{audit:#?}");
    let text = format!("{audit:?}");
    ensure!(
        !text.contains(pin_of("manager")) && !text.contains(pin_of("cashier")),
        "a PIN reached the audit log"
    );
    Ok(())
}
