//! Networking both ends share: listen addresses as operators type them (here), and
//!
//! - [`tls`]: the crypto provider, certificate fingerprints, QUIC timeouts, [`tls::TlsError`].
//! - [`wire`]: length-prefixed [`crate::protocol::Frame`]s on QUIC streams.
//! - [`client`]: the node's side of the QUIC link: keys and CSRs, enrollment, the client
//!   configuration that pins head office's CA.
//! - [`https`]: the HTTPS listener for axum (the node's LAN API, head office's admin API).
//!
//! Unlike [`crate::sync`], these do I/O (tokio, quinn); the sync core stays sans-IO.

pub mod client;
pub mod https;
pub mod tls;
pub mod wire;

use std::net::{SocketAddr, ToSocketAddrs};

/// Parses a listen address: `IP:PORT` (`127.0.0.1:8080`, `[::1]:8080`) or `HOST:PORT`
/// (`localhost:8080`, `till-1.shop.local:8443`), a host name resolved now through the
/// system resolver. A name with several addresses takes the first IPv4 one, else the
/// first. For clap's `value_parser`.
///
/// # Errors
/// A message naming the text and what is wrong: no port, a bad port, or a name that does
/// not resolve.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{text:?} is a port alone: give HOST:PORT, e.g. 127.0.0.1:{text} (this machine only) or 0.0.0.0:{text} (every interface)"
            ));
        }
        return Err(format!("{text:?} has no port: give HOST:PORT, e.g. {text}:8080"));
    };
    if host.is_empty() {
        return Err(format!(
            "{text:?} has no host: give HOST:PORT, e.g. 127.0.0.1:8080"
        ));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?}: {port:?} is not a port (0-65535)"))?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{text:?}: cannot resolve {host:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text:?}: {host:?} resolves to no address"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ips_and_host_names_parse_and_mistakes_say_what_is_wrong() {
        assert_eq!(
            parse_listen("127.0.0.1:8080").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 8080))
        );
        assert_eq!(parse_listen("[::1]:0").unwrap().port(), 0);
        let local = parse_listen("localhost:8443").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 8443, "{local}");
        assert!(parse_listen("localhost").unwrap_err().contains("no port"));
        assert!(parse_listen("17090").unwrap_err().contains("127.0.0.1:17090"));
        assert!(parse_listen(":8080").unwrap_err().contains("no host"));
        assert!(parse_listen("localhost:http").unwrap_err().contains("not a port"));
        assert!(
            parse_listen("localhost:70000")
                .unwrap_err()
                .contains("not a port")
        );
        // (No test of an unresolvable name: that would ask the network's DNS.)
    }
}
