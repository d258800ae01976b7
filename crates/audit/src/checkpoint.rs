//! Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed-note envelopes, Ed25519.
//!
//! Formatting and parsing come from Cloudflare's `tlog_tiles` and `signed_note` crates (ports of
//! the Go reference, golang.org/x/mod/sumdb); this module only binds them to the log's key, whose
//! 32-byte seed the caller keeps wrapped in the key manager.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash as TlogHash};

use crate::merkle::Hash;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("log origin is not a valid key name")]
    Origin,
    #[error("verifier key is malformed")]
    VerifierKey,
    #[error("note is malformed")]
    Malformed,
    #[error("note is not signed by the log key")]
    Signature,
    #[error("checkpoint is for another log")]
    WrongOrigin,
}

/// A verified checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// The log's signing key. The seed is zeroised on drop (ed25519-dalek's `zeroize` feature).
pub struct LogSigner {
    origin: String,
    key: SigningKey,
    key_id: u32,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigner").field("origin", &self.origin).field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl LogSigner {
    /// `origin` names the log (first checkpoint line) and the key.
    pub fn from_seed(origin: &str, seed: &[u8; 32]) -> Result<Self, CheckpointError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(CheckpointError::Origin);
        }
        let key = SigningKey::from_bytes(seed);
        let mut public = vec![0x01];
        public.extend_from_slice(key.verifying_key().as_bytes());
        let key_id = signed_note::key_id(origin, &public);
        Ok(Self { origin: origin.to_owned(), key, key_id })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `<name>+<key hash hex>+<base64(0x01 ‖ Ed25519 public key)>`.
    pub fn verifier_key(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.origin, &self.key.verifying_key())
    }

    /// Signs the checkpoint for a tree of `size` leaves with root `root`; returns the note text.
    pub fn sign(&self, size: u64, root: &Hash) -> Result<String, CheckpointError> {
        let body = Checkpoint::new(&self.origin, size, TlogHash(*root), "").map_err(|_| CheckpointError::Malformed)?;
        let mut note = Note::new(&body.to_bytes(), &[]).map_err(|_| CheckpointError::Malformed)?;
        note.add_sigs(&[self]).map_err(|_| CheckpointError::Malformed)?;
        String::from_utf8(note.to_bytes()).map_err(|_| CheckpointError::Malformed)
    }
}

impl signed_note::Signer for LogSigner {
    fn name(&self) -> &str {
        &self.origin
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_vec())
    }
}

/// Ed25519 verification as used for checkpoints: strict (RFC 8032 §5.1.7 with canonical encodings
/// and no small-order keys), so one signature cannot be malleated into another.
pub fn ed25519_verify(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    let (Ok(key), Ok(sig)) = (VerifyingKey::from_bytes(public), ed25519_dalek::Signature::from_slice(sig)) else {
        return false;
    };
    key.verify_strict(msg, &sig).is_ok()
}

/// The log's verifier key, parsed.
struct StrictVerifier {
    name: String,
    id: u32,
    public: [u8; 32],
}

impl StrictVerifier {
    fn parse(vkey: &str) -> Result<Self, CheckpointError> {
        // signed_note checks the format, the algorithm byte and the key hash ...
        let standard = StandardVerifier::new(vkey).map_err(|_| CheckpointError::VerifierKey)?;
        // ... and the key itself is the base64 after the second '+' (base64 may contain '+').
        let encoded = vkey.splitn(3, '+').nth(2).ok_or(CheckpointError::VerifierKey)?;
        let bytes = B64.decode(encoded).map_err(|_| CheckpointError::VerifierKey)?;
        let public = bytes.get(1..).and_then(|k| k.try_into().ok()).ok_or(CheckpointError::VerifierKey)?;
        Ok(Self {
            name: signed_note::Verifier::name(&standard).to_owned(),
            id: signed_note::Verifier::key_id(&standard),
            public,
        })
    }
}

impl signed_note::Verifier for StrictVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        ed25519_verify(&self.public, msg, sig)
    }
}

/// Verifies a checkpoint note against the log's verifier key and returns its tree head.
pub fn verify_checkpoint(note_text: &str, verifier_key: &str) -> Result<TreeHead, CheckpointError> {
    let verifier = StrictVerifier::parse(verifier_key)?;
    let origin = verifier.name.clone();
    let note = Note::from_bytes(note_text.as_bytes()).map_err(|_| CheckpointError::Malformed)?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)])).map_err(|_| CheckpointError::Signature)?;
    let body = Checkpoint::from_bytes(note.text()).map_err(|_| CheckpointError::Malformed)?;
    if body.origin() != origin {
        return Err(CheckpointError::WrongOrigin);
    }
    Ok(TreeHead { origin, size: body.size(), root: body.hash().0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoint_verifies_and_has_the_c2sp_shape() {
        let signer = LogSigner::from_seed("example.org/sigillum-log", &[7u8; 32]).unwrap();
        let root = [9u8; 32];
        let note = signer.sign(42, &root).unwrap();
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(lines[0], "example.org/sigillum-log");
        assert_eq!(lines[1], "42");
        assert_eq!(lines[2], "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("— example.org/sigillum-log "), "{note}");
        let vkey = signer.verifier_key();
        assert!(vkey.starts_with("example.org/sigillum-log+"));
        let head = verify_checkpoint(&note, &vkey).unwrap();
        assert_eq!(head, TreeHead { origin: "example.org/sigillum-log".into(), size: 42, root });
    }

    #[test]
    fn tampered_or_foreign_checkpoints_fail() {
        let signer = LogSigner::from_seed("example.org/log", &[7u8; 32]).unwrap();
        let note = signer.sign(42, &[9u8; 32]).unwrap();
        let vkey = signer.verifier_key();
        let bigger = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(verify_checkpoint(&bigger, &vkey), Err(CheckpointError::Signature));
        let other = LogSigner::from_seed("example.org/log", &[8u8; 32]).unwrap();
        assert_eq!(verify_checkpoint(&note, &other.verifier_key()), Err(CheckpointError::Signature));
        assert_eq!(verify_checkpoint("garbage", &vkey), Err(CheckpointError::Malformed));
        assert_eq!(verify_checkpoint(&note, "nope"), Err(CheckpointError::VerifierKey));
        assert_eq!(LogSigner::from_seed("has space", &[7u8; 32]).err(), Some(CheckpointError::Origin));
    }
}
