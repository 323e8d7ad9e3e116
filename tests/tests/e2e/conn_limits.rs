//! Head office's per-address QUIC limits, seen from a store: with one live connection
//! allowed per address and two stores on loopback, a store coming back while the other
//! holds the place is refused before the handshake, and its sync status says why in
//! words an operator can act on. Also: the LAN certificate enrollment issues covers the
//! node's own machine.

use std::time::Duration;

use caja_shared::money::Currency;
use caja_sync_server::ServerOptions;
use caja_tests::harness::{HqOptions, TestDir, TestNode, spawn_hq_in, spawn_hq_with, wait_until};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_over_the_per_address_limit_is_told_why() -> anyhow::Result<()> {
    let dir = TestDir::new("conn-limits")?;
    let options = ServerOptions {
        connections_per_ip: 1,
        ..ServerOptions::default()
    };
    let server = spawn_hq_with(HqOptions {
        server: options,
        ..HqOptions::in_dir(&dir.join("server"))
    })
    .await;
    let first_ticket = server.create_store("a", "A").await?;
    let second_ticket = server.create_store("b", "B").await?;
    let first = TestNode::start(&dir.join("a"), "a", Currency::GBP, Some(first_ticket)).await?;
    wait_until("the first store's session", WAIT, || async {
        Ok(first.api.sync_status().await?.connected)
    })
    .await?;
    // The first store goes offline, freeing the one place; the second enrolls and syncs.
    first.api.set_link(false).await?;
    wait_until("the first store's link to drop", WAIT, || async {
        Ok(!first.api.sync_status().await?.connected)
    })
    .await?;
    // The server frees the first store's place when it has seen that connection close,
    // a moment after the node reports its link down: the second store's enrollment may be
    // refused until then, and (its code unsent) simply tried again, as an operator would.
    let mut tries = 0;
    let second = loop {
        match TestNode::start(&dir.join("b"), "b", Currency::GBP, Some(second_ticket.clone())).await {
            Ok(node) => break node,
            Err(e)
                if tries < 100
                    && format!("{e:#}").contains("refused the connection before the handshake") =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    wait_until("the second store's session", WAIT, || async {
        Ok(second.api.sync_status().await?.connected)
    })
    .await?;
    // The first store comes back: refused before the handshake, and told why.
    first.api.set_link(true).await?;
    wait_until("the first store to be refused, saying why", WAIT, || async {
        let status = first.api.sync_status().await?;
        anyhow::ensure!(!status.connected, "a store connected past the limit");
        Ok(status.last_error.is_some_and(|e| {
            e.contains("refused the connection before the handshake") && e.contains("--connections-per-ip")
        }))
    })
    .await?;
    anyhow::ensure!(
        second.api.sync_status().await?.connected,
        "the second store was cut off"
    );
    Ok(())
}

/// A LAN certificate issued at enrollment covers the names asked for and this machine
/// (`localhost`, `127.0.0.1`), so a till on the node's own machine can check it by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enrolled_lan_certificate_covers_this_machine_too() -> anyhow::Result<()> {
    let dir = TestDir::new("lan-cert")?;
    let server = spawn_hq_in(&dir.join("server")).await;
    let ticket = server.create_store("l", "L").await?;
    caja_node::enroll::enroll(&caja_node::enroll::EnrollOptions {
        data_dir: dir.join("l"),
        server: ticket.target.server.clone(),
        ca_fingerprint: ticket.target.ca_fingerprint.clone(),
        code: ticket.code.clone(),
        lan_names: vec!["till.example.test".into()],
        currency: Some(Currency::GBP),
    })
    .await?;
    let pem = std::fs::read(dir.join("l").join(caja_node::enroll::LAN_CERT_FILE))?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem)?;
    let cert = block.parse_x509()?;
    let sans = format!("{:?}", cert.subject_alternative_name()?.map(|s| s.value.clone()));
    for name in ["till.example.test", "localhost", "[127, 0, 0, 1]"] {
        anyhow::ensure!(sans.contains(name), "{name} missing from {sans}");
    }
    Ok(())
}
