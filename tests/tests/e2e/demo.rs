//! The synthetic demo (3 stores, one losing its link for the middle third of the
//! trading and taking card payments offline meanwhile, a head-office price change during
//! the outage): it must finish, head office must forward the stored cards (one declined
//! into the reconciliation queue), and its
//! built-in cross-check of every node's own figures against the server's report must
//! find no difference.

use anyhow::ensure;
use caja_demo::demo::{self, DemoOptions};
use caja_tests::harness::TestDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_demo_with_an_outage_cross_checks() -> anyhow::Result<()> {
    let dir = TestDir::new("demo")?;
    let (chain, report, _temp) = demo::run(&DemoOptions {
        outage: true,
        data_dir: Some(dir.join("chain")),
        ..DemoOptions::default()
    })
    .await?;
    // The head-office admin the demo prints can log in at the admin API and read the
    // chain's report and audit (what the printed curl lines do).
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{}/v1/auth/login", chain.server_url))
        .json(&serde_json::json!({
            "username": chain.hq_admin.username,
            "password": chain.hq_admin.password.as_ref().map(|p| p.expose()),
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["access_token"].as_str().unwrap_or_default().to_string();
    let sales: serde_json::Value = http
        .get(format!("{}/v1/reports/sales", chain.server_url))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    // The same figures the demo printed (nothing traded since).
    ensure!(sales["stores"] == report["stores"], "{sales}");
    ensure!(sales["totals"] == report["totals"], "{sales}");
    let audit = http
        .get(format!("{}/v1/audit?limit=5", chain.server_url))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(audit.status() == 200, "{}", audit.status());
    chain.shutdown().await;
    ensure!(
        report["stores"].as_object().map(|s| s.len()) == Some(3),
        "{report}"
    );
    ensure!(report["operations"]["refused"] == 0, "{}", report["operations"]);
    // The offline store's four card payments: head office forwarded them once each, three
    // captured at the provider, the declined one in the reconciliation queue.
    ensure!(
        report["cards"] == serde_json::json!({"captured": 3, "declined": 1, "open_cases": 1}),
        "{}",
        report["cards"]
    );

    // A second run on the same data directory continues that chain: its report holds
    // both runs' trading (the README says so).
    let (again, second, _temp) = demo::run(&DemoOptions {
        outage: true,
        data_dir: Some(dir.join("chain")),
        ..DemoOptions::default()
    })
    .await?;
    again.shutdown().await;
    let count = |r: &serde_json::Value, k: &str| r["totals"][k].as_i64().unwrap_or(-1);
    let per_run = count(&report, "sales");
    ensure!(per_run > 0, "{report}");
    ensure!(
        count(&second, "sales") == 2 * per_run,
        "{} then {}",
        report["totals"],
        second["totals"]
    );
    ensure!(
        count(&second, "refunds") == 2 * count(&report, "refunds"),
        "{} then {}",
        report["totals"],
        second["totals"]
    );
    ensure!(second["operations"]["refused"] == 0, "{}", second["operations"]);
    Ok(())
}
