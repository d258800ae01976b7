//! CMS SignedData (RFC 5652) as Sigillum signs and reads it: one signer, ECDSA P-256 with
//! SHA-256, signed attributes with content-type, message-digest and ESS signing-certificate-v2
//! (RFC 5035), the certificate chain included. Used for the PAdES signature (detached, id-data)
//! and for RFC 3161 timestamp tokens (encapsulated TSTInfo).
//!
//! Signing is two-step, like the PKI: [`SignedAttrs::to_be_signed`] gives the bytes the key
//! manager signs; [`signed_data`] assembles the result around that signature.

use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use const_oid::db::rfc5912::ID_SHA_256;
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::{Attribute, Attributes};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;

use ::cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use ::cms::content_info::{CmsVersion, ContentInfo};
use ::cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};

use sigillum_crypto::signature::{self, Hash, Scheme};

use crate::pki::{ecdsa_sha256, CertInfo};

/// id-aa-signingCertificateV2 (RFC 5035).
pub const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-aa-signatureTimeStampToken (RFC 3161 appendix A).
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
/// id-data.
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// id-ct-TSTInfo.
pub const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmsError {
    #[error("malformed CMS: {0}")]
    Malformed(String),
    #[error("CMS encoding failed: {0}")]
    Encoding(String),
}

fn malformed(e: der::Error) -> CmsError {
    CmsError::Malformed(e.to_string())
}
fn enc(e: der::Error) -> CmsError {
    CmsError::Encoding(e.to_string())
}

/// SHA-256 with absent parameters (RFC 5754 §2).
pub fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: ID_SHA_256, parameters: None }
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// ESSCertIDv2; `hash_algorithm` absent means SHA-256 (its DEFAULT).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// id-aa-signingCertificate (RFC 2634 §5.4): the first version, naming the certificate by its
/// SHA-1 hash; RFC 3161 timestamp authorities may still send it instead of v2.
const ID_AA_SIGNING_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

fn attribute(oid: ObjectIdentifier, value: &impl Encode) -> Result<Attribute, CmsError> {
    let any = Any::from_der(&value.to_der().map_err(enc)?).map_err(enc)?;
    Ok(Attribute { oid, values: SetOfVec::try_from(vec![any]).map_err(enc)? })
}

/// The signed attributes of one signature.
#[derive(Debug, Clone)]
pub struct SignedAttrs(pub Attributes);

impl SignedAttrs {
    /// content-type, message-digest (SHA-256 of the signed content) and signing-certificate-v2
    /// binding `signer`. PAdES forbids a CMS signing-time (the time is the dictionary's /M and
    /// the timestamp's), so none is added.
    pub fn new(content_type: ObjectIdentifier, digest: &[u8; 32], signer: &CertInfo) -> Result<Self, CmsError> {
        let tbs = &signer.cert.tbs_certificate;
        let ess = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: None,
                cert_hash: OctetString::new(sigillum_crypto::sha256(&signer.der).to_vec()).map_err(enc)?,
                issuer_serial: Some(IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(tbs.issuer.clone())],
                    serial_number: tbs.serial_number.clone(),
                }),
            }],
            policies: None,
        };
        let attrs = vec![
            attribute(ID_CONTENT_TYPE, &content_type)?,
            attribute(ID_MESSAGE_DIGEST, &OctetString::new(digest.to_vec()).map_err(enc)?)?,
            attribute(ID_AA_SIGNING_CERTIFICATE_V2, &ess)?,
        ];
        Ok(Self(SetOfVec::try_from(attrs).map_err(enc)?))
    }

    /// The DER `SET OF Attribute` the signature covers (RFC 5652 §5.4).
    pub fn to_be_signed(&self) -> Result<Vec<u8>, CmsError> {
        self.0.to_der().map_err(enc)
    }
}

/// A SignedData ContentInfo (DER) with one signer.
pub fn signed_data(
    econtent_type: ObjectIdentifier,
    econtent: Option<&[u8]>,
    signer: &CertInfo,
    chain: &[CertInfo],
    attrs: SignedAttrs,
    signature_der: &[u8],
    unsigned: Vec<Attribute>,
) -> Result<Vec<u8>, CmsError> {
    let tbs = &signer.cert.tbs_certificate;
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer.clone(),
        serial_number: tbs.serial_number.clone(),
    });
    let unsigned_attrs = if unsigned.is_empty() { None } else { Some(SetOfVec::try_from(unsigned).map_err(enc)?) };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid,
        digest_alg: sha256_alg(),
        signed_attrs: Some(attrs.0),
        signature_algorithm: ecdsa_sha256(),
        signature: OctetString::new(signature_der.to_vec()).map_err(enc)?,
        unsigned_attrs,
    };
    let mut certs = vec![CertificateChoices::Certificate(signer.cert.clone())];
    for c in chain {
        if c.der != signer.der {
            certs.push(CertificateChoices::Certificate(c.cert.clone()));
        }
    }
    let econtent = match econtent {
        Some(bytes) => {
            Some(Any::from_der(&OctetString::new(bytes.to_vec()).map_err(enc)?.to_der().map_err(enc)?).map_err(enc)?)
        }
        None => None,
    };
    let sd = SignedData {
        // RFC 5652 §5.1: version 3 when the content is not id-data.
        version: if econtent_type == ID_DATA { CmsVersion::V1 } else { CmsVersion::V3 },
        digest_algorithms: SetOfVec::try_from(vec![sha256_alg()]).map_err(enc)?,
        encap_content_info: EncapsulatedContentInfo { econtent_type, econtent },
        certificates: Some(CertificateSet::try_from(certs).map_err(enc)?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info]).map_err(enc)?,
    };
    let content = Any::from_der(&sd.to_der().map_err(enc)?).map_err(enc)?;
    ContentInfo { content_type: ID_SIGNED_DATA, content }.to_der().map_err(enc)
}

/// The unsigned attribute carrying a signature timestamp token (B-T).
pub fn signature_timestamp_attribute(token_der: &[u8]) -> Result<Attribute, CmsError> {
    let any = Any::from_der(token_der).map_err(malformed)?;
    Ok(Attribute { oid: ID_AA_SIGNATURE_TIME_STAMP_TOKEN, values: SetOfVec::try_from(vec![any]).map_err(enc)? })
}

/// A parsed one-signer SignedData.
#[derive(Debug, Clone)]
pub struct ParsedSignedData {
    pub signed_data: SignedData,
    pub signer: SignerInfo,
    pub certificates: Vec<CertInfo>,
}

/// What checking a SignedData's own signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerCheck {
    /// The message-digest attribute equals SHA-256 of the content.
    pub digest_ok: bool,
    /// The signer's signature over the signed attributes verifies with its certificate's key.
    pub signature_ok: bool,
    /// signing-certificate-v2 names the signer certificate by its hash.
    pub signing_certificate_ok: bool,
}

impl SignerCheck {
    pub fn ok(&self) -> bool {
        self.digest_ok && self.signature_ok && self.signing_certificate_ok
    }
}

impl ParsedSignedData {
    /// Parses a DER ContentInfo holding SignedData with exactly one signer.
    pub fn parse(der: &[u8]) -> Result<Self, CmsError> {
        let ci = ContentInfo::from_der(der).map_err(malformed)?;
        if ci.content_type != ID_SIGNED_DATA {
            return Err(CmsError::Malformed("not SignedData".into()));
        }
        let sd = SignedData::from_der(&ci.content.to_der().map_err(malformed)?).map_err(malformed)?;
        let signer = match sd.signer_infos.0.as_slice() {
            [one] => one.clone(),
            _ => return Err(CmsError::Malformed("expected exactly one signer".into())),
        };
        let mut certificates = Vec::new();
        if let Some(set) = &sd.certificates {
            for c in set.0.iter() {
                if let CertificateChoices::Certificate(cert) = c {
                    let der = cert.to_der().map_err(malformed)?;
                    certificates.push(CertInfo { der, cert: cert.clone() });
                }
            }
        }
        Ok(Self { signed_data: sd, signer, certificates })
    }

    /// The encapsulated content (e.g. TSTInfo), if any.
    pub fn econtent(&self) -> Result<Option<Vec<u8>>, CmsError> {
        match &self.signed_data.encap_content_info.econtent {
            Some(any) => {
                let os = OctetString::from_der(&any.to_der().map_err(malformed)?).map_err(malformed)?;
                Ok(Some(os.as_bytes().to_vec()))
            }
            None => Ok(None),
        }
    }

    /// The signer's certificate, found by issuer and serial number.
    pub fn signer_certificate(&self) -> Option<&CertInfo> {
        let SignerIdentifier::IssuerAndSerialNumber(ias) = &self.signer.sid else { return None };
        self.certificates.iter().find(|c| {
            c.cert.tbs_certificate.serial_number == ias.serial_number && c.cert.tbs_certificate.issuer == ias.issuer
        })
    }

    fn attr(&self, oid: ObjectIdentifier) -> Option<&Any> {
        self.signer.signed_attrs.as_ref()?.iter().find(|a| a.oid == oid)?.values.iter().next()
    }

    /// An unsigned attribute's first value (e.g. the signature timestamp token), as DER.
    pub fn unsigned_attr(&self, oid: ObjectIdentifier) -> Option<Vec<u8>> {
        self.signer.unsigned_attrs.as_ref()?.iter().find(|a| a.oid == oid)?.values.iter().next()?.to_der().ok()
    }

    /// The hash the signer digested the content with (SHA-256, -384 or -512).
    fn digest_hash(&self) -> Option<Hash> {
        signature::hash_of(&self.signer.digest_alg.oid)
    }

    /// Checks the signer over `content` (the encapsulated content, e.g. a TSTInfo), hashed with
    /// the signer's own digest algorithm.
    pub fn check_content(&self, content: &[u8]) -> SignerCheck {
        let digest = self.digest_hash().map(|h| h.digest(content));
        self.check_digest(digest.as_deref())
    }

    /// Checks the signer over detached content whose SHA-256 is `digest` (a PAdES byte range).
    pub fn check(&self, digest: &[u8; 32]) -> SignerCheck {
        let sha256 = self.digest_hash() == Some(Hash::Sha256);
        self.check_digest(sha256.then_some(digest.as_slice()))
    }

    /// `digest`: the content hashed with the signer's digest algorithm (`None`: not available).
    /// The signature may be any scheme [`signature::verify`] accepts, so tokens of outside
    /// authorities (RSA, P-384, ...) are checked as well as Sigillum's own P-256 ones.
    fn check_digest(&self, digest: Option<&[u8]>) -> SignerCheck {
        let digest_ok = digest.is_some_and(|digest| {
            self.attr(ID_MESSAGE_DIGEST)
                .and_then(|a| OctetString::from_der(&a.to_der().ok()?).ok())
                .is_some_and(|d| d.as_bytes() == digest)
        });
        let cert = self.signer_certificate();
        let scheme = Scheme::from_cms(&self.signer.signature_algorithm.oid, &self.signer.digest_alg.oid);
        let signature_ok = match (cert, &self.signer.signed_attrs, scheme) {
            (Some(cert), Some(attrs), Some(scheme)) => match (attrs.to_der(), cert.spki_der()) {
                (Ok(tbs), Ok(key)) => signature::verify(scheme, &key, &tbs, self.signer.signature.as_bytes()),
                _ => false,
            },
            _ => false,
        };
        let signing_certificate_ok = cert.is_some_and(|cert| self.names_signing_certificate(cert));
        SignerCheck { digest_ok, signature_ok, signing_certificate_ok }
    }

    /// Whether the ESS signing-certificate attribute (v2, else v1) names `cert` by its hash.
    fn names_signing_certificate(&self, cert: &CertInfo) -> bool {
        let decoded = |oid| self.attr(oid).and_then(|a| a.to_der().ok());
        if let Some(der) = decoded(ID_AA_SIGNING_CERTIFICATE_V2) {
            return SigningCertificateV2::from_der(&der).ok().and_then(|s| s.certs.into_iter().next()).is_some_and(
                |id| {
                    let hash = match &id.hash_algorithm {
                        None => Some(Hash::Sha256),
                        Some(alg) => signature::hash_of(&alg.oid),
                    };
                    hash.is_some_and(|h| id.cert_hash.as_bytes() == h.digest(&cert.der))
                },
            );
        }
        decoded(ID_AA_SIGNING_CERTIFICATE)
            .and_then(|der| SigningCertificate::from_der(&der).ok())
            .and_then(|s| s.certs.into_iter().next())
            .is_some_and(|id| id.cert_hash.as_bytes() == signature::sha1_identifier(&cert.der))
    }
}
