//! Key hierarchy types. A KEK (per organisation) lives in the key manager and never leaves it; a
//! DEK (per envelope) is random, exists in memory only while used, and is stored only wrapped.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;

/// A 256-bit data-encryption key. Zeroed on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Dek([u8; 32]);

impl Dek {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(crate::random_array()?))
    }
    /// Wraps raw bytes (from an unwrap) as a key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::InvalidKeySize)?;
        Ok(Self(arr))
    }
    /// The key bytes, for the AEAD and for wrapping. Never log them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

/// Identifies one DEK; written into every container sealed with it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DekId(pub [u8; 16]);

impl DekId {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(crate::random_array()?))
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let v = hex::decode(s).map_err(|_| CryptoError::Invalid("dek id"))?;
        Ok(Self(v.try_into().map_err(|_| CryptoError::Invalid("dek id"))?))
    }
}

impl fmt::Debug for DekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DekId({})", self.to_hex())
    }
}

/// Names one version of a key-encryption key held by a key manager.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KekRef {
    /// Stable name of the key, e.g. `org:<uuid>`.
    pub key_id: String,
    /// Version, starting at 1, incremented by rotation.
    pub version: u32,
}

/// A DEK wrapped (AES key wrap with padding, RFC 5649) under a KEK version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDek {
    pub kek: KekRef,
    pub wrapped: Vec<u8>,
}

/// AES-256 key wrap with padding (RFC 5649), used by the local keyring. The PKCS#11 adapter
/// runs the same mechanism inside the token.
pub fn kwp_wrap(kek: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrapPadded, AES_256};
    let k = KeyEncryptionKey::new(&AES_256, kek).map_err(|_| CryptoError::InvalidKeySize)?;
    let mut out = vec![0u8; key.len() + 16];
    let n = k.wrap_with_padding(key, &mut out).map_err(|_| CryptoError::Invalid("kwp wrap"))?.len();
    out.truncate(n);
    Ok(out)
}

/// Inverse of [`kwp_wrap`]; fails on any modification.
pub fn kwp_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrapPadded, AES_256};
    let k = KeyEncryptionKey::new(&AES_256, kek).map_err(|_| CryptoError::InvalidKeySize)?;
    let mut out = zeroize::Zeroizing::new(vec![0u8; wrapped.len()]);
    let n = k.unwrap_with_padding(wrapped, &mut out).map_err(|_| CryptoError::Authentication)?.len();
    out.truncate(n);
    Ok(out)
}
