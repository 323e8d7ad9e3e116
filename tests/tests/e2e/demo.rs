//! The synthetic demo (3 stores, one losing its link for the middle third of the
//! trading, a head-office price change during the outage): it must finish, and its
//! built-in cross-check of every node's own figures against the server's report must
//! find no difference.

use anyhow::ensure;
use caja_node::demo::{self, DemoOptions};
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
    chain.shutdown().await;
    ensure!(
        report["stores"].as_object().map(|s| s.len()) == Some(3),
        "{report}"
    );
    ensure!(report["operations"]["refused"] == 0, "{}", report["operations"]);
    Ok(())
}
