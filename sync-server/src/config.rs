//! Settings of the `caja-sync` binary: flags, each with an environment variable
//! (`CAJA_SYNC_*`) and a default, all listed in `--help`.
//!
//! `serve`'s options are also the keys of its configuration file (`--config`, TOML, the
//! flag's name with `_` for `-`), in layers: built-in defaults, then the file, then the
//! environment, then the flags. `print-default-config` prints the defaults as such a file.
//! The layering is [`caja_shared::settings`], shared with the node.

use std::net::SocketAddr;
use std::path::PathBuf;

use caja_shared::money::Currency;
use caja_shared::settings::{self, de_listen};
use clap::{ArgMatches, Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// Why the settings were refused: the file given with `--config` could not be used.
pub use caja_shared::settings::SettingsError as ConfigError;

/// Caja sync server: QUIC hub for store nodes and admin API for head office.
#[derive(Debug, Parser)]
#[command(name = "caja-sync", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The data directory option of the commands that work on an existing head office.
#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Directory holding head office's database (caja-sync.db) and certificates (ca.pem,
    /// server.pem and their keys). It must hold a head office already: `caja-sync serve
    /// --init` or `caja-sync store add --init` creates one.
    #[arg(long, env = "CAJA_SYNC_DATA_DIR", default_value = "./caja-sync-data")]
    pub data_dir: PathBuf,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve nodes over QUIC and the admin API over HTTP until Ctrl-C or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Manage stores (works with the server stopped or running).
    Store {
        /// The store command.
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Print a fresh one-time enrollment code for a store's node, and its expiry (works
    /// with the server stopped or running).
    EnrollmentCode {
        /// The store.
        store: caja_shared::ids::StoreCode,
        /// Hours the code stays valid (at most 720).
        #[arg(long, env = "CAJA_SYNC_CODE_TTL_HOURS", default_value_t = 24)]
        ttl_hours: u32,
        /// Data directory.
        #[command(flatten)]
        data: DataDir,
    },
    /// List or revoke enrolled nodes (works with the server stopped or running: a running
    /// server disconnects a revoked node within a second).
    Node {
        /// The node command.
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Manage users (with the server stopped; while it runs, use its admin API).
    User {
        /// The user command.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the SHA-256 fingerprint of the server's CA certificate (what nodes pin).
    CaFingerprint(DataDir),
    /// Print the default settings of `serve` as a commented TOML file for `--config`.
    PrintDefaultConfig,
}

/// Options of `caja-sync serve`, which are also the keys of its configuration file
/// (missing keys take the defaults shown in `--help`; unknown keys are refused).
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file of settings (keys: these options' names with '_' for '-'; `caja-sync
    /// print-default-config` prints one). The environment and flags override it.
    #[arg(long, env = "CAJA_SYNC_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Create a new head office (a new CA, no users) if the data directory holds none;
    /// without it, a directory with no head office is refused.
    #[arg(long)]
    #[serde(skip)]
    pub init: bool,
    /// Directory holding head office's database (caja-sync.db) and certificates (ca.pem,
    /// server.pem and their keys).
    #[arg(long, env = "CAJA_SYNC_DATA_DIR", default_value = "./caja-sync-data")]
    pub data_dir: PathBuf,
    /// UDP address for node connections (QUIC, ALPN caja-sync/1); port 0 picks a free one.
    #[arg(long, env = "CAJA_SYNC_LISTEN_QUIC", value_parser = caja_shared::net::parse_listen, default_value = "127.0.0.1:7443")]
    #[serde(deserialize_with = "de_listen")]
    pub listen_quic: SocketAddr,
    /// TCP address of the admin API, IP:PORT or HOST:PORT. Without --admin-tls it speaks
    /// plain HTTP, so a non-loopback address then needs --allow-plain-http. Port 0 picks a
    /// free one.
    #[arg(long, env = "CAJA_SYNC_LISTEN_HTTP", value_parser = caja_shared::net::parse_listen, default_value = "127.0.0.1:7080")]
    #[serde(deserialize_with = "de_listen")]
    pub listen_http: SocketAddr,
    /// Allow the plain-HTTP admin API on a non-loopback address (passwords and tokens
    /// then cross the network unencrypted unless a TLS proxy is in front).
    #[arg(long, env = "CAJA_SYNC_ALLOW_PLAIN_HTTP", conflicts_with = "admin_tls")]
    pub allow_plain_http: bool,
    /// Serve the admin API over HTTPS. The certificate is --admin-tls-cert/--admin-tls-key
    /// if given, else one the chain CA issues at each start for localhost, 127.0.0.1,
    /// caja-sync and each --admin-name (clients trust ca.pem in the data directory).
    #[arg(long, env = "CAJA_SYNC_ADMIN_TLS")]
    pub admin_tls: bool,
    /// Extra DNS names or IPs the admin API is reached by (with --admin-tls and no
    /// --admin-tls-cert); comma-separated in the variable.
    #[arg(long = "admin-name", env = "CAJA_SYNC_ADMIN_NAMES", value_delimiter = ',')]
    pub admin_names: Vec<String>,
    /// PEM certificate chain (leaf first) for the admin API, e.g. from a public CA.
    #[arg(long, env = "CAJA_SYNC_ADMIN_TLS_CERT", requires = "admin_tls_key")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --admin-tls-cert.
    #[arg(long, env = "CAJA_SYNC_ADMIN_TLS_KEY", requires = "admin_tls_cert")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_tls_key: Option<std::path::PathBuf>,
    /// Days a node's client certificate is valid; nodes renew when a third is left.
    #[arg(long, env = "CAJA_SYNC_NODE_CERT_DAYS", default_value_t = 90)]
    pub node_cert_days: u32,
    /// Enrollment attempts (connections without a client certificate) allowed per remote
    /// IP address per minute.
    #[arg(long, env = "CAJA_SYNC_ENROLLMENTS_PER_MINUTE", default_value_t = 10)]
    pub enrollments_per_minute: u32,
    /// Live QUIC connections allowed per remote IP address (a store node keeps one; many
    /// stores behind one NAT need more).
    #[arg(long, env = "CAJA_SYNC_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub connections_per_ip: u32,
    /// QUIC handshakes allowed per remote IP address per minute. Over it, an address QUIC
    /// has not validated gets a Retry (so forged floods cannot lock a store out) and a
    /// validated one is refused.
    #[arg(long, env = "CAJA_SYNC_HANDSHAKES_PER_MINUTE", default_value_t = 300)]
    pub handshakes_per_minute: u32,
    /// Admin API logins and refreshes allowed per client IP per minute.
    #[arg(long, env = "CAJA_SYNC_LOGINS_PER_MINUTE", default_value_t = 10)]
    pub logins_per_minute: u32,
    /// Wrong admin API passwords in a row for one username before it is locked.
    #[arg(long, env = "CAJA_SYNC_LOGIN_ATTEMPTS", default_value_t = 5)]
    pub login_attempts: u32,
    /// First lock length, seconds; doubles for each further lock in a row.
    #[arg(long, env = "CAJA_SYNC_LOCKOUT_SECS", default_value_t = 30)]
    pub lockout_secs: u32,
    /// Longest lock, seconds (at least --lockout-secs).
    #[arg(long, env = "CAJA_SYNC_LOCKOUT_MAX_SECS", default_value_t = 3600)]
    pub lockout_max_secs: u32,
    /// Admin API requests allowed per client IP per second (all routes).
    #[arg(long, env = "CAJA_SYNC_REQUESTS_PER_SECOND", default_value_t = 50)]
    pub requests_per_second: u32,
    /// Chain currency (ISO 4217 code) of catalog prices and reports; fixed when the data
    /// dir is created.
    #[arg(long, env = "CAJA_SYNC_CURRENCY", default_value = "GBP")]
    pub currency: Currency,
    /// Base URL of the card provider (a Stripe-compatible API, without `/v1`) that
    /// stored-offline card payments are forwarded to. Without it they are kept and expire
    /// at their deadline into the reconciliation queue.
    #[arg(
        long,
        env = "CAJA_SYNC_PAYMENT_PROVIDER_URL",
        requires = "payment_provider_key"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_provider_url: Option<String>,
    /// The card provider's secret key. A secret: only from the environment or the command
    /// line, never the file; redacted in logs.
    #[arg(long, env = "CAJA_SYNC_PAYMENT_PROVIDER_KEY", hide_env_values = true)]
    #[serde(skip)]
    pub payment_provider_key: Option<SecretKey>,
}

/// A secret (the provider key): redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub String);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for SecretKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretKey(s.to_string()))
    }
}

impl Default for ServeArgs {
    /// The defaults `caja-sync serve --help` shows (the environment is not read).
    fn default() -> Self {
        // Invariant: every option has a default or is optional, and the defaults parse
        // (`defaults_print_as_a_file_that_reads_back` checks it).
        #[allow(clippy::expect_used)]
        settings::defaults().expect("serve's defaults parse")
    }
}

impl ServeArgs {
    /// The settings in force: the defaults, then the file given with `--config`, then
    /// the options given in the environment or on the command line (`matches`, of the
    /// `serve` subcommand; an option left at its default does not override the file).
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::File`] for the file.
    pub fn layered(self, matches: &ArgMatches) -> Result<Self, ConfigError> {
        let base = match &self.config {
            Some(path) => settings::read_file(path)?,
            None => Self::default(),
        };
        let mut out: Self = settings::layer(&base, &self, |key| settings::explicit(matches, key))?;
        out.config = self.config;
        out.init = self.init;
        out.payment_provider_key = self.payment_provider_key;
        Ok(out)
    }

    /// Checks the options together: a non-loopback admin listener needs `--admin-tls` or
    /// `--allow-plain-http`; certificate options need `--admin-tls`; counts must not be
    /// zero.
    ///
    /// # Errors
    /// A message saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !self.listen_http.ip().is_loopback() && !self.allow_plain_http && !self.admin_tls {
            return Err(format!(
                "--listen-http {} is not a loopback address, and without --admin-tls the admin API \
                 speaks plain HTTP: pass --admin-tls (HTTPS), or bind it to 127.0.0.1 (and reach it \
                 through an SSH tunnel), or pass --allow-plain-http to accept that passwords and \
                 tokens cross the network unencrypted",
                self.listen_http
            ));
        }
        if !self.admin_tls && self.admin_tls_cert.is_some() {
            return Err("--admin-tls-cert needs --admin-tls".into());
        }
        if !self.admin_tls && !self.admin_names.is_empty() {
            return Err("--admin-name needs --admin-tls".into());
        }
        if self.admin_tls_cert.is_some() && !self.admin_names.is_empty() {
            return Err(
                "--admin-name names the certificate the chain CA issues; with --admin-tls-cert the \
                 certificate's own names apply: give one or the other"
                    .into(),
            );
        }
        for (name, v) in [
            ("--node-cert-days", self.node_cert_days),
            ("--enrollments-per-minute", self.enrollments_per_minute),
            ("--connections-per-ip", self.connections_per_ip),
            ("--handshakes-per-minute", self.handshakes_per_minute),
            ("--logins-per-minute", self.logins_per_minute),
            ("--login-attempts", self.login_attempts),
            ("--lockout-secs", self.lockout_secs),
            ("--requests-per-second", self.requests_per_second),
        ] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if let Some(url) = &self.payment_provider_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!(
                    "--payment-provider-url {url:?} must start with https:// or http://"
                ));
            }
            if self.payment_provider_key.as_ref().is_none_or(|k| k.0.is_empty()) {
                return Err(
                    "--payment-provider-url needs --payment-provider-key (or CAJA_SYNC_PAYMENT_PROVIDER_KEY)"
                        .into(),
                );
            }
        }
        if self.lockout_max_secs < self.lockout_secs {
            return Err(format!(
                "--lockout-max-secs {} must be at least --lockout-secs {}",
                self.lockout_max_secs, self.lockout_secs
            ));
        }
        Ok(())
    }

    /// Where the admin API's HTTPS certificate comes from, with `--admin-tls`.
    pub fn admin_cert(&self) -> Option<crate::http::https::AdminCert> {
        use crate::http::https::AdminCert;
        self.admin_tls
            .then(|| match (&self.admin_tls_cert, &self.admin_tls_key) {
                (Some(cert), Some(key)) => AdminCert::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                _ => AdminCert::Chain(self.admin_names.clone()),
            })
    }

    /// The server options these flags ask for.
    pub fn options(&self) -> crate::ServerOptions {
        crate::ServerOptions {
            node_cert_validity: std::time::Duration::from_secs(u64::from(self.node_cert_days) * 86_400),
            enrollments_per_minute: self.enrollments_per_minute,
            connections_per_ip: self.connections_per_ip,
            handshakes_per_minute: self.handshakes_per_minute,
            logins_per_minute: self.logins_per_minute,
            login_attempts: self.login_attempts,
            lockout: std::time::Duration::from_secs(u64::from(self.lockout_secs)),
            lockout_max: std::time::Duration::from_secs(u64::from(self.lockout_max_secs)),
            requests_per_second: self.requests_per_second,
            payment_provider: match (&self.payment_provider_url, &self.payment_provider_key) {
                (Some(url), Some(key)) => Some(crate::ProviderOptions::new(url.clone(), key.0.clone())),
                _ => None,
            },
            ..crate::ServerOptions::default()
        }
    }
}

/// Store subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Register a store and print a fresh one-time enrollment code for its node (shown only
    /// once) and its expiry.
    Add {
        /// Store code: 1-40 characters of a-z, 0-9 and '-'.
        code: caja_shared::ids::StoreCode,
        /// Display name of the store.
        #[arg(long, env = "CAJA_SYNC_STORE_NAME")]
        name: String,
        /// Hours the enrollment code stays valid (at most 720).
        #[arg(long, env = "CAJA_SYNC_CODE_TTL_HOURS", default_value_t = 24)]
        ttl_hours: u32,
        /// Create a new head office (a new CA, no users) if the data directory holds none
        /// (the first command of a new chain); without it, one is refused.
        #[arg(long)]
        init: bool,
        /// Data directory.
        #[command(flatten)]
        data: DataDir,
    },
}

/// Node subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List enrolled nodes: id, store, enrolled, certificate expiry, revoked.
    List(DataDir),
    /// Revoke a node: it is disconnected and refused from then on.
    Revoke {
        /// The node id.
        node: caja_shared::ids::NodeId,
        /// Data directory.
        #[command(flatten)]
        data: DataDir,
    },
}

/// User subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from CAJA_SYNC_PASSWORD or, if that is unset,
    /// typed at a hidden prompt (or one line of stdin when it is not a terminal; never a
    /// flag, which other users could see in the process list); `--no-password` for a
    /// PIN-only user; an optional PIN from CAJA_SYNC_PIN. Refused while a server runs on
    /// the data directory: use its admin API (POST /v1/users) then. The data directory
    /// must hold a head office already (`caja-sync store add --init` or `caja-sync serve
    /// --init` creates one).
    Add {
        /// Login name: 1-64 characters of a-z, 0-9, '.', '_' and '-'.
        username: String,
        /// A role (cashier, manager, admin or a custom one); repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// A store the user may work in; repeat for several.
        #[arg(long = "store")]
        stores: Vec<caja_shared::ids::StoreCode>,
        /// Display name (default: the username).
        #[arg(long)]
        name: Option<String>,
        /// No password: the user logs in with a PIN only (set CAJA_SYNC_PIN).
        #[arg(long)]
        no_password: bool,
        /// Data directory.
        #[command(flatten)]
        data: DataDir,
    },
}

/// `serve`'s defaults as a commented TOML file, which `--config` reads back unchanged:
/// each key under its `--help` text, flag and environment variable; keys without a
/// default commented out.
///
/// # Errors
/// [`ConfigError::Layer`] (a bug).
pub fn default_config_toml() -> Result<String, ConfigError> {
    settings::commented_toml(
        "caja-sync serve settings (TOML), read with --config PATH or CAJA_SYNC_CONFIG.\n\
         Precedence: built-in defaults, then this file, then CAJA_SYNC_* variables, then flags.\n\
         Secrets (passwords, PINs) never go here.",
        &ServeArgs::default(),
        &settings::key_docs::<ServeArgs>(&["config", "init", "payment_provider_key"]),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use caja_shared::settings::parse_toml;
    use clap::{CommandFactory, FromArgMatches};

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
        let serve = |extra: &[&str]| {
            let mut args = vec!["caja-sync", "serve"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).unwrap().command {
                Command::Serve(s) => s,
                _ => panic!(),
            }
        };
        assert!(serve(&[]).validate().is_ok());
        assert!(serve(&["--listen-http", "0.0.0.0:7080"]).validate().is_err());
        assert!(
            serve(&["--listen-http", "0.0.0.0:7080", "--allow-plain-http"])
                .validate()
                .is_ok()
        );
        assert!(serve(&["--node-cert-days", "0"]).validate().is_err());
        assert_eq!(
            serve(&["--node-cert-days", "2"])
                .options()
                .node_cert_validity
                .as_secs(),
            2 * 86_400
        );
        assert!(
            Cli::try_parse_from(["caja-sync", "user", "add", "ana"]).is_err(),
            "a role is required"
        );
    }

    fn layered(args: &[&str]) -> Result<ServeArgs, ConfigError> {
        let mut all = vec!["caja-sync", "serve"];
        all.extend_from_slice(args);
        let matches = Cli::command().try_get_matches_from(all).unwrap();
        let Command::Serve(s) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!()
        };
        s.layered(matches.subcommand_matches("serve").unwrap())
    }

    #[test]
    fn defaults_print_as_a_file_that_reads_back() {
        let text = default_config_toml().unwrap();
        let back: ServeArgs = parse_toml(&text).unwrap();
        assert_eq!(back, ServeArgs::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hq.toml");
        std::fs::write(&path, &text).unwrap();
        let mut from_file = layered(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(from_file.config.take(), Some(path));
        assert_eq!(from_file, ServeArgs::default());
        for a in ServeArgs::augment_args(clap::Command::new("serve")).get_arguments() {
            let id = a.get_id().as_str();
            if ["config", "init", "help", "payment_provider_key"].contains(&id) {
                continue;
            }
            assert!(
                text.contains(&format!("\n{id} = ")) || text.contains(&format!("\n# {id} = ")),
                "{id} missing from\n{text}"
            );
        }
        assert!(
            text.contains("environment CAJA_SYNC_NODE_CERT_DAYS\nnode_cert_days = 90"),
            "{text}"
        );
        assert_eq!(ServeArgs::default().listen_http.port(), 7080);
    }

    #[test]
    fn a_file_is_overridden_only_by_options_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hq.toml");
        std::fs::write(
            &path,
            "listen_quic = \"localhost:7000\"\nnode_cert_days = 30\nlogin_attempts = 7\ncurrency = \"EUR\"\n",
        )
        .unwrap();
        let s = layered(&["--config", path.to_str().unwrap(), "--node-cert-days", "45"]).unwrap();
        assert_eq!(s.listen_quic.port(), 7000, "file over default");
        assert_eq!(s.node_cert_days, 45, "flag over file");
        assert_eq!(s.login_attempts, 7);
        assert_eq!(s.currency, Currency::EUR);
        assert_eq!(s.requests_per_second, 50, "default where neither says");
        assert!(s.validate().is_ok());
        let err = parse_toml::<ServeArgs>("node_cert_days = -1\n").unwrap_err();
        assert!(err.contains("node_cert_days"), "{err}");
        let err = parse_toml::<ServeArgs>("listen_qic = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.contains("listen_qic") && err.contains("listen_quic"), "{err}");
    }
}
