//! Pure at-rest encryption for Sigillum: the blob container (a Sigillum header in front of a
//! C2SP Cobblestone-256 message), field-level encryption of small values, the key types of the
//! key hierarchy (KEK → DEK) and the [`KeyManager`] port the key-manager adapters implement.
//!
//! No I/O here: callers push bytes in and take bytes out, so the same code serves files, S3 and
//! database columns, and is checked against fixed vectors. The format is specified in `FORMAT.md`.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod cobblestone;
pub mod container;
pub mod ecdsa;
pub mod field;
pub mod keys;
pub mod port;
pub mod signature;

pub use container::{
    BlobContext, BlobKind, BlobOpener, BlobRandomAccess, BlobSealer, ContainerBuffer, OpenedContainer,
};
pub use keys::{Dek, DekId, KekRef, WrappedDek};
pub use port::{KekInfo, KeyManager, KeyManagerError, SigningKeyInfo, P256_SPKI_PREFIX};

/// Every way encryption or decryption can fail. Messages never include key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("key has the wrong size")]
    InvalidKeySize,
    #[error("key commitment mismatch: wrong key, wrong context or modified header")]
    Commitment,
    #[error("ciphertext failed authentication")]
    Authentication,
    #[error("ciphertext is truncated or has an invalid length")]
    Truncated,
    #[error("message too long for the format")]
    TooLong,
    #[error("decryption already failed; the stream stays failed")]
    Poisoned,
    #[error("not a Sigillum container: {0}")]
    BadHeader(&'static str),
    #[error("container was sealed with another data key")]
    WrongDek,
    #[error("chunk index out of range")]
    OutOfRange,
    #[error("invalid input: {0}")]
    Invalid(&'static str),
    #[error("internal crypto error: {0}")]
    Internal(&'static str),
}

/// Fills an array from the operating system's CSPRNG (through aws-lc).
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| CryptoError::Internal("rng"))?;
    Ok(out)
}

/// Compares two secrets (or their hashes) in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key` (webhook signatures).
/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod hmac_tests {
    /// RFC 4231 test case 2.
    #[test]
    fn rfc4231_case_2() {
        let tag = super::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
