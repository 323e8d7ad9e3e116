//! `caja-node`: run a store node, the demo, or a replay of a real retail file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use caja_node::demo::{self, DemoOptions};
use caja_node::replay::plan::Format;
use caja_node::{Node, NodeConfig, SyncTarget};
use caja_shared::ids::StoreCode;
use caja_shared::money::Currency;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Caja store node: sells offline, stores every fact durably, syncs with the chain.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (and sync, if a server is given).
    Serve(ServeArgs),
    /// Start a sync server and store nodes in-process, trade, take a store offline,
    /// reconnect and print the converged chain report.
    Demo(DemoArgs),
    /// Replay a real retail file through an in-process chain (no outage) and print the
    /// chain report.
    Replay(ReplayArgs),
    /// Print the default settings.
    PrintDefaultConfig,
}

#[derive(Args)]
struct ServeArgs {
    /// Directory of the node's SQLite file.
    #[arg(long, env = "CAJA_NODE_DATA_DIR", default_value = "./caja-data")]
    data_dir: PathBuf,
    /// REST listen address (port 0 picks a free port).
    #[arg(long, env = "CAJA_NODE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Store code (lowercase letters, digits, '-').
    #[arg(long, env = "CAJA_NODE_STORE", default_value = "main")]
    store: StoreCode,
    /// Default terminal id for receipt numbers.
    #[arg(long, env = "CAJA_NODE_TERMINAL", default_value = "T1")]
    terminal: String,
    /// ISO 4217 currency of the store.
    #[arg(long, env = "CAJA_NODE_CURRENCY", default_value = "GBP")]
    currency: Currency,
    /// Sync server QUIC address (host:port, a name or an IP); without it the node runs
    /// standalone.
    #[arg(long, env = "CAJA_NODE_SERVER", requires_all = ["ca_fingerprint", "token"])]
    server: Option<String>,
    /// SHA-256 fingerprint of the sync server's CA (`caja-sync ca-fingerprint` prints it).
    #[arg(long, env = "CAJA_NODE_CA_FINGERPRINT")]
    ca_fingerprint: Option<String>,
    /// The store's node token (`caja-sync store add` prints it). Prefer the environment.
    #[arg(long, env = "CAJA_NODE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Largest request body in bytes (CSV imports may be 8x this).
    #[arg(long, env = "CAJA_NODE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    max_body_bytes: usize,
}

#[derive(Args, Clone)]
struct ReplayArgs {
    /// The file to replay (gzip or plain CSV).
    #[arg(long)]
    orders: PathBuf,
    /// Its layout: online-retail or supermarket.
    #[arg(long)]
    format: Format,
    /// Keep only the first N business days of the file.
    #[arg(long)]
    days: Option<u32>,
    /// Keep the chain's files here (default: a temporary directory, removed at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the chain report as JSON to this file.
    #[arg(long)]
    report_json: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    /// Replay this file instead of synthetic trading.
    #[arg(long, requires = "format")]
    orders: Option<PathBuf>,
    /// Layout of --orders: online-retail or supermarket.
    #[arg(long)]
    format: Option<Format>,
    /// Keep only the first N business days of the file.
    #[arg(long)]
    days: Option<u32>,
    /// Keep the chain's files here (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the chain report as JSON to this file.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Exit after the report instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn ctrl_c(token: CancellationToken) {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    token.cancel();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    caja_node::install_crypto();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(a) => {
            init_tracing("info");
            let sync = match (a.server, a.ca_fingerprint, a.token) {
                (Some(server), Some(ca_fingerprint), Some(token)) => Some(SyncTarget {
                    server,
                    ca_fingerprint,
                    token,
                }),
                _ => None,
            };
            let config = NodeConfig {
                data_dir: a.data_dir,
                listen: a.listen,
                store: a.store,
                terminal: a.terminal,
                currency: a.currency,
                sync,
                max_body_bytes: a.max_body_bytes,
            };
            config.validate()?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let node = Node::open(config).await?;
            tracing::info!(addr = %listener.local_addr()?, store = %node.identity().store, node = %node.identity().node_id, "caja-node serving");
            let stop = CancellationToken::new();
            tokio::spawn(ctrl_c(stop.clone()));
            node.serve(listener, stop).await?;
        }
        Command::Demo(a) => {
            init_tracing("warn");
            let opts = DemoOptions {
                data_dir: a.data_dir,
                orders: a.orders,
                format: a.format,
                days: a.days,
                report_json: a.report_json,
                outage: true,
            };
            let (chain, _report, temp) = demo::run(&opts).await?;
            if !a.exit {
                println!("\nThe chain keeps running; try:");
                println!("  curl -s {}/v1/reports/sales | head -c 600", chain.server_url);
                for n in &chain.nodes {
                    println!(
                        "  {:<16} {}/v1/sync/status   {}/v1/products?q=tea",
                        n.store.as_str(),
                        n.url,
                        n.url
                    );
                }
                println!("Ctrl-C stops it.");
                let stop = CancellationToken::new();
                ctrl_c(stop.clone()).await;
            }
            chain.shutdown().await;
            drop(temp);
        }
        Command::Replay(a) => {
            init_tracing("warn");
            let opts = DemoOptions {
                data_dir: a.data_dir,
                orders: Some(a.orders),
                format: Some(a.format),
                days: a.days,
                report_json: a.report_json,
                outage: false,
            };
            let (chain, _report, temp) = demo::run(&opts).await?;
            chain.shutdown().await;
            drop(temp);
        }
        Command::PrintDefaultConfig => {
            let c = NodeConfig::default();
            println!(
                "data_dir = {:?}\nlisten = \"{}\"\nstore = \"{}\"\nterminal = \"{}\"\ncurrency = \"{}\"\nmax_body_bytes = {}\n# server, ca_fingerprint, token: unset (standalone)",
                c.data_dir, c.listen, c.store, c.terminal, c.currency, c.max_body_bytes
            );
        }
    }
    Ok(())
}
