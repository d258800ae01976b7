//! Revocation data for certificates Sigillum did not issue: the seal certificate of an imported
//! chain, its intermediate CAs, an external timestamp authority's certificate. A PAdES B-LT seal
//! carries, in its DSS, a CRL for every certificate of those chains, so that the document can be
//! validated after the CA's servers are gone.
//!
//! Pure functions: where a certificate's CRL is published ([`crl_urls`]) or its OCSP responder
//! answers ([`ocsp_urls`], RFC 6960), the OCSP request to send ([`ocsp_request`]), and whether a
//! fetched CRL or OCSP response is one we may embed and what it says about the certificate
//! ([`check_crl`], [`check_ocsp`]). Fetching is the caller's (an HTTP adapter behind a port of the
//! sealer).

use const_oid::db::rfc5280::{ID_AD_OCSP, ID_KP_OCSP_SIGNING};
use const_oid::db::rfc5912::ID_SHA_1;
use der::asn1::{Null, OctetString};
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints, ExtendedKeyUsage};
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request, TbsRequest,
};

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
    #[error("the OCSP response is not usable: {0}")]
    Ocsp(String),
}

/// What current revocation data of the issuer (a CRL or an OCSP response) says about a
/// certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not revoked; the data is current until `next_update` (Unix seconds).
    NotRevoked { next_update: u64 },
    /// Revoked since `since` (Unix seconds).
    Revoked { since: u64 },
}

/// How long an OCSP response without a next update is taken as current after it was made.
const OCSP_WITHOUT_NEXT_UPDATE_S: u64 = 3600;

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
        .filter_map(http_uri)
        .collect()
}

/// The URL a general name holds, when it is an http(s) URI.
fn http_uri(name: &GeneralName) -> Option<String> {
    let GeneralName::UniformResourceIdentifier(uri) = name else { return None };
    let lower = uri.as_str().to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://")).then(|| uri.as_str().to_owned())
}

/// The http(s) URLs of `cert`'s OCSP responders (authority information access, `id-ad-ocsp`).
pub fn ocsp_urls(cert: &CertInfo) -> Vec<String> {
    let Ok(Some((_, access))) = cert.cert.tbs_certificate.get::<AuthorityInfoAccessSyntax>() else { return vec![] };
    access.0.iter().filter(|a| a.access_method == ID_AD_OCSP).filter_map(|a| http_uri(&a.access_location)).collect()
}

/// The RFC 6960 `CertID` of `cert` (issued by `issuer`), hashed with SHA-1 as every responder
/// accepts; SHA-1 only identifies the issuer here, it protects nothing.
fn cert_id(cert: &CertInfo, issuer: &CertInfo) -> Result<CertId, RevocationError> {
    let malformed = |e: der::Error| RevocationError::Ocsp(e.to_string());
    let name = issuer.subject().to_der().map_err(malformed)?;
    let key = issuer.cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned { oid: ID_SHA_1, parameters: Some(Any::from(Null)) },
        issuer_name_hash: OctetString::new(sigillum_crypto::signature::sha1_identifier(&name)).map_err(malformed)?,
        issuer_key_hash: OctetString::new(sigillum_crypto::signature::sha1_identifier(key)).map_err(malformed)?,
        serial_number: cert.cert.tbs_certificate.serial_number.clone(),
    })
}

/// A DER OCSP request for `cert`'s status (unsigned, no nonce: responders may answer from
/// responses they made in advance).
pub fn ocsp_request(cert: &CertInfo, issuer: &CertInfo) -> Result<Vec<u8>, RevocationError> {
    let request = OcspRequest {
        tbs_request: TbsRequest {
            request_list: vec![Request { req_cert: cert_id(cert, issuer)?, single_request_extensions: None }],
            ..TbsRequest::default()
        },
        optional_signature: None,
    };
    request.to_der().map_err(|e| RevocationError::Ocsp(e.to_string()))
}

/// What a signed OCSP response says about `cert`: its status and the response's validity.
pub struct OcspStatus {
    /// `None`: good; `Some(t)`: revoked since `t` (Unix seconds).
    pub revoked_since: Option<u64>,
    pub this_update: u64,
    pub next_update: Option<u64>,
}

/// Reads an OCSP response about `cert`, checking that `issuer` signed it, itself or through a
/// responder certificate it issued for OCSP signing (RFC 6960 §4.2.2.2). Times are not judged.
pub fn ocsp_status(response_der: &[u8], cert: &CertInfo, issuer: &CertInfo) -> Result<OcspStatus, RevocationError> {
    let bad = |m: &str| RevocationError::Ocsp(m.to_owned());
    let malformed = |e: der::Error| RevocationError::Ocsp(e.to_string());
    let response = OcspResponse::from_der(response_der).map_err(malformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(RevocationError::Ocsp(format!("the responder answered {:?}", response.response_status)));
    }
    let bytes = response.response_bytes.ok_or_else(|| bad("a successful response without content"))?;
    if bytes.response_type != const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC {
        return Err(bad("not a basic OCSP response"));
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(malformed)?;
    let signed = basic.tbs_response_data.to_der().map_err(malformed)?;
    let by = |signer: &CertInfo| signer.verifies(&basic.signature_algorithm.oid, &signed, basic.signature.as_bytes());
    let delegated = || {
        basic.certs.iter().flatten().filter_map(|c| CertInfo::parse(&c.to_der().ok()?).ok()).any(|responder| {
            responder.signed_by(issuer)
                && matches!(responder.cert.tbs_certificate.get::<ExtendedKeyUsage>(),
                    Ok(Some((_, eku))) if eku.0.contains(&ID_KP_OCSP_SIGNING))
                && by(&responder)
        })
    };
    if !by(issuer) && !delegated() {
        return Err(bad("its signature is neither the issuer's nor a responder's the issuer certified"));
    }
    let wanted = cert_id(cert, issuer)?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| {
            r.cert_id.hash_algorithm.oid == wanted.hash_algorithm.oid
                && r.cert_id.issuer_name_hash == wanted.issuer_name_hash
                && r.cert_id.issuer_key_hash == wanted.issuer_key_hash
                && r.cert_id.serial_number == wanted.serial_number
        })
        .ok_or_else(|| bad("it says nothing about this certificate"))?;
    let revoked_since = match &single.cert_status {
        CertStatus::Good(_) => None,
        CertStatus::Revoked(info) => Some(info.revocation_time.0.to_unix_duration().as_secs()),
        CertStatus::Unknown(_) => return Err(bad("the responder does not know the certificate")),
    };
    Ok(OcspStatus {
        revoked_since,
        this_update: single.this_update.0.to_unix_duration().as_secs(),
        next_update: single.next_update.map(|t| t.0.to_unix_duration().as_secs()),
    })
}

/// Checks that `response_der` is a current OCSP response about `cert` signed for `issuer`, and
/// says what it tells. Without a next update, a response is current for an hour after it was made.
pub fn check_ocsp(
    response_der: &[u8],
    cert: &CertInfo,
    issuer: &CertInfo,
    now: u64,
) -> Result<Verdict, RevocationError> {
    let status = ocsp_status(response_der, cert, issuer)?;
    let next = status.next_update.unwrap_or(status.this_update + OCSP_WITHOUT_NEXT_UPDATE_S);
    if status.this_update > now + CLOCK_SLACK_S || now >= next {
        return Err(RevocationError::NotCurrent {
            this_update: status.this_update,
            next_update: status.next_update,
            now,
        });
    }
    Ok(match status.revoked_since {
        Some(since) => Verdict::Revoked { since },
        None => Verdict::NotRevoked { next_update: next },
    })
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
pub fn check_crl(crl_der: &[u8], cert: &CertInfo, issuer: &CertInfo, now: u64) -> Result<Verdict, RevocationError> {
    let crl = CertificateList::from_der(crl_der).map_err(|e| RevocationError::Malformed(e.to_string()))?;
    let listed = revoked_since(&crl, cert, issuer)?;
    let tbs = &crl.tbs_cert_list;
    let this_update = tbs.this_update.to_unix_duration().as_secs();
    let next_update = tbs.next_update.map(|t| t.to_unix_duration().as_secs());
    match next_update {
        Some(next) if this_update <= now + CLOCK_SLACK_S && now < next => Ok(match listed {
            Some(since) => Verdict::Revoked { since },
            None => Verdict::NotRevoked { next_update: next },
        }),
        _ => Err(RevocationError::NotCurrent { this_update, next_update, now }),
    }
}

/// When `crl`, once checked to be `issuer`'s and signed by it, says `cert` was revoked (Unix
/// seconds); `None` if it does not list it. Whether the list is current is the caller's question:
/// sealing wants it current now, verification at the time of signing.
pub(crate) fn revoked_since(
    crl: &CertificateList,
    cert: &CertInfo,
    issuer: &CertInfo,
) -> Result<Option<u64>, RevocationError> {
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
    let serial = &cert.cert.tbs_certificate.serial_number;
    let listed = tbs.revoked_certificates.iter().flatten().find(|r| &r.serial_number == serial);
    Ok(listed.map(|r| r.revocation_date.to_unix_duration().as_secs()))
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
        assert_eq!(check_crl(&current, &seal, &root.cert, now), Ok(Verdict::NotRevoked { next_update: now + 86_400 }));
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
