//! The `caja-node` command line: every option with its environment variable
//! (`CAJA_NODE_*`) and default, all listed in `--help`, and how `serve`'s options become a
//! [`NodeConfig`]. `main.rs` only dispatches.
//!
//! `serve`'s options are also the keys of its configuration file (`--config`, TOML, the
//! flag's name with `_` for `-`): defaults, then the file, then the environment, then the
//! flags; `print-default-config` prints the defaults as such a file.
//!
//! Secrets (enrollment codes, passwords, PINs) are never flags: they come from an
//! environment variable or are typed at a hidden prompt, so they stay out of shell history
//! and `ps`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use caja_shared::auth::secrets::Secret;
use caja_shared::ids::StoreCode;
use caja_shared::money::Currency;
use clap::{ArgMatches, Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use caja_shared::settings::{self, de_listen};

use crate::config::{
    AuthSettings, ConfigError, LanTls, Limits, NodeConfig, PaymentProviderSettings, ProviderKey, SyncTarget,
};

/// Caja store node: sells offline, stores every fact durably, syncs with the chain.
#[derive(Parser)]
#[command(name = "caja-node", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve the REST API (and sync with head office, when enrolled).
    Serve(Box<ServeArgs>),
    /// Enroll this node with head office's sync server, using a one-time code.
    Enroll(EnrollArgs),
    /// Manage the users of a standalone (never enrolled) node; enrolled nodes get their
    /// staff from head office.
    User {
        /// The user command.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the SHA-256 fingerprint of the node's LAN HTTPS certificate (what tills pin).
    LanFingerprint(LanArgs),
    /// Print the default settings of `serve` as a commented TOML file for `--config`.
    PrintDefaultConfig,
}

/// The data directory option.
#[derive(Args, Clone)]
pub struct DataDir {
    /// Directory of the node's SQLite file, keys and certificates.
    #[arg(long, env = "CAJA_NODE_DATA_DIR", default_value = "./caja-data")]
    pub data_dir: PathBuf,
}

/// Options of `caja-node serve`, which are also the keys of its configuration file
/// (missing keys take the defaults shown in `--help`; unknown keys are refused).
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file of settings (keys: these options' names with '_' for '-'; `caja-node
    /// print-default-config` prints one). The environment and flags override it.
    #[arg(long, env = "CAJA_NODE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Create a new standalone node if the data directory holds none (without it, a
    /// directory with no node is refused: an enrolled node's comes from `caja-node enroll`).
    #[arg(long)]
    #[serde(skip)]
    pub init: bool,
    /// Directory of the node's SQLite file, keys and certificates.
    #[arg(long, env = "CAJA_NODE_DATA_DIR", default_value = "./caja-data")]
    pub data_dir: PathBuf,
    /// REST listen address, IP:PORT or HOST:PORT (port 0 picks a free port). A non-loopback
    /// address needs --tls or --allow-plain-http.
    #[arg(long, env = "CAJA_NODE_LISTEN", value_parser = caja_shared::net::parse_listen, default_value = "127.0.0.1:8080")]
    #[serde(deserialize_with = "de_listen")]
    pub listen: SocketAddr,
    /// Store code (lowercase letters, digits, '-'); default: the enrolled store, else
    /// `main`.
    #[arg(long, env = "CAJA_NODE_STORE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreCode>,
    /// Default terminal id for receipt numbers.
    #[arg(long, env = "CAJA_NODE_TERMINAL", default_value = "T1")]
    pub terminal: String,
    /// ISO 4217 currency of a new standalone node (default GBP). A node keeps the currency
    /// it recorded (an enrolled node, head office's); a different one here is refused.
    #[arg(long, env = "CAJA_NODE_CURRENCY")]
    pub currency: Option<Currency>,
    /// Sync server QUIC address (host:port); default: the one enrolled with. Without an
    /// enrollment the node runs standalone.
    #[arg(long, env = "CAJA_NODE_SERVER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// SHA-256 fingerprint of the sync server's CA; default: the one pinned at enrollment.
    #[arg(long, env = "CAJA_NODE_CA_FINGERPRINT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
    /// Work standalone even if enrolled (no sync).
    #[arg(long, env = "CAJA_NODE_OFFLINE")]
    pub offline: bool,
    /// Largest request body in bytes (CSV imports may be 8x this).
    #[arg(long, env = "CAJA_NODE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Lifetime of access tokens, seconds.
    #[arg(long, env = "CAJA_NODE_ACCESS_TOKEN_SECS", default_value_t = 900)]
    pub access_token_secs: u64,
    /// Lifetime of login sessions (refresh tokens), seconds.
    #[arg(long, env = "CAJA_NODE_SESSION_SECS", default_value_t = 12 * 3600)]
    pub session_secs: u64,
    /// Wrong PINs or passwords in a row (one user, one terminal) before a lock.
    #[arg(long, env = "CAJA_NODE_PIN_ATTEMPTS", default_value_t = 5)]
    pub pin_attempts: u32,
    /// First lock length, seconds; doubles for each further lock in a row.
    #[arg(long, env = "CAJA_NODE_LOCKOUT_SECS", default_value_t = 30)]
    pub lockout_secs: u64,
    /// Longest lock, seconds.
    #[arg(long, env = "CAJA_NODE_LOCKOUT_MAX_SECS", default_value_t = 3600)]
    pub lockout_max_secs: u64,
    /// Lifetime of a manager override, seconds.
    #[arg(long, env = "CAJA_NODE_OVERRIDE_SECS", default_value_t = 120)]
    pub override_secs: u64,
    /// Login, PIN, refresh and override attempts per client IP per minute.
    #[arg(long, env = "CAJA_NODE_LOGINS_PER_MINUTE", default_value_t = 20)]
    pub logins_per_minute: u32,
    /// Requests per client IP per second on all routes (bursts of twice this).
    #[arg(long, env = "CAJA_NODE_REQUESTS_PER_SECOND", default_value_t = 100)]
    pub requests_per_second: u32,
    /// Longest a request may take, seconds.
    #[arg(long, env = "CAJA_NODE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Serve HTTPS (certificate: --tls-cert/--tls-key, else the one issued at enrollment,
    /// else a self-signed one; `caja-node lan-fingerprint` prints what tills pin).
    #[arg(long, env = "CAJA_NODE_TLS")]
    pub tls: bool,
    /// PEM certificate chain to serve.
    #[arg(long, env = "CAJA_NODE_TLS_CERT", requires = "tls_key")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CAJA_NODE_TLS_KEY", requires = "tls_cert")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Extra DNS name or IP for a generated certificate (repeatable).
    #[arg(long = "lan-name", env = "CAJA_NODE_LAN_NAMES", value_delimiter = ',')]
    pub lan_names: Vec<String>,
    /// Allow plain HTTP on a non-loopback address (PINs and tokens in clear: not
    /// recommended).
    #[arg(long, env = "CAJA_NODE_ALLOW_PLAIN_HTTP")]
    pub allow_plain_http: bool,
    /// Base URL of the card provider's Stripe-compatible API (without /v1); unset: card
    /// tenders with a token are stored offline under the store's rules.
    #[arg(long, env = "CAJA_NODE_PAYMENT_PROVIDER_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_provider_url: Option<String>,
    /// The card provider's secret key (a secret: prefer the variable to a flag or the
    /// file; never printed).
    #[arg(long, env = "CAJA_NODE_PAYMENT_PROVIDER_KEY", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_provider_key: Option<ProviderKey>,
}

/// Options of `caja-node enroll`.
#[derive(Args)]
pub struct EnrollArgs {
    /// Data directory (a fresh one, or a standalone node's: its local users are dropped).
    #[command(flatten)]
    pub data: DataDir,
    /// The sync server's QUIC address, host:port.
    #[arg(long, env = "CAJA_NODE_SERVER")]
    pub server: String,
    /// The SHA-256 fingerprint of the server's CA (from head office: `caja-sync
    /// ca-fingerprint`).
    #[arg(long, env = "CAJA_NODE_CA_FINGERPRINT")]
    pub ca_fingerprint: String,
    /// The one-time enrollment code from head office. Without it: CAJA_NODE_ENROLLMENT_CODE,
    /// else a prompt. (It is single use and consumed at once, so a flag exposes little; the
    /// variable or the prompt keep it out of shell history all the same.)
    #[arg(long, env = "CAJA_NODE_ENROLLMENT_CODE", hide_env_values = true)]
    pub code: Option<String>,
    /// DNS names or IPs for a LAN HTTPS certificate signed by the chain CA (repeatable).
    #[arg(long = "lan-name", env = "CAJA_NODE_LAN_NAMES", value_delimiter = ',')]
    pub lan_names: Vec<String>,
    /// ISO 4217 currency the chain is expected to trade in; enrollment is refused if head
    /// office trades in another. Default: head office's, which the node always records.
    #[arg(long, env = "CAJA_NODE_CURRENCY")]
    pub currency: Option<Currency>,
}

/// User subcommands.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user to a standalone node (the node must be stopped); on a data directory
    /// that holds no node, it makes a new standalone node (nothing is created if the user
    /// is refused). The password comes from CAJA_NODE_PASSWORD or a hidden prompt, the PIN
    /// from CAJA_NODE_PIN or a prompt.
    Add(UserAddArgs),
}

/// Options of `caja-node user add`.
#[derive(Args)]
pub struct UserAddArgs {
    /// Username: a-z, 0-9, '.', '_', '-'.
    pub username: String,
    /// Role: cashier, manager or admin (repeatable).
    #[arg(long = "role", required = true)]
    pub roles: Vec<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Give the user a PIN (from CAJA_NODE_PIN or a prompt).
    #[arg(long)]
    pub pin: bool,
    /// Give the user no password (PIN only; needs --pin).
    #[arg(long, requires = "pin")]
    pub no_password: bool,
    /// The store code of a fresh data directory.
    #[arg(long, env = "CAJA_NODE_STORE", default_value = "main")]
    pub store: StoreCode,
    /// ISO 4217 currency of a fresh data directory.
    #[arg(long, env = "CAJA_NODE_CURRENCY", default_value = "GBP")]
    pub currency: Currency,
    /// Data directory.
    #[command(flatten)]
    pub data: DataDir,
}

/// Options of `caja-node lan-fingerprint`.
#[derive(Args)]
pub struct LanArgs {
    /// `serve`'s TOML settings file: its data_dir, listen and lan_names apply unless given
    /// here.
    #[arg(long, env = "CAJA_NODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory.
    #[command(flatten)]
    pub data: DataDir,
    /// The listen address `serve` uses (its IP goes into a generated certificate).
    #[arg(long, env = "CAJA_NODE_LISTEN", value_parser = caja_shared::net::parse_listen, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Extra DNS names or IPs, as given to `serve`.
    #[arg(long = "lan-name", env = "CAJA_NODE_LAN_NAMES", value_delimiter = ',')]
    pub lan_names: Vec<String>,
}

impl LanArgs {
    /// The options in force: those of `serve`'s file (`--config`), where not given in the
    /// environment or on the command line (`matches`, of the `lan-fingerprint`
    /// subcommand).
    ///
    /// # Errors
    /// [`ConfigError::Settings`] for the file.
    pub fn layered(mut self, matches: &ArgMatches) -> Result<Self, ConfigError> {
        if let Some(path) = &self.config {
            let file: ServeArgs = settings::read_file(path)?;
            if !settings::explicit(matches, "data_dir") {
                self.data.data_dir = file.data_dir;
            }
            if !settings::explicit(matches, "listen") {
                self.listen = file.listen;
            }
            if !settings::explicit(matches, "lan_names") {
                self.lan_names = file.lan_names;
            }
        }
        Ok(self)
    }
}

impl Default for ServeArgs {
    /// The defaults `caja-node serve --help` shows (the environment is not read).
    fn default() -> Self {
        // Invariant: every option has a default or is optional, and the defaults parse
        // (`defaults_parse_and_print_as_a_file_that_reads_back` checks it).
        #[allow(clippy::expect_used)]
        settings::defaults().expect("serve's defaults parse")
    }
}

/// `serve`'s defaults as a commented TOML file, which `--config` reads back unchanged.
///
/// # Errors
/// [`ConfigError::Settings`] (a bug).
pub fn default_config_toml() -> Result<String, ConfigError> {
    Ok(settings::commented_toml(
        "caja-node serve settings (TOML), read with --config PATH or CAJA_NODE_CONFIG.\n\
         Precedence: built-in defaults, then this file, then CAJA_NODE_* variables, then flags.\n\
         Secrets (passwords, PINs, enrollment codes) never go here.",
        &ServeArgs::default(),
        &settings::key_docs::<ServeArgs>(&["config", "init"]),
    )?)
}

impl ServeArgs {
    /// The settings in force: the defaults, then the file given with `--config`, then
    /// the options given in the environment or on the command line (`matches`, of the
    /// `serve` subcommand; an option left at its default does not override the file).
    ///
    /// # Errors
    /// [`ConfigError::Settings`] for the file.
    pub fn layered(self, matches: &ArgMatches) -> Result<Self, ConfigError> {
        let base = match &self.config {
            Some(path) => settings::read_file(path)?,
            None => Self::default(),
        };
        let mut out: Self = settings::layer(&base, &self, |key| settings::explicit(matches, key))?;
        out.config = self.config;
        out.init = self.init;
        Ok(out)
    }

    /// The node configuration, with the sync target and store from the data directory's
    /// enrollment unless given.
    ///
    /// # Errors
    /// A server or fingerprint given without an enrollment, a store that contradicts it,
    /// or settings [`NodeConfig::validate`] refuses.
    pub fn into_config(self) -> anyhow::Result<NodeConfig> {
        let enrolled = crate::enroll::read_dir(&self.data_dir)
            .with_context(|| format!("reading the enrollment of {}", self.data_dir.display()))?;
        let store = match (&self.store, &enrolled) {
            (Some(s), Some(e)) if *s != e.store => bail!(
                "{} is enrolled for store {}, not {s}",
                self.data_dir.display(),
                e.store
            ),
            (Some(s), _) => s.clone(),
            (None, Some(e)) => e.store.clone(),
            // Invariant: "main" is a valid store code.
            #[allow(clippy::expect_used)]
            (None, None) => "main".parse().expect("a valid store code"),
        };
        let sync = match (&enrolled, self.offline) {
            (_, true) => None,
            (Some(e), false) => Some(SyncTarget {
                server: self.server.clone().unwrap_or_else(|| e.server.clone()),
                ca_fingerprint: self
                    .ca_fingerprint
                    .clone()
                    .unwrap_or_else(|| e.ca_fingerprint.clone()),
            }),
            (None, false) if self.server.is_some() || self.ca_fingerprint.is_some() => bail!(
                "{} is not enrolled: run `caja-node enroll --server HOST:PORT --ca-fingerprint SHA256` with a code from head office first",
                self.data_dir.display()
            ),
            (None, false) => None,
        };
        let currency = match self.currency {
            Some(c) => c,
            None => crate::enroll::recorded_currency(&self.data_dir)
                .with_context(|| format!("reading the currency of {}", self.data_dir.display()))?
                .unwrap_or(Currency::GBP),
        };
        let config = NodeConfig {
            data_dir: self.data_dir,
            listen: self.listen,
            store,
            terminal: self.terminal,
            currency,
            sync,
            max_body_bytes: self.max_body_bytes,
            auth: AuthSettings {
                access_token_ttl: Duration::from_secs(self.access_token_secs),
                session_ttl: Duration::from_secs(self.session_secs),
                pin_attempts: self.pin_attempts,
                lockout: Duration::from_secs(self.lockout_secs),
                lockout_max: Duration::from_secs(self.lockout_max_secs),
                override_ttl: Duration::from_secs(self.override_secs),
            },
            limits: Limits {
                logins_per_minute: self.logins_per_minute,
                requests_per_second: self.requests_per_second,
                request_timeout: Duration::from_secs(self.request_timeout_secs),
            },
            lan_tls: LanTls {
                enabled: self.tls,
                cert: self.tls_cert,
                key: self.tls_key,
                names: self.lan_names,
                allow_plain_http: self.allow_plain_http,
            },
            payments: PaymentProviderSettings {
                url: self.payment_provider_url,
                key: self.payment_provider_key,
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// A secret from the environment variable `env`, else typed at a hidden prompt (stdin
/// must be a terminal), else read as one line from stdin (for scripts).
///
/// # Errors
/// When nothing usable can be read.
pub fn read_secret(env: &str, prompt: &str) -> anyhow::Result<Secret> {
    caja_shared::auth::secrets::read_secret(env, prompt)
        .context("reading the secret")?
        .with_context(|| {
            format!("no {prompt} given: set {env}, or run this in a terminal to be asked for it")
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    #[test]
    fn cli_is_consistent_and_parses() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "caja-node",
            "serve",
            "--tls",
            "--lan-name",
            "till-1.local,10.0.0.5",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else { panic!() };
        assert!(s.tls);
        assert_eq!(s.lan_names, vec!["till-1.local", "10.0.0.5"]);
        assert!(Cli::try_parse_from(["caja-node", "serve", "--tls-cert", "a.pem"]).is_err());
        assert!(
            Cli::try_parse_from(["caja-node", "user", "add", "ana"]).is_err(),
            "a role is required"
        );
        assert!(
            Cli::try_parse_from([
                "caja-node",
                "user",
                "add",
                "ana",
                "--role",
                "cashier",
                "--no-password"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from([
            "caja-node",
            "enroll",
            "--server",
            "hq:7443",
            "--ca-fingerprint",
            "ab",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Enroll(_)));
    }

    #[test]
    fn serve_refuses_plain_http_on_the_lan_and_a_server_without_enrollment() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let parse = |extra: &[&str]| {
            let mut args = vec!["caja-node", "serve", "--data-dir", d];
            args.extend_from_slice(extra);
            let Command::Serve(s) = Cli::try_parse_from(args).unwrap().command else {
                panic!()
            };
            s.into_config()
        };
        let err = parse(&["--listen", "0.0.0.0:8080"]).unwrap_err().to_string();
        assert!(err.contains("plain HTTP"), "{err}");
        assert!(parse(&["--listen", "0.0.0.0:8080", "--tls"]).is_ok());
        assert!(parse(&["--listen", "0.0.0.0:8080", "--allow-plain-http"]).is_ok());
        assert!(
            parse(&["--listen", "localhost:8080"])
                .unwrap()
                .listen
                .ip()
                .is_loopback()
        );
        let err = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("add --tls"), "{err}");
        let err = parse(&["--lan-name", "till.local"]).unwrap_err().to_string();
        assert!(err.contains("add --tls"), "{err}");
        let err = parse(&["--server", "hq:7443"]).unwrap_err().to_string();
        assert!(err.contains("not enrolled"), "{err}");
        let c = parse(&[]).unwrap();
        assert!(c.sync.is_none());
        assert_eq!(c.store.as_str(), "main");
    }

    fn layered(args: &[&str]) -> Result<ServeArgs, ConfigError> {
        let mut all = vec!["caja-node", "serve"];
        all.extend_from_slice(args);
        let matches = Cli::command().try_get_matches_from(all).unwrap();
        let Command::Serve(s) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!()
        };
        s.layered(matches.subcommand_matches("serve").unwrap())
    }

    #[test]
    fn defaults_parse_and_print_as_a_file_that_reads_back() {
        let text = default_config_toml().unwrap();
        let back: ServeArgs = settings::parse_toml(&text).unwrap();
        assert_eq!(back, ServeArgs::default());
        // The file read through --config gives the defaults too.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, &text).unwrap();
        let mut from_file = layered(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(from_file.config.take(), Some(path));
        assert_eq!(from_file, ServeArgs::default());
        // Every option of `serve` is in it, with its comment.
        for a in ServeArgs::augment_args(clap::Command::new("serve")).get_arguments() {
            let id = a.get_id().as_str();
            if ["config", "init", "help"].contains(&id) {
                continue;
            }
            assert!(
                text.contains(&format!("\n{id} = ")) || text.contains(&format!("\n# {id} = ")),
                "{id} missing from\n{text}"
            );
        }
        assert!(
            text.contains("# flag --listen, environment CAJA_NODE_LISTEN\nlisten = \"127.0.0.1:8080\""),
            "{text}"
        );
        assert_eq!(
            ServeArgs::default().listen,
            SocketAddr::from(([127, 0, 0, 1], 8080))
        );
        assert_eq!(ServeArgs::default().pin_attempts, 5);
    }

    #[test]
    fn a_file_is_overridden_only_by_options_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "listen = \"localhost:9000\"\nterminal = \"T7\"\npin_attempts = 9\nlan_names = [\"till.local\"]\ntls = true\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let s = layered(&["--config", p, "--terminal", "T8", "--max-body-bytes", "4096"]).unwrap();
        assert_eq!(
            s.listen,
            SocketAddr::from(([127, 0, 0, 1], 9000)),
            "file over default"
        );
        assert_eq!(s.terminal, "T8", "flag over file");
        assert_eq!(s.pin_attempts, 9);
        assert_eq!(s.max_body_bytes, 4096);
        assert_eq!(s.lan_names, vec!["till.local"]);
        assert!(s.tls);
        assert_eq!(s.access_token_secs, 900, "default where neither says");
        let c = s.into_config().unwrap();
        assert_eq!(c.terminal, "T8");
        assert_eq!(c.auth.pin_attempts, 9);
        // Without a file, the options as given.
        assert_eq!(layered(&[]).unwrap(), ServeArgs::default());
        // A missing file is named.
        let err = layered(&["--config", "/nonexistent/node.toml"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/node.toml"), "{err}");
    }

    #[test]
    fn a_wrong_key_or_value_names_the_key_and_what_is_allowed() {
        let err = |text: &str| settings::parse_toml::<ServeArgs>(text).unwrap_err();
        let e = err("lisen = \"127.0.0.1:1\"\n");
        assert!(
            e.contains("lisen") && e.contains("listen") && e.contains("pin_attempts"),
            "{e}"
        );
        let e = err("pin_attempts = \"five\"\n");
        assert!(e.contains("pin_attempts") && e.contains("u32"), "{e}");
        let e = err("listen = \"nowhere\"\n");
        assert!(e.contains("listen") && e.contains("nowhere"), "{e}");
        let e = err("currency = \"XXX\"\n");
        assert!(e.contains("currency"), "{e}");
        let e = err("store = \"UK\"\n");
        assert!(e.contains("store"), "{e}");
        // --init and --config are for the command line only.
        let e = err("init = true\n");
        assert!(e.contains("init"), "{e}");
        let e = err("listen = \n");
        assert!(e.contains("line 1"), "{e}");
    }
}
