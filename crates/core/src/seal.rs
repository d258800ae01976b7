//! Sealing a finished document: PAdES B-B → B-T → B-LT → B-LTA, each step an incremental update
//! from `sigillum_pdf::pades`, with the seal key and the timestamp authority behind ports.
//!
//! 1. a CAdES-detached signature by the document-seal certificate (ESS signing-certificate-v2);
//! 2. a signature timestamp over the signature value, as an unsigned attribute (B-T);
//! 3. a DSS with the certificates (seal, root, TSA) and the root's current CRL (B-LT);
//! 4. a document timestamp over all of it (B-LTA).
//!
//! With an imported seal chain or an external TSA, step 3 also embeds a current CRL for every
//! outside certificate that names a CRL distribution point, fetched through [`RevocationSource`]
//! and checked against its issuer. A revoked certificate stops the seal (the document is not
//! sealed with a key its CA has withdrawn); an unreachable CRL makes the seal fail now, and the
//! job that asked for it retries later, rather than produce a document that cannot be validated
//! once the CA's server is gone. CRLs are kept in memory until their next update, at most an hour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sigillum_pdf::cms::{self, SignedAttrs, ID_DATA};
use sigillum_pdf::pades::{self, SealError, SignatureParams};
use sigillum_pdf::pki::CertInfo;
use sigillum_pdf::revocation::{self, CrlVerdict};
use sigillum_pdf::tsp;

use crate::pki::{Pki, PkiServiceError, TimestampAuthority};

/// Bytes reserved for the CMS signature with its timestamp and three certificates.
const SIGNATURE_CAPACITY: usize = 16 * 1024;
/// Bytes reserved for a document timestamp token with its certificates.
const TIMESTAMP_CAPACITY: usize = 8 * 1024;
/// A fetched CRL is used again until its next update, but fetched anew after this long at most,
/// so a revocation reaches the sealer within the hour even when the CA publishes weekly.
const CRL_REFETCH_S: u64 = 3600;

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
    #[error("no current CRL for {subject}: {detail}")]
    RevocationUnavailable { subject: String, detail: String },
}

/// Fetches a CRL from a certificate's distribution point (an HTTP adapter outside core).
#[async_trait::async_trait]
pub trait RevocationSource: Send + Sync {
    async fn fetch_crl(&self, url: &str) -> Result<Vec<u8>, String>;
}

struct CachedCrl {
    der: Vec<u8>,
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
    crls: Mutex<HashMap<String, CachedCrl>>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SealServiceError> + Send + 'static,
) -> Result<T, SealServiceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SealServiceError::Cms(format!("task: {e}")))?
}

impl Sealer {
    /// `tsa` is the built-in authority (the same `Pki`) or an external one.
    pub fn new(pki: Arc<Pki>, tsa: Arc<dyn TimestampAuthority>) -> Self {
        Self { pki, tsa, revocation: None, crls: Mutex::new(HashMap::new()) }
    }

    /// Where CRLs of outside certificates come from. Without one, sealing with an outside
    /// certificate that names a CRL distribution point fails (see the module docs).
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
        for crl in self.outside_crls(&pool, &certs.root).await? {
            if !crls.contains(&crl) {
                crls.push(crl);
            }
        }
        let dss_certs: Vec<Vec<u8>> = pool.into_iter().map(|c| c.der).collect();
        let with_dss =
            blocking(move || Ok(pades::add_dss(&signed, &dss_certs, &crls).map_err(SealError::from)?)).await?;

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
    /// A current CRL for every certificate of `pool` (the seal chain and the TSA's certificates)
    /// that an outside CA issued and that names where its CRL is published. Checks on the way
    /// that the seal certificate is valid now and that nothing is revoked.
    async fn outside_crls(
        &self,
        pool: &[CertInfo],
        internal_root: &CertInfo,
    ) -> Result<Vec<Vec<u8>>, SealServiceError> {
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
            let urls = revocation::crl_urls(cert);
            if urls.is_empty() {
                tracing::warn!(%subject, "the certificate names no http(s) CRL distribution point; the seal carries no revocation data for it");
                continue;
            }
            out.push(self.current_crl(cert, issuer, &urls, now).await?);
        }
        Ok(out)
    }

    /// A CRL from one of `urls` that is current, signed by `issuer` and does not list `cert`.
    async fn current_crl(
        &self,
        cert: &CertInfo,
        issuer: &CertInfo,
        urls: &[String],
        now: u64,
    ) -> Result<Vec<u8>, SealServiceError> {
        let subject = cert.subject().to_string();
        let mut problems = Vec::new();
        for url in urls {
            let cached = self.cached_crl(url, now);
            let der = match cached {
                Some(der) => der,
                None => {
                    let Some(source) = &self.revocation else {
                        return Err(SealServiceError::RevocationUnavailable {
                            subject,
                            detail: "no revocation source is configured".into(),
                        });
                    };
                    match source.fetch_crl(url).await.and_then(|f| revocation::crl_der(f).map_err(|e| e.to_string())) {
                        Ok(der) => der,
                        Err(e) => {
                            problems.push(format!("{url}: {e}"));
                            continue;
                        }
                    }
                }
            };
            match revocation::check_crl(&der, cert, issuer, now) {
                Ok(CrlVerdict::NotRevoked { next_update }) => {
                    self.keep_crl(url, &der, next_update.min(now + CRL_REFETCH_S));
                    return Ok(der);
                }
                Ok(CrlVerdict::Revoked { since }) => {
                    tracing::error!(%subject, since, "an outside certificate of the seal is revoked");
                    return Err(SealServiceError::Revoked { subject, since });
                }
                Err(e) => problems.push(format!("{url}: {e}")),
            }
        }
        Err(SealServiceError::RevocationUnavailable { subject, detail: problems.join("; ") })
    }

    fn cached_crl(&self, url: &str, now: u64) -> Option<Vec<u8>> {
        let cache = self.crls.lock().ok()?;
        cache.get(url).filter(|c| now < c.reuse_until).map(|c| c.der.clone())
    }

    fn keep_crl(&self, url: &str, der: &[u8], reuse_until: u64) {
        if let Ok(mut cache) = self.crls.lock() {
            cache.insert(url.to_owned(), CachedCrl { der: der.to_vec(), reuse_until });
        }
    }
}

fn cms_err(e: cms::CmsError) -> SealServiceError {
    SealServiceError::Cms(e.to_string())
}
