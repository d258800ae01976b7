//! `sigillum backup create FILE` and `sigillum backup restore FILE`.
//!
//! A backup is a consistent dump of the metadata database (see `sigillum_store::backup`) and a
//! manifest of the blobs it refers to (key, stored size, SHA-256 of the ciphertext), sealed in a
//! Sigillum container under a fresh data key that the key manager wraps with the `system:backups`
//! KEK. The blobs themselves stay in the blob store: they are ciphertext already, and object
//! stores keep their own versions and replicas. The key manager is not in the backup either: it
//! is the root of trust and is backed up on its own terms (an HSM's replication, or the local
//! keyring's directory with its master key). That is what makes erasure by crypto-shredding hold
//! for backups too: a backup restored after an organisation's KEK was destroyed has its rows, but
//! nothing of its documents can be decrypted.
//!
//! File: `SIGILLUM-BACKUP 1\n`, one line of JSON (backup id, creation time, wrapped data key,
//! counts, all public), then the container. Restore opens the container (authenticated: a changed
//! byte fails), checks every blob of the manifest is in the configured blob store with the same
//! size and hash, and loads the dump into the configured database, which must be new.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigillum_crypto::container::{BlobContext, BlobKind};
use sigillum_crypto::{Dek, DekId, KekRef, WrappedDek};
use sigillum_store::backup::{Cell, DatabaseDump};
use sigillum_store::SqlRepository;

use crate::config::Config;

const MAGIC: &str = "SIGILLUM-BACKUP 1\n";
/// The KEK that wraps each backup's data key.
pub const BACKUP_KEK: &str = "system:backups";

/// The public first line.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    id: String,
    created_unix_ms: i64,
    kek_key_id: String,
    kek_version: u32,
    wrapped_dek: String,
    dek_id: String,
    tables: usize,
    rows: usize,
    blobs: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct BlobEntry {
    key: String,
    size: u64,
    sha256: String,
}

/// The sealed content.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    id: String,
    created_unix_ms: i64,
    database: DatabaseDump,
    blobs: Vec<BlobEntry>,
}

/// What a backup or a restore did.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub id: String,
    pub created_unix_ms: i64,
    pub schema_version: i64,
    pub tables: usize,
    pub rows: usize,
    pub blobs: usize,
    pub blob_bytes: u64,
}

fn context(id: &[u8; 16]) -> anyhow::Result<BlobContext> {
    Ok(BlobContext { envelope_id: *id, kind: BlobKind::new("backup")?, version: 1 })
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Key, stored size and ciphertext hash of every blob the `blobs` table names.
fn blob_keys(dump: &DatabaseDump) -> anyhow::Result<Vec<(String, Option<i64>)>> {
    let Some(t) = dump.table("blobs") else { return Ok(vec![]) };
    let at = |name: &str| t.columns.iter().position(|c| c == name).with_context(|| format!("blobs.{name} missing"));
    let (k, len) = (at("key")?, at("stored_len")?);
    Ok(t.rows
        .iter()
        .filter_map(|r| match (&r[k], &r[len]) {
            (Cell::Text(key), Cell::Int(n)) => Some((key.clone(), Some(*n))),
            (Cell::Text(key), _) => Some((key.clone(), None)),
            _ => None,
        })
        .collect())
}

async fn hash_blob(blobs: &dyn sigillum_core::ports::BlobStore, key: &str) -> anyhow::Result<(u64, String)> {
    let mut stream = blobs.get(key).await.with_context(|| format!("reading blob {key}"))?;
    let (mut size, mut h) = (0u64, Sha256::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("reading blob {key}"))?;
        size += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok((size, hex::encode(h.finalize())))
}

/// Writes a backup of the configured deployment to `out` (created, mode 0600; never overwritten).
pub async fn create(cfg: &Config, out: &Path) -> anyhow::Result<Summary> {
    let repo = SqlRepository::connect(cfg.database_url.expose_secret()).await.context("opening the database")?;
    let blobs = sigillum_store::open_blob_store(&cfg.blob_url).context("opening the blob store")?;
    let keys = sigillum_kms::open(&cfg.kms, cfg.master_key.as_ref(), cfg.pkcs11_pin.as_ref())
        .context("opening the key manager")?;
    let database = repo.dump().await.context("dumping the database")?;
    let mut manifest = Vec::new();
    for (key, _) in blob_keys(&database)? {
        let (size, sha256) = hash_blob(blobs.as_ref(), &key).await?;
        manifest.push(BlobEntry { key, size, sha256 });
    }
    let id: [u8; 16] = *uuid::Uuid::now_v7().as_bytes();
    let created_unix_ms = now_unix_ms();
    let payload = Payload { id: hex::encode(id), created_unix_ms, database, blobs: manifest };
    let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&payload)?);
    let kek = keys.ensure_kek(BACKUP_KEK).await?;
    let dek = Dek::generate()?;
    let dek_id = DekId::generate()?;
    let wrapped = keys.wrap_dek(&kek, &dek).await?;
    let sealed = sigillum_crypto::container::seal(&dek, dek_id, &context(&id)?, &plaintext)?;
    let summary = Summary {
        id: payload.id.clone(),
        created_unix_ms,
        schema_version: payload.database.schema_version,
        tables: payload.database.tables.len(),
        rows: payload.database.rows(),
        blobs: payload.blobs.len(),
        blob_bytes: payload.blobs.iter().map(|b| b.size).sum(),
    };
    let header = Header {
        id: payload.id.clone(),
        created_unix_ms,
        kek_key_id: kek.key_id.clone(),
        kek_version: kek.version,
        wrapped_dek: B64.encode(&wrapped.wrapped),
        dek_id: dek_id.to_hex(),
        tables: summary.tables,
        rows: summary.rows,
        blobs: summary.blobs,
    };
    let mut bytes = MAGIC.as_bytes().to_vec();
    bytes.extend(serde_json::to_vec(&header)?);
    bytes.push(b'\n');
    bytes.extend(sealed);
    write_new(out, &bytes)?;
    Ok(summary)
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (an existing file is never overwritten)", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Restores the backup in `file` into the configured database (which must be new) after checking
/// the configured blob store holds every blob it names.
pub async fn restore(cfg: &Config, file: &Path) -> anyhow::Result<Summary> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let rest = bytes.strip_prefix(MAGIC.as_bytes()).context("not a Sigillum backup (or of a newer format)")?;
    let nl = rest.iter().position(|b| *b == b'\n').context("backup header missing")?;
    let header: Header = serde_json::from_slice(&rest[..nl]).context("backup header unreadable")?;
    let container = rest[nl + 1..].to_vec();
    let keys = sigillum_kms::open(&cfg.kms, cfg.master_key.as_ref(), cfg.pkcs11_pin.as_ref())
        .context("opening the key manager")?;
    let wrapped = WrappedDek {
        kek: KekRef { key_id: header.kek_key_id.clone(), version: header.kek_version },
        wrapped: B64.decode(&header.wrapped_dek).context("backup header: wrapped key")?,
    };
    let dek = keys
        .unwrap_dek(&wrapped)
        .await
        .context("the key manager cannot unwrap this backup's key (another key manager, or its key was destroyed)")?;
    let id: [u8; 16] = hex::decode(&header.id).ok().and_then(|v| v.try_into().ok()).context("backup header: id")?;
    let dek_id = DekId::from_hex(&header.dek_id).context("backup header: key id")?;
    let plaintext = zeroize::Zeroizing::new(
        sigillum_crypto::container::open(&dek, dek_id, &context(&id)?, &container)
            .context("the backup is damaged or was changed (authentication failed)")?,
    );
    let payload: Payload = serde_json::from_slice(&plaintext).context("backup content unreadable")?;
    if payload.id != header.id {
        bail!("the backup's header and content disagree");
    }
    let blobs = sigillum_store::open_blob_store(&cfg.blob_url).context("opening the blob store")?;
    let mut missing = Vec::new();
    for b in &payload.blobs {
        match hash_blob(blobs.as_ref(), &b.key).await {
            Ok((size, sha)) if size == b.size && sha == b.sha256 => {}
            Ok(_) => missing.push(format!("{} (different content)", b.key)),
            Err(_) => missing.push(format!("{} (absent)", b.key)),
        }
    }
    if !missing.is_empty() {
        bail!(
            "the blob store does not hold what the backup names ({} of {}), e.g. {}: point SIGILLUM_BLOB_URL at the bucket of this backup",
            missing.len(),
            payload.blobs.len(),
            missing[..missing.len().min(3)].join(", ")
        );
    }
    // A new node: its data directory (where the embedded database lives) may not exist yet.
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    std::fs::set_permissions(&cfg.data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", cfg.data_dir.display()))?;
    let repo = SqlRepository::connect(cfg.database_url.expose_secret()).await.context("opening the database")?;
    repo.load(&payload.database).await.context("loading the database")?;
    repo.close().await;
    Ok(Summary {
        id: payload.id,
        created_unix_ms: payload.created_unix_ms,
        schema_version: payload.database.schema_version,
        tables: payload.database.tables.len(),
        rows: payload.database.rows(),
        blobs: payload.blobs.len(),
        blob_bytes: payload.blobs.iter().map(|b| b.size).sum(),
    })
}
