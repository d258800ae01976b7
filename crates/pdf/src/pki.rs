//! Sigillum's internal PKI, as pure data: the X.509 certificates of the embedded default (a root
//! CA, the document-sealing certificate and the timestamp authority's certificate) and the root's
//! CRL. Every structure is built in two steps — the to-be-signed DER here, the signature from the
//! key manager (which never hands out a private key), then [`assemble_certificate`] /
//! [`assemble_crl`] — so the same code serves a local keyring and a PKCS#11 token.
//!
//! All keys are ECDSA P-256 and everything is signed with ecdsa-with-SHA256.

use std::str::FromStr;
use std::time::Duration;

use const_oid::db::rfc5280::ID_CE_CRL_NUMBER;
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_KP_TIME_STAMPING};
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{BitString, Ia5String, OctetString};
use der::{Decode, Encode};
use sigillum_crypto::signature::Scheme;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::crl::{CertificateList, TbsCertList};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

/// Random bytes (serial numbers, nonces) as a positive DER INTEGER of exactly `N` octets: the top
/// bit cleared (positive) and the first octet non-zero (a leading zero octet is not canonical DER).
pub(crate) fn positive_serial<const N: usize>(random: &[u8; N]) -> [u8; N] {
    let mut serial = *random;
    if let Some(first) = serial.first_mut() {
        *first = (*first & 0x7f) | 0x01;
    }
    serial
}

/// Errors building or reading PKI structures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PkiError {
    #[error("invalid certificate data: {0}")]
    Invalid(String),
    #[error("DER encoding failed: {0}")]
    Encoding(String),
}

fn enc(e: der::Error) -> PkiError {
    PkiError::Encoding(e.to_string())
}

/// What a certificate is for; fixes its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// Self-signed root: CA, signs certificates and CRLs.
    Root,
    /// Document seal: digitalSignature + nonRepudiation (PAdES signer).
    Seal,
    /// RFC 3161 timestamp authority: critical EKU id-kp-timeStamping (RFC 3161 §2.3).
    Tsa,
}

/// One certificate to issue.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    pub role: CertRole,
    /// RFC 4514 subject, e.g. `CN=Sigillum Document Seal,O=Sigillum`.
    pub subject: &'a str,
    /// Subject public key (DER SubjectPublicKeyInfo).
    pub spki_der: &'a [u8],
    /// Issuer's subject and public key; `None` for the self-signed root.
    pub issuer: Option<(&'a Name, &'a [u8])>,
    pub serial: [u8; 16],
    pub not_before_unix: u64,
    pub not_after_unix: u64,
    /// Where relying parties fetch the issuer's CRL (CRL distribution point), for non-root certs.
    pub crl_url: Option<&'a str>,
}

/// ecdsa-with-SHA256, parameters absent (RFC 5758 §3.2).
pub fn ecdsa_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: ECDSA_WITH_SHA_256, parameters: None }
}

fn time(unix: u64) -> Result<Time, PkiError> {
    Time::try_from(std::time::UNIX_EPOCH + Duration::from_secs(unix)).map_err(enc)
}

/// Key identifier: SHA-256 of the subjectPublicKey bits, truncated to 160 bits (RFC 7093 §2 method 1).
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(enc)?;
    Ok(sigillum_crypto::sha256(spki.subject_public_key.raw_bytes())[..20].to_vec())
}

fn ext<T: AssociatedOid + Encode>(value: &T, critical: bool) -> Result<Extension, PkiError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(enc)?).map_err(enc)?,
    })
}

fn aki(issuer_spki: &[u8]) -> Result<AuthorityKeyIdentifier, PkiError> {
    Ok(AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_identifier(issuer_spki)?).map_err(enc)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    })
}

/// Parses an RFC 4514 name.
pub fn name(rfc4514: &str) -> Result<Name, PkiError> {
    Name::from_str(rfc4514).map_err(|e| PkiError::Invalid(format!("name {rfc4514:?}: {e}")))
}

/// The to-be-signed certificate for `req`.
pub fn tbs_certificate(req: &CertRequest<'_>) -> Result<TbsCertificate, PkiError> {
    let subject = name(req.subject)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(req.spki_der).map_err(enc)?;
    let (issuer, issuer_spki) = match req.issuer {
        Some((n, k)) => (n.clone(), k),
        None => (subject.clone(), req.spki_der),
    };
    let serial = positive_serial(&req.serial);
    let mut extensions =
        vec![ext(&SubjectKeyIdentifier(OctetString::new(key_identifier(req.spki_der)?).map_err(enc)?), false)?];
    extensions.push(ext(&aki(issuer_spki)?, false)?);
    match req.role {
        CertRole::Root => {
            extensions.push(ext(&BasicConstraints { ca: true, path_len_constraint: Some(0) }, true)?);
            extensions.push(ext(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign), true)?);
        }
        CertRole::Seal => {
            extensions.push(ext(&BasicConstraints { ca: false, path_len_constraint: None }, true)?);
            extensions.push(ext(&KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation), true)?);
        }
        CertRole::Tsa => {
            extensions.push(ext(&BasicConstraints { ca: false, path_len_constraint: None }, true)?);
            extensions.push(ext(&KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation), true)?);
            extensions.push(ext(&ExtendedKeyUsage(vec![ID_KP_TIME_STAMPING]), true)?);
        }
    }
    if let (Some(url), false) = (req.crl_url, req.role == CertRole::Root) {
        let uri = Ia5String::new(url).map_err(|_| PkiError::Invalid("CRL URL must be ASCII".into()))?;
        let dp = DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![GeneralName::UniformResourceIdentifier(
                uri,
            )])),
            reasons: None,
            crl_issuer: None,
        };
        extensions.push(ext(&CrlDistributionPoints(vec![dp]), false)?);
    }
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).map_err(enc)?,
        signature: ecdsa_sha256(),
        issuer,
        validity: Validity { not_before: time(req.not_before_unix)?, not_after: time(req.not_after_unix)? },
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    })
}

/// DER of `tbs`, the bytes the issuer's key signs.
pub fn to_be_signed<T: Encode>(tbs: &T) -> Result<Vec<u8>, PkiError> {
    tbs.to_der().map_err(enc)
}

/// The signed certificate (DER) from its TBS part and the issuer's DER ECDSA signature.
pub fn assemble_certificate(tbs: TbsCertificate, signature_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa_sha256(),
        signature: BitString::from_bytes(signature_der).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)
}

/// The to-be-signed CRL of an issuer that has revoked nothing, valid from `this_update` to
/// `next_update`, numbered `number` (monotonic: the issuing time in seconds serves).
pub fn tbs_crl(
    issuer: &Name,
    issuer_spki: &[u8],
    this_update_unix: u64,
    next_update_unix: u64,
    number: u64,
) -> Result<TbsCertList, PkiError> {
    let crl_number = der::asn1::Int::new(&number.to_be_bytes()).map_err(enc)?;
    let number_ext = Extension {
        extn_id: ID_CE_CRL_NUMBER,
        critical: false,
        extn_value: OctetString::new(crl_number.to_der().map_err(enc)?).map_err(enc)?,
    };
    Ok(TbsCertList {
        version: Version::V2,
        signature: ecdsa_sha256(),
        issuer: issuer.clone(),
        this_update: time(this_update_unix)?,
        next_update: Some(time(next_update_unix)?),
        revoked_certificates: None,
        crl_extensions: Some(vec![ext(&aki(issuer_spki)?, false)?, number_ext]),
    })
}

/// The signed CRL (DER).
pub fn assemble_crl(tbs: TbsCertList, signature_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: ecdsa_sha256(),
        signature: BitString::from_bytes(signature_der).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)
}

/// The to-be-signed part of a PKCS#10 certificate request (RFC 2986) for `spki_der` as `subject`:
/// how an operator obtains a certificate for the seal key from their own CA.
pub fn tbs_csr(subject: &str, spki_der: &[u8]) -> Result<x509_cert::request::CertReqInfo, PkiError> {
    Ok(x509_cert::request::CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: name(subject)?,
        public_key: SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(enc)?,
        attributes: Default::default(),
    })
}

/// The signed certificate request, PEM.
pub fn assemble_csr(info: x509_cert::request::CertReqInfo, signature_der: &[u8]) -> Result<String, PkiError> {
    let der = x509_cert::request::CertReq {
        info,
        algorithm: ecdsa_sha256(),
        signature: BitString::from_bytes(signature_der).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)?;
    Ok(to_pem("CERTIFICATE REQUEST", &der))
}

/// A parsed certificate with what the pipeline needs of it.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<Self, PkiError> {
        Ok(Self { der: der.to_vec(), cert: Certificate::from_der(der).map_err(enc)? })
    }

    pub fn subject(&self) -> &Name {
        &self.cert.tbs_certificate.subject
    }

    pub fn spki_der(&self) -> Result<Vec<u8>, PkiError> {
        self.cert.tbs_certificate.subject_public_key_info.to_der().map_err(enc)
    }

    /// Checks that `issuer` signed this certificate (any scheme of
    /// [`sigillum_crypto::signature`]: an imported chain may come from an RSA or P-384 CA).
    pub fn signed_by(&self, issuer: &CertInfo) -> bool {
        let Ok(tbs) = self.cert.tbs_certificate.to_der() else { return false };
        issuer.verifies(&self.cert.signature_algorithm.oid, &tbs, self.cert.signature.as_bytes())
    }

    /// Whether this certificate's key made `signature` (by the X.509 algorithm `algorithm`) over
    /// `message`: a certificate, CRL or OCSP response it issued.
    pub fn verifies(&self, algorithm: &ObjectIdentifier, message: &[u8], signature: Option<&[u8]>) -> bool {
        let (Some(scheme), Some(signature), Ok(key)) =
            (Scheme::from_signature_oid(algorithm), signature, self.spki_der())
        else {
            return false;
        };
        sigillum_crypto::signature::verify(scheme, &key, message, signature)
    }

    /// PEM text of the certificate.
    pub fn pem(&self) -> String {
        to_pem("CERTIFICATE", &self.der)
    }
}

/// PEM armour (RFC 7468) around `der`.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Reads every certificate of a PEM bundle (or one DER certificate).
pub fn parse_certificates(data: &[u8]) -> Result<Vec<CertInfo>, PkiError> {
    if data.first() == Some(&0x30) {
        return Ok(vec![CertInfo::parse(data)?]);
    }
    let text = std::str::from_utf8(data).map_err(|_| PkiError::Invalid("not PEM or DER".into()))?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end_marker = "-----END CERTIFICATE-----";
        let Some(end) = rest[start..].find(end_marker) else { break };
        let block = &rest[start..start + end + end_marker.len()];
        let (label, der) =
            der::pem::decode_vec(block.as_bytes()).map_err(|e| PkiError::Invalid(format!("PEM: {e}")))?;
        if label == "CERTIFICATE" {
            out.push(CertInfo::parse(&der)?);
        }
        rest = &rest[start + end + end_marker.len()..];
    }
    if out.is_empty() {
        return Err(PkiError::Invalid("no certificate found".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_canonical_positive_16_octet_integers_whatever_the_random_bytes() {
        for first in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
            let mut random = [0u8; 16];
            random[0] = first;
            let serial = positive_serial(&random);
            let der = der::asn1::Int::new(&serial).unwrap().to_der().unwrap();
            let back = der::asn1::Int::from_der(&der).expect("strict DER decodes it");
            assert_eq!(back.as_bytes().len(), 16, "{first:#x}");
            assert!(serial[0] != 0 && serial[0] < 0x80, "{first:#x}");
            // Timestamp request nonces (8 octets) the same way.
            let nonce = positive_serial(&[first, 0, 0, 0, 0, 0, 0, 1]);
            let der = der::asn1::Int::new(&nonce).unwrap().to_der().unwrap();
            assert_eq!(der::asn1::Int::from_der(&der).expect("strict DER").as_bytes().len(), 8, "{first:#x}");
        }
    }
    use sigillum_crypto::ecdsa;

    fn key() -> (ecdsa::P256Pkcs8, Vec<u8>) {
        let k = ecdsa::generate_p256().unwrap();
        let spki = ecdsa::p256_public_spki(&k.0).unwrap();
        (k, spki)
    }

    #[test]
    fn root_signs_seal_and_crl() {
        let (root_key, root_spki) = key();
        let req = CertRequest {
            role: CertRole::Root,
            subject: "CN=Test Root,O=Sigillum",
            spki_der: &root_spki,
            issuer: None,
            serial: [0xff; 16],
            not_before_unix: 1_700_000_000,
            not_after_unix: 2_700_000_000,
            crl_url: None,
        };
        let tbs = tbs_certificate(&req).unwrap();
        let sig = ecdsa::p256_sign(&root_key.0, &to_be_signed(&tbs).unwrap()).unwrap();
        let root = CertInfo::parse(&assemble_certificate(tbs, &sig).unwrap()).unwrap();
        assert!(root.signed_by(&root));
        assert_eq!(root.cert.tbs_certificate.serial_number.as_bytes().len(), 16);

        let (_seal_key, seal_spki) = key();
        let req = CertRequest {
            role: CertRole::Seal,
            subject: "CN=Seal,O=Sigillum",
            spki_der: &seal_spki,
            issuer: Some((root.subject(), &root_spki)),
            serial: [1; 16],
            not_before_unix: 1_700_000_000,
            not_after_unix: 1_800_000_000,
            crl_url: Some("https://localhost:8443/pki/crl"),
        };
        let tbs = tbs_certificate(&req).unwrap();
        let sig = ecdsa::p256_sign(&root_key.0, &to_be_signed(&tbs).unwrap()).unwrap();
        let seal = CertInfo::parse(&assemble_certificate(tbs, &sig).unwrap()).unwrap();
        assert!(seal.signed_by(&root));
        assert!(!root.signed_by(&seal));
        let pem = seal.pem() + &root.pem();
        let back = parse_certificates(pem.as_bytes()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].der, seal.der);

        let tbs = tbs_crl(root.subject(), &root_spki, 1_700_000_000, 1_700_600_000, 1_700_000_000).unwrap();
        let sig = ecdsa::p256_sign(&root_key.0, &to_be_signed(&tbs).unwrap()).unwrap();
        let crl = CertificateList::from_der(&assemble_crl(tbs, &sig).unwrap()).unwrap();
        assert!(ecdsa::p256_verify(&root_spki, &crl.tbs_cert_list.to_der().unwrap(), crl.signature.raw_bytes()));
    }
}
