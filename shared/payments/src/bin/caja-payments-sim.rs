//! `caja-payments-sim`: the payment provider simulator as a process, for the demo and
//! end-to-end tests. Prints its bound address (`127.0.0.1:PORT`) as the first line on
//! stdout, then serves until Ctrl-C. See `caja_payments::sim` for the tokens and switches.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use caja_payments::sim::{self, SimConfig, Simulator};
use clap::Parser;

/// Stripe-compatible payment provider simulator (test tokens, in-memory state).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Milliseconds `tok_slow` waits before answering.
    #[arg(long, default_value_t = 300)]
    slow_ms: u64,
    /// Seconds `tok_timeout` and lost answers are held.
    #[arg(long, default_value_t = 60)]
    hang_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    // CLI output: the address is the first line (Rust's stdout flushes at the newline).
    println!("{addr}");
    let config = SimConfig {
        slow: Duration::from_millis(args.slow_ms),
        hang: Duration::from_secs(args.hang_secs),
        ..SimConfig::default()
    };
    sim::run(listener, Simulator::new(config), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving")
}
