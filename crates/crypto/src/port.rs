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

/// Holds key-encryption keys and wraps/unwraps data keys with them.
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
    /// Cheap liveness check for `/readyz`.
    async fn health(&self) -> Result<(), KeyManagerError>;
}
