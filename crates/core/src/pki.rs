//! The internal PKI of the embedded default, and the built-in RFC 3161 timestamp authority.
//!
//! Three ECDSA P-256 keys live in the key manager (`system:pki-root`, `system:pki-seal`,
//! `system:pki-tsa`; with PKCS#11 they are generated in the token and never leave it). On first
//! use the root certifies itself and the two others; the certificates are stored through
//! [`PkiStore`] (first insert wins, so several nodes agree). The root signs a fresh CRL on request
//! (it has revoked nothing; relying parties still need one for long-term validation), and the
//! TSA key signs timestamp tokens.
//!
//! Certificates carry the public URL's `/pki/crl` as CRL distribution point.
//!
//! Renewal: the seal and TSA certificates (10 years) are issued anew for the same keys once less
//! than [`RENEW_BEFORE_S`] of them is left, and the root (20 years) once less than a year is
//! left; the root keeps its key and name, so what the old root certificate issued chains to the
//! new one and the other way round, and relying parties can trust either. Each renewal is a new
//! generation (`seal`, `seal#2`, …) that the first node to insert it fixes for all; every node
//! looks at its certificates again hourly and uses the latest generation.

use std::sync::Arc;

use sigillum_crypto::KeyManager;
use sigillum_pdf::pki::{self, CertInfo, CertRequest, CertRole, PkiError};
use sigillum_pdf::tsp::{self, TspError};
use tokio::sync::RwLock;

use crate::ports::{Clock, PkiStore, RepoError};

pub const ROOT_KEY: &str = "system:pki-root";
pub const SEAL_KEY: &str = "system:pki-seal";
pub const TSA_KEY: &str = "system:pki-tsa";

const YEAR_S: u64 = 365 * 86_400;
/// How long a CRL is valid; relying parties fetch the next one before then.
const CRL_VALIDITY_S: u64 = 7 * 86_400;
/// A seal or TSA certificate is renewed once less than this is left of it.
pub const RENEW_BEFORE_S: u64 = 90 * 86_400;
/// The root is renewed once less than this is left of it (relying parties need time to fetch it).
const ROOT_RENEW_BEFORE_S: u64 = YEAR_S;
/// How often a node looks at its certificates again (renewals, its own or another node's).
const RECHECK_S: u64 = 3600;
/// Generations looked for; one renewal per ten years makes this centuries.
const MAX_GENERATIONS: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum PkiServiceError {
    #[error("key manager: {0}")]
    Keys(#[from] sigillum_crypto::KeyManagerError),
    #[error("storage: {0}")]
    Store(#[from] RepoError),
    #[error("certificate: {0}")]
    Pki(#[from] PkiError),
    #[error("timestamp: {0}")]
    Tsp(#[from] TspError),
    #[error("timestamp authority unavailable: {0}")]
    TsaUnavailable(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// The certificates in use, loaded once per process.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The internal root: issues the TSA certificate (and the seal certificate unless one was
    /// imported) and signs the CRL.
    pub root: CertInfo,
    /// The document-seal certificate: internal, or imported from the operator's CA.
    pub seal: CertInfo,
    /// The certificates above the seal certificate, up to its root (internal: the internal root).
    pub seal_chain: Vec<CertInfo>,
    pub tsa: CertInfo,
}

/// Something that answers RFC 3161 requests (DER `TimeStampReq` in, DER `TimeStampResp` out):
/// the built-in [`Pki`], or an external TSA over HTTP (an adapter outside core).
#[async_trait::async_trait]
pub trait TimestampAuthority: Send + Sync {
    async fn timestamp(&self, request_der: &[u8]) -> Result<Vec<u8>, PkiServiceError>;
}

/// The internal CA and TSA.
pub struct Pki {
    keys: Arc<dyn KeyManager>,
    store: Arc<dyn PkiStore>,
    clock: Arc<dyn Clock>,
    crl_url: String,
    /// An imported seal certificate and its chain (seal first), when production uses its own CA.
    imported_seal: Option<Vec<CertInfo>>,
    loaded: RwLock<Option<Loaded>>,
}

/// The certificates in use, and when to look at them again.
struct Loaded {
    certs: Arc<Certificates>,
    recheck_at: u64,
}

/// The stored name of a certificate's `generation` (1: the first issued).
fn generation_name(name: &str, generation: u32) -> String {
    if generation <= 1 {
        name.to_owned()
    } else {
        format!("{name}#{generation}")
    }
}

fn not_after(cert: &CertInfo) -> u64 {
    cert.cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs()
}

impl Pki {
    pub fn new(keys: Arc<dyn KeyManager>, store: Arc<dyn PkiStore>, clock: Arc<dyn Clock>, public_url: &str) -> Self {
        let crl_url = format!("{}/pki/crl", public_url.trim_end_matches('/'));
        Self { keys, store, clock, crl_url, imported_seal: None, loaded: RwLock::new(None) }
    }

    /// Seals with an imported certificate (seal first, then the chain up to its root) whose
    /// public key must be the key manager's seal key (see [`Pki::seal_csr`]).
    pub fn with_imported_seal_chain(mut self, chain: Vec<CertInfo>) -> Self {
        self.imported_seal = (!chain.is_empty()).then_some(chain);
        self
    }

    /// A PKCS#10 request (PEM) for the seal key, for the operator's CA to certify.
    pub async fn seal_csr(&self, subject: &str) -> Result<String, PkiServiceError> {
        let key = self.keys.ensure_signing_key(SEAL_KEY).await?;
        let info = pki::tbs_csr(subject, &key.spki_der)?;
        let signature = self.keys.sign(SEAL_KEY, &pki::to_be_signed(&info)?).await?;
        Ok(pki::assemble_csr(info, &signature)?)
    }

    /// Now by the PKI's clock, in Unix seconds.
    pub fn now_unix_s(&self) -> u64 {
        (self.clock.now_unix_ms().max(0) / 1000) as u64
    }

    /// The certificates, issued on first use and renewed when due (looked at hourly).
    pub async fn certificates(&self) -> Result<Arc<Certificates>, PkiServiceError> {
        let now = self.now_unix_s();
        if let Some(l) = self.loaded.read().await.as_ref().filter(|l| now < l.recheck_at) {
            return Ok(l.certs.clone());
        }
        let mut loaded = self.loaded.write().await;
        if let Some(l) = loaded.as_ref().filter(|l| now < l.recheck_at) {
            return Ok(l.certs.clone());
        }
        let certs = Arc::new(self.load_or_issue().await?);
        *loaded = Some(Loaded { certs: certs.clone(), recheck_at: now + RECHECK_S });
        Ok(certs)
    }

    async fn load_or_issue(&self) -> Result<Certificates, PkiServiceError> {
        let root_key = self.keys.ensure_signing_key(ROOT_KEY).await?;
        let root = self
            .stored_or_issue("root", ROOT_KEY, CertRole::Root, "CN=Sigillum Internal Root CA,O=Sigillum", None)
            .await?;
        if root.spki_der()? != root_key.spki_der {
            return Err(PkiServiceError::Config(
                "the stored root certificate does not match the key manager's root key".into(),
            ));
        }
        let issuer = Some((&root, root_key.spki_der.as_slice()));
        let (seal, seal_chain) = match &self.imported_seal {
            Some(imported) => {
                let seal_key = self.keys.ensure_signing_key(SEAL_KEY).await?;
                let Some((seal, chain)) = imported.split_first() else {
                    return Err(PkiServiceError::Config("the imported seal chain is empty".into()));
                };
                if seal.spki_der()? != seal_key.spki_der {
                    return Err(PkiServiceError::Config(
                        "the imported seal certificate is not for the key manager's seal key \
                         (make a request for it with `sigillum keys seal-csr`)"
                            .into(),
                    ));
                }
                (seal.clone(), chain.to_vec())
            }
            None => {
                let seal = self
                    .stored_or_issue("seal", SEAL_KEY, CertRole::Seal, "CN=Sigillum Document Seal,O=Sigillum", issuer)
                    .await?;
                (seal, vec![root.clone()])
            }
        };
        let tsa = self
            .stored_or_issue("tsa", TSA_KEY, CertRole::Tsa, "CN=Sigillum Timestamp Authority,O=Sigillum", issuer)
            .await?;
        Ok(Certificates { root, seal, seal_chain, tsa })
    }

    /// The latest stored generation of certificate `name`; the first one issued when there is
    /// none, the next one when the latest is due for renewal.
    async fn stored_or_issue(
        &self,
        name: &str,
        key_id: &str,
        role: CertRole,
        subject: &str,
        issuer: Option<(&CertInfo, &[u8])>,
    ) -> Result<CertInfo, PkiServiceError> {
        let mut latest = None;
        for generation in 1..=MAX_GENERATIONS {
            match self.store.pki_certificate(&generation_name(name, generation)).await? {
                Some(der) => latest = Some((generation, CertInfo::parse(&der)?)),
                None => break,
            }
        }
        let renew_before = if role == CertRole::Root { ROOT_RENEW_BEFORE_S } else { RENEW_BEFORE_S };
        let generation = match latest {
            Some((g, cert)) if not_after(&cert) > self.now_unix_s() + renew_before || g == MAX_GENERATIONS => {
                return Ok(cert)
            }
            Some((g, _)) => {
                tracing::info!(certificate = name, generation = g + 1, "renewing an internal PKI certificate");
                g + 1
            }
            None => 1,
        };
        self.issue(&generation_name(name, generation), key_id, role, subject, issuer).await
    }

    /// Issues certificate `name` (first insert wins: a node that lost the race loads the winner's).
    async fn issue(
        &self,
        name: &str,
        key_id: &str,
        role: CertRole,
        subject: &str,
        issuer: Option<(&CertInfo, &[u8])>,
    ) -> Result<CertInfo, PkiServiceError> {
        let key = self.keys.ensure_signing_key(key_id).await?;
        let now = self.now_unix_s();
        let serial: [u8; 16] =
            sigillum_crypto::random_array().map_err(|_| PkiServiceError::Config("random generator".into()))?;
        let (lifetime, crl_url) = match role {
            CertRole::Root => (20 * YEAR_S, None),
            _ => (10 * YEAR_S, Some(self.crl_url.as_str())),
        };
        let req = CertRequest {
            role,
            subject,
            spki_der: &key.spki_der,
            issuer: issuer.map(|(c, k)| (c.subject(), k)),
            serial,
            // An hour of slack for clocks slightly behind.
            not_before_unix: now.saturating_sub(3600),
            not_after_unix: now + lifetime,
            crl_url,
        };
        let tbs = pki::tbs_certificate(&req)?;
        let signer = if issuer.is_some() { ROOT_KEY } else { key_id };
        let signature = self.keys.sign(signer, &pki::to_be_signed(&tbs)?).await?;
        let der = pki::assemble_certificate(tbs, &signature)?;
        match self.store.insert_pki_certificate(name, &der, self.clock.now_unix_ms()).await {
            Ok(()) => Ok(CertInfo::parse(&der)?),
            Err(RepoError::Conflict(_)) => {
                let der = self.store.pki_certificate(name).await?.ok_or(RepoError::NotFound)?;
                Ok(CertInfo::parse(&der)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A CRL signed now by the root, valid for a week (DER).
    pub async fn crl(&self) -> Result<Vec<u8>, PkiServiceError> {
        let certs = self.certificates().await?;
        let now = self.now_unix_s();
        let tbs = pki::tbs_crl(certs.root.subject(), &certs.root.spki_der()?, now, now + CRL_VALIDITY_S, now)?;
        let signature = self.keys.sign(ROOT_KEY, &pki::to_be_signed(&tbs)?).await?;
        Ok(pki::assemble_crl(tbs, &signature)?)
    }

    /// Signs `message` with the document-seal key.
    pub async fn sign_as_seal(&self, message: &[u8]) -> Result<Vec<u8>, PkiServiceError> {
        Ok(self.keys.sign(SEAL_KEY, message).await?)
    }

    /// Answers one RFC 3161 request as the built-in TSA: a granted response with a token, or a
    /// rejection response for a request it cannot serve (still a valid `TimeStampResp`).
    pub async fn respond(&self, request_der: &[u8]) -> Result<Vec<u8>, PkiServiceError> {
        let req = match tsp::parse_request(request_der) {
            Ok(r) => r,
            Err(e) => return Ok(tsp::rejection(&e)?),
        };
        let certs = self.certificates().await?;
        let serial: [u8; 16] =
            sigillum_crypto::random_array().map_err(|_| PkiServiceError::Config("random generator".into()))?;
        let tst = tsp::tst_info(&req, &serial, self.clock.now_unix_ms().max(0) as u64, &certs.tsa)?;
        let attrs = tsp::token_attrs(&tst, &certs.tsa)?;
        let tbs = attrs.to_be_signed().map_err(|e| PkiServiceError::Config(e.to_string()))?;
        let signature = self.keys.sign(TSA_KEY, &tbs).await?;
        let chain = [certs.tsa.clone(), certs.root.clone()];
        Ok(tsp::granted_response(&req, &tst, &certs.tsa, &chain, attrs, &signature)?)
    }
}

#[async_trait::async_trait]
impl TimestampAuthority for Pki {
    async fn timestamp(&self, request_der: &[u8]) -> Result<Vec<u8>, PkiServiceError> {
        self.respond(request_der).await
    }
}
