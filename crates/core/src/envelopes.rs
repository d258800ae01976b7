//! Envelopes: upload (streamed and encrypted as it arrives, then checked through `sigillum-pdf`),
//! read, list, download and crypto-shred, each scoped to the caller's organisation and each an
//! audit event. Recipients, fields, sending and signing build on this.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;
use sigillum_audit::{Detail, EventKind};
use sigillum_crypto::field::FieldContext;
use sigillum_pdf::{Limits, PageSize, PdfError};

use crate::accounts::Principal;
use crate::audit_log::{AuditLog, ClientInfo, NewEvent, Trail};
use crate::ids::EnvelopeId;
use crate::lifecycle::{self, Action, Conflict, EnvelopeStatus};
use crate::ports::{Clock, EnvelopeRecord, EnvelopeStore, RepoError};
use crate::vault::{Vault, VaultError};

pub const ORIGINAL: &str = "original";

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("the document is larger than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Pdf(PdfError),
    #[error(transparent)]
    Conflict(Conflict),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<RepoError> for EnvelopeError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => Self::NotFound,
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<VaultError> for EnvelopeError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::NotFound => Self::NotFound,
            e => Self::Internal(e.to_string()),
        }
    }
}

/// What the API shows of an envelope.
#[derive(Debug, Clone, Serialize)]
pub struct EnvelopeView {
    pub id: EnvelopeId,
    pub title: String,
    pub status: EnvelopeStatus,
    pub document_sha256: String,
    pub document_bytes: u64,
    pub pages: Vec<PageSize>,
    pub created_unix_ms: i64,
    pub updated_unix_ms: i64,
}

fn title_ctx(id: &str) -> FieldContext<'_> {
    FieldContext { table: "envelopes", column: "title", row_id: id }
}

fn check_title(title: &str) -> Result<String, EnvelopeError> {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > 300 || t.chars().any(char::is_control) {
        return Err(EnvelopeError::Invalid("title must be 1 to 300 printable characters".into()));
    }
    Ok(t.to_owned())
}

#[derive(Clone)]
pub struct Envelopes {
    store: Arc<dyn EnvelopeStore>,
    vault: Vault,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

impl Envelopes {
    pub fn new(
        store: Arc<dyn EnvelopeStore>,
        vault: Vault,
        audit: AuditLog,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Self {
        Self { store, vault, audit, clock, limits }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    async fn record(&self, e: NewEvent) -> Result<(), EnvelopeError> {
        self.audit.record(e).await.map(|_| ()).map_err(|e| EnvelopeError::Internal(format!("audit: {e}")))
    }

    /// The caller's envelope, or `NotFound` (also for other organisations' envelopes).
    pub async fn authorize(&self, p: &Principal, id: EnvelopeId) -> Result<EnvelopeRecord, EnvelopeError> {
        self.store.envelope(p.org_id, id).await?.ok_or(EnvelopeError::NotFound)
    }

    async fn view(&self, r: &EnvelopeRecord) -> Result<EnvelopeView, EnvelopeError> {
        let id = r.id.to_string();
        let title = self.vault.open_field(r.id, &title_ctx(&id), &r.title_sealed).await?;
        Ok(EnvelopeView {
            id: r.id,
            title: String::from_utf8(title).map_err(|_| EnvelopeError::Internal("title is not UTF-8".into()))?,
            status: r.status,
            document_sha256: r.document_sha256.clone(),
            document_bytes: r.document_bytes,
            pages: serde_json::from_str(&r.pages).map_err(|e| EnvelopeError::Internal(e.to_string()))?,
            created_unix_ms: r.created_unix_ms,
            updated_unix_ms: r.updated_unix_ms,
        })
    }

    /// Creates a draft from an uploaded document. The bytes are sealed as they stream in; the
    /// upload stops at the size limit; a document that is not a usable PDF is shredded again.
    pub async fn create<S, E>(
        &self,
        p: &Principal,
        title: &str,
        body: S,
        client: &ClientInfo,
    ) -> Result<EnvelopeView, EnvelopeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let title = check_title(title)?;
        let id = EnvelopeId::new();
        self.vault.create_envelope_key(p.org_id, id).await?;
        let max = self.limits.max_bytes as u64;
        let seen = Arc::new(AtomicU64::new(0));
        let too_large = Arc::new(AtomicBool::new(false));
        let (seen2, too_large2) = (seen.clone(), too_large.clone());
        let limited = body.map(move |piece| {
            let piece = piece.map_err(|e| e.to_string())?;
            if seen2.fetch_add(piece.len() as u64, Ordering::SeqCst) + piece.len() as u64 > max {
                too_large2.store(true, Ordering::SeqCst);
                return Err("too large".to_owned());
            }
            Ok(piece)
        });
        let stored = self.vault.put_blob(id, ORIGINAL, 1, limited).await;
        let stored = match stored {
            Ok(s) => s,
            Err(e) => {
                self.discard(id).await;
                return Err(if too_large.load(Ordering::SeqCst) {
                    EnvelopeError::TooLarge(max)
                } else {
                    EnvelopeError::Invalid(format!("upload failed: {e}"))
                });
            }
        };
        let info = match self.inspect(id).await {
            Ok(info) => info,
            Err(e) => {
                self.discard(id).await;
                return Err(e);
            }
        };
        let now = self.clock.now_unix_ms();
        let id_text = id.to_string();
        let record = EnvelopeRecord {
            id,
            org_id: p.org_id,
            created_by: p.user_id,
            title_sealed: self.vault.seal_field(id, &title_ctx(&id_text), title.as_bytes()).await?,
            status: EnvelopeStatus::Draft,
            document_sha256: stored.sha256.clone(),
            document_bytes: stored.plaintext_len,
            pages: serde_json::to_string(&info.pages).map_err(|e| EnvelopeError::Internal(e.to_string()))?,
            created_unix_ms: now,
            updated_unix_ms: now,
        };
        if let Err(e) = self.store.insert_envelope(&record).await {
            self.discard(id).await;
            return Err(e.into());
        }
        self.record(NewEvent::new(EventKind::EnvelopeCreated, Some(id), p.actor(), client.clone())).await?;
        self.record(
            NewEvent::new(EventKind::DocumentUploaded, Some(id), p.actor(), client.clone())
                .document(stored.sha256.clone())
                .detail("bytes", Detail::Int(stored.plaintext_len as i64))
                .detail("pages", Detail::Int(info.pages.len() as i64))
                .detail("pdf_version", Detail::Text(info.version.clone())),
        )
        .await?;
        self.view(&record).await
    }

    async fn inspect(&self, id: EnvelopeId) -> Result<sigillum_pdf::PdfInfo, EnvelopeError> {
        let bytes = self.vault.read_blob(id, ORIGINAL, 1).await?;
        let limits = self.limits;
        tokio::task::spawn_blocking(move || sigillum_pdf::inspect(&bytes, &limits))
            .await
            .map_err(|e| EnvelopeError::Internal(e.to_string()))?
            .map_err(EnvelopeError::Pdf)
    }

    /// Shreds what a failed upload left behind.
    async fn discard(&self, id: EnvelopeId) {
        if let Err(e) = self.vault.shred_envelope(id).await {
            tracing::warn!(envelope = %id, error = %e, "could not discard a failed upload");
        }
    }

    pub async fn get(&self, p: &Principal, id: EnvelopeId) -> Result<EnvelopeView, EnvelopeError> {
        let r = self.authorize(p, id).await?;
        self.view(&r).await
    }

    pub async fn list(&self, p: &Principal) -> Result<Vec<EnvelopeView>, EnvelopeError> {
        let mut out = Vec::new();
        for r in self.store.envelopes(p.org_id, 500).await? {
            out.push(self.view(&r).await?);
        }
        Ok(out)
    }

    /// The original document's bytes (audited as a download).
    pub async fn download(
        &self,
        p: &Principal,
        id: EnvelopeId,
        client: &ClientInfo,
    ) -> Result<(EnvelopeView, Vec<u8>), EnvelopeError> {
        let r = self.authorize(p, id).await?;
        let bytes = self.vault.read_blob(id, ORIGINAL, 1).await?;
        self.record(
            NewEvent::new(EventKind::DocumentDownloaded, Some(id), p.actor(), client.clone())
                .document(r.document_sha256.clone())
                .detail("version", Detail::Text(ORIGINAL.into())),
        )
        .await?;
        Ok((self.view(&r).await?, bytes))
    }

    /// Crypto-shreds the envelope: the event is recorded first (its personal data sealed under
    /// the key that is about to go), then the key and every blob are destroyed.
    pub async fn delete(&self, p: &Principal, id: EnvelopeId, client: &ClientInfo) -> Result<(), EnvelopeError> {
        let r = self.authorize(p, id).await?;
        lifecycle::next(r.status, Action::Delete).map_err(EnvelopeError::Conflict)?;
        self.record(
            NewEvent::new(EventKind::EnvelopeDeleted, Some(id), p.actor(), client.clone()).document(r.document_sha256),
        )
        .await?;
        self.vault.shred_envelope(id).await?;
        self.store.delete_envelope(p.org_id, id).await?;
        Ok(())
    }

    /// The envelope's audit trail from `from` on, with proofs (the caller must own it).
    pub async fn trail(&self, p: &Principal, id: EnvelopeId, from: u64) -> Result<Trail, EnvelopeError> {
        self.authorize(p, id).await?;
        self.audit.envelope_trail(id, from).await.map_err(|e| EnvelopeError::Internal(e.to_string()))
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }
}
