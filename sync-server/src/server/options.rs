//! [`ServerOptions`]: the settings of a running server that tests and deployments tune.

use std::time::Duration;

/// Settings of a running server that tests and deployments tune.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Validity of a node's client certificate; default 90 days. A node renews when less
    /// than a third of it is left.
    pub node_cert_validity: Duration,
    /// Lifetime of admin API access tokens; default 15 minutes.
    pub access_token_ttl: Duration,
    /// Lifetime of admin API sessions (refresh tokens); default 12 hours.
    pub session_ttl: Duration,
    /// Enrollment attempts allowed per remote IP address per minute; default 10.
    pub enrollments_per_minute: u32,
    /// Live QUIC connections allowed per remote IP address; default 64 (a store node
    /// keeps one). See `quic::limits`.
    pub connections_per_ip: u32,
    /// QUIC handshakes allowed per remote IP address per minute (a burst of this many,
    /// then evenly spread); default 300. Over it, an unvalidated address gets a Retry and a
    /// validated one is refused.
    pub handshakes_per_minute: u32,
    /// Admin API login attempts allowed per client IP per minute; default 10.
    pub logins_per_minute: u32,
    /// Wrong passwords in a row for one username before it is locked; default 5.
    pub login_attempts: u32,
    /// First lock of a username; default 30 s, doubling per further lock in a row.
    pub lockout: Duration,
    /// Longest lock; default 1 hour.
    pub lockout_max: Duration,
    /// Admin API requests allowed per client IP per second (all routes); default 50.
    pub requests_per_second: u32,
    /// Largest admin API request body, in bytes; default 1 MiB.
    pub body_limit: usize,
    /// Longest an admin API request may take; default 30 s.
    pub request_timeout: Duration,
    /// The card provider stored-offline card payments are forwarded to; `None` (the
    /// default): none, stored payments wait and expire at their deadline.
    pub payment_provider: Option<ProviderOptions>,
    /// Longest pause of the card forwarder between rounds (its expiry checks); default 30 s.
    pub forward_poll: Duration,
    /// First retry delay of a card forward after the provider was unavailable, doubling
    /// per attempt up to 64 times; default 5 s.
    pub forward_retry: Duration,
}

/// Where head office reaches its card provider (a Stripe-compatible API).
#[derive(Clone)]
pub struct ProviderOptions {
    /// Base URL without `/v1` (`https://api.stripe.com`, or the simulator's).
    pub url: String,
    /// The secret key; redacted in `Debug`.
    pub key: String,
    /// Time allowed for one HTTP call; default 10 s.
    pub timeout: Duration,
    /// Retries and circuit breaker.
    pub resilience: caja_payments::ResilienceConfig,
}

impl ProviderOptions {
    /// A provider at `url` with `key` and the default timeout, retries and breaker.
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key: key.into(),
            timeout: Duration::from_secs(10),
            resilience: caja_payments::ResilienceConfig::default(),
        }
    }
}

impl std::fmt::Debug for ProviderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderOptions")
            .field("url", &self.url)
            .field("key", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("resilience", &self.resilience)
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            node_cert_validity: Duration::from_secs(90 * 86_400),
            access_token_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(12 * 3600),
            enrollments_per_minute: 10,
            connections_per_ip: 64,
            handshakes_per_minute: 300,
            logins_per_minute: 10,
            login_attempts: 5,
            lockout: Duration::from_secs(30),
            lockout_max: Duration::from_secs(3600),
            requests_per_second: 50,
            body_limit: 1 << 20,
            request_timeout: Duration::from_secs(30),
            payment_provider: None,
            forward_poll: Duration::from_secs(30),
            forward_retry: Duration::from_secs(5),
        }
    }
}
