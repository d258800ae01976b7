//! RFC 3161 time-stamp protocol: the request a client sends, the built-in authority's answer
//! (TSTInfo signed as CMS with the TSA certificate, two-step like every signature here), and the
//! checks a verifier makes on a token. Only SHA-256 message imprints are accepted.

use cmpv2::status::{PkiFailureInfoValues, PkiStatus, PkiStatusInfo};
use const_oid::db::rfc5912::ID_SHA_256;
use const_oid::ObjectIdentifier;
use der::asn1::{GeneralizedTime, Int, OctetString};
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifier;
use x509_cert::ext::pkix::name::GeneralName;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use crate::cms::{self, ParsedSignedData, SignedAttrs, SignerCheck, ID_CT_TST_INFO};
use crate::pki::CertInfo;

/// The built-in TSA's policy OID. Sigillum has no registered arc yet, so it sits under IANA's
/// enterprise number reserved for documentation (32473, RFC 5612); an operator with a policy of
/// their own runs an external TSA (`SIGILLUM_TSA_URL`).
pub const TSA_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.32473.3161.1");

fn tsa_policy() -> ObjectIdentifier {
    TSA_POLICY
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TspError {
    #[error("malformed time-stamp request")]
    BadRequest,
    #[error("only SHA-256 message imprints are accepted")]
    BadAlgorithm,
    #[error("the time-stamp authority refused the request (status {0})")]
    Refused(u8),
    #[error("malformed time-stamp response or token: {0}")]
    Malformed(String),
    #[error("encoding failed: {0}")]
    Encoding(String),
}

fn enc(e: der::Error) -> TspError {
    TspError::Encoding(e.to_string())
}
fn malformed(e: der::Error) -> TspError {
    TspError::Malformed(e.to_string())
}

fn imprint(digest: &[u8; 32]) -> Result<MessageImprint, TspError> {
    Ok(MessageImprint {
        hash_algorithm: AlgorithmIdentifier { oid: ID_SHA_256, parameters: None },
        hashed_message: OctetString::new(digest.to_vec()).map_err(enc)?,
    })
}

/// A client's request for a timestamp over `digest` (SHA-256), asking for the TSA certificate.
pub fn request(digest: &[u8; 32], nonce: &[u8; 8]) -> Result<Vec<u8>, TspError> {
    // Canonical DER: a random leading zero octet would make the TSA refuse the request.
    let n = crate::pki::positive_serial(nonce);
    TimeStampReq {
        version: TspVersion::V1,
        message_imprint: imprint(digest)?,
        req_policy: None,
        nonce: Some(Int::new(&n).map_err(enc)?),
        cert_req: true,
        extensions: None,
    }
    .to_der()
    .map_err(enc)
}

/// A request the built-in TSA accepted for signing.
#[derive(Debug, Clone)]
pub struct AcceptedRequest {
    pub request: TimeStampReq,
}

/// Parses and checks a request received by the built-in TSA.
pub fn parse_request(der_bytes: &[u8]) -> Result<AcceptedRequest, TspError> {
    let request = TimeStampReq::from_der(der_bytes).map_err(|_| TspError::BadRequest)?;
    let mi = &request.message_imprint;
    if mi.hash_algorithm.oid != ID_SHA_256 {
        return Err(TspError::BadAlgorithm);
    }
    if mi.hashed_message.as_bytes().len() != 32 {
        return Err(TspError::BadRequest);
    }
    if request.extensions.is_some() {
        // RFC 3161 §2.4.1: unrecognised extensions must be refused.
        return Err(TspError::BadRequest);
    }
    if let Some(policy) = request.req_policy {
        if policy != tsa_policy() {
            return Err(TspError::BadRequest);
        }
    }
    Ok(AcceptedRequest { request })
}

/// The TSTInfo (DER) the TSA signs for `req`, at `gen_time_unix_ms`, with a unique `serial`.
pub fn tst_info(
    req: &AcceptedRequest,
    serial: &[u8; 16],
    gen_time_unix_ms: u64,
    tsa: &CertInfo,
) -> Result<Vec<u8>, TspError> {
    // Random bytes with a leading zero octet would not be canonical DER (and get refused).
    let serial = crate::pki::positive_serial(serial);
    let gen_time =
        GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(gen_time_unix_ms / 1000)).map_err(enc)?;
    TstInfo {
        version: TspVersion::V1,
        policy: tsa_policy(),
        message_imprint: req.request.message_imprint.clone(),
        serial_number: Int::new(&serial).map_err(enc)?,
        gen_time,
        accuracy: Some(Accuracy { seconds: Some(1), millis: None, micros: None }),
        ordering: false,
        nonce: req.request.nonce.clone(),
        tsa: Some(GeneralName::DirectoryName(tsa.subject().clone())),
        extensions: None,
    }
    .to_der()
    .map_err(enc)
}

/// The signed attributes of a token over `tst_der` (what the TSA key signs, via `to_be_signed`).
pub fn token_attrs(tst_der: &[u8], tsa: &CertInfo) -> Result<SignedAttrs, TspError> {
    SignedAttrs::new(ID_CT_TST_INFO, &sigillum_crypto::sha256(tst_der), tsa)
        .map_err(|e| TspError::Encoding(e.to_string()))
}

/// The granted response carrying the token, with the TSA's chain when the request asked for it.
pub fn granted_response(
    req: &AcceptedRequest,
    tst_der: &[u8],
    tsa: &CertInfo,
    chain: &[CertInfo],
    attrs: SignedAttrs,
    signature_der: &[u8],
) -> Result<Vec<u8>, TspError> {
    let chain: &[CertInfo] = if req.request.cert_req { chain } else { &[] };
    let token = cms::signed_data(ID_CT_TST_INFO, Some(tst_der), tsa, chain, attrs, signature_der, vec![])
        .map_err(|e| TspError::Encoding(e.to_string()))?;
    let resp = TimeStampResp {
        status: PkiStatusInfo { status: PkiStatus::Accepted, status_string: None, fail_info: None },
        time_stamp_token: Some(cms_content_info(&token)?),
    };
    resp.to_der().map_err(enc)
}

fn cms_content_info(der_bytes: &[u8]) -> Result<::cms::content_info::ContentInfo, TspError> {
    ::cms::content_info::ContentInfo::from_der(der_bytes).map_err(malformed)
}

/// A rejection response for a request the TSA refused.
pub fn rejection(err: &TspError) -> Result<Vec<u8>, TspError> {
    let info = match err {
        TspError::BadAlgorithm => PkiFailureInfoValues::BadAlg,
        _ => PkiFailureInfoValues::BadRequest,
    };
    TimeStampResp {
        status: PkiStatusInfo { status: PkiStatus::Rejection, status_string: None, fail_info: Some(info.into()) },
        time_stamp_token: None,
    }
    .to_der()
    .map_err(enc)
}

/// The token (DER ContentInfo) of a TSA response, or why there is none.
pub fn token_from_response(der_bytes: &[u8]) -> Result<Vec<u8>, TspError> {
    let resp = TimeStampResp::from_der(der_bytes).map_err(malformed)?;
    match (resp.status.status, resp.time_stamp_token) {
        (PkiStatus::Accepted | PkiStatus::GrantedWithMods, Some(t)) => t.to_der().map_err(enc),
        (s, _) => Err(TspError::Refused(s as u8)),
    }
}

/// What a timestamp token says and whether its own signature holds.
#[derive(Debug, Clone)]
pub struct TokenCheck {
    pub gen_time_unix: u64,
    /// The token's imprint equals the expected digest.
    pub imprint_ok: bool,
    pub signer: SignerCheck,
    /// The TSA certificate (signer of the token), and the other certificates the token carries.
    pub tsa_certificate: Option<CertInfo>,
    pub certificates: Vec<CertInfo>,
}

impl TokenCheck {
    pub fn ok(&self) -> bool {
        self.imprint_ok && self.signer.ok() && self.tsa_certificate.is_some()
    }
}

/// Checks a token (DER ContentInfo) against the SHA-256 digest it should cover. Chain trust is
/// the caller's (see [`crate::verify`]).
pub fn check_token(token_der: &[u8], expected: &[u8; 32]) -> Result<TokenCheck, TspError> {
    let parsed = ParsedSignedData::parse(token_der).map_err(|e| TspError::Malformed(e.to_string()))?;
    if parsed.signed_data.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(TspError::Malformed("token does not hold a TSTInfo".into()));
    }
    let tst_der = parsed
        .econtent()
        .map_err(|e| TspError::Malformed(e.to_string()))?
        .ok_or_else(|| TspError::Malformed("token has no content".into()))?;
    let tst = TstInfo::from_der(&tst_der).map_err(malformed)?;
    let imprint_ok = tst.message_imprint.hash_algorithm.oid == ID_SHA_256
        && tst.message_imprint.hashed_message.as_bytes() == expected;
    let signer = parsed.check_content(&tst_der);
    Ok(TokenCheck {
        gen_time_unix: tst.gen_time.to_unix_duration().as_secs(),
        imprint_ok,
        signer,
        tsa_certificate: parsed.signer_certificate().cloned(),
        certificates: parsed.certificates.clone(),
    })
}

/// The token as the value of an attribute (`Any`), for embedding in a SignerInfo.
pub fn token_any(token_der: &[u8]) -> Result<Any, TspError> {
    Any::from_der(token_der).map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_the_uuid_arc() {
        assert_eq!(tsa_policy().to_string(), "1.3.6.1.4.1.32473.3161.1");
    }
}
