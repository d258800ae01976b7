//! Ports: what the core needs from the outside world. Adapters live in other crates.

use std::ops::Range;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::ids::{EnvelopeId, OrgId};

/// Wall-clock time, injected so rules and tests control it.
pub trait Clock: Send + Sync {
    fn now_unix_ms(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;
impl Clock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    #[error("invalid blob key")]
    InvalidKey,
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

pub type BlobStream = BoxStream<'static, Result<Bytes, BlobError>>;

/// An in-progress blob write. Nothing is visible under the key until [`BlobWriter::commit`]
/// returns, and then the whole blob is, durably.
#[async_trait::async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, data: Bytes) -> Result<(), BlobError>;
    /// Makes the blob durable and visible; returns its size.
    async fn commit(self: Box<Self>) -> Result<u64, BlobError>;
    async fn abort(self: Box<Self>) -> Result<(), BlobError>;
}

/// Stores opaque (already encrypted) blobs by key.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    fn backend(&self) -> &'static str;
    async fn begin(&self, key: &str) -> Result<Box<dyn BlobWriter>, BlobError>;
    async fn get(&self, key: &str) -> Result<BlobStream, BlobError>;
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BlobError>;
    async fn size(&self, key: &str) -> Result<Option<u64>, BlobError>;
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;
    async fn health(&self) -> Result<(), BlobError>;
}

/// Checks a blob key: segments of `[a-z0-9_.-]`, separated by `/`, no `..`, at most 512 bytes.
pub fn valid_blob_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && !seg.starts_with('.')
                && seg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        })
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organisation {
    pub id: OrgId,
    pub name: String,
    pub created_unix_ms: i64,
}

/// An envelope's DEK, stored only wrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeKey {
    pub envelope_id: EnvelopeId,
    pub org_id: OrgId,
    pub dek_id: [u8; 16],
    pub kek_key_id: String,
    pub kek_version: u32,
    pub wrapped: Vec<u8>,
    pub created_unix_ms: i64,
}

/// A committed blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRecord {
    pub key: String,
    pub envelope_id: EnvelopeId,
    pub kind: String,
    pub version: u32,
    pub plaintext_len: u64,
    pub stored_len: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    pub created_unix_ms: i64,
}

/// One use of a key-encryption key (DESIGN §4: every unwrap is recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUse {
    pub kek_key_id: String,
    pub kek_version: u32,
    pub purpose: String,
    pub envelope_id: Option<EnvelopeId>,
    pub node: String,
    pub at_unix_ms: i64,
}

/// Metadata storage. Every method is one transaction.
#[async_trait::async_trait]
pub trait Repository: Send + Sync {
    fn backend(&self) -> &'static str;
    async fn health(&self) -> Result<(), RepoError>;

    async fn insert_organisation(&self, org: &Organisation) -> Result<(), RepoError>;
    async fn get_organisation(&self, id: OrgId) -> Result<Organisation, RepoError>;
    async fn list_organisations(&self) -> Result<Vec<Organisation>, RepoError>;
    async fn delete_organisation(&self, id: OrgId) -> Result<(), RepoError>;
    /// Days after an envelope ends until it is erased (`None`: kept until deleted).
    async fn retention_days(&self, id: OrgId) -> Result<Option<u32>, RepoError>;
    /// Sets the organisation's retention and stores `jobs` (its audit event's fallback) in the
    /// same transaction.
    async fn set_retention_days(
        &self,
        id: OrgId,
        days: Option<u32>,
        now_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<(), RepoError>;

    /// Stores a new envelope key together with the key-use record of its wrap, atomically.
    async fn insert_envelope_key(&self, key: &EnvelopeKey, wrap_use: &KeyUse) -> Result<(), RepoError>;
    async fn get_envelope_key(&self, envelope: EnvelopeId) -> Result<EnvelopeKey, RepoError>;
    async fn list_envelope_keys(&self, org: Option<OrgId>) -> Result<Vec<EnvelopeKey>, RepoError>;
    /// Replaces a wrapped DEK if it is still wrapped under `expected_version` (rewrap).
    async fn replace_wrapped_dek(
        &self,
        envelope: EnvelopeId,
        expected_version: u32,
        new_version: u32,
        wrapped: &[u8],
    ) -> Result<(), RepoError>;
    /// Deletes the wrapped DEK (crypto-shredding one envelope) and its blob records.
    async fn delete_envelope_key(&self, envelope: EnvelopeId) -> Result<(), RepoError>;

    async fn insert_blob(&self, blob: &BlobRecord) -> Result<(), RepoError>;
    /// Points the blob `(envelope, kind, version)` at new content (its key, lengths and hash),
    /// returning the record it replaces; `NotFound` when there is none.
    async fn replace_blob(&self, blob: &BlobRecord) -> Result<BlobRecord, RepoError>;
    async fn get_blob(&self, envelope: EnvelopeId, kind: &str, version: u32) -> Result<BlobRecord, RepoError>;
    async fn list_blobs(&self, envelope: EnvelopeId) -> Result<Vec<BlobRecord>, RepoError>;

    async fn record_key_use(&self, u: &KeyUse) -> Result<(), RepoError>;
    async fn list_key_uses(&self, envelope: Option<EnvelopeId>) -> Result<Vec<KeyUse>, RepoError>;
}

/// A leaf about to be appended to the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLeaf {
    pub envelope_id: Option<EnvelopeId>,
    pub leaf_hash: [u8; 32],
    /// Canonical event bytes (no personal data).
    pub event: Vec<u8>,
    /// The event's disclosure, sealed under the envelope key.
    pub disclosure: Option<Vec<u8>>,
    /// A job the append marks done in its own transaction: the job that would append this
    /// event, had the node that prepared it stopped first.
    pub settles_job: Option<String>,
}

/// A stored leaf with the hashes of the tree nodes its arrival completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLeaf {
    pub seq: u64,
    pub envelope_id: Option<EnvelopeId>,
    /// The previous event of the same envelope (the chain a trail is read by).
    pub prev_in_envelope: Option<u64>,
    pub leaf_hash: [u8; 32],
    /// Hashes of the nodes at levels 1, 2, … completed when this leaf was appended, concatenated.
    pub parents: Vec<u8>,
    pub event: Vec<u8>,
    pub disclosure: Option<Vec<u8>>,
    pub created_unix_ms: i64,
}

/// A signed checkpoint as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: [u8; 32],
    pub note: String,
    pub created_unix_ms: i64,
}

/// The log's Ed25519 signing key, its seed wrapped by the key manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogKeyRecord {
    pub origin: String,
    pub verifier_key: String,
    pub kek_key_id: String,
    pub kek_version: u32,
    pub wrapped_seed: Vec<u8>,
    pub created_unix_ms: i64,
}

/// Signs the checkpoint for `(size, root)`; called inside the append transaction.
pub type CheckpointSigner<'a> = &'a (dyn Fn(u64, &[u8; 32]) -> Option<String> + Send + Sync);

/// Storage of the audit log: leaves, the complete-subtree hashes carried by each leaf row, and
/// every published checkpoint.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `leaves` as one transaction that serialises with every other appender (any process
    /// on the same database): gap-free consecutive sequence numbers, the completed node hashes, and
    /// a checkpoint for the new size signed by `sign`. Returns the first sequence number and the
    /// checkpoint. Durable when it returns.
    async fn append_leaves(
        &self,
        leaves: Vec<NewLeaf>,
        sign: CheckpointSigner<'_>,
        now_unix_ms: i64,
    ) -> Result<(u64, StoredCheckpoint), RepoError>;
    async fn tree_size(&self) -> Result<u64, RepoError>;
    /// Hashes of complete subtrees `(level, index)`; absent ones are left out.
    async fn tree_nodes(
        &self,
        ids: &[sigillum_audit::NodeId],
    ) -> Result<std::collections::HashMap<sigillum_audit::NodeId, [u8; 32]>, RepoError>;
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, RepoError>;
    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, RepoError>;
    /// Checkpoints with `size >= from`, smallest first.
    async fn checkpoints_from(&self, from: u64, limit: u32) -> Result<Vec<StoredCheckpoint>, RepoError>;
    /// Leaves with `seq >= from`, in order.
    async fn leaves_from(&self, from: u64, limit: u32) -> Result<Vec<StoredLeaf>, RepoError>;
    /// One envelope's leaves with `seq >= from`, in order.
    async fn envelope_leaves(&self, envelope: EnvelopeId, from: u64) -> Result<Vec<StoredLeaf>, RepoError>;
    async fn log_key(&self) -> Result<Option<LogKeyRecord>, RepoError>;
    /// Stores the log key unless one exists (then `Conflict`).
    async fn insert_log_key(&self, key: &LogKeyRecord) -> Result<(), RepoError>;
}

/// Certificates of the internal PKI (root, seal, TSA), by name. The keys stay in the key manager.
#[async_trait::async_trait]
pub trait PkiStore: Send + Sync {
    async fn pki_certificate(&self, name: &str) -> Result<Option<Vec<u8>>, RepoError>;
    /// Stores a certificate unless one of that name exists (then `Conflict`): when several nodes
    /// start at once, the first one's certificate wins.
    async fn insert_pki_certificate(&self, name: &str, der: &[u8], now_unix_ms: i64) -> Result<(), RepoError>;
}

/// A member's role in their organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: crate::ids::UserId,
    pub org_id: OrgId,
    /// Lower-case.
    pub email: String,
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    pub created_unix_ms: i64,
}

/// Who a credential belongs to: the user's fields an authenticated request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserIdentity {
    pub id: crate::ids::UserId,
    pub org_id: OrgId,
    pub email: String,
    pub name: String,
    pub role: Role,
}

/// A browser session; the token and the CSRF token are kept only as SHA-256 hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_hash: [u8; 32],
    pub user_id: crate::ids::UserId,
    pub csrf_hash: [u8; 32],
    pub created_unix_ms: i64,
    pub last_seen_unix_ms: i64,
    /// Absolute expiry.
    pub expires_unix_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: crate::ids::ApiKeyId,
    pub org_id: OrgId,
    pub user_id: crate::ids::UserId,
    pub name: String,
    /// The first characters of the key, to recognise it in a list.
    pub prefix: String,
    pub key_hash: [u8; 32],
    pub created_unix_ms: i64,
    pub last_used_unix_ms: Option<i64>,
    pub revoked_unix_ms: Option<i64>,
}

/// Storage of accounts, sessions, API keys and login-failure counters.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {
    /// `Conflict` when the email is taken. Every change of this store that takes `jobs` stores
    /// them (its audit event's fallback) in its own transaction.
    async fn insert_user(&self, user: &UserRecord, jobs: &[NewJob]) -> Result<(), RepoError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, RepoError>;
    async fn user(&self, id: crate::ids::UserId) -> Result<UserRecord, RepoError>;
    /// The organisation's users, oldest first.
    async fn users(&self, org: OrgId) -> Result<Vec<UserRecord>, RepoError>;
    /// Deletes a user of `org` with their sessions and API keys; `NotFound` otherwise.
    async fn delete_user(
        &self,
        org: OrgId,
        id: crate::ids::UserId,
        now_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<(), RepoError>;

    async fn insert_session(&self, session: &SessionRecord, jobs: &[NewJob]) -> Result<(), RepoError>;
    /// A session with the identity of its user, in one round trip (every request asks).
    async fn session_with_user(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(SessionRecord, UserIdentity)>, RepoError>;
    async fn touch_session(&self, token_hash: &[u8; 32], now_unix_ms: i64) -> Result<(), RepoError>;
    async fn delete_session(&self, token_hash: &[u8; 32], now_unix_ms: i64, jobs: &[NewJob]) -> Result<(), RepoError>;

    async fn insert_api_key(&self, key: &ApiKeyRecord, jobs: &[NewJob]) -> Result<(), RepoError>;
    /// An API key with the identity of its user, in one round trip (every request asks).
    async fn api_key_with_user(&self, key_hash: &[u8; 32]) -> Result<Option<(ApiKeyRecord, UserIdentity)>, RepoError>;
    async fn api_keys(&self, org: OrgId) -> Result<Vec<ApiKeyRecord>, RepoError>;
    /// Revokes a key of `org`; `NotFound` if `org` has no such key.
    async fn revoke_api_key(
        &self,
        org: OrgId,
        id: crate::ids::ApiKeyId,
        now_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<(), RepoError>;
    async fn touch_api_key(&self, id: crate::ids::ApiKeyId, now_unix_ms: i64) -> Result<(), RepoError>;

    /// Failures counted for `scope` in the window that is current at `now` (0 if it expired).
    async fn login_failures(&self, scope: &str, now_unix_ms: i64, window_ms: i64) -> Result<u32, RepoError>;
    /// Counts one failure for `scope`, starting a new window if the old one expired.
    async fn record_login_failure(&self, scope: &str, now_unix_ms: i64, window_ms: i64) -> Result<(), RepoError>;
    async fn clear_login_failures(&self, scope: &str) -> Result<(), RepoError>;

    /// Stores a new (not yet enabled) TOTP secret; `Conflict` if TOTP is enabled already.
    async fn put_pending_totp(&self, t: &TotpRecord) -> Result<(), RepoError>;
    async fn totp(&self, user: crate::ids::UserId) -> Result<Option<TotpRecord>, RepoError>;
    /// Enables the pending secret and replaces the recovery codes; `Conflict` if nothing is pending.
    async fn enable_totp(
        &self,
        user: crate::ids::UserId,
        now_unix_ms: i64,
        recovery_hashes: &[[u8; 32]],
        jobs: &[NewJob],
    ) -> Result<(), RepoError>;
    /// Records `step` as used if it is later than every step used before; false for a replay.
    async fn use_totp_step(&self, user: crate::ids::UserId, step: i64) -> Result<bool, RepoError>;
    /// Marks an unused recovery code used and stores `jobs` (its audit event's fallback job) in
    /// the same transaction; false, storing nothing, if there is no unused code with this hash.
    async fn use_recovery_code(
        &self,
        user: crate::ids::UserId,
        hash: &[u8; 32],
        now_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<bool, RepoError>;
    async fn unused_recovery_codes(&self, user: crate::ids::UserId) -> Result<u32, RepoError>;
}

/// A user's TOTP secret, wrapped by the key manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpRecord {
    pub user_id: crate::ids::UserId,
    pub kek_key_id: String,
    pub kek_version: u32,
    pub secret_wrapped: Vec<u8>,
    pub enabled_unix_ms: Option<i64>,
    pub last_step: Option<i64>,
    pub created_unix_ms: i64,
}

/// An envelope's stored record.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvelopeRecord {
    pub id: EnvelopeId,
    pub org_id: OrgId,
    pub created_by: crate::ids::UserId,
    /// The title, sealed under the envelope key.
    pub title_sealed: Vec<u8>,
    pub status: crate::lifecycle::EnvelopeStatus,
    /// Hex SHA-256 of the current document.
    pub document_sha256: String,
    pub document_bytes: u64,
    /// JSON array of `{width, height}` in PDF points.
    pub pages: String,
    pub created_unix_ms: i64,
    pub updated_unix_ms: i64,
    /// What the sender said when sending, sealed.
    pub message_sealed: Option<Vec<u8>>,
    pub sent_unix_ms: Option<i64>,
    pub expires_unix_ms: Option<i64>,
    pub remind_every_days: Option<u32>,
    /// When it reached completed, declined, voided or expired.
    pub finished_unix_ms: Option<i64>,
    /// Hex SHA-256 of the final document.
    pub final_sha256: Option<String>,
    /// Why it was voided or declined, sealed.
    pub reason_sealed: Option<Vec<u8>>,
    /// Hex SHA-256 of the file as uploaded, before sanitising (`document_sha256` is the document
    /// kept); none for envelopes made before uploads were sanitised.
    pub uploaded_sha256: Option<String>,
    /// JSON array of `{kind, count}`: the active content removed from the upload.
    pub sanitised_removed: Option<String>,
    /// Why page previews cannot be made (the renderer refused the document); none while they
    /// are pending or once they are made.
    pub previews_failed: Option<String>,
}

#[async_trait::async_trait]
pub trait EnvelopeStore: Send + Sync {
    /// Stores a new envelope and `jobs` (its audit events' fallbacks) in one transaction.
    async fn insert_envelope(&self, e: &EnvelopeRecord, jobs: &[NewJob]) -> Result<(), RepoError>;
    /// The envelope if it belongs to `org` (otherwise `None`: existence is not revealed).
    async fn envelope(&self, org: OrgId, id: EnvelopeId) -> Result<Option<EnvelopeRecord>, RepoError>;
    /// The organisation's envelopes, newest first.
    async fn envelopes(&self, org: OrgId, limit: u32) -> Result<Vec<EnvelopeRecord>, RepoError>;
    async fn delete_envelope(&self, org: OrgId, id: EnvelopeId) -> Result<(), RepoError>;
    /// Up to `limit` envelopes whose organisation's retention has run out at `now` (ended more
    /// than the organisation's retention days ago), oldest first, with their document hashes.
    async fn past_retention(&self, now_unix_ms: i64, limit: u32)
        -> Result<Vec<(OrgId, EnvelopeId, String)>, RepoError>;
    /// The envelope (if it belongs to `org`) with its recipients, fields and wrapped key, read
    /// together in one snapshot where the backend makes that cheaper than four reads (SQLite:
    /// each read transaction takes and releases the WAL's shared-memory locks). `None`: read
    /// them one by one (the default, and also when the envelope or its key is not found).
    async fn envelope_with_parties(&self, _org: OrgId, _id: EnvelopeId) -> Result<Option<EnvelopeParts>, RepoError> {
        Ok(None)
    }
}

/// What [`EnvelopeStore::envelope_with_parties`] reads at once.
#[derive(Clone, Debug)]
pub struct EnvelopeParts {
    pub envelope: EnvelopeRecord,
    pub recipients: Vec<RecipientRecord>,
    pub fields: Vec<FieldRecord>,
    pub key: EnvelopeKey,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecipientRecord {
    pub id: uuid::Uuid,
    pub envelope_id: EnvelopeId,
    pub name_sealed: Vec<u8>,
    pub email_sealed: Vec<u8>,
    /// `signer`, `approver` or `cc`.
    pub role: String,
    pub routing_order: u32,
    /// `created`, `sent`, `delivered`, `signed` or `declined`.
    pub status: String,
    pub created_unix_ms: i64,
    /// Argon2id hash of the access code the sender set, if any.
    pub access_code_hash: Option<String>,
    pub consented_unix_ms: Option<i64>,
    /// When the recipient signed or declined.
    pub finished_unix_ms: Option<i64>,
    /// `drawn` or `typed`.
    pub signature_kind: Option<String>,
    /// The PNG or the typed text, sealed.
    pub signature_sealed: Option<Vec<u8>>,
    /// The script face of a typed signature (`dancing-script`, `kaushan-script`); `None` for a
    /// drawn one, or a typed one from before the choice (Dancing Script).
    pub signature_font: Option<String>,
    /// The language of the recipient's mail (`en`, `de`, `fr`, `it`).
    pub language: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldRecord {
    pub id: uuid::Uuid,
    pub envelope_id: EnvelopeId,
    pub recipient_id: uuid::Uuid,
    pub kind: String,
    /// 1-based.
    pub page: u32,
    /// PDF points, origin top-left.
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub required: bool,
    pub created_unix_ms: i64,
}

/// Recipients and fields of envelopes (always read through an envelope already authorised).
#[async_trait::async_trait]
pub trait RecipientStore: Send + Sync {
    /// Stores a recipient and `jobs` (its audit event's fallback) in one transaction.
    async fn insert_recipient(&self, r: &RecipientRecord, jobs: &[NewJob]) -> Result<(), RepoError>;
    async fn recipients(&self, envelope: EnvelopeId) -> Result<Vec<RecipientRecord>, RepoError>;
    /// Stores a field and `jobs` (its audit event's fallback) in one transaction.
    async fn insert_field(&self, f: &FieldRecord, jobs: &[NewJob]) -> Result<(), RepoError>;
    async fn fields(&self, envelope: EnvelopeId) -> Result<Vec<FieldRecord>, RepoError>;
}

/// A field's value as the signer gave it, sealed under the envelope key.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldValueRecord {
    pub field_id: uuid::Uuid,
    pub envelope_id: EnvelopeId,
    pub recipient_id: uuid::Uuid,
    pub value_sealed: Vec<u8>,
    pub created_unix_ms: i64,
}

/// A signer's capability token, kept only as its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningTokenRecord {
    pub token_hash: [u8; 32],
    pub recipient_id: uuid::Uuid,
    pub envelope_id: EnvelopeId,
    /// `email` or `embedded`.
    pub purpose: String,
    pub created_unix_ms: i64,
    pub expires_unix_ms: i64,
}

/// Work for the job queue. A job id is chosen by the caller: a deterministic id (`invite:<recipient>`)
/// makes enqueueing idempotent, since a second job with the same id is ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    pub id: String,
    pub kind: String,
    /// JSON; never personal data (jobs name rows, the rows hold the sealed values).
    pub payload: String,
    pub run_at_unix_ms: i64,
    pub max_attempts: u32,
}

/// A leased job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: String,
    /// Attempts including this one.
    pub attempts: u32,
    pub max_attempts: u32,
    /// When it was due (for this attempt): the claim's time minus this is how long it waited.
    pub run_at_unix_ms: i64,
}

/// A change of an envelope's status, applied only if the status is still `from`, together with
/// the recipient status changes and jobs that belong to it (one transaction).
#[derive(Clone, Debug, PartialEq)]
pub struct EnvelopeChange {
    pub envelope_id: EnvelopeId,
    pub from: crate::lifecycle::EnvelopeStatus,
    pub to: crate::lifecycle::EnvelopeStatus,
    pub now_unix_ms: i64,
    /// Set by sending: message, expiry, reminder interval.
    pub send: Option<SendOptions>,
    pub reason_sealed: Option<Vec<u8>>,
    pub final_sha256: Option<String>,
    pub jobs: Vec<NewJob>,
    /// Moves the routing on in the same transaction (sending): see [`RecipientOutcome::route_on`].
    pub route_on: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SendOptions {
    pub message_sealed: Option<Vec<u8>>,
    pub expires_unix_ms: i64,
    pub remind_every_days: Option<u32>,
}

/// What a signer submits, sealed, stored in one transaction with the jobs that follow.
#[derive(Clone, Debug, PartialEq)]
pub struct RecipientOutcome {
    pub envelope_id: EnvelopeId,
    pub recipient_id: uuid::Uuid,
    /// `signed` or `declined`.
    pub status: &'static str,
    pub now_unix_ms: i64,
    pub values: Vec<FieldValueRecord>,
    pub signature_kind: Option<String>,
    pub signature_sealed: Option<Vec<u8>>,
    /// The script face of a typed signature.
    pub signature_font: Option<String>,
    /// A decline ends the envelope: its reason, sealed, goes on the envelope.
    pub decline_reason_sealed: Option<Vec<u8>>,
    pub jobs: Vec<NewJob>,
    /// Moves the routing on in the same transaction: the store reads the envelope's recipients
    /// after the change (under the envelope row's lock, so every outcome committed before is
    /// seen) and writes what [`crate::workflow::route_on`] decides: the next signers invited,
    /// or the envelope's finalisation queued. A node that stops after the commit leaves nothing
    /// for another node to pick up later.
    pub route_on: bool,
}

/// What moving an envelope on writes ([`crate::workflow::route_on`]): the recipients whose turn
/// has come, each with its invitation job, and the jobs that follow (the envelope's
/// finalisation once everyone who acts has signed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutedOn {
    pub activate: Vec<(uuid::Uuid, NewJob)>,
    pub jobs: Vec<NewJob>,
}

/// Sending and signing state.
#[async_trait::async_trait]
pub trait SigningStore: Send + Sync {
    /// Applies `change`; `Conflict` if the envelope's status is no longer `change.from`.
    async fn change_envelope(&self, change: &EnvelopeChange) -> Result<(), RepoError>;
    /// Writes `routed` in one transaction: each recipient still `created` moves to `sent` with its
    /// invitation (one already moved keeps its state and gets none), and the other jobs are queued.
    async fn apply_routing(&self, envelope: EnvelopeId, routed: &RoutedOn, now_unix_ms: i64) -> Result<(), RepoError>;
    /// Marks a recipient `delivered` (first view) if it was `sent`; true if it changed. Only then
    /// are `jobs` (the first view's audit fallback) stored, in the same transaction.
    async fn mark_delivered(&self, recipient: uuid::Uuid, now_unix_ms: i64, jobs: &[NewJob])
        -> Result<bool, RepoError>;
    /// Records the recipient's consent (its first time is kept) and stores `jobs` (the consent
    /// event's audit fallback) in the same transaction.
    async fn record_consent(&self, recipient: uuid::Uuid, now_unix_ms: i64, jobs: &[NewJob]) -> Result<(), RepoError>;
    /// Stores a signer's completion or decline. Serialises with every other outcome of the same
    /// envelope (the envelope row is locked first); `Conflict` if the envelope is no longer `sent`
    /// or the recipient already finished.
    async fn record_outcome(&self, outcome: &RecipientOutcome) -> Result<(), RepoError>;
    async fn field_values(&self, envelope: EnvelopeId) -> Result<Vec<FieldValueRecord>, RepoError>;
    /// The envelope with this id, whatever its organisation (for jobs and signing tokens).
    async fn envelope_by_id(&self, id: EnvelopeId) -> Result<Option<EnvelopeRecord>, RepoError>;
    /// Records that the envelope's page previews cannot be made, and why.
    async fn mark_previews_failed(&self, id: EnvelopeId, reason: &str) -> Result<(), RepoError>;

    /// Stores a signing token and `jobs` (an audit fallback, for a link handed to a caller) in
    /// one transaction.
    async fn insert_signing_token(&self, t: &SigningTokenRecord, jobs: &[NewJob]) -> Result<(), RepoError>;
    async fn signing_token(&self, token_hash: &[u8; 32]) -> Result<Option<SigningTokenRecord>, RepoError>;
}

/// A job not done yet, as operations see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingJob {
    pub id: String,
    pub run_at_unix_ms: i64,
    /// Set while a node holds the job (it may have died: then the time is past).
    pub leased_until_unix_ms: Option<i64>,
}

/// The job queue in the database, shared by every node.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// Enqueues jobs (created at `now`); a job whose id exists already is left as it is.
    async fn enqueue(&self, jobs: &[NewJob], now_unix_ms: i64) -> Result<(), RepoError>;
    /// Leases the next due job to `node` until `now + lease_ms`.
    async fn claim(&self, node: &str, now_unix_ms: i64, lease_ms: i64) -> Result<Option<Job>, RepoError> {
        self.claim_except(node, now_unix_ms, lease_ms, &[]).await
    }
    /// Like [`JobStore::claim`], skipping the jobs of the `excluded` kinds (whose share of the
    /// node's lanes is full).
    async fn claim_except(
        &self,
        node: &str,
        now_unix_ms: i64,
        lease_ms: i64,
        excluded: &[&str],
    ) -> Result<Option<Job>, RepoError>;
    /// Heartbeat: `node`, still running the job, holds it until `until`. False when the lease
    /// was lost (it ran out and another node took the job, or the job is done).
    async fn extend(&self, id: &str, node: &str, until_unix_ms: i64) -> Result<bool, RepoError>;
    async fn finish(&self, id: &str, now_unix_ms: i64) -> Result<(), RepoError>;
    /// Records a failed attempt: runs again at `retry_at` or, with `None`, gives up.
    async fn fail(
        &self,
        id: &str,
        error: &str,
        retry_at_unix_ms: Option<i64>,
        now_unix_ms: i64,
    ) -> Result<(), RepoError>;
    /// Jobs not done yet (due or not), oldest due first, for tests and operations.
    async fn pending_jobs(&self) -> Result<Vec<PendingJob>, RepoError>;
}

/// A webhook subscription; the signing secret is wrapped by the key manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: uuid::Uuid,
    pub org_id: OrgId,
    pub url: String,
    /// Event types, comma-separated (`*` for all).
    pub events: String,
    pub kek_key_id: String,
    pub kek_version: u32,
    pub secret_wrapped: Vec<u8>,
    pub created_unix_ms: i64,
    pub disabled_unix_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    pub id: uuid::Uuid,
    pub webhook_id: uuid::Uuid,
    pub event: String,
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub response_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_unix_ms: i64,
    pub delivered_unix_ms: Option<i64>,
}

#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a webhook and `jobs` (its audit event's fallback) in one transaction.
    async fn insert_webhook(&self, w: &WebhookRecord, jobs: &[NewJob]) -> Result<(), RepoError>;
    async fn webhooks(&self, org: OrgId) -> Result<Vec<WebhookRecord>, RepoError>;
    async fn webhook(&self, id: uuid::Uuid) -> Result<Option<WebhookRecord>, RepoError>;
    /// Disables a webhook of `org` and stores `jobs` (its audit event's fallback) in the same
    /// transaction; `NotFound` (nothing stored) otherwise.
    async fn disable_webhook(
        &self,
        org: OrgId,
        id: uuid::Uuid,
        now_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<(), RepoError>;
    /// Stores deliveries together with the jobs that send them; a delivery (or job) whose id is
    /// already stored is left as it is, so storing the same deliveries again changes nothing.
    async fn insert_deliveries(&self, d: &[DeliveryRecord], jobs: &[NewJob]) -> Result<(), RepoError>;
    async fn delivery(&self, id: uuid::Uuid) -> Result<Option<DeliveryRecord>, RepoError>;
    async fn update_delivery(&self, d: &DeliveryRecord) -> Result<(), RepoError>;
    async fn deliveries(&self, webhook: uuid::Uuid, limit: u32) -> Result<Vec<DeliveryRecord>, RepoError>;
}

/// An email to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub to_name: String,
    pub to_email: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<MailAttachment>,
    /// Names this message for good: a message sent again under the same key (a job that ran
    /// again after its node died between sending and recording) carries the same Message-ID, so
    /// the receiving side sees one message, and the outbox keeps one file.
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailAttachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error("mail transport failed: {0}")]
    Transport(String),
}

/// Delivers mail (SMTP, or the outbox directory).
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Posts a webhook delivery; returns the HTTP status, or why nothing was delivered.
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync {
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Result<u16, String>;
}

/// An organisation's standing with its payment provider: identifiers and state only, never card
/// data (Sigillum never receives any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingAccount {
    pub org_id: OrgId,
    /// `stripe` or `paypal`; `None` before the first checkout.
    pub provider: Option<String>,
    /// Stripe customer id (`cus_…`); PayPal has none.
    pub customer_id: Option<String>,
    /// Stripe subscription id (`sub_…`) or PayPal subscription id (`I-…`).
    pub subscription_id: Option<String>,
    /// The plan the subscription is for (the free plan's id without one).
    pub plan_id: String,
    /// The provider's status word, `none` without a subscription.
    pub status: String,
    pub period_start_unix_ms: Option<i64>,
    pub period_end_unix_ms: Option<i64>,
    pub updated_unix_ms: i64,
}

#[async_trait::async_trait]
pub trait BillingStore: Send + Sync {
    async fn billing_account(&self, org: OrgId) -> Result<Option<BillingAccount>, RepoError>;
    /// The account a provider's customer id belongs to.
    async fn billing_account_by_customer(
        &self,
        provider: &str,
        customer: &str,
    ) -> Result<Option<BillingAccount>, RepoError>;
    /// Inserts or replaces the account (e.g. the Stripe customer made before a checkout).
    async fn put_billing_account(&self, account: &BillingAccount) -> Result<(), RepoError>;
    async fn billing_event_seen(&self, provider: &str, event_id: &str) -> Result<bool, RepoError>;
    /// Marks a provider event processed and, when given, stores the account and `jobs` (its
    /// audit event's fallback), in one transaction. `false`, and nothing written, when the event
    /// was processed before.
    async fn apply_billing_event(
        &self,
        account: Option<&BillingAccount>,
        provider: &str,
        event_id: &str,
        kind: &str,
        now_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<bool, RepoError>;
    /// Counts one envelope in the period starting at `period_start_unix_ms` if fewer than
    /// `limit` were counted (no limit: always). Atomic across nodes.
    async fn claim_usage(&self, org: OrgId, period_start_unix_ms: i64, limit: Option<u32>) -> Result<bool, RepoError>;
    /// Gives back a claim whose send did not happen.
    async fn release_usage(&self, org: OrgId, period_start_unix_ms: i64) -> Result<(), RepoError>;
    async fn usage(&self, org: OrgId, period_start_unix_ms: i64) -> Result<u32, RepoError>;
}

/// A use of the organisation's plan allowance by one send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageClaim {
    pub org: OrgId,
    pub period_start_unix_ms: i64,
}

/// Refusal of a send by the organisation's plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub plan: String,
    pub limit: u32,
    pub period_end_unix_ms: i64,
    /// Where the organisation's owner can upgrade.
    pub upgrade_url: String,
}

/// What the workflow asks before each send (billing's quotas; no limits when billing is off).
#[async_trait::async_trait]
pub trait SendQuota: Send + Sync {
    /// `Ok(None)`: no counting (billing off). `Ok(Some(claim))`: counted, to be released if the
    /// send does not happen.
    async fn claim(
        &self,
        org: OrgId,
        actor: &crate::audit_log::Actor,
        client: &crate::audit_log::ClientInfo,
    ) -> Result<Option<UsageClaim>, QuotaError>;
    async fn release(&self, claim: UsageClaim);
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("the plan's envelope quota for this period is used up")]
    Exceeded(QuotaExceeded),
    #[error(transparent)]
    Repo(#[from] RepoError),
}
