//! Revocation data for certificates Sigillum did not issue: the seal certificate of an imported
//! chain, its intermediate CAs, an external timestamp authority's certificate. A PAdES B-LT seal
//! carries, in its DSS, a CRL for every certificate of those chains, so that the document can be
//! validated after the CA's servers are gone.
//!
//! Pure functions: where a certificate's CRL is published ([`crl_urls`]), and whether a fetched
//! CRL is one we may embed and what it says about the certificate ([`check_crl`]). Fetching is
//! the caller's (an HTTP adapter behind a port of the sealer).

use der::{Decode, Encode};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::CrlDistributionPoints;

use crate::pki::CertInfo;

/// A CRL may be dated this far in the future (issuer clocks run a little ahead).
const CLOCK_SLACK_S: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("the CRL is not readable DER: {0}")]
    Malformed(String),
    #[error("the CRL was issued by {found}, not by {expected}")]
    WrongIssuer { expected: String, found: String },
    #[error("the CRL's signature does not verify with the issuer's key")]
    BadSignature,
    #[error("the CRL is not current (this update {this_update}, next update {next_update:?}, now {now})")]
    NotCurrent { this_update: u64, next_update: Option<u64>, now: u64 },
}

/// What a current CRL of the issuer says about a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlVerdict {
    /// Not listed; the CRL is current until `next_update` (Unix seconds).
    NotRevoked { next_update: u64 },
    /// Listed as revoked since `since` (Unix seconds).
    Revoked { since: u64 },
}

/// The http(s) URLs of `cert`'s CRL distribution points, in the order the certificate gives them
/// (LDAP and other schemes are left out: the sealer fetches over HTTP).
pub fn crl_urls(cert: &CertInfo) -> Vec<String> {
    let Ok(Some((_, points))) = cert.cert.tbs_certificate.get::<CrlDistributionPoints>() else { return vec![] };
    points
        .0
        .iter()
        .filter_map(|dp| match &dp.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|name| match name {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_owned()),
            _ => None,
        })
        .filter(|uri| {
            let lower = uri.to_ascii_lowercase();
            lower.starts_with("http://") || lower.starts_with("https://")
        })
        .collect()
}

/// The DER of a fetched CRL: some distribution points publish it PEM-armoured.
pub fn crl_der(fetched: Vec<u8>) -> Result<Vec<u8>, RevocationError> {
    if !fetched.starts_with(b"-----BEGIN") {
        return Ok(fetched);
    }
    match der::pem::decode_vec(&fetched) {
        Ok(("X509 CRL", der)) => Ok(der),
        Ok((label, _)) => Err(RevocationError::Malformed(format!("PEM holds a {label}, not an X509 CRL"))),
        Err(e) => Err(RevocationError::Malformed(format!("PEM: {e}"))),
    }
}

/// Whether `cert` has no issuer to ask (a self-signed trust anchor needs no revocation data).
pub fn is_self_issued(cert: &CertInfo) -> bool {
    cert.cert.tbs_certificate.issuer == cert.cert.tbs_certificate.subject
}

/// Checks that `crl_der` is a CRL of `issuer`, signed by its key and current at `now`, and says
/// whether it lists `cert`.
pub fn check_crl(crl_der: &[u8], cert: &CertInfo, issuer: &CertInfo, now: u64) -> Result<CrlVerdict, RevocationError> {
    let crl = CertificateList::from_der(crl_der).map_err(|e| RevocationError::Malformed(e.to_string()))?;
    let tbs = &crl.tbs_cert_list;
    if tbs.issuer != *issuer.subject() {
        return Err(RevocationError::WrongIssuer {
            expected: issuer.subject().to_string(),
            found: tbs.issuer.to_string(),
        });
    }
    let signed = tbs.to_der().map_err(|e| RevocationError::Malformed(e.to_string()))?;
    if !issuer.verifies(&crl.signature_algorithm.oid, &signed, crl.signature.as_bytes()) {
        return Err(RevocationError::BadSignature);
    }
    let this_update = tbs.this_update.to_unix_duration().as_secs();
    let next_update = tbs.next_update.map(|t| t.to_unix_duration().as_secs());
    match next_update {
        Some(next) if this_update <= now + CLOCK_SLACK_S && now < next => {
            let serial = &cert.cert.tbs_certificate.serial_number;
            let listed = tbs.revoked_certificates.iter().flatten().find(|r| &r.serial_number == serial);
            Ok(match listed {
                Some(r) => CrlVerdict::Revoked { since: r.revocation_date.to_unix_duration().as_secs() },
                None => CrlVerdict::NotRevoked { next_update: next },
            })
        }
        _ => Err(RevocationError::NotCurrent { this_update, next_update, now }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{
        assemble_certificate, assemble_crl, tbs_certificate, tbs_crl, to_be_signed, CertRequest, CertRole,
    };
    use sigillum_crypto::ecdsa;

    struct Ca {
        key: ecdsa::P256Pkcs8,
        spki: Vec<u8>,
        cert: CertInfo,
    }

    fn ca() -> Ca {
        let key = ecdsa::generate_p256().unwrap();
        let spki = ecdsa::p256_public_spki(&key.0).unwrap();
        let req = CertRequest {
            role: CertRole::Root,
            subject: "CN=Outside Root,O=Example",
            spki_der: &spki,
            issuer: None,
            serial: [7; 16],
            not_before_unix: 1_700_000_000,
            not_after_unix: 2_700_000_000,
            crl_url: None,
        };
        let tbs = tbs_certificate(&req).unwrap();
        let sig = ecdsa::p256_sign(&key.0, &to_be_signed(&tbs).unwrap()).unwrap();
        let cert = CertInfo::parse(&assemble_certificate(tbs, &sig).unwrap()).unwrap();
        Ca { key, spki, cert }
    }

    fn leaf(ca: &Ca, url: Option<&str>) -> CertInfo {
        let key = ecdsa::generate_p256().unwrap();
        let spki = ecdsa::p256_public_spki(&key.0).unwrap();
        let req = CertRequest {
            role: CertRole::Seal,
            subject: "CN=Seal,O=Example",
            spki_der: &spki,
            issuer: Some((ca.cert.subject(), &ca.spki)),
            serial: [9; 16],
            not_before_unix: 1_700_000_000,
            not_after_unix: 1_900_000_000,
            crl_url: url,
        };
        let tbs = tbs_certificate(&req).unwrap();
        let sig = ecdsa::p256_sign(&ca.key.0, &to_be_signed(&tbs).unwrap()).unwrap();
        CertInfo::parse(&assemble_certificate(tbs, &sig).unwrap()).unwrap()
    }

    fn crl(ca: &Ca, this: u64, next: u64) -> Vec<u8> {
        let tbs = tbs_crl(ca.cert.subject(), &ca.spki, this, next, this).unwrap();
        let sig = ecdsa::p256_sign(&ca.key.0, &to_be_signed(&tbs).unwrap()).unwrap();
        assemble_crl(tbs, &sig).unwrap()
    }

    #[test]
    fn distribution_points_and_current_crls() {
        let root = ca();
        let seal = leaf(&root, Some("http://crl.example/root.crl"));
        assert_eq!(crl_urls(&seal), vec!["http://crl.example/root.crl".to_owned()]);
        assert!(crl_urls(&leaf(&root, None)).is_empty());
        assert!(is_self_issued(&root.cert) && !is_self_issued(&seal));

        let now = 1_800_000_000;
        let current = crl(&root, now - 60, now + 86_400);
        assert_eq!(
            check_crl(&current, &seal, &root.cert, now),
            Ok(CrlVerdict::NotRevoked { next_update: now + 86_400 })
        );
        // Expired, or not yet issued.
        let old = crl(&root, now - 10 * 86_400, now - 86_400);
        assert!(matches!(check_crl(&old, &seal, &root.cert, now), Err(RevocationError::NotCurrent { .. })));
        let future = crl(&root, now + 3600, now + 86_400);
        assert!(matches!(check_crl(&future, &seal, &root.cert, now), Err(RevocationError::NotCurrent { .. })));
        // Another CA's CRL, or one signed by another key under the same name.
        let other = ca();
        let foreign = crl(&other, now - 60, now + 86_400);
        assert_eq!(check_crl(&foreign, &seal, &root.cert, now), Err(RevocationError::BadSignature));
        assert!(matches!(check_crl(b"not a crl", &seal, &root.cert, now), Err(RevocationError::Malformed(_))));
        let mut flipped = current.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 1;
        assert!(check_crl(&flipped, &seal, &root.cert, now).is_err());
    }
}
