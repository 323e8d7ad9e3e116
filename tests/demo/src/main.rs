//! `caja-demo`: the README's demo (a sync server and three store nodes in-process, trading,
//! an outage, the converged report) and `caja-demo replay` (a real retail file through an
//! in-process chain). Thin: the work is in [`caja_demo::demo`].

use std::path::PathBuf;

use caja_demo::demo::{self, DemoOptions};
use caja_demo::replay::plan::Format;
use clap::{Args, Parser, Subcommand};

/// Caja demo: head office and three store nodes on loopback, trading, one store offline
/// for a while, then the converged chain report.
#[derive(Parser)]
#[command(name = "caja-demo", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// `replay`, or nothing for the demo.
    #[command(subcommand)]
    command: Option<Command>,
    /// The demo's options.
    #[command(flatten)]
    demo: DemoArgs,
}

/// Subcommands.
#[derive(Subcommand)]
enum Command {
    /// Replay a real retail file through an in-process chain (no outage) and print the
    /// chain report.
    Replay(ReplayArgs),
}

/// Options of `caja-demo replay`.
#[derive(Args, Clone)]
pub struct ReplayArgs {
    /// The file to replay (gzip or plain CSV).
    #[arg(long)]
    pub orders: PathBuf,
    /// Its layout: online-retail or supermarket.
    #[arg(long)]
    pub format: Format,
    /// Keep only the first N business days of the file.
    #[arg(long)]
    pub days: Option<u32>,
    /// Keep the chain's files here (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Write the chain report as JSON to this file.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
}

/// Options of the demo (`caja-demo` with no subcommand).
#[derive(Args)]
pub struct DemoArgs {
    /// Replay this file instead of synthetic trading.
    #[arg(long, requires = "format")]
    pub orders: Option<PathBuf>,
    /// Layout of --orders: online-retail or supermarket.
    #[arg(long)]
    pub format: Option<Format>,
    /// Keep only the first N business days of the file.
    #[arg(long)]
    pub days: Option<u32>,
    /// Keep the chain's files here (default: a temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Write the chain report as JSON to this file.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Exit after the report instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    caja_node::install_crypto();
    init_tracing();
    let cli = Cli::parse();
    let (opts, serve_after) = match cli.command {
        None => {
            let a = cli.demo;
            let opts = DemoOptions {
                data_dir: a.data_dir,
                orders: a.orders,
                format: a.format,
                days: a.days,
                report_json: a.report_json,
                outage: true,
            };
            (opts, !a.exit)
        }
        Some(Command::Replay(a)) => {
            let opts = DemoOptions {
                data_dir: a.data_dir,
                orders: Some(a.orders),
                format: Some(a.format),
                days: a.days,
                report_json: a.report_json,
                outage: false,
            };
            (opts, false)
        }
    };
    let (chain, _report, temp) = demo::run(&opts).await?;
    if serve_after {
        demo::print_try_it(&chain);
        // Ctrl-C (or a failure to listen for it) ends the demo.
        let _ = tokio::signal::ctrl_c().await;
    }
    chain.shutdown().await;
    drop(temp);
    Ok(())
}
