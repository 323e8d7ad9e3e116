//! Certificate rotation without downtime: head office issues node certificates valid for
//! 6 seconds; the node's live session asks for a new one when a third of the validity is
//! left, stores it, and keeps syncing on the same connection; a reconnect then uses the
//! new certificate, long after the first one expired. Sales made throughout reach the
//! server.

use std::time::Duration;

use anyhow::ensure;
use caja_shared::money::Currency;
use caja_sync_server::ServerOptions;
use caja_tests::harness::{HqOptions, TestDir, TestNode, spawn_hq_with, wait_synced, wait_until};

const WAIT: Duration = Duration::from_secs(60);

async fn issued_at(node: &TestNode) -> anyhow::Result<i64> {
    let e = node.node.db().read(caja_node::enroll::read).await?;
    Ok(e.map(|e| e.cert_issued_at).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_renews_its_certificate_and_reconnects_with_it() -> anyhow::Result<()> {
    let dir = TestDir::new("renewal")?;
    let options = ServerOptions {
        node_cert_validity: Duration::from_secs(6),
        ..ServerOptions::default()
    };
    let server = spawn_hq_with(HqOptions {
        server: options,
        ..HqOptions::in_dir(&dir.join("server"))
    })
    .await;
    let ticket = server.create_store("r", "Renewing store").await?;
    let node = TestNode::start(&dir.join("r"), "r", Currency::GBP, Some(ticket)).await?;
    wait_until("the first session", WAIT, || async {
        Ok(node.api.sync_status().await?.connected)
    })
    .await?;
    let first = issued_at(&node).await?;
    let identity = dir.join("r").join(caja_node::enroll::IDENTITY_FILE);
    let pem_before = std::fs::read(&identity)?;
    // Renewed on the live session: the identity file changes, the link never drops.
    wait_until("a renewal", WAIT, || async {
        ensure!(
            node.api.sync_status().await?.connected,
            "the link dropped during renewal"
        );
        Ok(issued_at(&node).await? > first)
    })
    .await?;
    ensure!(
        std::fs::read(&identity)? != pem_before,
        "the identity file did not change"
    );
    // Past the first certificate's expiry, a fresh connection is accepted: it uses the
    // renewed one.
    tokio::time::sleep(Duration::from_secs(7)).await;
    node.api.set_link(false).await?;
    wait_until("the link to go down", WAIT, || async {
        Ok(!node.api.sync_status().await?.connected)
    })
    .await?;
    node.api.set_link(true).await?;
    wait_until("a new session with the renewed certificate", WAIT, || async {
        Ok(node.api.sync_status().await?.connected)
    })
    .await?;
    let facts = node.node.db().read(|c| -> Result<i64, anyhow::Error> {
        Ok(c.query_row("SELECT COUNT(*) FROM facts WHERE local = 1", [], |r| r.get(0))?)
    });
    let recorded = facts.await? as u64;
    wait_synced(server.server(), &[&node.api], recorded, WAIT).await?;
    Ok(())
}
