//! The server CA as an issuer of node certificates: parsing and verifying a node's
//! certificate signing request, and signing the client certificate (QUIC, mutual TLS) and
//! the optional LAN server certificate (the node's REST API over TLS).
//!
//! The CSR contributes only its public key (after rcgen has checked its signature, which
//! proves the node holds the private key). Everything else in an issued certificate is
//! chosen here: a node can never ask for a CA certificate, other key usages or other
//! names than the ones [`check_lan_names`] accepts.

use std::net::IpAddr;
use std::time::Duration;

use caja_shared::ids::{NodeId, StoreCode};
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};

use crate::tls::TlsError;

/// At most this many names in a LAN certificate.
pub const MAX_LAN_NAMES: usize = 16;

/// Certificates start being valid this long before they are issued, so a node whose clock
/// is a little behind still accepts them.
const BACKDATE: Duration = Duration::from_secs(300);

/// Why a CSR or a LAN name was refused; the message goes back to the node.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    /// Not a PKCS#10 CSR, its signature does not verify, or it asks for an extension
    /// rcgen does not know.
    #[error("the {what} CSR is not a valid, self-signed PKCS#10 request: {reason}")]
    Bad {
        /// `client` or `LAN`.
        what: &'static str,
        /// rcgen's reason.
        reason: String,
    },
    /// A LAN name that is neither an IP address nor a DNS name, too many names, or none.
    #[error("LAN certificate names: {0}")]
    BadName(String),
}

/// The CA key and certificate, able to sign node certificates.
pub(crate) struct Authority {
    issuer: Issuer<'static, KeyPair>,
    ca: CertificateDer<'static>,
}

/// A certificate just issued.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    /// DER bytes.
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER (the `node_certs` key).
    pub sha256: String,
    /// Expiry, seconds since the epoch (UTC).
    pub not_after: i64,
}

/// Parses a CSR and verifies its self-signature; returns the public key it certifies.
///
/// # Errors
/// [`CsrError::Bad`].
pub(crate) fn parse_csr(der: &[u8], what: &'static str) -> Result<rcgen::PublicKey, CsrError> {
    CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der))
        .map(|p| p.public_key)
        .map_err(|e| CsrError::Bad {
            what,
            reason: e.to_string(),
        })
}

/// Checks the names a LAN certificate should carry: 1 to [`MAX_LAN_NAMES`] names, each an
/// IP address or a DNS name (no wildcards), without duplicates. Returns them as SANs.
///
/// # Errors
/// [`CsrError::BadName`] naming the first bad entry.
pub fn check_lan_names(names: &[String]) -> Result<Vec<SanType>, CsrError> {
    if names.is_empty() || names.len() > MAX_LAN_NAMES {
        return Err(CsrError::BadName(format!(
            "give 1 to {MAX_LAN_NAMES} DNS names or IP addresses, not {}",
            names.len()
        )));
    }
    let mut out: Vec<SanType> = Vec::with_capacity(names.len());
    for name in names {
        let san = if let Ok(ip) = name.parse::<IpAddr>() {
            SanType::IpAddress(ip)
        } else {
            let ok = !name.contains('*')
                && rustls::pki_types::DnsName::try_from(name.as_str()).is_ok()
                && name.len() <= 253;
            let dns = ok
                .then(|| rcgen::string::Ia5String::try_from(name.as_str()).ok())
                .flatten();
            match dns {
                Some(d) => SanType::DnsName(d),
                None => {
                    return Err(CsrError::BadName(format!(
                        "{name:?} is neither an IP address nor a DNS name (wildcards are not issued)"
                    )));
                }
            }
        };
        if out.contains(&san) {
            return Err(CsrError::BadName(format!("{name:?} is listed twice")));
        }
        out.push(san);
    }
    Ok(out)
}

fn offset(secs: i64) -> Result<time::OffsetDateTime, TlsError> {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| TlsError::Quic(format!("certificate time out of range: {e}")))
}

impl Authority {
    pub(crate) fn new(issuer: Issuer<'static, KeyPair>, ca: CertificateDer<'static>) -> Self {
        Authority { issuer, ca }
    }

    /// The CA certificate (DER).
    pub(crate) fn ca_der(&self) -> &[u8] {
        self.ca.as_ref()
    }

    /// Parameters every node certificate shares: random serial, validity from a little
    /// before `now` for `validity`, digitalSignature only, not a CA, authority key id.
    fn base(
        node: &NodeId,
        store: &StoreCode,
        now: i64,
        validity: Duration,
    ) -> Result<(CertificateParams, i64), TlsError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node.to_string());
        dn.push(DnType::OrganizationName, "Caja");
        dn.push(DnType::OrganizationalUnitName, store.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let mut serial = rand::random::<[u8; 16]>();
        // A positive INTEGER (RFC 5280 section 4.1.2.2): clear the top bit.
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let not_after = now.saturating_add(i64::try_from(validity.as_secs()).unwrap_or(i64::MAX / 4));
        params.not_before = offset(now - BACKDATE.as_secs() as i64)?;
        params.not_after = offset(not_after)?;
        Ok((params, not_after))
    }

    fn sign(
        &self,
        params: &CertificateParams,
        key: &rcgen::PublicKey,
        not_after: i64,
    ) -> Result<Issued, TlsError> {
        let cert = params.signed_by(key, &self.issuer)?;
        let der = cert.der().to_vec();
        Ok(Issued {
            sha256: crate::tls::fingerprint(&der),
            der,
            not_after,
        })
    }

    /// Signs a node's QUIC client certificate: CN = node id, OU = store, EKU clientAuth.
    ///
    /// # Errors
    /// [`TlsError::Generate`].
    pub(crate) fn issue_client(
        &self,
        key: &rcgen::PublicKey,
        node: &NodeId,
        store: &StoreCode,
        now: i64,
        validity: Duration,
    ) -> Result<Issued, TlsError> {
        let (mut params, not_after) = Self::base(node, store, now, validity)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&params, key, not_after)
    }

    /// Signs head office's own HTTPS certificate (the admin API) for `names` (from
    /// [`check_lan_names`]) with a key made here: CN `caja-sync admin`, EKU serverAuth.
    /// Returns the certificate (DER) and its private key (PKCS#8 DER).
    ///
    /// # Errors
    /// [`TlsError::Generate`].
    pub(crate) fn issue_admin(
        &self,
        names: Vec<SanType>,
        now: i64,
        validity: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "caja-sync admin");
        dn.push(DnType::OrganizationName, "Caja");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = names;
        let mut serial = rand::random::<[u8; 16]>();
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = offset(now - BACKDATE.as_secs() as i64)?;
        params.not_after =
            offset(now.saturating_add(i64::try_from(validity.as_secs()).unwrap_or(i64::MAX / 4)))?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.der().to_vec(), key.serialize_der()))
    }

    /// Signs a node's LAN server certificate for `names` (from [`check_lan_names`]): EKU
    /// serverAuth, so it cannot be used as a client certificate here.
    ///
    /// # Errors
    /// [`TlsError::Generate`].
    pub(crate) fn issue_lan(
        &self,
        key: &rcgen::PublicKey,
        node: &NodeId,
        store: &StoreCode,
        names: Vec<SanType>,
        now: i64,
        validity: Duration,
    ) -> Result<Issued, TlsError> {
        let (mut params, not_after) = Self::base(node, store, now, validity)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names = names;
        self.sign(&params, key, not_after)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lan_names() {
        let ok: Vec<String> = ["till-1.store.local", "192.168.1.20", "::1", "localhost"]
            .map(String::from)
            .to_vec();
        assert_eq!(check_lan_names(&ok).unwrap().len(), 4);
        for bad in [
            vec![],
            vec!["*.store.local".to_string()],
            vec!["bad name".to_string()],
            vec!["a..b".to_string()],
            vec!["x".to_string(), "x".to_string()],
            (0..17).map(|i| format!("h{i}.local")).collect(),
        ] {
            assert!(check_lan_names(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn csrs_are_verified_and_only_their_key_is_used() {
        assert!(matches!(parse_csr(b"junk", "client"), Err(CsrError::Bad { .. })));
        let key = KeyPair::generate().unwrap();
        let mut asked = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        asked.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        asked.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let csr = asked.serialize_request(&key).unwrap();
        let mut der = csr.der().to_vec();
        let public = parse_csr(&der, "client").unwrap();
        // A flipped bit in the signed part breaks the self-signature.
        let n = der.len() / 2;
        der[n] ^= 1;
        assert!(parse_csr(&der, "client").is_err());

        let dir = tempfile::tempdir().unwrap();
        let tls = crate::tls::TlsMaterial::load_or_create(dir.path()).unwrap();
        let node = NodeId::new();
        let issued = tls
            .authority
            .issue_client(
                &public,
                &node,
                &"uk".parse().unwrap(),
                1_800_000_000,
                Duration::from_secs(86_400),
            )
            .unwrap();
        assert_eq!(issued.not_after, 1_800_086_400);
        // Read back: our choices, not the CSR's.
        let (_, got) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
        assert!(!got.is_ca(), "never a CA");
        assert!(
            got.subject_alternative_name().unwrap().is_none(),
            "no names from the CSR"
        );
        assert!(got.subject().to_string().contains(&node.to_string()));
        let ku = got.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        let eku = got.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
    }
}
