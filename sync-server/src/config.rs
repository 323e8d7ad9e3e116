//! Settings of the `caja-sync` binary: flags, each with an environment variable
//! (`CAJA_SYNC_*`) and a default, all listed in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use caja_shared::money::Currency;
use clap::{Args, Parser, Subcommand};

/// Caja sync server: QUIC hub for store nodes and admin API for head office.
#[derive(Debug, Parser)]
#[command(name = "caja-sync", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The data directory option shared by every command.
#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Directory holding the database (caja-sync.db) and the certificates (ca.pem,
    /// server.pem and their keys); created if missing.
    #[arg(long, env = "CAJA_SYNC_DATA_DIR", default_value = "./caja-sync-data")]
    pub data_dir: PathBuf,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve nodes over QUIC and the admin API over HTTP until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Manage stores (works with the server stopped or running).
    Store {
        /// The store command.
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Print the SHA-256 fingerprint of the server's CA certificate (what nodes pin).
    CaFingerprint(DataDir),
}

/// Options of `caja-sync serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Data directory.
    #[command(flatten)]
    pub data: DataDir,
    /// UDP address for node connections (QUIC, ALPN caja-sync/1); port 0 picks a free one.
    #[arg(long, env = "CAJA_SYNC_LISTEN_QUIC", default_value = "127.0.0.1:7443")]
    pub listen_quic: SocketAddr,
    /// TCP address of the admin HTTP API (no authentication yet: keep it on a trusted
    /// network); port 0 picks a free one.
    #[arg(long, env = "CAJA_SYNC_LISTEN_HTTP", default_value = "127.0.0.1:7080")]
    pub listen_http: SocketAddr,
    /// Chain currency (ISO 4217 code) of catalog prices and reports; fixed when the data
    /// dir is created.
    #[arg(long, env = "CAJA_SYNC_CURRENCY", default_value = "GBP")]
    pub currency: Currency,
}

/// Store subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Register a store and print its node token (shown only once).
    Add {
        /// Store code: 1-40 characters of a-z, 0-9 and '-'.
        code: caja_shared::ids::StoreCode,
        /// Display name of the store.
        #[arg(long, env = "CAJA_SYNC_STORE_NAME")]
        name: String,
        /// Data directory.
        #[command(flatten)]
        data: DataDir,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_parses() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["caja-sync", "serve", "--listen-quic", "127.0.0.1:0"]).unwrap();
        let Command::Serve(s) = cli.command else { panic!() };
        assert_eq!(s.listen_quic.port(), 0);
        assert_eq!(s.currency, Currency::GBP);
        let cli =
            Cli::try_parse_from(["caja-sync", "store", "add", "uk", "--name", "United Kingdom"]).unwrap();
        assert!(matches!(cli.command, Command::Store { .. }));
        assert!(Cli::try_parse_from(["caja-sync", "store", "add", "UK", "--name", "x"]).is_err());
    }
}
