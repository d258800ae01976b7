//! Sealing a finished document: PAdES B-B → B-T → B-LT → B-LTA, each step an incremental update
//! from `sigillum_pdf::pades`, with the seal key and the timestamp authority behind ports.
//!
//! 1. a CAdES-detached signature by the document-seal certificate (ESS signing-certificate-v2);
//! 2. a signature timestamp over the signature value, as an unsigned attribute (B-T);
//! 3. a DSS with the certificates (seal, root, TSA) and the root's current CRL (B-LT);
//! 4. a document timestamp over all of it (B-LTA).

use std::sync::Arc;

use sigillum_pdf::cms::{self, SignedAttrs, ID_DATA};
use sigillum_pdf::pades::{self, SealError, SignatureParams};
use sigillum_pdf::pki::CertInfo;
use sigillum_pdf::tsp;

use crate::pki::{Pki, PkiServiceError, TimestampAuthority};

/// Bytes reserved for the CMS signature with its timestamp and three certificates.
const SIGNATURE_CAPACITY: usize = 16 * 1024;
/// Bytes reserved for a document timestamp token with its certificates.
const TIMESTAMP_CAPACITY: usize = 8 * 1024;

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
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SealServiceError> + Send + 'static,
) -> Result<T, SealServiceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SealServiceError::Cms(format!("task: {e}")))?
}

impl Sealer {
    /// `tsa` is the built-in authority (the same `Pki`) or an external one.
    pub fn new(pki: Arc<Pki>, tsa: Arc<dyn TimestampAuthority>) -> Self {
        Self { pki, tsa }
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
        let crl = self.pki.crl().await?;
        let mut dss_certs: Vec<Vec<u8>> = chain.iter().map(|c| c.der.clone()).collect();
        for c in tsa_chain {
            if !dss_certs.contains(&c.der) {
                dss_certs.push(c.der);
            }
        }
        let with_dss =
            blocking(move || Ok(pades::add_dss(&signed, &dss_certs, &[crl]).map_err(SealError::from)?)).await?;

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

fn cms_err(e: cms::CmsError) -> SealServiceError {
    SealServiceError::Cms(e.to_string())
}
