//! The key-manager port. Adapters (local sealed keyring, PKCS#11 HSM) live in `sigillum-kms`;
//! the application only ever sees this trait, so a KEK's bytes are never in its reach.

use crate::keys::{Dek, KekRef, WrappedDek};

/// Errors a key manager reports. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyManagerError {
    #[error("no such key: {0}")]
    NotFound(String),
    #[error("key was destroyed: {0}")]
    Destroyed(String),
    #[error("unwrap failed: wrong key or modified wrapped key")]
    Unwrap,
    #[error("key manager unavailable: {0}")]
    Unavailable(String),
    #[error("key manager configuration: {0}")]
    Config(String),
}

/// One KEK version as reported by `sigillum keys status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KekInfo {
    pub key_id: String,
    pub version: u32,
    pub current: bool,
    pub created_unix_ms: i64,
}

/// A signing key held by a key manager: its name and public key (DER SubjectPublicKeyInfo).
/// The private half never leaves the key manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyInfo {
    pub key_id: String,
    /// DER SubjectPublicKeyInfo of an ECDSA P-256 key.
    pub spki_der: Vec<u8>,
}

/// DER SubjectPublicKeyInfo header of an uncompressed P-256 point (id-ecPublicKey, prime256v1),
/// followed by the 65 point bytes.
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Holds key-encryption keys and wraps/unwraps data keys with them, and holds the signing keys
/// of the internal PKI (document seal, timestamp authority, CA), signing inside the key manager.
#[async_trait::async_trait]
pub trait KeyManager: Send + Sync {
    /// `local` or `pkcs11`, for status output.
    fn backend(&self) -> &'static str;
    /// The current version of `key_id`, creating version 1 if the key does not exist yet.
    async fn ensure_kek(&self, key_id: &str) -> Result<KekRef, KeyManagerError>;
    /// The current version of `key_id`, if any.
    async fn current_kek(&self, key_id: &str) -> Result<Option<KekRef>, KeyManagerError>;
    /// Creates a new version of `key_id` and makes it current. Old versions still unwrap.
    async fn rotate_kek(&self, key_id: &str) -> Result<KekRef, KeyManagerError>;
    /// Wraps a DEK under the given KEK version (AES key wrap with padding, RFC 5649).
    async fn wrap_dek(&self, kek: &KekRef, dek: &Dek) -> Result<WrappedDek, KeyManagerError>;
    /// Unwraps a DEK. Fails for a destroyed KEK or a modified wrapped key.
    async fn unwrap_dek(&self, wrapped: &WrappedDek) -> Result<Dek, KeyManagerError>;
    /// Destroys every version of `key_id` (crypto-shredding).
    async fn destroy_kek(&self, key_id: &str) -> Result<(), KeyManagerError>;
    /// Every KEK version held.
    async fn list(&self) -> Result<Vec<KekInfo>, KeyManagerError>;
    /// The ECDSA P-256 signing key `key_id`, generated inside the key manager on first use.
    async fn ensure_signing_key(&self, key_id: &str) -> Result<SigningKeyInfo, KeyManagerError>;
    /// Signs `message` with `key_id` (ECDSA P-256 over SHA-256 of `message`) and returns the
    /// DER `ECDSA-Sig-Value`. `NotFound` if the key does not exist.
    async fn sign(&self, key_id: &str, message: &[u8]) -> Result<Vec<u8>, KeyManagerError>;
    /// Cheap liveness check for `/readyz`.
    async fn health(&self) -> Result<(), KeyManagerError>;
}
