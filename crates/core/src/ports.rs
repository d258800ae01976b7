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
    async fn get_blob(&self, envelope: EnvelopeId, kind: &str, version: u32) -> Result<BlobRecord, RepoError>;
    async fn list_blobs(&self, envelope: EnvelopeId) -> Result<Vec<BlobRecord>, RepoError>;

    async fn record_key_use(&self, u: &KeyUse) -> Result<(), RepoError>;
    async fn list_key_uses(&self, envelope: Option<EnvelopeId>) -> Result<Vec<KeyUse>, RepoError>;
}
