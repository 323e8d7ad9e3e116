//! Node configuration: typed settings with defaults, filled in layers (built-in defaults,
//! then a TOML file given with `--config`, then the environment `CAJA_NODE_*`, then flags;
//! see `caja-node serve --help`), checked by [`NodeConfig::validate`].
//!
//! The layering itself is [`caja_shared::settings`], shared with head office; the
//! settings struct that is both the flags and the file is `cli::ServeArgs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// The configuration file (`--config`) could not be used.
    #[error(transparent)]
    Settings(#[from] caja_shared::settings::SettingsError),
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
    /// The node authenticates with the client certificate it got at enrollment.
    pub sync: Option<SyncTarget>,
    /// Largest request body accepted, in bytes; default 1 MiB (CSV imports: 8x this).
    pub max_body_bytes: usize,
    /// Logins, tokens and lockouts.
    pub auth: AuthSettings,
    /// Abuse limits of the REST API.
    pub limits: Limits,
    /// TLS of the REST API on the store LAN.
    pub lan_tls: LanTls,
    /// The card provider for tokenized card tenders; none: they are stored offline.
    pub payments: PaymentProviderSettings,
}

/// Where the node reaches the card provider (a Stripe-compatible API). Both or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentProviderSettings {
    /// Base URL without `/v1` (`https://api.stripe.com`, or a simulator's
    /// `http://127.0.0.1:PORT`).
    pub url: Option<String>,
    /// The secret key (redacted in `Debug`).
    pub key: Option<ProviderKey>,
}

/// The card provider's secret key (`sk_…`): redacted in `Debug`, never logged.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ProviderKey(pub String);

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderKey(<redacted>)")
    }
}

impl From<String> for ProviderKey {
    fn from(s: String) -> Self {
        ProviderKey(s)
    }
}

/// Login and token settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// Lifetime of an access token; default 15 minutes.
    pub access_token_ttl: Duration,
    /// Lifetime of a login session (its refresh tokens); default 12 hours, a long shift.
    pub session_ttl: Duration,
    /// Consecutive wrong PINs or passwords for one user on one terminal before a lock;
    /// default 5.
    pub pin_attempts: u32,
    /// The first lock's length; each further lock in a row doubles it; default 30 s.
    pub lockout: Duration,
    /// The longest lock; default 1 hour.
    pub lockout_max: Duration,
    /// How long a manager override may wait to be used; default 2 minutes.
    pub override_ttl: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(12 * 3600),
            pin_attempts: 5,
            lockout: Duration::from_secs(30),
            lockout_max: Duration::from_secs(3600),
            override_ttl: Duration::from_secs(120),
        }
    }
}

/// Abuse limits of the REST API, per client IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Login, PIN, refresh and override attempts per client per minute; default 20.
    pub logins_per_minute: u32,
    /// Requests per client per second on every route (a burst of twice this is allowed);
    /// default 100.
    pub requests_per_second: u32,
    /// Longest a request may take before it is answered 408; default 30 s.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            logins_per_minute: 20,
            requests_per_second: 100,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// TLS of the REST API. Plain HTTP is allowed only on a loopback address or when
/// `allow_plain_http` says so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LanTls {
    /// Serve HTTPS. The certificate is, in order: `cert`/`key` if given; the LAN
    /// certificate issued at enrollment; else a self-signed one generated in the data
    /// directory (`lan.pem`, `lan.key.pem`) for `names`, `localhost` and the listen IP.
    pub enabled: bool,
    /// A PEM certificate chain to serve instead.
    pub cert: Option<PathBuf>,
    /// Its PEM private key.
    pub key: Option<PathBuf>,
    /// Extra DNS names or IP addresses for a generated certificate (e.g. `till-1.local`).
    pub names: Vec<String>,
    /// Serve plain HTTP on a non-loopback address anyway (not recommended: tokens and
    /// PINs cross the LAN in clear).
    pub allow_plain_http: bool,
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
            auth: AuthSettings::default(),
            limits: Limits::default(),
            lan_tls: LanTls::default(),
            payments: PaymentProviderSettings::default(),
        }
    }
}

/// Where to reach the sync server. Who the node is comes from its enrollment (the client
/// certificate and key in the data directory, see [`crate::enroll`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTarget {
    /// `host:port` of the server's QUIC endpoint (a name is resolved at every connect).
    pub server: String,
    /// Hex SHA-256 of the server CA certificate that the node pins.
    pub ca_fingerprint: String,
}

/// Checks a terminal id: 1-16 ASCII letters or digits.
///
/// # Errors
/// A description of what is wrong.
pub fn check_terminal(t: &str) -> Result<(), String> {
    if (1..=16).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        let shown: String = t.chars().take(24).collect();
        let more = if t.chars().count() > 24 { "…" } else { "" };
        Err(format!(
            "terminal {shown:?}{more} must be 1-16 ASCII letters or digits"
        ))
    }
}

impl NodeConfig {
    /// Checks the settings and says precisely what is wrong.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.payments.url, &self.payments.key) {
            (Some(u), Some(_)) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                return Err(ConfigError::Invalid {
                    name: "payment_provider_url",
                    reason: format!("{u:?} must be an http:// or https:// URL"),
                });
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "payment_provider_key",
                    reason: "payment_provider_url and payment_provider_key go together".into(),
                });
            }
            _ => {}
        }
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
        }
        let a = &self.auth;
        if a.access_token_ttl < Duration::from_secs(10) || a.access_token_ttl > Duration::from_secs(86_400) {
            return Err(ConfigError::Invalid {
                name: "access_token_ttl",
                reason: "must be between 10 s and 24 h".into(),
            });
        }
        if a.session_ttl < a.access_token_ttl {
            return Err(ConfigError::Invalid {
                name: "session_ttl",
                reason: "must be at least the access token lifetime".into(),
            });
        }
        if a.pin_attempts == 0 || a.lockout.is_zero() || a.lockout_max < a.lockout {
            return Err(ConfigError::Invalid {
                name: "pin_attempts",
                reason: "PIN attempts and the lockout must be positive, and lockout_max at least lockout"
                    .into(),
            });
        }
        let l = &self.limits;
        if l.logins_per_minute == 0 || l.requests_per_second == 0 || l.request_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                name: "limits",
                reason: "rate limits and the request timeout must be positive".into(),
            });
        }
        if !self.lan_tls.enabled && (self.lan_tls.cert.is_some() || !self.lan_tls.names.is_empty()) {
            return Err(ConfigError::Invalid {
                name: "tls",
                reason: "--tls-cert, --tls-key and --lan-name are for HTTPS: add --tls".into(),
            });
        }
        if self.lan_tls.cert.is_some() != self.lan_tls.key.is_some() {
            return Err(ConfigError::Invalid {
                name: "tls_cert",
                reason: "give both --tls-cert and --tls-key, or neither".into(),
            });
        }
        if !self.lan_tls.enabled && !self.listen.ip().is_loopback() && !self.lan_tls.allow_plain_http {
            return Err(ConfigError::Invalid {
                name: "listen",
                reason: format!(
                    "refusing plain HTTP on {}: staff PINs and tokens would cross the LAN in clear; add --tls (recommended) or --allow-plain-http",
                    self.listen
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_key_is_redacted_and_goes_with_a_url() {
        let mut c = NodeConfig {
            payments: PaymentProviderSettings {
                url: Some("http://127.0.0.1:9".into()),
                key: Some(ProviderKey("sk_live_secret".into())),
            },
            ..NodeConfig::default()
        };
        assert!(!format!("{c:?}").contains("sk_live_secret"));
        assert!(c.validate().is_ok());
        c.payments.url = None;
        assert!(c.validate().is_err());
        c.payments.url = Some("ftp://x".into());
        assert!(c.validate().is_err());
    }
}
