//! Node configuration: typed settings with defaults, filled from flags and environment
//! (`CAJA_NODE_*`, see `caja-node serve --help`), checked by [`NodeConfig::validate`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use caja_shared::ids::StoreCode;
use caja_shared::money::Currency;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has an invalid value.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting, e.g. `terminal`.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Everything a node needs to run.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Directory of the node's SQLite file; default `./caja-data`.
    pub data_dir: PathBuf,
    /// REST listen address; default `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The store this node serves; default `main`.
    pub store: StoreCode,
    /// The terminal (till) id used in receipt numbers when a request names none; default `T1`.
    pub terminal: String,
    /// The store's currency; default GBP.
    pub currency: Currency,
    /// The sync server to replicate with; `None` runs standalone (still fully working).
    pub sync: Option<SyncTarget>,
    /// Largest request body accepted, in bytes; default 1 MiB (CSV imports: 8x this).
    pub max_body_bytes: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("caja-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            // Invariant: "main" is a valid store code.
            store: "main".parse().expect("\"main\" is a valid store code"),
            terminal: "T1".into(),
            currency: Currency::GBP,
            sync: None,
            max_body_bytes: 1 << 20,
        }
    }
}

/// Where and how to reach the sync server.
#[derive(Clone)]
pub struct SyncTarget {
    /// `host:port` of the server's QUIC endpoint (a name is resolved at every connect).
    pub server: String,
    /// Hex SHA-256 of the server CA certificate that the node pins.
    pub ca_fingerprint: String,
    /// The node token issued with the store (secret; redacted in `Debug`).
    pub token: String,
}

impl fmt::Debug for SyncTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncTarget")
            .field("server", &self.server)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Checks a terminal id: 1-16 ASCII letters or digits.
///
/// # Errors
/// A description of what is wrong.
pub fn check_terminal(t: &str) -> Result<(), String> {
    if (1..=16).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!("terminal {t:?} must be 1-16 ASCII letters or digits"))
    }
}

impl NodeConfig {
    /// Checks the settings and says precisely what is wrong.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_terminal(&self.terminal).map_err(|reason| ConfigError::Invalid {
            name: "terminal",
            reason,
        })?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                name: "max_body_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        if let Some(s) = &self.sync {
            let hex: String = s.ca_fingerprint.chars().filter(|c| *c != ':').collect();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ConfigError::Invalid {
                    name: "ca_fingerprint",
                    reason: "must be the 64 hex digits of a SHA-256 (`caja-sync ca-fingerprint` prints it)"
                        .into(),
                });
            }
            let port_ok = s
                .server
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok {
                return Err(ConfigError::Invalid {
                    name: "server",
                    reason: format!(
                        "{:?} must be host:port, e.g. hq.example.com:7443 or 10.0.0.5:7443",
                        s.server
                    ),
                });
            }
            if s.token.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    name: "token",
                    reason: "must not be empty".into(),
                });
            }
        }
        Ok(())
    }
}
