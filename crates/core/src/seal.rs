//! Sealing a finished document: PAdES B-B → B-T → B-LT → B-LTA, each step an incremental update
//! from `sigillum_pdf::pades`, with the seal key and the timestamp authority behind ports.
//!
//! 1. a CAdES-detached signature by the document-seal certificate (ESS signing-certificate-v2);
//! 2. a signature timestamp over the signature value, as an unsigned attribute (B-T);
//! 3. a DSS with the certificates (seal, root, TSA) and the root's current CRL (B-LT);
//! 4. a document timestamp over all of it (B-LTA).
//!
//! With an imported seal chain or an external TSA, step 3 also embeds current revocation data for
//! every outside certificate that says where to get it: a CRL from its distribution point, else
//! an OCSP response from its responder, fetched through [`RevocationSource`] and checked against
//! its issuer. A revoked certificate stops the seal (the document is not sealed with a key its CA
//! has withdrawn); unreachable revocation data makes the seal fail now, and the job that asked
//! for it retries later, rather than produce a document that cannot be validated once the CA's
//! servers are gone. Fetched data is kept in memory until its next update, at most an hour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sigillum_pdf::cms::{self, SignedAttrs, ID_DATA};
use sigillum_pdf::pades::{self, SealError, SignatureParams};
use sigillum_pdf::pki::CertInfo;
use sigillum_pdf::revocation::{self, Verdict};
use sigillum_pdf::tsp;

use crate::pki::{Pki, PkiServiceError, TimestampAuthority};

/// Bytes reserved for the CMS signature with its timestamp and three certificates.
const SIGNATURE_CAPACITY: usize = 16 * 1024;
/// Bytes reserved for a document timestamp token with its certificates.
const TIMESTAMP_CAPACITY: usize = 8 * 1024;
/// Fetched revocation data is used again until its next update, but fetched anew after this long
/// at most, so a revocation reaches the sealer within the hour even when the CA publishes weekly.
const REVOCATION_REFETCH_S: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum SealServiceError {
    #[error(transparent)]
    Pki(#[from] PkiServiceError),
    #[error("PDF: {0}")]
    Pdf(#[from] SealError),
    #[error("CMS: {0}")]
    Cms(String),
    #[error("the timestamp authority returned an unusable token: {0}")]
    BadToken(String),
    #[error("the certificate {subject} is revoked (since Unix time {since}); the document is not sealed")]
    Revoked { subject: String, since: u64 },
    #[error("the certificate {0} is not valid now; the document is not sealed")]
    CertificateNotValid(String),
    #[error("no current revocation data for {subject}: {detail}")]
    RevocationUnavailable { subject: String, detail: String },
}

/// Fetches revocation data for outside certificates (an HTTP adapter outside core).
#[async_trait::async_trait]
pub trait RevocationSource: Send + Sync {
    /// The CRL published at a certificate's distribution point.
    async fn fetch_crl(&self, url: &str) -> Result<Vec<u8>, String>;
    /// An OCSP responder's answer (DER `OCSPResponse`) to a DER `OCSPRequest` (RFC 6960 A.1).
    async fn ask_ocsp(&self, url: &str, request_der: &[u8]) -> Result<Vec<u8>, String>;
}

/// Revocation data for one certificate, as it goes into the DSS.
#[derive(Clone)]
enum Evidence {
    Crl(Vec<u8>),
    Ocsp(Vec<u8>),
}

struct Cached {
    evidence: Evidence,
    reuse_until: u64,
}

/// What the sealer writes into the signature dictionary.
#[derive(Debug, Clone)]
pub struct SealRequest {
    pub reason: String,
    pub signing_time_unix: i64,
}

/// Seals documents with the internal PKI's seal key and a timestamp authority.
pub struct Sealer {
    pki: Arc<Pki>,
    tsa: Arc<dyn TimestampAuthority>,
    revocation: Option<Arc<dyn RevocationSource>>,
    /// Keyed by CRL URL, or by OCSP URL and certificate.
    fetched: Mutex<HashMap<String, Cached>>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SealServiceError> + Send + 'static,
) -> Result<T, SealServiceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SealServiceError::Cms(format!("task: {e}")))?
}

impl Sealer {
    /// `tsa` is the built-in authority (the same `Pki`) or an external one.
    pub fn new(pki: Arc<Pki>, tsa: Arc<dyn TimestampAuthority>) -> Self {
        Self { pki, tsa, revocation: None, fetched: Mutex::new(HashMap::new()) }
    }

    /// Where revocation data of outside certificates comes from. Without one, sealing with an
    /// outside certificate that names a CRL distribution point or OCSP responder fails (see the
    /// module docs).
    pub fn with_revocation_source(mut self, source: Arc<dyn RevocationSource>) -> Self {
        self.revocation = Some(source);
        self
    }

    pub fn pki(&self) -> &Arc<Pki> {
        &self.pki
    }

    /// A timestamp token over `digest`, checked to cover it; with the certificates it carries.
    async fn timestamp(&self, digest: [u8; 32]) -> Result<(Vec<u8>, Vec<CertInfo>), SealServiceError> {
        let nonce: [u8; 8] = sigillum_crypto::random_array()
            .map_err(|_| SealServiceError::BadToken("random generator unavailable".into()))?;
        let request = tsp::request(&digest, &nonce).map_err(PkiServiceError::from)?;
        let response = self.tsa.timestamp(&request).await?;
        let token = tsp::token_from_response(&response).map_err(|e| SealServiceError::BadToken(e.to_string()))?;
        let check = tsp::check_token(&token, &digest).map_err(|e| SealServiceError::BadToken(e.to_string()))?;
        if !check.ok() {
            return Err(SealServiceError::BadToken(format!("{check:?}")));
        }
        Ok((token, check.certificates))
    }

    /// Seals `pdf` to PAdES B-LTA.
    pub async fn seal(&self, pdf: Vec<u8>, req: &SealRequest) -> Result<Vec<u8>, SealServiceError> {
        let certs = self.pki.certificates().await?.clone();
        let params = SignatureParams {
            field_name: "Sigillum Seal".into(),
            name: "Sigillum".into(),
            reason: req.reason.clone(),
            location: None,
            signing_time_unix: req.signing_time_unix,
            capacity: SIGNATURE_CAPACITY,
        };
        let prepared = blocking(move || Ok(pades::prepare_signature(&pdf, &params).map_err(SealError::from)?)).await?;
        let attrs = SignedAttrs::new(ID_DATA, &prepared.digest(), &certs.seal).map_err(cms_err)?;
        let signature = self.pki.sign_as_seal(&attrs.to_be_signed().map_err(cms_err)?).await?;
        let (token, tsa_chain) = self.timestamp(sigillum_crypto::sha256(&signature)).await?;
        let unsigned = vec![cms::signature_timestamp_attribute(&token).map_err(cms_err)?];
        let mut chain = vec![certs.seal.clone()];
        chain.extend(certs.seal_chain.iter().cloned());
        let cms_der =
            cms::signed_data(ID_DATA, None, &certs.seal, &chain, attrs, &signature, unsigned).map_err(cms_err)?;
        let signed = prepared.finish(&cms_der)?;

        // B-LT: everything a validator needs later, in the file.
        let mut crls = vec![self.pki.crl().await?];
        let mut pool = chain.clone();
        for c in tsa_chain {
            if !pool.iter().any(|p| p.der == c.der) {
                pool.push(c);
            }
        }
        let mut ocsps = Vec::new();
        for evidence in self.outside_revocation(&pool, &certs.root).await? {
            let (list, der) = match evidence {
                Evidence::Crl(der) => (&mut crls, der),
                Evidence::Ocsp(der) => (&mut ocsps, der),
            };
            if !list.contains(&der) {
                list.push(der);
            }
        }
        let dss_certs: Vec<Vec<u8>> = pool.into_iter().map(|c| c.der).collect();
        let with_dss =
            blocking(move || Ok(pades::add_dss(&signed, &dss_certs, &crls, &ocsps).map_err(SealError::from)?)).await?;

        // B-LTA: a document timestamp over the whole file, DSS included.
        let dts = blocking(move || {
            Ok(pades::prepare_document_timestamp(&with_dss, "Sigillum Document Timestamp", TIMESTAMP_CAPACITY)
                .map_err(SealError::from)?)
        })
        .await?;
        let (doc_token, _) = self.timestamp(dts.digest()).await?;
        Ok(dts.finish(&doc_token)?)
    }
}

impl Sealer {
    /// Current revocation data for every certificate of `pool` (the seal chain and the TSA's
    /// certificates) that an outside CA issued and that says where to get it. Checks on the way
    /// that the seal certificate is valid now and that nothing is revoked.
    async fn outside_revocation(
        &self,
        pool: &[CertInfo],
        internal_root: &CertInfo,
    ) -> Result<Vec<Evidence>, SealServiceError> {
        let now = self.pki.now_unix_s();
        if let Some(seal) = pool.first() {
            let validity = &seal.cert.tbs_certificate.validity;
            if now < validity.not_before.to_unix_duration().as_secs()
                || now > validity.not_after.to_unix_duration().as_secs()
            {
                return Err(SealServiceError::CertificateNotValid(seal.subject().to_string()));
            }
        }
        let mut out = Vec::new();
        for cert in pool.iter().filter(|c| !revocation::is_self_issued(c)) {
            let issuer = pool
                .iter()
                .chain(std::iter::once(internal_root))
                .find(|i| i.subject() == &cert.cert.tbs_certificate.issuer && cert.signed_by(i));
            let subject = cert.subject().to_string();
            let Some(issuer) = issuer else {
                tracing::warn!(%subject, "the seal carries no revocation data for a certificate whose issuer it lacks");
                continue;
            };
            if issuer.der == internal_root.der {
                continue; // the internal root's own CRL is always embedded
            }
            let (crl_urls, ocsp_urls) = (revocation::crl_urls(cert), revocation::ocsp_urls(cert));
            if crl_urls.is_empty() && ocsp_urls.is_empty() {
                tracing::warn!(%subject, "the certificate names no http(s) CRL distribution point or OCSP responder; the seal carries no revocation data for it");
                continue;
            }
            out.push(self.current_evidence(cert, issuer, &crl_urls, &ocsp_urls, now).await?);
        }
        Ok(out)
    }

    /// Current revocation data for `cert` from the first source that gives it (its CRLs, then
    /// its OCSP responders), checked against `issuer`.
    async fn current_evidence(
        &self,
        cert: &CertInfo,
        issuer: &CertInfo,
        crl_urls: &[String],
        ocsp_urls: &[String],
        now: u64,
    ) -> Result<Evidence, SealServiceError> {
        let subject = cert.subject().to_string();
        let serial = hex::encode(cert.cert.tbs_certificate.serial_number.as_bytes());
        let sources = crl_urls
            .iter()
            .map(|u| (u.clone(), true))
            .chain(ocsp_urls.iter().map(|u| (format!("{u} {serial}"), false)));
        let mut problems = Vec::new();
        for (key, is_crl) in sources {
            let evidence = match self.cached(&key, now) {
                Some(e) => e,
                None => match self.fetch(&key, is_crl, cert, issuer).await {
                    Ok(e) => e,
                    Err(e) => {
                        problems.push(e);
                        continue;
                    }
                },
            };
            let verdict = match &evidence {
                Evidence::Crl(der) => revocation::check_crl(der, cert, issuer, now),
                Evidence::Ocsp(der) => revocation::check_ocsp(der, cert, issuer, now),
            };
            match verdict {
                Ok(Verdict::NotRevoked { next_update }) => {
                    self.keep(&key, &evidence, next_update.min(now + REVOCATION_REFETCH_S));
                    return Ok(evidence);
                }
                Ok(Verdict::Revoked { since }) => {
                    tracing::error!(%subject, since, "an outside certificate of the seal is revoked");
                    return Err(SealServiceError::Revoked { subject, since });
                }
                Err(e) => problems.push(format!("{}: {e}", key.split(' ').next().unwrap_or_default())),
            }
        }
        Err(SealServiceError::RevocationUnavailable { subject, detail: problems.join("; ") })
    }

    /// Fetches a CRL (`key` is its URL) or asks an OCSP responder (`key` is its URL and the
    /// certificate's serial).
    async fn fetch(&self, key: &str, is_crl: bool, cert: &CertInfo, issuer: &CertInfo) -> Result<Evidence, String> {
        let url = key.split(' ').next().unwrap_or_default();
        let Some(source) = &self.revocation else { return Err("no revocation source is configured".into()) };
        let described = |e: String| format!("{url}: {e}");
        if is_crl {
            let fetched = source.fetch_crl(url).await.map_err(described)?;
            return revocation::crl_der(fetched).map(Evidence::Crl).map_err(|e| described(e.to_string()));
        }
        let request = revocation::ocsp_request(cert, issuer).map_err(|e| described(e.to_string()))?;
        source.ask_ocsp(url, &request).await.map(Evidence::Ocsp).map_err(described)
    }

    fn cached(&self, key: &str, now: u64) -> Option<Evidence> {
        let cache = self.fetched.lock().ok()?;
        cache.get(key).filter(|c| now < c.reuse_until).map(|c| c.evidence.clone())
    }

    fn keep(&self, key: &str, evidence: &Evidence, reuse_until: u64) {
        if let Ok(mut cache) = self.fetched.lock() {
            cache.insert(key.to_owned(), Cached { evidence: evidence.clone(), reuse_until });
        }
    }
}

fn cms_err(e: cms::CmsError) -> SealServiceError {
    SealServiceError::Cms(e.to_string())
}
