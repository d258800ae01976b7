//! Envelopes: upload (streamed and encrypted as it arrives, then checked and sanitised through
//! `sigillum-pdf`), read, list, download and crypto-shred, each scoped to the caller's
//! organisation and each an audit event. Recipients, fields, sending and signing build on this.
//!
//! The document everyone sees and signs is the sanitised one: when the sanitiser removed active
//! content, its output replaces the stored original and its hash is `document_sha256`; the
//! upload's own hash and what was removed are kept beside it, shown to the sender and recorded
//! in the `document.uploaded` audit event.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;
use sigillum_audit::{Detail, EventKind};
use sigillum_crypto::field::FieldContext;
use sigillum_crypto::KeyManagerError;
use sigillum_pdf::{Limits, PageSize, PdfError, Policy};

use crate::accounts::Principal;
use crate::audit_log::{AuditLog, ClientInfo, NewEvent, Trail};
use crate::ids::EnvelopeId;
use crate::lifecycle::{self, Action, Conflict, EnvelopeStatus};
use crate::ports::{Clock, EnvelopeRecord, EnvelopeStore, FieldRecord, RecipientRecord, RecipientStore, RepoError};
use crate::vault::{Vault, VaultError};
use crate::workflow::ChangeEvent;

pub const ORIGINAL: &str = "original";
pub const FINAL: &str = "final";

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
    /// A signing link that no longer works (expired, or the envelope ended); the code says why.
    #[error("the signing link no longer works: {0}")]
    Gone(&'static str),
    /// The sender set an access code: missing or wrong (the code says which).
    #[error("access code: {0}")]
    AccessCode(&'static str),
    /// The caller's role does not allow this.
    #[error("not allowed for your role")]
    Forbidden,
    /// Too many failed access codes; retry after this many seconds.
    #[error("too many attempts")]
    Throttled(u64),
    /// The page previews are still being rendered.
    #[error("the page previews are not ready yet")]
    PreviewPending,
    /// Page previews cannot be made for this document (the reason is the renderer's).
    #[error("page previews cannot be made: {0}")]
    PreviewFailed(String),
    /// The organisation's plan allows no more envelopes this period.
    #[error("the plan's envelope quota for this period is used up")]
    QuotaExceeded(crate::ports::QuotaExceeded),
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

/// The audit log failing is this server's fault, whatever the reason.
impl From<crate::audit_log::AuditError> for EnvelopeError {
    fn from(e: crate::audit_log::AuditError) -> Self {
        Self::Internal(format!("audit: {e}"))
    }
}

impl From<VaultError> for EnvelopeError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::NotFound => Self::NotFound,
            // The organisation's key was destroyed (erasure): what is left of it cannot be read,
            // e.g. rows brought back by restoring an older backup.
            VaultError::Key(KeyManagerError::Destroyed(_) | KeyManagerError::NotFound(_)) => Self::Gone("erased"),
            e => Self::Internal(e.to_string()),
        }
    }
}

/// One envelope as an export carries it.
pub struct ExportedEnvelope {
    pub detail: EnvelopeDetail,
    pub trail: crate::audit_log::Trail,
    pub original: Vec<u8>,
    pub final_document: Option<Vec<u8>>,
}

/// What the API shows of an envelope.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnvelopeView {
    #[schema(value_type = uuid::Uuid)]
    pub id: EnvelopeId,
    pub title: String,
    pub status: EnvelopeStatus,
    pub document_sha256: String,
    pub document_bytes: u64,
    /// Each page's displayed size in PDF points: `{width, height}`.
    #[schema(value_type = Vec<Object>)]
    pub pages: Vec<PageSize>,
    pub created_unix_ms: i64,
    pub updated_unix_ms: i64,
    pub sent_unix_ms: Option<i64>,
    pub expires_unix_ms: Option<i64>,
    pub finished_unix_ms: Option<i64>,
    /// Hex SHA-256 of the final document, once completed.
    pub final_sha256: Option<String>,
    /// What ingest did to the upload; `null` for envelopes created before uploads were sanitised.
    pub sanitisation: Option<SanitisationView>,
    /// Why page previews cannot be made for this document, if they cannot (it can still be
    /// sent, signed and downloaded).
    pub previews_failed: Option<String>,
}

/// The upload as received, and the active content removed from it before anyone saw it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SanitisationView {
    /// Hex SHA-256 of the file as uploaded (equal to `document_sha256` when nothing was removed).
    pub uploaded_sha256: String,
    /// By kind (`javascript`, `open_action`, `additional_actions`, `launch`, `submit_form`,
    /// `embedded_files`, `rich_media`, `xfa`, …); empty when the upload was clean.
    pub removed: Vec<RemovedView>,
}

/// One kind of active content removed, and how many.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RemovedView {
    pub kind: String,
    pub count: u32,
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

/// Field kinds (DESIGN §7).
pub const FIELD_KINDS: [&str; 7] = ["signature", "initials", "date_signed", "name", "email", "text", "checkbox"];
/// Recipient roles.
pub const ROLES: [&str; 3] = ["signer", "approver", "cc"];
/// Most recipients and fields per envelope.
const MAX_RECIPIENTS: usize = 100;
const MAX_FIELDS: usize = 1000;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecipientView {
    pub id: uuid::Uuid,
    pub name: String,
    pub email: String,
    pub role: String,
    pub routing_order: u32,
    pub status: String,
    /// The language of the recipient's mail.
    pub language: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldView {
    pub id: uuid::Uuid,
    pub recipient_id: uuid::Uuid,
    pub kind: String,
    pub page: u32,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub required: bool,
}

impl From<&FieldRecord> for FieldView {
    fn from(f: &FieldRecord) -> Self {
        Self {
            id: f.id,
            recipient_id: f.recipient_id,
            kind: f.kind.clone(),
            page: f.page,
            x: f.x,
            y: f.y,
            width: f.width,
            height: f.height,
            required: f.required,
        }
    }
}

/// An envelope with its recipients and fields.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnvelopeDetail {
    #[serde(flatten)]
    pub envelope: EnvelopeView,
    pub recipients: Vec<RecipientView>,
    pub fields: Vec<FieldView>,
}

/// A recipient to add (the API's request body).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecipient {
    pub name: String,
    pub email: String,
    pub role: String,
    pub routing_order: u32,
    /// A code the sender tells the recipient separately (4 to 64 characters); asked before the
    /// document opens.
    #[serde(default)]
    pub access_code: Option<String>,
    /// The language of the recipient's mail: `en` (default), `de`, `fr` or `it`.
    #[serde(default)]
    pub language: Option<String>,
}

/// A field to place (the API's request body); `required` defaults to true.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewField {
    pub recipient_id: String,
    pub kind: String,
    pub page: u32,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    #[serde(default = "required_by_default")]
    pub required: bool,
}

fn required_by_default() -> bool {
    true
}

/// An envelope's view, given its opened title.
fn view_with_title(r: &EnvelopeRecord, title: Vec<u8>) -> Result<EnvelopeView, EnvelopeError> {
    Ok(EnvelopeView {
        id: r.id,
        title: String::from_utf8(title).map_err(|_| EnvelopeError::Internal("title is not UTF-8".into()))?,

        status: r.status,
        document_sha256: r.document_sha256.clone(),
        document_bytes: r.document_bytes,
        pages: serde_json::from_str(&r.pages).map_err(|e| EnvelopeError::Internal(e.to_string()))?,
        created_unix_ms: r.created_unix_ms,
        updated_unix_ms: r.updated_unix_ms,
        sent_unix_ms: r.sent_unix_ms,
        expires_unix_ms: r.expires_unix_ms,
        finished_unix_ms: r.finished_unix_ms,
        final_sha256: r.final_sha256.clone(),
        previews_failed: r.previews_failed.clone(),
        sanitisation: match (&r.uploaded_sha256, &r.sanitised_removed) {
            (Some(uploaded), removed) => Some(SanitisationView {
                uploaded_sha256: uploaded.clone(),
                removed: match removed {
                    Some(json) => serde_json::from_str(json).map_err(|e| EnvelopeError::Internal(e.to_string()))?,
                    None => Vec::new(),
                },
            }),
            (None, _) => None,
        },
    })
}

/// A recipient's view, given its opened name and email.
fn recipient_view(r: &RecipientRecord, name: Vec<u8>, email: Vec<u8>) -> Result<RecipientView, EnvelopeError> {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| EnvelopeError::Internal("not UTF-8".into()));
    Ok(RecipientView {
        id: r.id,
        name: text(name)?,
        email: text(email)?,
        role: r.role.clone(),
        routing_order: r.routing_order,
        status: r.status.clone(),
        language: r.language.clone(),
    })
}

pub(crate) fn recipient_ctx<'a>(id: &'a str, column: &'a str) -> FieldContext<'a> {
    FieldContext { table: "recipients", column, row_id: id }
}

#[derive(Clone)]
pub struct Envelopes {
    store: Arc<dyn EnvelopeStore>,
    parties: Arc<dyn RecipientStore>,
    vault: Vault,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    limits: Limits,
    policy: Policy,
}

impl Envelopes {
    pub fn new(
        store: Arc<dyn EnvelopeStore>,
        parties: Arc<dyn RecipientStore>,
        vault: Vault,
        audit: AuditLog,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Self {
        Self { store, parties, vault, audit, clock, limits, policy: Policy::default() }
    }

    /// What the sanitiser removes beyond the always-removed content (e.g. links to the web).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The caller's envelope, or `NotFound` (also for other organisations' envelopes).
    pub async fn authorize(&self, p: &Principal, id: EnvelopeId) -> Result<EnvelopeRecord, EnvelopeError> {
        self.store.envelope(p.org_id, id).await?.ok_or(EnvelopeError::NotFound)
    }

    async fn view(&self, r: &EnvelopeRecord) -> Result<EnvelopeView, EnvelopeError> {
        let id = r.id.to_string();
        let title = self.vault.open_field(r.id, &title_ctx(&id), &r.title_sealed).await?;
        view_with_title(r, title)
    }

    /// Creates a draft from an uploaded document. The bytes are sealed as they stream in; the
    /// upload stops at the size limit; a document that is not a usable PDF is shredded again; a
    /// document from which active content was removed is replaced by its sanitised form.
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
        // The plaintext is kept beside the encrypted write for inspection (bounded by the limit),
        // so the document is not read back and decrypted again.
        let copy = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (seen2, too_large2, copy2) = (seen.clone(), too_large.clone(), copy.clone());
        let limited = body.map(move |piece| {
            let piece = piece.map_err(|e| e.to_string())?;
            if seen2.fetch_add(piece.len() as u64, Ordering::SeqCst) + piece.len() as u64 > max {
                too_large2.store(true, Ordering::SeqCst);
                return Err("too large".to_owned());
            }
            copy2.lock().map_err(|_| "upload buffer unavailable".to_owned())?.extend_from_slice(&piece);
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
        let plain = std::mem::take(&mut *copy.lock().map_err(|_| EnvelopeError::Internal("upload buffer".into()))?);
        let sanitised = match self.sanitize(plain).await {
            Ok(s) => s,
            Err(e) => {
                self.discard(id).await;
                return Err(e);
            }
        };
        let (info, removed) = (sanitised.info, sanitised.removed);
        let kept = if sanitised.changed {
            match self.vault.replace_blob(id, ORIGINAL, 1, sanitised.bytes).await {
                Ok(kept) => kept,
                Err(e) => {
                    self.discard(id).await;
                    return Err(e.into());
                }
            }
        } else {
            stored.clone()
        };
        let removed_json = serde_json::to_string(&removed).map_err(|e| EnvelopeError::Internal(e.to_string()))?;
        let now = self.clock.now_unix_ms();
        let id_text = id.to_string();
        let record = EnvelopeRecord {
            id,
            org_id: p.org_id,
            created_by: p.user_id,
            title_sealed: self.vault.seal_field(id, &title_ctx(&id_text), title.as_bytes()).await?,
            status: EnvelopeStatus::Draft,
            document_sha256: kept.sha256.clone(),
            document_bytes: kept.plaintext_len,
            pages: serde_json::to_string(&info.pages).map_err(|e| EnvelopeError::Internal(e.to_string()))?,
            created_unix_ms: now,
            updated_unix_ms: now,
            message_sealed: None,
            sent_unix_ms: None,
            expires_unix_ms: None,
            remind_every_days: None,
            finished_unix_ms: None,
            final_sha256: None,
            reason_sealed: None,
            uploaded_sha256: Some(stored.sha256.clone()),
            sanitised_removed: Some(removed_json.clone()),
            previews_failed: None,
        };
        let created = NewEvent::new(EventKind::EnvelopeCreated, Some(id), p.actor(), client.clone());
        let uploaded = NewEvent::new(EventKind::DocumentUploaded, Some(id), p.actor(), client.clone())
            .document(kept.sha256.clone())
            .detail("bytes", Detail::Int(kept.plaintext_len as i64))
            .detail("pages", Detail::Int(info.pages.len() as i64))
            .detail("pdf_version", Detail::Text(info.version.clone()))
            .detail("uploaded_sha256", Detail::Text(stored.sha256.clone()))
            .detail("removed", Detail::Text(removed_json));
        // The envelope and its two events must not part: their fallback jobs are stored with it
        // (the second due a millisecond later, so a node that takes over keeps their order).
        let events = async {
            let (created, first) = ChangeEvent::prepare(&self.audit, created, now).await?;
            let (uploaded, second) = ChangeEvent::prepare(&self.audit, uploaded, now + 1).await?;
            Ok::<_, crate::audit_log::AuditError>(([created, uploaded], [first, second]))
        };
        let stored_with = match events.await {
            Ok((events, jobs)) => self.store.insert_envelope(&record, &jobs).await.map(|()| events).map_err(Into::into),
            Err(e) => Err(e.into()),
        };
        let events = match stored_with {
            Ok(events) => events,
            Err(e) => {
                self.discard(id).await;
                return Err(e);
            }
        };
        for e in events {
            e.append(&self.audit).await?;
        }
        self.view(&record).await
    }

    /// Checks and sanitises an upload off the async workers (it is CPU-bound, and bounded by the
    /// limits).
    async fn sanitize(&self, bytes: Vec<u8>) -> Result<sigillum_pdf::Sanitized, EnvelopeError> {
        let (limits, policy) = (self.limits, self.policy);
        tokio::task::spawn_blocking(move || sigillum_pdf::sanitize(&bytes, &limits, &policy))
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

    /// The envelope with its recipients (personal data opened) and fields.
    pub async fn detail(&self, p: &Principal, id: EnvelopeId) -> Result<EnvelopeDetail, EnvelopeError> {
        let (r, records, fields, key) = match self.store.envelope_with_parties(p.org_id, id).await? {
            Some(parts) => (parts.envelope, parts.recipients, parts.fields, Some(parts.key)),
            None => {
                let r = self.authorize(p, id).await?;
                let records = self.parties.recipients(id).await?;
                (r, records, self.parties.fields(id).await?, None)
            }
        };
        // The title and every recipient's name and email open under one unwrap of the key.
        let (env_id, rec_ids) = (r.id.to_string(), records.iter().map(|x| x.id.to_string()).collect::<Vec<_>>());
        let mut items = vec![(title_ctx(&env_id), r.title_sealed.as_slice())];
        for (rec, rid) in records.iter().zip(&rec_ids) {
            items.push((recipient_ctx(rid, "name"), rec.name_sealed.as_slice()));
            items.push((recipient_ctx(rid, "email"), rec.email_sealed.as_slice()));
        }
        let opened = match &key {
            Some(k) => self.vault.open_fields_with(k, &items).await?,
            None => self.vault.open_fields(id, &items).await?,
        };
        let mut opened = opened.into_iter();
        let mut next =
            || opened.next().unwrap_or(Err(VaultError::Integrity("missing value"))).map_err(EnvelopeError::from);
        let envelope = view_with_title(&r, next()?)?;
        let mut recipients = Vec::with_capacity(records.len());
        for rec in &records {
            let (name, email) = (next()?, next()?);
            recipients.push(recipient_view(rec, name, email)?);
        }
        let fields = fields.iter().map(FieldView::from).collect();
        Ok(EnvelopeDetail { envelope, recipients, fields })
    }

    /// Adds a recipient to a draft.
    pub async fn add_recipient(
        &self,
        p: &Principal,
        id: EnvelopeId,
        input: NewRecipient,
        client: &ClientInfo,
    ) -> Result<RecipientView, EnvelopeError> {
        let env = self.authorize(p, id).await?;
        lifecycle::next(env.status, Action::Edit).map_err(EnvelopeError::Conflict)?;
        let name = check_title(&input.name)
            .map_err(|_| EnvelopeError::Invalid("name must be 1 to 300 printable characters".into()))?;
        let email =
            crate::accounts::normalise_email(&input.email).map_err(|e| EnvelopeError::Invalid(e.to_string()))?;
        if !ROLES.contains(&input.role.as_str()) {
            return Err(EnvelopeError::Invalid("role must be signer, approver or cc".into()));
        }
        if !(1..=100).contains(&input.routing_order) {
            return Err(EnvelopeError::Invalid("routing_order must be from 1 to 100".into()));
        }
        if self.parties.recipients(id).await?.len() >= MAX_RECIPIENTS {
            return Err(EnvelopeError::Invalid(format!("an envelope has at most {MAX_RECIPIENTS} recipients")));
        }
        let access_code_hash = match input.access_code.as_deref() {
            None => None,
            Some(code) if (4..=64).contains(&code.chars().count()) => Some(
                crate::accounts::hash_password(code.to_owned().into())
                    .await
                    .map_err(|e| EnvelopeError::Internal(e.to_string()))?,
            ),
            Some(_) => return Err(EnvelopeError::Invalid("access_code must be 4 to 64 characters".into())),
        };
        let language = input.language.clone().unwrap_or_else(|| "en".into());
        if !crate::workflow::MAIL_LANGUAGES.contains(&language.as_str()) {
            return Err(EnvelopeError::Invalid("language must be en, de, fr or it".into()));
        }
        let rid = uuid::Uuid::now_v7();
        let rid_text = rid.to_string();
        let record = RecipientRecord {
            id: rid,
            envelope_id: id,
            name_sealed: self.vault.seal_field(id, &recipient_ctx(&rid_text, "name"), name.as_bytes()).await?,
            email_sealed: self.vault.seal_field(id, &recipient_ctx(&rid_text, "email"), email.as_bytes()).await?,
            role: input.role.clone(),
            routing_order: input.routing_order,
            status: "created".into(),
            created_unix_ms: self.clock.now_unix_ms(),
            access_code_hash,
            consented_unix_ms: None,
            finished_unix_ms: None,
            signature_kind: None,
            signature_sealed: None,
            signature_font: None,
            language,
        };
        let added = NewEvent::new(EventKind::RecipientAdded, Some(id), p.actor(), client.clone())
            .document(env.document_sha256)
            .detail("recipient_id", Detail::Text(rid_text))
            .detail("role", Detail::Text(input.role))
            .detail("routing_order", Detail::Int(i64::from(input.routing_order)));
        let (added, job) = ChangeEvent::prepare(&self.audit, added, record.created_unix_ms).await?;
        self.parties.insert_recipient(&record, &[job]).await?;
        added.append(&self.audit).await?;
        Ok(RecipientView {
            id: rid,
            name,
            email,
            role: record.role,
            routing_order: record.routing_order,
            status: record.status,
            language: record.language,
        })
    }

    /// Places a field for one of the draft's signers or approvers, inside its page.
    pub async fn add_field(
        &self,
        p: &Principal,
        id: EnvelopeId,
        input: NewField,
        client: &ClientInfo,
    ) -> Result<FieldView, EnvelopeError> {
        let env = self.authorize(p, id).await?;
        lifecycle::next(env.status, Action::Edit).map_err(EnvelopeError::Conflict)?;
        if !FIELD_KINDS.contains(&input.kind.as_str()) {
            return Err(EnvelopeError::Invalid(format!("kind must be one of {}", FIELD_KINDS.join(", "))));
        }
        let recipient = uuid::Uuid::parse_str(&input.recipient_id)
            .ok()
            .ok_or_else(|| EnvelopeError::Invalid("recipient_id is not a recipient of this envelope".into()))?;
        let recipients = self.parties.recipients(id).await?;
        let r = recipients
            .iter()
            .find(|r| r.id == recipient)
            .ok_or_else(|| EnvelopeError::Invalid("recipient_id is not a recipient of this envelope".into()))?;
        if r.role == "cc" {
            return Err(EnvelopeError::Invalid("a cc recipient fills no fields".into()));
        }
        let pages: Vec<PageSize> =
            serde_json::from_str(&env.pages).map_err(|e| EnvelopeError::Internal(e.to_string()))?;
        let page = pages
            .get((input.page as usize).wrapping_sub(1))
            .ok_or_else(|| EnvelopeError::Invalid(format!("page must be from 1 to {}", pages.len())))?;
        let (x, y, w, h) = (input.x, input.y, input.width, input.height);
        let finite = [x, y, w, h].iter().all(|v| v.is_finite());
        if !finite
            || x < 0.0
            || y < 0.0
            || w < 4.0
            || h < 4.0
            || x + w > f64::from(page.width)
            || y + h > f64::from(page.height)
        {
            return Err(EnvelopeError::Invalid(format!(
                "the field must lie inside page {} ({} × {} points, origin top-left) and be at least 4 points wide and high",
                input.page, page.width, page.height
            )));
        }
        if self.parties.fields(id).await?.len() >= MAX_FIELDS {
            return Err(EnvelopeError::Invalid(format!("an envelope has at most {MAX_FIELDS} fields")));
        }
        let record = FieldRecord {
            id: uuid::Uuid::now_v7(),
            envelope_id: id,
            recipient_id: recipient,
            kind: input.kind,
            page: input.page,
            x,
            y,
            width: w,
            height: h,
            required: input.required,
            created_unix_ms: self.clock.now_unix_ms(),
        };
        let added = NewEvent::new(EventKind::FieldAdded, Some(id), p.actor(), client.clone())
            .document(env.document_sha256)
            .detail("field_id", Detail::Text(record.id.to_string()))
            .detail("recipient_id", Detail::Text(recipient.to_string()))
            .detail("kind", Detail::Text(record.kind.clone()))
            .detail("page", Detail::Int(i64::from(record.page)));
        let (added, job) = ChangeEvent::prepare(&self.audit, added, record.created_unix_ms).await?;
        self.parties.insert_field(&record, &[job]).await?;
        added.append(&self.audit).await?;
        Ok(FieldView::from(&record))
    }

    pub async fn list(&self, p: &Principal) -> Result<Vec<EnvelopeView>, EnvelopeError> {
        let mut out = Vec::new();
        for r in self.store.envelopes(p.org_id, 500).await? {
            out.push(self.view(&r).await?);
        }
        Ok(out)
    }

    /// Starts an export of the caller's organisation (owners only): the ids of every envelope,
    /// oldest first, after recording `organisation.exported`. Each is then read with
    /// [`Envelopes::export_envelope`], one at a time, so memory holds one envelope's documents.
    pub async fn export_ids(&self, p: &Principal, client: &ClientInfo) -> Result<Vec<EnvelopeId>, EnvelopeError> {
        if p.role != crate::ports::Role::Owner {
            return Err(EnvelopeError::Forbidden);
        }
        let mut records = self.store.envelopes(p.org_id, u32::MAX).await?;
        records.sort_by_key(|r| r.created_unix_ms);
        self.audit
            .record(
                NewEvent::new(EventKind::OrganisationExported, None, p.actor(), client.clone())
                    .detail("org_id", Detail::Text(p.org_id.to_string()))
                    .detail("envelopes", Detail::Int(records.len() as i64)),
            )
            .await?;
        Ok(records.iter().map(|r| r.id).collect())
    }

    /// One envelope of an export: its detail, its whole audit trail with proofs, its original
    /// and (once completed) its final document.
    pub async fn export_envelope(&self, p: &Principal, id: EnvelopeId) -> Result<ExportedEnvelope, EnvelopeError> {
        let detail = self.detail(p, id).await?;
        let trail = self.trail(p, id, 0).await?;
        let original = self.vault.read_blob(id, ORIGINAL, 1).await?;
        let final_document = match detail.envelope.status {
            EnvelopeStatus::Completed => Some(self.vault.read_blob(id, FINAL, 1).await?),
            _ => None,
        };
        Ok(ExportedEnvelope { detail, trail, original, final_document })
    }

    /// The original or the final document's bytes (audited as a download).
    pub async fn download(
        &self,
        p: &Principal,
        id: EnvelopeId,
        version: &str,
        client: &ClientInfo,
    ) -> Result<(EnvelopeView, Vec<u8>), EnvelopeError> {
        let r = self.authorize(p, id).await?;
        let sha = match (version, &r.final_sha256) {
            (ORIGINAL, _) => r.document_sha256.clone(),
            (FINAL, Some(sha)) if r.status == EnvelopeStatus::Completed => sha.clone(),
            (FINAL, _) => {
                return Err(EnvelopeError::Conflict(Conflict {
                    code: "no_final_document",
                    message: "the final document exists once every signer has completed",
                }))
            }
            _ => return Err(EnvelopeError::Invalid("version is original or final".into())),
        };
        let version = if version == FINAL { FINAL } else { ORIGINAL };
        let bytes = self.vault.read_blob(id, version, 1).await?;
        self.audit
            .record(
                NewEvent::new(EventKind::DocumentDownloaded, Some(id), p.actor(), client.clone())
                    .document(sha)
                    .detail("version", Detail::Text(version.into())),
            )
            .await?;
        Ok((self.view(&r).await?, bytes))
    }

    /// Crypto-shreds the envelope: the event is recorded first (its personal data sealed under
    /// the key that is about to go), then the key and every blob are destroyed.
    pub async fn delete(&self, p: &Principal, id: EnvelopeId, client: &ClientInfo) -> Result<(), EnvelopeError> {
        let r = self.authorize(p, id).await?;
        lifecycle::next(r.status, Action::Delete).map_err(EnvelopeError::Conflict)?;
        self.audit
            .record(
                NewEvent::new(EventKind::EnvelopeDeleted, Some(id), p.actor(), client.clone())
                    .document(r.document_sha256),
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
