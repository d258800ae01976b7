//! The local sealed keyring: the embedded default for one node.
//!
//! `DIR/keys.json` holds every KEK version as a Cobblestone-256 message under a 256-bit master
//! key (context names key id and version, so entries cannot be swapped). The master key comes from
//! `SIGILLUM_MASTER_KEY` (64 hex digits) or, when unset, from `DIR/master.key`, generated with mode
//! 0600 on first start. Writes go to a temporary file, are fsynced and renamed into place under an
//! exclusive file lock, so a crash or a concurrent `sigillum keys rotate` never loses a key.
//! Destroying a key removes its sealed bytes and leaves a tombstone.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sigillum_crypto::keys::{kwp_unwrap, kwp_wrap};
use sigillum_crypto::{
    cobblestone, ecdsa, Dek, KekInfo, KekRef, KeyManager, KeyManagerError, SigningKeyInfo, WrappedDek,
};
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Default, Serialize, Deserialize)]
struct KeyringFile {
    format: u32,
    keys: Vec<Entry>,
    #[serde(default)]
    destroyed: Vec<Tombstone>,
    /// ECDSA P-256 signing keys of the internal PKI.
    #[serde(default)]
    signing: Vec<SigningEntry>,
}

#[derive(Serialize, Deserialize)]
struct SigningEntry {
    key_id: String,
    created_unix_ms: i64,
    /// DER SubjectPublicKeyInfo, base64.
    spki: String,
    /// Cobblestone-256 message of the PKCS#8 private key under the master key, base64.
    sealed: String,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key_id: String,
    version: u32,
    created_unix_ms: i64,
    /// Cobblestone-256 message of the 32 KEK bytes under the master key, base64.
    sealed: String,
}

#[derive(Serialize, Deserialize)]
struct Tombstone {
    key_id: String,
    destroyed_unix_ms: i64,
}

/// The local keyring adapter.
pub struct LocalKeyring {
    dir: PathBuf,
    master: Zeroizing<[u8; 32]>,
    /// Signing keys already opened, by key id. A signing entry never changes once written (ids
    /// are only ever added), so an opened key stays right; keeping it saves a file read, a
    /// decryption and a PKCS#8 parse per signature (two per sealed document: seal and
    /// timestamp). It exposes nothing the master key in this same process does not already open.
    signers: Arc<Mutex<HashMap<String, Arc<ecdsa::P256Signer>>>>,
}

fn io_err(what: &str, e: std::io::Error) -> KeyManagerError {
    KeyManagerError::Unavailable(format!("keyring {what}: {e}"))
}

fn signing_context(key_id: &str) -> Vec<u8> {
    let mut c = b"sigillum/v1/keyring-signing\x00".to_vec();
    c.extend_from_slice(key_id.as_bytes());
    c
}

fn seal_context(key_id: &str, version: u32) -> Vec<u8> {
    let mut c = b"sigillum/v1/keyring\x00".to_vec();
    c.extend_from_slice(key_id.as_bytes());
    c.push(0);
    c.extend_from_slice(&version.to_be_bytes());
    c
}

impl LocalKeyring {
    /// Opens (creating if needed) the keyring in `dir`.
    pub fn open(dir: &Path, master_key: Option<&SecretString>) -> Result<Self, KeyManagerError> {
        fs::create_dir_all(dir).map_err(|e| io_err("create dir", e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| io_err("chmod", e))?;
        let master = match master_key {
            Some(hexed) => parse_master(hexed.expose_secret())?,
            None => load_or_create_master(&dir.join("master.key"))?,
        };
        let kr = Self { dir: dir.to_path_buf(), master, signers: Arc::default() };
        if !kr.keys_path().exists() {
            let _lock = kr.lock()?;
            if !kr.keys_path().exists() {
                kr.store(&KeyringFile { format: 1, ..Default::default() })?;
            }
        }
        // Fail early if the master key does not open the existing keys.
        let file = kr.load()?;
        if let Some(e) = file.keys.first() {
            kr.unseal(e)?;
        }
        Ok(kr)
    }

    fn keys_path(&self) -> PathBuf {
        self.dir.join("keys.json")
    }

    fn lock(&self) -> Result<File, KeyManagerError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(".lock"))
            .map_err(|e| io_err("lock file", e))?;
        f.lock().map_err(|e| io_err("lock", e))?;
        Ok(f)
    }

    fn load(&self) -> Result<KeyringFile, KeyManagerError> {
        let raw = fs::read(self.keys_path()).map_err(|e| io_err("read", e))?;
        let file: KeyringFile =
            serde_json::from_slice(&raw).map_err(|_| KeyManagerError::Unavailable("keyring file is corrupt".into()))?;
        if file.format != 1 {
            return Err(KeyManagerError::Config("unsupported keyring format".into()));
        }
        Ok(file)
    }

    fn store(&self, file: &KeyringFile) -> Result<(), KeyManagerError> {
        let bytes =
            serde_json::to_vec_pretty(file).map_err(|_| KeyManagerError::Unavailable("keyring encode".into()))?;
        atomic_write(&self.keys_path(), &bytes)
    }

    fn seal(&self, key_id: &str, version: u32, kek: &[u8; 32]) -> Result<String, KeyManagerError> {
        let ct = cobblestone::encrypt(self.master.as_ref(), &seal_context(key_id, version), kek)
            .map_err(|_| KeyManagerError::Unavailable("seal".into()))?;
        Ok(B64.encode(ct))
    }

    fn unseal(&self, e: &Entry) -> Result<Zeroizing<Vec<u8>>, KeyManagerError> {
        let ct = B64.decode(&e.sealed).map_err(|_| KeyManagerError::Unavailable("keyring entry is corrupt".into()))?;
        cobblestone::decrypt(self.master.as_ref(), &seal_context(&e.key_id, e.version), &ct)
            .map(Zeroizing::new)
            .map_err(|_| KeyManagerError::Config("master key does not open the keyring".into()))
    }

    fn add_version(&self, file: &mut KeyringFile, key_id: &str) -> Result<KekRef, KeyManagerError> {
        if key_id.is_empty() || key_id.len() > 200 || key_id.contains('\0') {
            return Err(KeyManagerError::Config("invalid key id".into()));
        }
        let version = file.keys.iter().filter(|e| e.key_id == key_id).map(|e| e.version).max().unwrap_or(0) + 1;
        let kek: Zeroizing<[u8; 32]> =
            Zeroizing::new(sigillum_crypto::random_array().map_err(|_| KeyManagerError::Unavailable("rng".into()))?);
        let sealed = self.seal(key_id, version, &kek)?;
        file.destroyed.retain(|t| t.key_id != key_id);
        file.keys.push(Entry { key_id: key_id.to_owned(), version, created_unix_ms: crate::now_unix_ms(), sealed });
        self.store(file)?;
        Ok(KekRef { key_id: key_id.to_owned(), version })
    }

    fn kek_bytes(&self, kek: &KekRef) -> Result<Zeroizing<Vec<u8>>, KeyManagerError> {
        let file = self.load()?;
        match file.keys.iter().find(|e| e.key_id == kek.key_id && e.version == kek.version) {
            Some(e) => self.unseal(e),
            None if file.destroyed.iter().any(|t| t.key_id == kek.key_id) => {
                Err(KeyManagerError::Destroyed(kek.key_id.clone()))
            }
            None => Err(KeyManagerError::NotFound(format!("{} v{}", kek.key_id, kek.version))),
        }
    }
}

fn current(file: &KeyringFile, key_id: &str) -> Option<KekRef> {
    file.keys
        .iter()
        .filter(|e| e.key_id == key_id)
        .map(|e| e.version)
        .max()
        .map(|version| KekRef { key_id: key_id.to_owned(), version })
}

fn parse_master(hexed: &str) -> Result<Zeroizing<[u8; 32]>, KeyManagerError> {
    let bytes = Zeroizing::new(
        hex::decode(hexed.trim()).map_err(|_| KeyManagerError::Config("master key must be 64 hex digits".into()))?,
    );
    let arr: [u8; 32] =
        bytes.as_slice().try_into().map_err(|_| KeyManagerError::Config("master key must be 64 hex digits".into()))?;
    Ok(Zeroizing::new(arr))
}

fn load_or_create_master(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyManagerError> {
    if !path.exists() {
        let key: Zeroizing<[u8; 32]> =
            Zeroizing::new(sigillum_crypto::random_array().map_err(|_| KeyManagerError::Unavailable("rng".into()))?);
        let hexed = Zeroizing::new(hex::encode(key.as_ref()));
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(mut f) => {
                f.write_all(hexed.as_bytes()).map_err(|e| io_err("write master key", e))?;
                f.sync_all().map_err(|e| io_err("sync master key", e))?;
                if let Some(parent) = path.parent() {
                    sync_dir(parent)?;
                }
                return Ok(key);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create master key", e)),
        }
    }
    let meta = fs::metadata(path).map_err(|e| io_err("stat master key", e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(KeyManagerError::Config(format!("{} must not be readable by group or others", path.display())));
    }
    let raw = Zeroizing::new(fs::read_to_string(path).map_err(|e| io_err("read master key", e))?);
    parse_master(&raw)
}

fn sync_dir(dir: &Path) -> Result<(), KeyManagerError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err("sync dir", e))
}

/// Write to a temporary file, fsync, rename over the target, fsync the directory.
fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), KeyManagerError> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("write", e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io_err("write", e))?;
    fs::rename(&tmp, path).map_err(|e| io_err("rename", e))?;
    match path.parent() {
        Some(p) => sync_dir(p),
        None => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KeyManagerError> + Send + 'static,
) -> Result<T, KeyManagerError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| KeyManagerError::Unavailable("key manager task failed".into()))?
}

impl LocalKeyring {
    fn clone_handle(&self) -> Self {
        Self { dir: self.dir.clone(), master: self.master.clone(), signers: self.signers.clone() }
    }

    fn signing_info(e: &SigningEntry) -> Result<SigningKeyInfo, KeyManagerError> {
        let spki_der =
            B64.decode(&e.spki).map_err(|_| KeyManagerError::Unavailable("keyring entry is corrupt".into()))?;
        Ok(SigningKeyInfo { key_id: e.key_id.clone(), spki_der })
    }

    fn add_signing_key(&self, file: &mut KeyringFile, key_id: &str) -> Result<SigningKeyInfo, KeyManagerError> {
        if key_id.is_empty() || key_id.len() > 200 || key_id.contains('\0') {
            return Err(KeyManagerError::Config("invalid key id".into()));
        }
        let key = ecdsa::generate_p256().map_err(|_| KeyManagerError::Unavailable("key generation".into()))?;
        let spki = ecdsa::p256_public_spki(&key.0).map_err(|_| KeyManagerError::Unavailable("public key".into()))?;
        let sealed = cobblestone::encrypt(self.master.as_ref(), &signing_context(key_id), &key.0)
            .map_err(|_| KeyManagerError::Unavailable("seal".into()))?;
        let entry = SigningEntry {
            key_id: key_id.to_owned(),
            created_unix_ms: crate::now_unix_ms(),
            spki: B64.encode(&spki),
            sealed: B64.encode(sealed),
        };
        file.signing.push(entry);
        self.store(file)?;
        Ok(SigningKeyInfo { key_id: key_id.to_owned(), spki_der: spki })
    }

    fn signing_pkcs8(&self, key_id: &str) -> Result<Zeroizing<Vec<u8>>, KeyManagerError> {
        let file = self.load()?;
        let e = file
            .signing
            .iter()
            .find(|e| e.key_id == key_id)
            .ok_or_else(|| KeyManagerError::NotFound(key_id.to_owned()))?;
        let ct = B64.decode(&e.sealed).map_err(|_| KeyManagerError::Unavailable("keyring entry is corrupt".into()))?;
        cobblestone::decrypt(self.master.as_ref(), &signing_context(key_id), &ct)
            .map(Zeroizing::new)
            .map_err(|_| KeyManagerError::Config("master key does not open the keyring".into()))
    }
}

#[async_trait::async_trait]
impl KeyManager for LocalKeyring {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn ensure_kek(&self, key_id: &str) -> Result<KekRef, KeyManagerError> {
        let kr = self.clone_handle();
        let key_id = key_id.to_owned();
        blocking(move || {
            if let Some(k) = current(&kr.load()?, &key_id) {
                return Ok(k);
            }
            let _lock = kr.lock()?;
            let mut file = kr.load()?;
            match current(&file, &key_id) {
                Some(k) => Ok(k),
                None => kr.add_version(&mut file, &key_id),
            }
        })
        .await
    }

    async fn current_kek(&self, key_id: &str) -> Result<Option<KekRef>, KeyManagerError> {
        let kr = self.clone_handle();
        let key_id = key_id.to_owned();
        blocking(move || Ok(current(&kr.load()?, &key_id))).await
    }

    async fn rotate_kek(&self, key_id: &str) -> Result<KekRef, KeyManagerError> {
        let kr = self.clone_handle();
        let key_id = key_id.to_owned();
        blocking(move || {
            let _lock = kr.lock()?;
            let mut file = kr.load()?;
            kr.add_version(&mut file, &key_id)
        })
        .await
    }

    async fn wrap_dek(&self, kek: &KekRef, dek: &Dek) -> Result<WrappedDek, KeyManagerError> {
        let kr = self.clone_handle();
        let (kek, dek) = (kek.clone(), dek.clone());
        blocking(move || {
            let bytes = kr.kek_bytes(&kek)?;
            let wrapped =
                kwp_wrap(&bytes, dek.expose_secret()).map_err(|_| KeyManagerError::Unavailable("wrap".into()))?;
            Ok(WrappedDek { kek, wrapped })
        })
        .await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek) -> Result<Dek, KeyManagerError> {
        let kr = self.clone_handle();
        let wrapped = wrapped.clone();
        blocking(move || {
            let bytes = kr.kek_bytes(&wrapped.kek)?;
            let raw = kwp_unwrap(&bytes, &wrapped.wrapped).map_err(|_| KeyManagerError::Unwrap)?;
            Dek::from_bytes(&raw).map_err(|_| KeyManagerError::Unwrap)
        })
        .await
    }

    async fn destroy_kek(&self, key_id: &str) -> Result<(), KeyManagerError> {
        let kr = self.clone_handle();
        let key_id = key_id.to_owned();
        blocking(move || {
            let _lock = kr.lock()?;
            let mut file = kr.load()?;
            file.keys.retain(|e| e.key_id != key_id);
            file.destroyed.push(Tombstone { key_id, destroyed_unix_ms: crate::now_unix_ms() });
            kr.store(&file)
        })
        .await
    }

    async fn list(&self) -> Result<Vec<KekInfo>, KeyManagerError> {
        let kr = self.clone_handle();
        blocking(move || {
            let file = kr.load()?;
            Ok(file
                .keys
                .iter()
                .map(|e| KekInfo {
                    key_id: e.key_id.clone(),
                    version: e.version,
                    current: current(&file, &e.key_id).map(|c| c.version) == Some(e.version),
                    created_unix_ms: e.created_unix_ms,
                })
                .collect())
        })
        .await
    }

    async fn ensure_signing_key(&self, key_id: &str) -> Result<SigningKeyInfo, KeyManagerError> {
        let kr = self.clone_handle();
        let key_id = key_id.to_owned();
        blocking(move || {
            if let Some(e) = kr.load()?.signing.iter().find(|e| e.key_id == key_id) {
                return Self::signing_info(e);
            }
            let _lock = kr.lock()?;
            let mut file = kr.load()?;
            match file.signing.iter().find(|e| e.key_id == key_id) {
                Some(e) => Self::signing_info(e),
                None => kr.add_signing_key(&mut file, &key_id),
            }
        })
        .await
    }

    async fn sign(&self, key_id: &str, message: &[u8]) -> Result<Vec<u8>, KeyManagerError> {
        let opened = self.signers.lock().ok().and_then(|m| m.get(key_id).cloned());
        let signer = match opened {
            Some(signer) => signer,
            None => {
                let kr = self.clone_handle();
                let id = key_id.to_owned();
                let signer = blocking(move || {
                    let pkcs8 = kr.signing_pkcs8(&id)?;
                    ecdsa::P256Signer::from_pkcs8(&pkcs8)
                        .map(Arc::new)
                        .map_err(|_| KeyManagerError::Unavailable("keyring signing key is corrupt".into()))
                })
                .await?;
                if let Ok(mut m) = self.signers.lock() {
                    m.insert(key_id.to_owned(), signer.clone());
                }
                signer
            }
        };
        // One P-256 signature: tens of microseconds, cheap enough for the calling thread.
        signer.sign(message).map_err(|_| KeyManagerError::Unavailable("sign".into()))
    }

    async fn health(&self) -> Result<(), KeyManagerError> {
        let kr = self.clone_handle();
        blocking(move || kr.load().map(|_| ())).await
    }
}
