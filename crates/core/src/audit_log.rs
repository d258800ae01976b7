//! The audit log service: the one place where events are recorded, and where trails, proofs and
//! checkpoints are read.
//!
//! [`AuditLog::record`] commits the personal values of an event (salted, see
//! `sigillum_audit::event`), seals the disclosure under the envelope's key, and hands the leaf to a
//! single writer task per process. The writer drains every leaf that queued while the previous
//! commit ran and appends them as one transaction (group commit); each caller gets its sequence
//! number only after that commit, so an event is durable before the request that caused it
//! returns. Several processes on one PostgreSQL serialise on the log head row in the store.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;
use sigillum_audit::merkle::{consistency_ranges, hashes_for, inclusion_ranges, nodes_for, LeafRange};
use sigillum_audit::{
    verify_checkpoint, ActorKind, Detail, Device, Disclosure, Event, EventDraft, EventKind, Frontier, Hash, LogSigner,
    Personal,
};
use sigillum_crypto::field::FieldContext;
use sigillum_crypto::{Dek, KekRef, WrappedDek};
use tokio::sync::{mpsc, oneshot, watch};

use crate::ids::EnvelopeId;
use crate::ports::{AuditStore, Clock, LogKeyRecord, NewLeaf, RepoError, StoredCheckpoint, StoredLeaf};
use crate::vault::{Vault, VaultError};

/// An event ready to append: its personal values already committed and its disclosure sealed
/// under the envelope key, so its JSON form holds no personal data in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEvent(NewLeaf);

impl PreparedEvent {
    pub fn leaf_hash(&self) -> &Hash {
        &self.0.leaf_hash
    }

    /// The same event, whose append marks job `id` done in the same transaction.
    pub fn settling(mut self, id: String) -> Self {
        self.0.settles_job = Some(id);
        self
    }

    /// The form kept in a job's payload (without the job it settles).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "envelope_id": self.0.envelope_id,
            "leaf_hash": b64(&self.0.leaf_hash),
            "event": b64(&self.0.event),
            "disclosure": self.0.disclosure.as_deref().map(b64),
        })
    }

    /// Reads [`Self::to_json`]'s form back; `None` if it is not one.
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        let bytes = |key: &str| v.get(key).and_then(serde_json::Value::as_str).and_then(|t| B64.decode(t).ok());
        let envelope_id = match v.get("envelope_id") {
            None | Some(serde_json::Value::Null) => None,
            Some(id) => Some(serde_json::from_value(id.clone()).ok()?),
        };
        let disclosure = match v.get("disclosure") {
            None | Some(serde_json::Value::Null) => None,
            Some(_) => Some(bytes("disclosure")?),
        };
        Some(Self(NewLeaf {
            envelope_id,
            leaf_hash: bytes("leaf_hash")?.try_into().ok()?,
            event: bytes("event")?,
            disclosure,
            settles_job: None,
        }))
    }
}

/// Key-manager id of the KEK that wraps the log's signing seed.
pub const LOG_KEK_ID: &str = "system:audit-log";
/// Personal values an event can carry (actor name and email, IP, user agent, note).
const PERSONAL_FIELDS: usize = 5;
/// Distinct user agents whose parsed device is remembered.
const DEVICE_CACHE_MAX: usize = 1024;
/// Most leaves in one commit.
const MAX_BATCH: usize = 4096;
/// How often other processes' appends are noticed (for live streams).
const POLL_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("event encoding: {0}")]
    Event(#[from] sigillum_audit::EventError),
    #[error("log key: {0}")]
    Key(#[from] sigillum_audit::CheckpointError),
    #[error("the audit log writer has stopped")]
    WriterStopped,
    #[error("{0}")]
    BadRequest(&'static str),
}

/// Who acted, with their personal data in clear (it is committed, never stored in clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self { kind: ActorKind::System, id: None, name: Some("Sigillum".into()), email: None }
    }
}

/// Where a request came from: the client IP (socket address, or the forwarded address when the
/// peer is a trusted proxy) and its user agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// An event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: EventKind,
    /// The envelope it concerns. Its key seals the personal data; without an envelope the
    /// personal values are committed to and their salts discarded, so nothing personal is kept.
    pub envelope: Option<EnvelopeId>,
    pub actor: Actor,
    pub client: ClientInfo,
    /// Hex SHA-256 of the envelope's current document.
    pub document_sha256: Option<String>,
    pub details: BTreeMap<String, Detail>,
    /// Personal free text (decline or void reason).
    pub note: Option<String>,
}

impl NewEvent {
    pub fn new(kind: EventKind, envelope: Option<EnvelopeId>, actor: Actor, client: ClientInfo) -> Self {
        Self { kind, envelope, actor, client, document_sha256: None, details: BTreeMap::new(), note: None }
    }
    pub fn document(mut self, sha256_hex: impl Into<String>) -> Self {
        self.document_sha256 = Some(sha256_hex.into());
        self
    }
    pub fn detail(mut self, key: &str, value: Detail) -> Self {
        self.details.insert(key.to_owned(), value);
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// Where a recorded event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub seq: u64,
    pub leaf_hash: Hash,
    /// Size of the checkpoint signed in the same commit (covers this event).
    pub tree_size: u64,
}

/// One event of a trail, in the wire shape of DESIGN §5.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrailEvent {
    pub seq: u64,
    /// The event object whose canonical bytes are the leaf.
    pub event: serde_json::Value,
    /// Personal values and salts; `null` once the envelope is shredded.
    #[schema(value_type = Option<Object>)]
    pub disclosed: Option<Disclosure>,
    pub leaf_hash: String,
    pub inclusion_proof: Vec<String>,
}

/// An envelope's audit trail with proofs against one checkpoint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Trail {
    pub checkpoint: String,
    pub tree_size: u64,
    pub events: Vec<TrailEvent>,
}

struct Pending {
    /// `None` asks only for a fresh checkpoint.
    leaf: Option<NewLeaf>,
    reply: oneshot::Sender<Result<(u64, StoredCheckpoint), String>>,
}

/// Parsed devices by user agent: the same browsers come back again and again, and parsing runs
/// a few dozen regular expressions.
#[derive(Default)]
struct DeviceCache(std::sync::Mutex<HashMap<String, Device>>);

impl DeviceCache {
    fn parse(&self, user_agent: &str) -> Device {
        if let Some(d) = self.0.lock().ok().and_then(|m| m.get(user_agent).cloned()) {
            return d;
        }
        let device = Device::from_user_agent(user_agent);
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= DEVICE_CACHE_MAX {
                m.clear();
            }
            m.insert(user_agent.to_owned(), device.clone());
        }
        device
    }
}

struct Inner {
    store: Arc<dyn AuditStore>,
    devices: DeviceCache,
    vault: Vault,
    clock: Arc<dyn Clock>,
    verifier_key: String,
    origin: String,
    queue: mpsc::Sender<Pending>,
    size: watch::Sender<u64>,
    /// Wakes the watcher before its next poll (another node appended: [`AuditLog::refresh`]).
    poke: Arc<tokio::sync::Notify>,
}

/// The audit log of the deployment. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

fn b64(h: &[u8]) -> String {
    B64.encode(h)
}

fn disclosure_context(leaf_hash: &Hash) -> String {
    hex::encode(leaf_hash)
}

const DISCLOSURE_TABLE: &str = "audit_leaves";
const DISCLOSURE_COLUMN: &str = "disclosure";

impl AuditLog {
    /// Opens the log: loads (or, on first start, creates) the signing key, whose seed is wrapped
    /// under [`LOG_KEK_ID`] in the key manager; signs the empty tree if nothing is published yet;
    /// starts the writer and the watcher of other processes' appends. Needs a Tokio runtime.
    pub async fn open(
        store: Arc<dyn AuditStore>,
        vault: Vault,
        clock: Arc<dyn Clock>,
        origin: &str,
    ) -> Result<Self, AuditError> {
        let record = match store.log_key().await? {
            Some(r) => r,
            None => {
                let seed = Dek::generate().map_err(VaultError::from)?;
                let signer = LogSigner::from_seed(origin, seed.expose_secret())?;
                let wrapped = vault.wrap_system_secret(LOG_KEK_ID, &seed).await?;
                let record = LogKeyRecord {
                    origin: origin.to_owned(),
                    verifier_key: signer.verifier_key(),
                    kek_key_id: wrapped.kek.key_id.clone(),
                    kek_version: wrapped.kek.version,
                    wrapped_seed: wrapped.wrapped,
                    created_unix_ms: clock.now_unix_ms(),
                };
                match store.insert_log_key(&record).await {
                    Ok(()) => record,
                    // Another node created it first: use theirs.
                    Err(RepoError::Conflict(_)) => store.log_key().await?.ok_or(RepoError::NotFound)?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if record.origin != origin {
            tracing::warn!(stored = %record.origin, configured = %origin, "audit log keeps its original origin");
        }
        let seed = vault
            .unwrap_system_secret(&WrappedDek {
                kek: KekRef { key_id: record.kek_key_id.clone(), version: record.kek_version },
                wrapped: record.wrapped_seed.clone(),
            })
            .await?;
        let signer = LogSigner::from_seed(&record.origin, seed.expose_secret())?;
        if signer.verifier_key() != record.verifier_key {
            return Err(AuditError::BadRequest("stored log key does not match its verifier key"));
        }

        let (queue, rx) = mpsc::channel(MAX_BATCH * 4);
        let size = watch::Sender::new(store.tree_size().await?);
        let inner = Arc::new(Inner {
            store: store.clone(),
            devices: DeviceCache::default(),
            vault,
            clock: clock.clone(),
            verifier_key: record.verifier_key.clone(),
            origin: record.origin.clone(),
            queue,
            size,
            poke: Arc::new(tokio::sync::Notify::new()),
        });
        spawn_writer(writer(store.clone(), signer, clock, rx, Arc::downgrade(&inner)))?;
        tokio::spawn(watcher(Arc::downgrade(&inner), inner.poke.clone()));
        let log = Self { inner };
        if log.inner.store.latest_checkpoint().await?.is_none() {
            log.commit(None).await?;
        }
        Ok(log)
    }

    /// The log's verifier key: `<origin>+<key hash>+<base64(0x01 ‖ public key)>`.
    pub fn verifier_key(&self) -> &str {
        &self.inner.verifier_key
    }

    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// Records one event; returns once it is durably in the log.
    pub async fn record(&self, e: NewEvent) -> Result<Recorded, AuditError> {
        let prepared = self.prepare(e).await?;
        self.append(prepared).await
    }

    /// Drafts an event for the log: commits its personal values and seals its disclosure, and
    /// fixes its time. A change that must not be stored without its event keeps the prepared
    /// event in its own transaction (see [`PreparedEvent::to_json`]) and appends it after.
    pub async fn prepare(&self, e: NewEvent) -> Result<PreparedEvent, AuditError> {
        let device = e.client.user_agent.as_deref().map(|ua| self.inner.devices.parse(ua));
        let draft = EventDraft {
            kind: e.kind,
            time_unix_ms: self.inner.clock.now_unix_ms(),
            envelope_id: e.envelope.map(|id| id.to_string()),
            actor_kind: e.actor.kind,
            actor_id: e.actor.id,
            personal: Personal {
                actor_name: e.actor.name,
                actor_email: e.actor.email,
                ip: e.client.ip.map(|ip| ip.to_string()),
                user_agent: e.client.user_agent,
                note: e.note,
            },
            device,
            document_sha256: e.document_sha256,
            details: e.details,
        };
        // One draw from the system RNG for all salts: an event has at most five personal values.
        let salts: [u8; 32 * PERSONAL_FIELDS] = sigillum_crypto::random_array().map_err(VaultError::from)?;
        let mut chunks = salts.chunks_exact(32).cycle();
        let committed = draft.commit(|| {
            let mut salt = [0u8; 32];
            salt.copy_from_slice(chunks.next().unwrap_or(&[0u8; 32]));
            salt
        })?;
        let disclosure = match (e.envelope, committed.disclosure.0.is_empty()) {
            (Some(envelope), false) => {
                let row = disclosure_context(&committed.leaf_hash);
                let ctx = FieldContext { table: DISCLOSURE_TABLE, column: DISCLOSURE_COLUMN, row_id: &row };
                let plain = serde_json::to_vec(&committed.disclosure)
                    .map_err(|_| AuditError::BadRequest("disclosure encoding"))?;
                Some(self.inner.vault.seal_field(envelope, &ctx, &plain).await?)
            }
            _ => None,
        };
        Ok(PreparedEvent(NewLeaf {
            envelope_id: e.envelope,
            leaf_hash: committed.leaf_hash,
            event: committed.canonical,
            disclosure,
            settles_job: None,
        }))
    }

    /// Appends a prepared event; returns once it is durably in the log.
    pub async fn append(&self, event: PreparedEvent) -> Result<Recorded, AuditError> {
        let leaf_hash = event.0.leaf_hash;
        let (first, checkpoint) = self.commit(Some(event.0)).await?;
        Ok(Recorded { seq: first, leaf_hash, tree_size: checkpoint.size })
    }

    /// Appends a prepared event of an envelope unless its trail already holds it (the node that
    /// prepared it appended it before it stopped). True if it was appended now.
    pub async fn append_once(&self, event: PreparedEvent) -> Result<bool, AuditError> {
        if let Some(envelope) = event.0.envelope_id {
            let trail = self.inner.store.envelope_leaves(envelope, 0).await?;
            if trail.iter().any(|l| l.leaf_hash == event.0.leaf_hash) {
                return Ok(false);
            }
        }
        self.append(event).await?;
        Ok(true)
    }

    /// Queues a leaf (or, with `None`, just a fresh checkpoint) and waits for its commit.
    async fn commit(&self, leaf: Option<NewLeaf>) -> Result<(u64, StoredCheckpoint), AuditError> {
        let (reply, rx) = oneshot::channel();
        self.inner.queue.send(Pending { leaf, reply }).await.map_err(|_| AuditError::WriterStopped)?;
        rx.await.map_err(|_| AuditError::WriterStopped)?.map_err(|e| AuditError::Repo(RepoError::Unavailable(e)))
    }

    /// The latest signed checkpoint.
    pub async fn checkpoint(&self) -> Result<StoredCheckpoint, AuditError> {
        Ok(self.inner.store.latest_checkpoint().await?.ok_or(RepoError::NotFound)?)
    }

    /// A published checkpoint of exactly `size` leaves, if one was signed.
    pub async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, AuditError> {
        Ok(self.inner.store.checkpoint_at(size).await?)
    }

    /// Another process appended (a database notification): live streams look now.
    pub fn refresh(&self) {
        self.inner.poke.notify_one();
    }

    /// Follows the tree size, including other processes' appends (within [`POLL_INTERVAL`]).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.size.subscribe()
    }

    async fn hashes(&self, ranges: &[LeafRange]) -> Result<Vec<Hash>, AuditError> {
        let nodes = self.inner.store.tree_nodes(&nodes_for(ranges)).await?;
        hashes_for(ranges, |id| nodes.get(id).copied())
            .ok_or(AuditError::Repo(RepoError::Unavailable("tree node missing".into())))
    }

    async fn check_size(&self, size: u64) -> Result<(), AuditError> {
        if size > self.inner.store.tree_size().await? {
            return Err(AuditError::BadRequest("size is larger than the tree"));
        }
        Ok(())
    }

    /// RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(size).await?;
        let ranges = inclusion_ranges(index, size).ok_or(AuditError::BadRequest("index must be below size"))?;
        self.hashes(&ranges).await
    }

    /// RFC 9162 consistency proof from the tree of `from` leaves to the tree of `to` leaves.
    pub async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(to).await?;
        let ranges = consistency_ranges(from, to).ok_or(AuditError::BadRequest("sizes must satisfy 0 < from <= to"))?;
        self.hashes(&ranges).await
    }

    /// The envelope's events with `seq >= from`, each with its inclusion proof against the latest
    /// checkpoint, and their disclosures opened with the envelope key (absent once shredded).
    pub async fn envelope_trail(&self, envelope: EnvelopeId, from: u64) -> Result<Trail, AuditError> {
        let checkpoint = self.checkpoint().await?;
        let size = checkpoint.size;
        let leaves: Vec<StoredLeaf> =
            self.inner.store.envelope_leaves(envelope, from).await?.into_iter().filter(|l| l.seq < size).collect();

        let per_leaf: Vec<Vec<LeafRange>> =
            leaves.iter().map(|l| inclusion_ranges(l.seq, size).unwrap_or_default()).collect();
        let all: Vec<LeafRange> = per_leaf.iter().flatten().copied().collect();
        let nodes = self.inner.store.tree_nodes(&nodes_for(&all)).await?;

        let disclosures = self.open_disclosures(envelope, &leaves).await;
        let mut events = Vec::with_capacity(leaves.len());
        for ((leaf, ranges), disclosed) in leaves.iter().zip(&per_leaf).zip(disclosures) {
            let proof = hashes_for(ranges, |id| nodes.get(id).copied())
                .ok_or(AuditError::Repo(RepoError::Unavailable("tree node missing".into())))?;
            let event: serde_json::Value = serde_json::from_slice(&leaf.event)
                .map_err(|_| AuditError::Repo(RepoError::Unavailable("stored event is not JSON".into())))?;
            events.push(TrailEvent {
                seq: leaf.seq,
                event,
                disclosed,
                leaf_hash: b64(&leaf.leaf_hash),
                inclusion_proof: proof.iter().map(|h| b64(h)).collect(),
            });
        }
        Ok(Trail { checkpoint: checkpoint.note, tree_size: size, events })
    }

    async fn open_disclosures(&self, envelope: EnvelopeId, leaves: &[StoredLeaf]) -> Vec<Option<Disclosure>> {
        let rows: Vec<String> = leaves.iter().map(|l| disclosure_context(&l.leaf_hash)).collect();
        let sealed: Vec<(usize, FieldContext<'_>, &[u8])> = leaves
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                l.disclosure.as_deref().map(|d| {
                    (i, FieldContext { table: DISCLOSURE_TABLE, column: DISCLOSURE_COLUMN, row_id: &rows[i] }, d)
                })
            })
            .collect();
        let mut out = vec![None; leaves.len()];
        if sealed.is_empty() {
            return out;
        }
        let items: Vec<(FieldContext<'_>, &[u8])> = sealed.iter().map(|(_, c, d)| (c.clone(), *d)).collect();
        match self.inner.vault.open_fields(envelope, &items).await {
            Ok(opened) => {
                for ((i, _, _), plain) in sealed.iter().zip(opened) {
                    out[*i] = plain.ok().and_then(|p| serde_json::from_slice(&p).ok());
                }
            }
            Err(VaultError::NotFound) => {} // shredded: nothing to disclose
            Err(e) => tracing::warn!(error = %e, "audit disclosures could not be opened"),
        }
        out
    }
}

/// Runs the writer on a thread of its own (a multi-threaded runtime drives its I/O). Every commit
/// is a handful of database round trips in a row, and the writer is the one task everybody waits
/// for: as an ordinary task, each resumption would queue behind whatever request tasks are
/// runnable on the shared workers (tenths of a millisecond each under load), which measured as
/// over half the commit time. On a single-threaded runtime (tests) there is nothing to gain and it
/// runs as a task.
fn spawn_writer(writer: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), AuditError> {
    let handle = tokio::runtime::Handle::current();
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        handle.spawn(writer);
        return Ok(());
    }
    std::thread::Builder::new()
        .name("audit-log-writer".into())
        .spawn(move || handle.block_on(writer))
        .map(drop)
        .map_err(|_| AuditError::WriterStopped)
}

/// The single writer of this process: drains the queue into one commit at a time.
async fn writer(
    store: Arc<dyn AuditStore>,
    signer: LogSigner,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Pending>,
    inner: Weak<Inner>,
) {
    let sign = move |size: u64, root: &Hash| signer.sign(size, root).ok();
    let mut batch: Vec<Pending> = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Leaves are appended in queue order; checkpoint-only requests take no sequence number.
        let mut leaves = Vec::with_capacity(batch.len());
        let mut has_leaf = Vec::with_capacity(batch.len());
        for p in batch.iter_mut() {
            let leaf = p.leaf.take();
            has_leaf.push(leaf.is_some());
            leaves.extend(leaf);
        }
        let result = store.append_leaves(leaves, &sign, clock.now_unix_ms()).await;
        match result {
            Ok((first, checkpoint)) => {
                if let Some(inner) = inner.upgrade() {
                    inner.size.send_if_modified(|s| {
                        let grew = checkpoint.size > *s;
                        *s = (*s).max(checkpoint.size);
                        grew
                    });
                }
                let mut seq = first;
                for (p, with_leaf) in batch.drain(..).zip(has_leaf) {
                    let _ = p.reply.send(Ok((seq, checkpoint.clone())));
                    seq += u64::from(with_leaf);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit log append failed");
                for p in batch.drain(..) {
                    let _ = p.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Notices appends made by other processes, so live streams on this node see them too: at once
/// when poked ([`AuditLog::refresh`]), and at every [`POLL_INTERVAL`] in any case.
async fn watcher(inner: Weak<Inner>, poke: Arc<tokio::sync::Notify>) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = poke.notified() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        if inner.size.receiver_count() == 0 {
            continue;
        }
        if let Ok(size) = inner.store.tree_size().await {
            inner.size.send_if_modified(|s| {
                let grew = size > *s;
                *s = (*s).max(size);
                grew
            });
        }
    }
}

/// What `sigillum log verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogReport {
    pub ok: bool,
    pub leaves: u64,
    pub checkpoints_checked: u64,
    pub root: String,
    pub problems: Vec<String>,
}

impl LogReport {
    /// Most problems listed (the first ones tell the story).
    const MAX_PROBLEMS: usize = 100;

    fn problem(&mut self, p: String) {
        if self.problems.len() < Self::MAX_PROBLEMS {
            self.problems.push(p);
        }
    }
}

/// Walks the stored checkpoints in size order, a page at a time.
struct CheckpointCursor<'a> {
    store: &'a dyn AuditStore,
    page: std::collections::VecDeque<StoredCheckpoint>,
    next_from: u64,
    exhausted: bool,
}

impl<'a> CheckpointCursor<'a> {
    fn new(store: &'a dyn AuditStore) -> Self {
        Self { store, page: Default::default(), next_from: 0, exhausted: false }
    }

    async fn peek(&mut self) -> Result<Option<&StoredCheckpoint>, AuditError> {
        if self.page.is_empty() && !self.exhausted {
            let page = self.store.checkpoints_from(self.next_from, 1000).await?;
            self.exhausted = page.len() < 1000;
            if let Some(last) = page.last() {
                self.next_from = last.size + 1;
            }
            self.page.extend(page);
        }
        Ok(self.page.front())
    }

    fn pop(&mut self) -> Option<StoredCheckpoint> {
        self.page.pop_front()
    }
}

/// Recomputes the whole tree from the stored leaves and checks it against everything stored and
/// published: each leaf hash against its event bytes (which must be canonical events), each
/// stored node hash, sequence numbers without gaps, every stored checkpoint's signature and root
/// (which proves every published checkpoint consistent with the latest), the head size, and any
/// `external` checkpoints a party kept (note texts). Needs only the database and the verifier key.
pub async fn verify_log(
    store: &dyn AuditStore,
    verifier_key: &str,
    external: &[String],
) -> Result<LogReport, AuditError> {
    let mut report = LogReport::default();
    let mut external_roots: HashMap<u64, Vec<(usize, Hash)>> = HashMap::new();
    for (i, note) in external.iter().enumerate() {
        match verify_checkpoint(note, verifier_key) {
            Ok(head) => external_roots.entry(head.size).or_default().push((i + 1, head.root)),
            Err(e) => report.problem(format!("external checkpoint {}: {e}", i + 1)),
        }
    }

    let mut frontier = Frontier::new();
    let mut checkpoints = CheckpointCursor::new(store);
    // The newest event seen so far of each envelope, to check each envelope's chain.
    let mut last_of_envelope: HashMap<EnvelopeId, u64> = HashMap::new();
    // Checks every checkpoint (stored or external) whose size the walk has just reached.
    async fn at_size(
        frontier: &Frontier,
        checkpoints: &mut CheckpointCursor<'_>,
        external_roots: &HashMap<u64, Vec<(usize, Hash)>>,
        verifier_key: &str,
        report: &mut LogReport,
    ) -> Result<(), AuditError> {
        let size = frontier.size();
        while let Some(cp) = checkpoints.peek().await? {
            if cp.size > size {
                break;
            }
            let Some(cp) = checkpoints.pop() else { break };
            report.checkpoints_checked += 1;
            match verify_checkpoint(&cp.note, verifier_key) {
                Ok(head) if head.size == cp.size && head.root == cp.root && cp.root == frontier.root() => {}
                Ok(_) => report.problem(format!("checkpoint at size {} does not match the recomputed tree", cp.size)),
                Err(e) => report.problem(format!("checkpoint at size {}: {e}", cp.size)),
            }
        }
        for (n, root) in external_roots.get(&size).into_iter().flatten() {
            if *root != frontier.root() {
                report.problem(format!("external checkpoint {n} (size {size}) does not match the recomputed tree"));
            }
        }
        Ok(())
    }
    at_size(&frontier, &mut checkpoints, &external_roots, verifier_key, &mut report).await?;

    const PAGE: u32 = 5000;
    let mut from = 0u64;
    loop {
        let page = store.leaves_from(from, PAGE).await?;
        for leaf in &page {
            let expected = frontier.size();
            if leaf.seq != expected {
                report.problem(format!("leaf {expected} is missing (next stored leaf is {})", leaf.seq));
            }
            let recomputed = sigillum_audit::leaf_hash(&leaf.event);
            if recomputed != leaf.leaf_hash {
                report.problem(format!("leaf {}: event bytes do not match the leaf hash", leaf.seq));
            }
            if Event::from_canonical(&leaf.event).is_err() {
                report.problem(format!("leaf {}: event is not a canonical Sigillum event", leaf.seq));
            }
            let expected_prev = leaf.envelope_id.and_then(|e| last_of_envelope.insert(e, leaf.seq));
            if leaf.prev_in_envelope != expected_prev {
                report.problem(format!("leaf {}: its envelope's event chain is broken", leaf.seq));
            }
            let completed = frontier.push(recomputed);
            let parents: Vec<u8> = completed.iter().skip(1).flat_map(|(_, h)| h.iter().copied()).collect();
            if parents != leaf.parents {
                report.problem(format!("leaf {}: stored tree hashes differ from the recomputed ones", leaf.seq));
            }
            at_size(&frontier, &mut checkpoints, &external_roots, verifier_key, &mut report).await?;
        }
        match page.last() {
            Some(last) if page.len() as u32 == PAGE => from = last.seq + 1,
            _ => break,
        }
    }
    report.leaves = frontier.size();
    report.root = b64(&frontier.root());

    if let Some(cp) = checkpoints.peek().await? {
        report.problem(format!("checkpoint at size {} covers leaves that are not stored", cp.size));
    }
    for (size, list) in &external_roots {
        if *size > frontier.size() {
            for (n, _) in list {
                report.problem(format!("external checkpoint {n} (size {size}) covers leaves that are not stored"));
            }
        }
    }
    let head = store.tree_size().await?;
    if head != frontier.size() {
        report.problem(format!("log head says {head} leaves, {} are stored", frontier.size()));
    }
    match store.latest_checkpoint().await? {
        Some(cp) if cp.size == frontier.size() => {}
        Some(cp) => {
            report.problem(format!("latest checkpoint is for size {}, {} leaves stored", cp.size, frontier.size()))
        }
        None => report.problem("no checkpoint has been published".into()),
    }
    report.ok = report.problems.is_empty();
    Ok(report)
}
