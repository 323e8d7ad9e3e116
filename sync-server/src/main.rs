//! `caja-sync`: the sync server binary. Thin: parses the command line and calls the
//! library.

use anyhow::Context;
use caja_sync_server::SyncServer;
use caja_sync_server::config::{Cli, Command, StoreCommand};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Another component may have installed it already; either way ring is the provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
                .init();
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(serve(args))
        }
        Command::Store {
            command: StoreCommand::Add { code, name, data },
        } => {
            require_server_dir(&data.data_dir)?;
            let conn = caja_sync_server::db::open(&data.data_dir)
                .with_context(|| format!("opening the database in {}", data.data_dir.display()))?;
            let token = caja_sync_server::db::create_store(&conn, &code, &name)?;
            println!("{token}");
            Ok(())
        }
        Command::CaFingerprint(data) => {
            require_server_dir(&data.data_dir)?;
            std::fs::create_dir_all(&data.data_dir)
                .with_context(|| format!("creating {}", data.data_dir.display()))?;
            let tls = caja_sync_server::tls::TlsMaterial::load_or_create(&data.data_dir)?;
            println!("{}", tls.ca_fingerprint());
            Ok(())
        }
    }
}

/// Says so on stderr when a command is about to create a new server data directory, so a
/// typo in `--data-dir` does not silently hand out a token or fingerprint nothing uses.
/// (Creating one is legitimate: head office may add stores before the first `serve`.)
fn require_server_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if !dir.join("ca.pem").is_file() && !dir.join(caja_sync_server::db::DB_FILE).is_file() {
        eprintln!(
            "note: {} held no sync server yet; created a new one there (check --data-dir if you meant an existing server)",
            dir.display()
        );
    }
    Ok(())
}

async fn serve(args: caja_sync_server::config::ServeArgs) -> anyhow::Result<()> {
    let server = SyncServer::open(&args.data.data_dir, args.currency)
        .with_context(|| format!("opening data dir {}", args.data.data_dir.display()))?;
    let quic = std::net::UdpSocket::bind(args.listen_quic)
        .with_context(|| format!("binding QUIC on {}", args.listen_quic))?;
    let http = tokio::net::TcpListener::bind(args.listen_http)
        .await
        .with_context(|| format!("binding HTTP on {}", args.listen_http))?;
    let shutdown = CancellationToken::new();
    // Register the signal handlers before announcing that we serve.
    let signals = Signals::register()?;
    tokio::spawn(signals.cancel_on_signal(shutdown.clone()));
    tracing::info!(
        quic = %quic.local_addr()?,
        http = %http.local_addr()?,
        ca_fingerprint = %server.ca_fingerprint(),
        data_dir = %args.data.data_dir.display(),
        "caja-sync serving"
    );
    server.serve(quic, http, shutdown).await?;
    tracing::info!("caja-sync stopped");
    Ok(())
}

/// The termination signals `serve` stops on: Ctrl-C (SIGINT) and SIGTERM.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Cancels `shutdown` when a signal arrives.
    async fn cancel_on_signal(mut self, shutdown: CancellationToken) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested");
        shutdown.cancel();
    }
}
