//! A node takes the chain's currency at enrollment: a store enrolled into a head office
//! that trades in USD records USD (and serves in it without `--currency`), and an
//! enrollment that expects another currency is refused before anything is written. Found
//! by a fresh-user trial: the node used to record GBP, and head office's USD report
//! silently left its sales out.

use caja_node::enroll::{self, EnrollOptions, EnrollmentError};
use caja_shared::money::Currency;
use caja_tests::harness::{HqOptions, TestDir, spawn_hq_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_takes_the_chain_currency_and_refuses_another() -> anyhow::Result<()> {
    let dir = TestDir::new("currency")?;
    let usd: Currency = "USD".parse()?;
    let hq = spawn_hq_with(HqOptions {
        dir: Some(dir.join("hq")),
        currency: usd,
        ..HqOptions::default()
    })
    .await;
    let options = |data_dir, code, currency| EnrollOptions {
        data_dir,
        server: String::new(),
        ca_fingerprint: String::new(),
        code,
        lan_names: Vec::new(),
        currency,
    };

    // No --currency: the node records head office's.
    let ticket = hq.create_store("us", "US").await?;
    let us = dir.join("us");
    enroll::enroll(&EnrollOptions {
        server: ticket.target.server.clone(),
        ca_fingerprint: ticket.target.ca_fingerprint.clone(),
        ..options(us.clone(), ticket.code.clone(), None)
    })
    .await?;
    anyhow::ensure!(
        enroll::recorded_currency(&us)? == Some(usd),
        "recorded {:?}",
        enroll::recorded_currency(&us)?
    );

    // Expecting GBP from a USD chain: refused, naming both, and nothing written.
    let ticket = hq.create_store("us2", "US 2").await?;
    let us2 = dir.join("us2");
    let refused = enroll::enroll(&EnrollOptions {
        server: ticket.target.server.clone(),
        ca_fingerprint: ticket.target.ca_fingerprint.clone(),
        ..options(us2.clone(), ticket.code.clone(), Some(Currency::GBP))
    })
    .await;
    match refused {
        Err(e @ EnrollmentError::WrongCurrency { .. }) => {
            let text = e.to_string();
            anyhow::ensure!(text.contains("USD") && text.contains("GBP"), "{text}");
        }
        other => anyhow::bail!("expected WrongCurrency, got {other:?}"),
    }
    anyhow::ensure!(
        !us2.join("node.sqlite").exists(),
        "a refused enrollment wrote a node"
    );
    Ok(())
}
