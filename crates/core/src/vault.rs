//! The vault: every document byte Sigillum stores goes through here, so encryption at rest has
//! one obvious home. It creates each envelope's DEK, wraps it under the organisation's KEK in the
//! key manager, seals blobs as they stream in (memory stays flat whatever the size), opens them as
//! they stream out, seals small field values, records every KEK use, rewraps DEKs after a KEK
//! rotation and crypto-shreds envelopes and organisations.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use sigillum_crypto::container::{container_len, BlobContext, BlobKind, BlobOpener, BlobSealer, OpenedContainer};
use sigillum_crypto::field::{self, FieldContext};
use sigillum_crypto::{CryptoError, Dek, DekId, KekRef, KeyManager, KeyManagerError, WrappedDek};

use crate::ids::{EnvelopeId, OrgId};
use crate::ports::{
    BlobError, BlobRecord, BlobStore, BlobStream, Clock, EnvelopeKey, KeyUse, Organisation, RepoError, Repository,
};

/// Bytes of ciphertext gathered before each write to the blob store.
const WRITE_BATCH: usize = 256 * 1024;
/// How long an unwrapped DEK is reused before the key manager is asked again.
const DEK_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Most DEKs kept unwrapped in memory.
const DEK_CACHE_MAX: usize = 4096;

/// Recently unwrapped DEKs, so a burst of work on one envelope (an upload, its audit events)
/// costs one key-manager unwrap, not one per operation. An entry is used only while the stored
/// wrapped DEK is still byte-for-byte the one it came from, and the row is read every time: a
/// shredded or rewrapped envelope never reaches a stale key. Keys are zeroised when dropped.
#[derive(Default)]
struct DekCache {
    entries: std::sync::Mutex<std::collections::HashMap<EnvelopeId, CachedDek>>,
}

struct CachedDek {
    dek_id: [u8; 16],
    wrapped: Vec<u8>,
    kek_version: u32,
    dek: Dek,
    loaded: std::time::Instant,
}

impl DekCache {
    fn get(&self, rec: &EnvelopeKey) -> Option<Dek> {
        let entries = self.entries.lock().ok()?;
        let c = entries.get(&rec.envelope_id)?;
        let fresh = c.loaded.elapsed() < DEK_CACHE_TTL;
        (fresh && c.wrapped == rec.wrapped && c.kek_version == rec.kek_version).then(|| c.dek.clone())
    }

    fn put(&self, rec: &EnvelopeKey, dek: &Dek) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= DEK_CACHE_MAX {
                entries.retain(|_, c| c.loaded.elapsed() < DEK_CACHE_TTL);
                if entries.len() >= DEK_CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(
                rec.envelope_id,
                CachedDek {
                    dek_id: rec.dek_id,
                    wrapped: rec.wrapped.clone(),
                    kek_version: rec.kek_version,
                    dek: dek.clone(),
                    loaded: std::time::Instant::now(),
                },
            );
        }
    }

    /// A fresh cached DEK without checking the stored wrapping: only for *sealing*, where a key
    /// shredded a moment ago on another node can do no harm (what it seals is unreadable at once).
    fn get_for_sealing(&self, envelope: EnvelopeId) -> Option<(Dek, [u8; 16])> {
        let entries = self.entries.lock().ok()?;
        let c = entries.get(&envelope)?;
        (c.loaded.elapsed() < DEK_CACHE_TTL).then(|| (c.dek.clone(), c.dek_id))
    }

    fn forget(&self, envelope: EnvelopeId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&envelope);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Repo(RepoError),
    #[error(transparent)]
    Blob(BlobError),
    #[error(transparent)]
    Key(#[from] KeyManagerError),
    #[error("encryption: {0}")]
    Crypto(#[from] CryptoError),
    #[error("stored data failed an integrity check: {0}")]
    Integrity(&'static str),
    #[error("input: {0}")]
    Input(String),
}

impl From<RepoError> for VaultError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => Self::NotFound,
            e => Self::Repo(e),
        }
    }
}

impl From<BlobError> for VaultError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => Self::NotFound,
            e => Self::Blob(e),
        }
    }
}

/// Result of a rewrap run.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RewrapReport {
    pub examined: usize,
    pub rewrapped: usize,
    pub already_current: usize,
}

/// Storage key of one write of a blob: `env/<envelope>/<kind>/v<version>-<random>`. Every write
/// gets a fresh key, so a write that loses a race (or whose record cannot be stored) never
/// overwrites a committed blob; the database record says which key is the blob.
pub fn blob_key(envelope: EnvelopeId, kind: &BlobKind, version: u32) -> Result<String, VaultError> {
    let nonce: [u8; 8] = sigillum_crypto::random_array()?;
    Ok(format!("env/{}/{}/v{}-{}", envelope.0.simple(), kind.as_str(), version, hex::encode(nonce)))
}

#[derive(Clone)]
pub struct Vault {
    repo: Arc<dyn Repository>,
    blobs: Arc<dyn BlobStore>,
    keys: Arc<dyn KeyManager>,
    clock: Arc<dyn Clock>,
    node: String,
    deks: Arc<DekCache>,
}

impl Vault {
    pub fn new(
        repo: Arc<dyn Repository>,
        blobs: Arc<dyn BlobStore>,
        keys: Arc<dyn KeyManager>,
        clock: Arc<dyn Clock>,
        node: String,
    ) -> Self {
        Self { repo, blobs, keys, clock, node, deks: Arc::default() }
    }

    pub fn repository(&self) -> &Arc<dyn Repository> {
        &self.repo
    }
    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }
    pub fn key_manager(&self) -> &Arc<dyn KeyManager> {
        &self.keys
    }

    fn key_use(&self, kek: &KekRef, purpose: &str, envelope: Option<EnvelopeId>) -> KeyUse {
        KeyUse {
            kek_key_id: kek.key_id.clone(),
            kek_version: kek.version,
            purpose: purpose.to_owned(),
            envelope_id: envelope,
            node: self.node.clone(),
            at_unix_ms: self.clock.now_unix_ms(),
        }
    }

    /// Creates an organisation and its KEK.
    pub async fn create_organisation(&self, name: &str) -> Result<Organisation, VaultError> {
        let org = Organisation { id: OrgId::new(), name: name.to_owned(), created_unix_ms: self.clock.now_unix_ms() };
        self.keys.ensure_kek(&org.id.kek_id()).await?;
        self.repo.insert_organisation(&org).await?;
        Ok(org)
    }

    /// Creates the envelope's DEK, wrapped under the organisation's current KEK.
    pub async fn create_envelope_key(&self, org: OrgId, envelope: EnvelopeId) -> Result<(), VaultError> {
        let kek = self.keys.ensure_kek(&org.kek_id()).await?;
        let dek = Dek::generate()?;
        let wrapped = self.keys.wrap_dek(&kek, &dek).await?;
        let record = EnvelopeKey {
            envelope_id: envelope,
            org_id: org,
            dek_id: DekId::generate()?.0,
            kek_key_id: kek.key_id.clone(),
            kek_version: kek.version,
            wrapped: wrapped.wrapped,
            created_unix_ms: self.clock.now_unix_ms(),
        };
        self.repo.insert_envelope_key(&record, &self.key_use(&kek, "wrap", Some(envelope))).await?;
        Ok(())
    }

    /// The envelope's DEK: from the cache while its stored wrapping is unchanged, otherwise
    /// unwrapped by the key manager, recording that KEK use (purpose = the first operation).
    async fn dek(&self, envelope: EnvelopeId, purpose: &str) -> Result<(Dek, DekId), VaultError> {
        let rec = self.repo.get_envelope_key(envelope).await?;
        self.dek_of(&rec, purpose).await
    }

    /// The DEK of a key record read just now (cached while its wrapping is unchanged).
    async fn dek_of(&self, rec: &EnvelopeKey, purpose: &str) -> Result<(Dek, DekId), VaultError> {
        let envelope = rec.envelope_id;
        if let Some(dek) = self.deks.get(rec) {
            return Ok((dek, DekId(rec.dek_id)));
        }
        let kek = KekRef { key_id: rec.kek_key_id.clone(), version: rec.kek_version };
        let dek = self.keys.unwrap_dek(&WrappedDek { kek: kek.clone(), wrapped: rec.wrapped.clone() }).await?;
        self.repo.record_key_use(&self.key_use(&kek, purpose, Some(envelope))).await?;
        self.deks.put(rec, &dek);
        Ok((dek, DekId(rec.dek_id)))
    }

    /// Seals a streamed document into the blob store. The blob becomes visible only once it is
    /// complete and durable; its record is written after that.
    pub async fn put_blob<S, E>(
        &self,
        envelope: EnvelopeId,
        kind: &str,
        version: u32,
        body: S,
    ) -> Result<BlobRecord, VaultError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let record = self.seal_blob(envelope, kind, version, body).await?;
        if let Err(e) = self.repo.insert_blob(&record).await {
            self.remove_ciphertext(&record.key).await;
            return Err(e.into());
        }
        Ok(record)
    }

    /// Replaces a committed blob with `bytes` (an upload with its sanitised form): they are
    /// sealed under a fresh storage key, the record is switched to that key in one transaction,
    /// and only then is the old ciphertext removed, so a reader sees the old or the new blob whole.
    pub async fn replace_blob(
        &self,
        envelope: EnvelopeId,
        kind: &str,
        version: u32,
        bytes: Vec<u8>,
    ) -> Result<BlobRecord, VaultError> {
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(bytes))]);
        let record = self.seal_blob(envelope, kind, version, body).await?;
        match self.repo.replace_blob(&record).await {
            Ok(old) => {
                self.remove_ciphertext(&old.key).await;
                Ok(record)
            }
            Err(e) => {
                self.remove_ciphertext(&record.key).await;
                Err(e.into())
            }
        }
    }

    /// Removes ciphertext no record points to (any more).
    async fn remove_ciphertext(&self, key: &str) {
        if let Err(e) = self.blobs.delete(key).await {
            tracing::warn!(key = %key, error = %e, "orphan blob left behind");
        }
    }

    /// Seals and commits the ciphertext of a streamed document under a fresh storage key, and
    /// returns its (not yet stored) record.
    async fn seal_blob<S, E>(
        &self,
        envelope: EnvelopeId,
        kind: &str,
        version: u32,
        mut body: S,
    ) -> Result<BlobRecord, VaultError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let kind = BlobKind::new(kind)?;
        let (dek, dek_id) = self.dek(envelope, "seal_blob").await?;
        let ctx = BlobContext { envelope_id: envelope.as_bytes(), kind: kind.clone(), version };
        let key = blob_key(envelope, &kind, version)?;
        let (mut sealer, first) = BlobSealer::new(&dek, dek_id, &ctx)?;
        let mut writer = self.blobs.begin(&key).await?;
        let mut hasher = Sha256::new();
        let mut plain_len = 0u64;
        let mut out = Vec::with_capacity(WRITE_BATCH + 32 * 1024);
        out.extend_from_slice(&first);
        let result: Result<(), VaultError> = async {
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(|e| VaultError::Input(e.to_string()))?;
                hasher.update(&piece);
                plain_len += piece.len() as u64;
                sealer.update(&piece, &mut out)?;
                if out.len() >= WRITE_BATCH {
                    writer.write(Bytes::from(std::mem::take(&mut out))).await?;
                    out.reserve(WRITE_BATCH + 32 * 1024);
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = writer.abort().await;
            return Err(e);
        }
        if let Err(e) = sealer.finish(&mut out) {
            let _ = writer.abort().await;
            return Err(e.into());
        }
        writer.write(Bytes::from(out)).await?;
        let stored_len = writer.commit().await?;
        if stored_len != container_len(plain_len) {
            return Err(VaultError::Integrity("stored length"));
        }
        Ok(BlobRecord {
            key,
            envelope_id: envelope,
            kind: kind.as_str().to_owned(),
            version,
            plaintext_len: plain_len,
            stored_len,
            sha256: hex::encode(hasher.finalize()),
            created_unix_ms: self.clock.now_unix_ms(),
        })
    }

    /// Streams a document's plaintext. Each chunk is authenticated before it is released; the
    /// stream ends with an error if the blob does not match its recorded length and hash.
    pub async fn open_blob(&self, envelope: EnvelopeId, kind: &str, version: u32) -> Result<BlobStream, VaultError> {
        let record = self.repo.get_blob(envelope, kind, version).await?;
        let kind = BlobKind::new(kind)?;
        let (dek, dek_id) = self.dek(envelope, "open_blob").await?;
        let ctx = BlobContext { envelope_id: envelope.as_bytes(), kind, version };
        let source = self.blobs.get(&record.key).await?;
        struct State {
            source: BlobStream,
            opener: Option<BlobOpener>,
            hasher: Sha256,
            len: u64,
            record: BlobRecord,
        }
        let state =
            State { source, opener: Some(BlobOpener::new(&dek, dek_id, &ctx)), hasher: Sha256::new(), len: 0, record };
        let integrity = |what: &'static str| BlobError::Unavailable(format!("integrity check failed: {what}"));
        let stream = futures::stream::unfold(state, move |mut st| async move {
            loop {
                let opener = st.opener.as_mut()?;
                match st.source.next().await {
                    Some(Ok(bytes)) => {
                        let mut out = Vec::with_capacity(bytes.len());
                        if opener.update(&bytes, &mut out).is_err() {
                            st.opener = None;
                            return Some((Err(integrity("authentication")), st));
                        }
                        if !out.is_empty() {
                            st.hasher.update(&out);
                            st.len += out.len() as u64;
                            return Some((Ok(Bytes::from(out)), st));
                        }
                    }
                    Some(Err(e)) => {
                        st.opener = None;
                        return Some((Err(e), st));
                    }
                    None => {
                        let opener = st.opener.take()?;
                        let mut out = Vec::new();
                        if opener.finish(&mut out).is_err() {
                            return Some((Err(integrity("truncated")), st));
                        }
                        st.hasher.update(&out);
                        st.len += out.len() as u64;
                        let digest = hex::encode(std::mem::take(&mut st.hasher).finalize());
                        if st.len != st.record.plaintext_len || digest != st.record.sha256 {
                            return Some((Err(integrity("length or digest")), st));
                        }
                        if out.is_empty() {
                            return None;
                        }
                        return Some((Ok(Bytes::from(out)), st));
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    /// Reads a whole document into memory: the ciphertext is fetched into one buffer and opened in
    /// place there, then checked against its recorded length and hash.
    pub async fn read_blob(&self, envelope: EnvelopeId, kind: &str, version: u32) -> Result<Vec<u8>, VaultError> {
        let record = self.repo.get_blob(envelope, kind, version).await?;
        let ctx = BlobContext { envelope_id: envelope.as_bytes(), kind: BlobKind::new(kind)?, version };
        let (dek, dek_id) = self.dek(envelope, "open_blob").await?;
        let mut sealed = Vec::with_capacity(record.stored_len as usize);
        let mut source = self.blobs.get(&record.key).await?;
        while let Some(piece) = source.next().await {
            sealed.extend_from_slice(&piece?);
        }
        let opened =
            OpenedContainer::open(&dek, dek_id, &ctx, sealed).map_err(|_| VaultError::Integrity("authentication"))?;
        let plain = opened.to_vec();
        if plain.len() as u64 != record.plaintext_len || hex::encode(Sha256::digest(&plain)) != record.sha256 {
            return Err(VaultError::Integrity("length or digest"));
        }
        Ok(plain)
    }

    /// Encrypts a small value for a database column.
    pub async fn seal_field(
        &self,
        envelope: EnvelopeId,
        ctx: &FieldContext<'_>,
        value: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let dek = match self.deks.get_for_sealing(envelope) {
            Some((dek, _)) => dek,
            None => self.dek(envelope, "seal_field").await?.0,
        };
        Ok(field::seal_field(&dek, ctx, value)?)
    }

    /// Decrypts a value sealed by [`Vault::seal_field`].
    pub async fn open_field(
        &self,
        envelope: EnvelopeId,
        ctx: &FieldContext<'_>,
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let (dek, _) = self.dek(envelope, "open_field").await?;
        Ok(field::open_field(&dek, ctx, sealed)?)
    }

    /// Decrypts several values of one envelope with a single unwrap of its DEK. The outer error
    /// is about the key (e.g. `NotFound` once the envelope is shredded); each value has its own.
    pub async fn open_fields(
        &self,
        envelope: EnvelopeId,
        items: &[(FieldContext<'_>, &[u8])],
    ) -> Result<Vec<Result<Vec<u8>, VaultError>>, VaultError> {
        let rec = self.repo.get_envelope_key(envelope).await?;
        self.open_fields_with(&rec, items).await
    }

    /// As [`Vault::open_fields`], under a key record the caller read just now with the values
    /// (one snapshot: `EnvelopeStore::envelope_with_parties`).
    pub async fn open_fields_with(
        &self,
        key: &EnvelopeKey,
        items: &[(FieldContext<'_>, &[u8])],
    ) -> Result<Vec<Result<Vec<u8>, VaultError>>, VaultError> {
        let (dek, _) = self.dek_of(key, "open_field").await?;
        Ok(items.iter().map(|(ctx, sealed)| field::open_field(&dek, ctx, sealed).map_err(VaultError::from)).collect())
    }

    /// Wraps a deployment secret (such as the audit log's signing seed) under the KEK `kek_id`,
    /// creating that KEK on first use.
    pub async fn wrap_system_secret(&self, kek_id: &str, secret: &Dek) -> Result<WrappedDek, VaultError> {
        let kek = self.keys.ensure_kek(kek_id).await?;
        let wrapped = self.keys.wrap_dek(&kek, secret).await?;
        self.repo.record_key_use(&self.key_use(&kek, "wrap_system", None)).await?;
        Ok(wrapped)
    }

    /// Unwraps a secret wrapped by [`Vault::wrap_system_secret`].
    pub async fn unwrap_system_secret(&self, wrapped: &WrappedDek) -> Result<Dek, VaultError> {
        let dek = self.keys.unwrap_dek(wrapped).await?;
        self.repo.record_key_use(&self.key_use(&wrapped.kek, "unwrap_system", None)).await?;
        Ok(dek)
    }

    /// Crypto-shreds one envelope: its wrapped DEK is deleted (nothing can open its blobs any
    /// more, backups included), then its ciphertext blobs are removed.
    pub async fn shred_envelope(&self, envelope: EnvelopeId) -> Result<(), VaultError> {
        let blobs = self.repo.list_blobs(envelope).await?;
        self.repo.delete_envelope_key(envelope).await?;
        self.deks.forget(envelope);
        for b in blobs {
            if let Err(e) = self.blobs.delete(&b.key).await {
                tracing::warn!(key = %b.key, error = %e, "ciphertext left behind after shredding (unreadable)");
            }
        }
        Ok(())
    }

    /// Crypto-shreds an organisation: every version of its KEK is destroyed in the key manager,
    /// which makes every DEK and so every blob of the organisation unreadable everywhere.
    pub async fn shred_organisation(&self, org: OrgId) -> Result<(), VaultError> {
        self.keys.destroy_kek(&org.kek_id()).await?;
        for k in self.repo.list_envelope_keys(Some(org)).await? {
            self.shred_envelope(k.envelope_id).await?;
        }
        self.repo.delete_organisation(org).await?;
        Ok(())
    }

    /// Moves every DEK to its organisation's current KEK version. Blobs are not touched.
    pub async fn rewrap_all(&self) -> Result<RewrapReport, VaultError> {
        let mut report = RewrapReport::default();
        for rec in self.repo.list_envelope_keys(None).await? {
            report.examined += 1;
            let Some(current) = self.keys.current_kek(&rec.kek_key_id).await? else {
                continue;
            };
            if current.version == rec.kek_version {
                report.already_current += 1;
                continue;
            }
            let old = KekRef { key_id: rec.kek_key_id.clone(), version: rec.kek_version };
            let dek = self.keys.unwrap_dek(&WrappedDek { kek: old.clone(), wrapped: rec.wrapped.clone() }).await?;
            self.repo.record_key_use(&self.key_use(&old, "rewrap_unwrap", Some(rec.envelope_id))).await?;
            let new = self.keys.wrap_dek(&current, &dek).await?;
            self.repo.replace_wrapped_dek(rec.envelope_id, rec.kek_version, current.version, &new.wrapped).await?;
            self.repo.record_key_use(&self.key_use(&current, "rewrap_wrap", Some(rec.envelope_id))).await?;
            report.rewrapped += 1;
        }
        Ok(report)
    }
}
