//! C2SP chunked encryption, Cobblestone-256 instantiation (c2sp.org/chunked-encryption).
//!
//! We adopt this published scheme rather than inventing one: HKDF-Expand-SHA-512 derives a
//! single-use AES-256-GCM key, a base nonce and a 32-byte key commitment from the input key, a
//! random 24-byte salt and a context; the message is cut into 16 KiB chunks, the last one always
//! short, so truncation and extension are detected. Everything here is pure (no I/O): callers feed
//! bytes in and take bytes out, which keeps memory flat whatever the message size.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hkdf::{KeyType, Prk, HKDF_SHA512};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Plaintext bytes per full chunk.
pub const CHUNK_SIZE: usize = 16 * 1024;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes of a full chunk.
pub const SEALED_CHUNK_SIZE: usize = CHUNK_SIZE + TAG_LEN;
/// Salt length.
pub const SALT_LEN: usize = 24;
/// Key commitment length.
pub const COMMITMENT_LEN: usize = 32;
/// Salt plus commitment, prepended to the chunks.
pub const PREFIX_LEN: usize = SALT_LEN + COMMITMENT_LEN;
/// Input key length (AES-256).
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// The spec's hard limit: at most 2^38 chunks.
const MAX_CHUNKS: u64 = 1 << 38;
const INFO_PREFIX: &[u8] = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00";

struct OkmLen(usize);
impl KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// Per-message key material derived from the input key, salt and context.
struct Derived {
    key: LessSafeKey,
    base_nonce: [u8; NONCE_LEN],
    commitment: [u8; COMMITMENT_LEN],
}

type Okm = Zeroizing<[u8; KEY_LEN + NONCE_LEN + COMMITMENT_LEN]>;

fn expand(input_key: &[u8], salt: &[u8; SALT_LEN], context: &[u8]) -> Result<Okm, CryptoError> {
    if input_key.len() != KEY_LEN {
        return Err(CryptoError::InvalidKeySize);
    }
    let prk = Prk::new_less_safe(HKDF_SHA512, input_key);
    let info: [&[u8]; 3] = [INFO_PREFIX, salt, context];
    let mut okm: Okm = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN + COMMITMENT_LEN]);
    prk.expand(&info, OkmLen(okm.len()))
        .and_then(|o| o.fill(okm.as_mut_slice()))
        .map_err(|_| CryptoError::Internal("hkdf expand"))?;
    Ok(okm)
}

fn derive(input_key: &[u8], salt: &[u8; SALT_LEN], context: &[u8]) -> Result<Derived, CryptoError> {
    let okm = expand(input_key, salt, context)?;
    let unbound = UnboundKey::new(&AES_256_GCM, &okm[..KEY_LEN]).map_err(|_| CryptoError::Internal("aead key"))?;
    let mut base_nonce = [0u8; NONCE_LEN];
    base_nonce.copy_from_slice(&okm[KEY_LEN..KEY_LEN + NONCE_LEN]);
    let mut commitment = [0u8; COMMITMENT_LEN];
    commitment.copy_from_slice(&okm[KEY_LEN + NONCE_LEN..]);
    Ok(Derived { key: LessSafeKey::new(unbound), base_nonce, commitment })
}

/// The derived per-message AEAD key and base nonce, so tests can check the Wycheproof
/// `aeadKey`/`baseNonce` fields. Applications never need it.
#[doc(hidden)]
pub fn derived_key_and_nonce(
    input_key: &[u8],
    salt: &[u8; SALT_LEN],
    context: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let okm = expand(input_key, salt, context)?;
    Ok((okm[..KEY_LEN].to_vec(), okm[KEY_LEN..KEY_LEN + NONCE_LEN].to_vec()))
}

impl Derived {
    fn nonce(&self, counter: u64) -> Result<Nonce, CryptoError> {
        if counter >= MAX_CHUNKS {
            return Err(CryptoError::TooLong);
        }
        let mut n = self.base_nonce;
        for (i, b) in counter.to_be_bytes().iter().enumerate().skip(3) {
            // The counter is a big-endian integer as wide as the nonce: its low 8 bytes
            // line up with the nonce's last 8 bytes (only the last 5 can be non-zero).
            n[NONCE_LEN - 8 + i] ^= b;
        }
        Ok(Nonce::assume_unique_for_key(n))
    }
}

/// Length of the ciphertext for a plaintext of `len` bytes.
pub fn ciphertext_len(len: u64) -> u64 {
    let chunks = len / CHUNK_SIZE as u64 + 1;
    PREFIX_LEN as u64 + len + chunks * TAG_LEN as u64
}

/// Plaintext length for a ciphertext of `len` bytes, or an error if no plaintext encrypts to that
/// length (for example a message cut at a chunk boundary).
pub fn plaintext_len(len: u64) -> Result<u64, CryptoError> {
    let body = len.checked_sub(PREFIX_LEN as u64).ok_or(CryptoError::Truncated)?;
    let full = body / SEALED_CHUNK_SIZE as u64;
    let last = body % SEALED_CHUNK_SIZE as u64;
    if last < TAG_LEN as u64 {
        return Err(CryptoError::Truncated);
    }
    Ok(full * CHUNK_SIZE as u64 + last - TAG_LEN as u64)
}

/// Streaming encryptor. Feed plaintext with [`Encryptor::update`], end with [`Encryptor::finish`].
pub struct Encryptor {
    derived: Derived,
    counter: u64,
    buf: Vec<u8>,
}

impl Encryptor {
    /// Starts a message: returns the encryptor and the 56-byte prefix (salt ‖ commitment) that must
    /// be written before any chunk.
    pub fn new(
        input_key: &[u8],
        salt: [u8; SALT_LEN],
        context: &[u8],
    ) -> Result<(Self, [u8; PREFIX_LEN]), CryptoError> {
        let derived = derive(input_key, &salt, context)?;
        let mut prefix = [0u8; PREFIX_LEN];
        prefix[..SALT_LEN].copy_from_slice(&salt);
        prefix[SALT_LEN..].copy_from_slice(&derived.commitment);
        Ok((Self { derived, counter: 0, buf: Vec::with_capacity(CHUNK_SIZE) }, prefix))
    }

    /// Like [`Encryptor::new`] with a fresh random salt.
    pub fn with_random_salt(input_key: &[u8], context: &[u8]) -> Result<(Self, [u8; PREFIX_LEN]), CryptoError> {
        Self::new(input_key, crate::random_array()?, context)
    }

    /// Encrypts `plaintext` (at most one chunk) straight into `out` (plaintext length + tag),
    /// without staging it: the AEAD reads the input and writes the output in one pass.
    fn seal_out_of_place(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        let nonce = self.derived.nonce(self.counter)?;
        self.derived
            .key
            .seal_in_place_scatter(nonce, Aad::empty(), &mut [], plaintext, out)
            .map_err(|_| CryptoError::Internal("seal"))?;
        self.counter += 1;
        Ok(())
    }

    /// Encrypts `input`, appending every completed chunk's ciphertext to `out`.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        while !input.is_empty() {
            if self.buf.is_empty() && input.len() >= CHUNK_SIZE {
                // Fast path: whole chunk from the caller's input straight into the output.
                let start = out.len();
                out.resize(start + SEALED_CHUNK_SIZE, 0);
                self.seal_out_of_place(&input[..CHUNK_SIZE], &mut out[start..])?;
                input = &input[CHUNK_SIZE..];
                continue;
            }
            let take = (CHUNK_SIZE - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() == CHUNK_SIZE {
                let start = out.len();
                out.resize(start + SEALED_CHUNK_SIZE, 0);
                let chunk = std::mem::take(&mut self.buf);
                let r = self.seal_out_of_place(&chunk, &mut out[start..]);
                self.buf = chunk;
                self.buf.clear();
                r?;
            }
        }
        Ok(())
    }

    /// Seals the final (short, possibly empty) chunk.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let start = out.len();
        out.resize(start + self.buf.len() + TAG_LEN, 0);
        let last = std::mem::take(&mut self.buf);
        self.seal_out_of_place(&last, &mut out[start..])
    }
}

/// Encrypts a whole message in one call.
pub fn encrypt(input_key: &[u8], context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    // One exact-size buffer, sealed in place: small values (database cells, audit disclosures)
    // are encrypted without the streaming encryptor's chunk buffer.
    let mut msg = vec![0u8; ciphertext_len(plaintext.len() as u64) as usize];
    for (k, chunk) in plaintext.chunks(CHUNK_SIZE).enumerate() {
        let at = PREFIX_LEN + k * SEALED_CHUNK_SIZE;
        msg[at..at + chunk.len()].copy_from_slice(chunk);
    }
    seal_layout_in_place(input_key, crate::random_array()?, context, &mut msg)?;
    Ok(msg)
}

/// Seals, in place, a message laid out in its final shape: `msg` is [`PREFIX_LEN`] bytes of room,
/// then each chunk's plaintext followed by [`TAG_LEN`] bytes of room (see [`ciphertext_len`]).
/// Nothing moves: each chunk is encrypted where it lies and its tag written after it.
pub fn seal_layout_in_place(
    input_key: &[u8],
    salt: [u8; SALT_LEN],
    context: &[u8],
    msg: &mut [u8],
) -> Result<(), CryptoError> {
    let pt_len = plaintext_len(msg.len() as u64)? as usize;
    let derived = derive(input_key, &salt, context)?;
    for k in 0..pt_len / CHUNK_SIZE + 1 {
        let start = PREFIX_LEN + k * SEALED_CHUNK_SIZE;
        let n = CHUNK_SIZE.min(pt_len - k * CHUNK_SIZE);
        let (body, rest) = msg[start..].split_at_mut(n);
        let tag = derived
            .key
            .seal_in_place_separate_tag(derived.nonce(k as u64)?, Aad::empty(), body)
            .map_err(|_| CryptoError::Internal("seal"))?;
        rest[..TAG_LEN].copy_from_slice(tag.as_ref());
    }
    msg[..SALT_LEN].copy_from_slice(&salt);
    msg[SALT_LEN..PREFIX_LEN].copy_from_slice(&derived.commitment);
    Ok(())
}

/// Opens, in place, every chunk of the message in `msg`, leaving each chunk's plaintext where its
/// ciphertext was (see [`chunk_plaintext_ranges`]). Returns the plaintext length. On failure the
/// whole message is wiped, so nothing unauthenticated can be read from it.
pub fn open_layout_in_place(input_key: &[u8], context: &[u8], msg: &mut [u8]) -> Result<u64, CryptoError> {
    let result = open_layout_inner(input_key, context, msg);
    if result.is_err() {
        msg.fill(0);
    }
    result
}

fn open_layout_inner(input_key: &[u8], context: &[u8], msg: &mut [u8]) -> Result<u64, CryptoError> {
    let pt_len = plaintext_len(msg.len() as u64)?;
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&msg[..SALT_LEN]);
    let derived = derive(input_key, &salt, context)?;
    if verify_slices_are_equal(&derived.commitment, &msg[SALT_LEN..PREFIX_LEN]).is_err() {
        return Err(CryptoError::Commitment);
    }
    for (k, range) in chunk_sealed_ranges(pt_len).enumerate() {
        derived
            .key
            .open_in_place(derived.nonce(k as u64)?, Aad::empty(), &mut msg[range])
            .map_err(|_| CryptoError::Authentication)?;
    }
    Ok(pt_len)
}

fn chunk_sealed_ranges(pt_len: u64) -> impl Iterator<Item = std::ops::Range<usize>> {
    let pt_len = pt_len as usize;
    (0..pt_len / CHUNK_SIZE + 1).map(move |k| {
        let start = PREFIX_LEN + k * SEALED_CHUNK_SIZE;
        start..start + CHUNK_SIZE.min(pt_len - k * CHUNK_SIZE) + TAG_LEN
    })
}

/// Where each chunk's plaintext lies in a message opened by [`open_layout_in_place`].
pub fn chunk_plaintext_ranges(pt_len: u64) -> impl Iterator<Item = std::ops::Range<usize>> {
    chunk_sealed_ranges(pt_len).map(|r| r.start..r.end - TAG_LEN)
}

/// Streaming decryptor. Releases plaintext only of chunks that authenticated; once an error is
/// returned every later call fails too (the Wycheproof `PartialPlaintext` rule).
pub struct Decryptor {
    input_key: Zeroizing<Vec<u8>>,
    context: Vec<u8>,
    derived: Option<Derived>,
    prefix: Vec<u8>,
    counter: u64,
    buf: Vec<u8>,
    failed: bool,
}

impl Decryptor {
    /// Prepares to decrypt a message encrypted under `input_key` and `context`.
    pub fn new(input_key: &[u8], context: &[u8]) -> Result<Self, CryptoError> {
        if input_key.len() != KEY_LEN {
            return Err(CryptoError::InvalidKeySize);
        }
        Ok(Self {
            input_key: Zeroizing::new(input_key.to_vec()),
            context: context.to_vec(),
            derived: None,
            prefix: Vec::with_capacity(PREFIX_LEN),
            counter: 0,
            buf: Vec::with_capacity(SEALED_CHUNK_SIZE),
            failed: false,
        })
    }

    fn fail<T>(&mut self, e: CryptoError) -> Result<T, CryptoError> {
        self.failed = true;
        self.buf.clear();
        Err(e)
    }

    /// Feeds ciphertext; appends authenticated plaintext to `out`.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if self.failed {
            return Err(CryptoError::Poisoned);
        }
        if self.derived.is_none() {
            let take = (PREFIX_LEN - self.prefix.len()).min(input.len());
            self.prefix.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.prefix.len() < PREFIX_LEN {
                return Ok(());
            }
            let mut salt = [0u8; SALT_LEN];
            salt.copy_from_slice(&self.prefix[..SALT_LEN]);
            let derived = match derive(&self.input_key, &salt, &self.context) {
                Ok(d) => d,
                Err(e) => return self.fail(e),
            };
            if verify_slices_are_equal(&derived.commitment, &self.prefix[SALT_LEN..]).is_err() {
                return self.fail(CryptoError::Commitment);
            }
            self.derived = Some(derived);
        }
        while !input.is_empty() {
            // A full sealed chunk can never be the final one, so once the buffer holds one
            // full chunk plus at least one more byte, it is safe to open and release it.
            if self.buf.is_empty() && input.len() > SEALED_CHUNK_SIZE {
                // Fast path: open straight into the output, without the staging buffer.
                if let Err(e) = self.open_into(&input[..SEALED_CHUNK_SIZE], out) {
                    return self.fail(e);
                }
                input = &input[SEALED_CHUNK_SIZE..];
                continue;
            }
            if self.buf.len() == SEALED_CHUNK_SIZE {
                if let Err(e) = self.open_buffered(out) {
                    return self.fail(e);
                }
            }
            let take = (SEALED_CHUNK_SIZE - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
        }
        Ok(())
    }

    /// Opens one full sealed chunk straight into `out`, without staging it.
    fn open_into(&mut self, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let derived = self.derived.as_ref().ok_or(CryptoError::Truncated)?;
        let nonce = derived.nonce(self.counter)?;
        let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let start = out.len();
        out.resize(start + ct.len(), 0);
        match derived.key.open_separate_gather(nonce, Aad::empty(), ct, tag, &mut out[start..]) {
            Ok(()) => {
                self.counter += 1;
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(CryptoError::Authentication)
            }
        }
    }

    fn open_buffered(&mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let derived = self.derived.as_ref().ok_or(CryptoError::Truncated)?;
        let nonce = derived.nonce(self.counter)?;
        let pt =
            derived.key.open_in_place(nonce, Aad::empty(), &mut self.buf).map_err(|_| CryptoError::Authentication)?;
        out.extend_from_slice(pt);
        self.buf.clear();
        self.counter += 1;
        Ok(())
    }

    /// Ends the message: the buffered bytes must form a valid short final chunk.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if self.failed {
            return Err(CryptoError::Poisoned);
        }
        if self.derived.is_none() || self.buf.len() < TAG_LEN || self.buf.len() >= SEALED_CHUNK_SIZE {
            return self.fail(CryptoError::Truncated);
        }
        match self.open_buffered(out) {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }
}

/// Decrypts a whole message in one call.
pub fn decrypt(input_key: &[u8], context: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut dec = Decryptor::new(input_key, context)?;
    let mut out = Vec::with_capacity(ciphertext.len());
    dec.update(ciphertext, &mut out)?;
    dec.finish(&mut out)?;
    Ok(out)
}

/// Random access: opens chunk `index` of a message whose full ciphertext length is `total_len`,
/// after checking the commitment in `prefix`. Knowing the total length tells which chunk is final,
/// so a full-size final chunk (truncation) and a short non-final one are both rejected.
pub struct RandomAccess {
    derived: Derived,
    total_len: u64,
    chunks: u64,
}

impl RandomAccess {
    /// Checks the prefix (salt ‖ commitment) and the ciphertext length.
    pub fn new(input_key: &[u8], context: &[u8], prefix: &[u8], total_len: u64) -> Result<Self, CryptoError> {
        if prefix.len() != PREFIX_LEN {
            return Err(CryptoError::Truncated);
        }
        let plain = plaintext_len(total_len)?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&prefix[..SALT_LEN]);
        let derived = derive(input_key, &salt, context)?;
        if verify_slices_are_equal(&derived.commitment, &prefix[SALT_LEN..]).is_err() {
            return Err(CryptoError::Commitment);
        }
        Ok(Self { derived, total_len, chunks: plain / CHUNK_SIZE as u64 + 1 })
    }

    /// Plaintext length implied by the ciphertext length (authenticated once the final chunk opens).
    pub fn plaintext_len(&self) -> u64 {
        plaintext_len(self.total_len).unwrap_or(0)
    }

    /// Number of chunks in the message.
    pub fn chunk_count(&self) -> u64 {
        self.chunks
    }

    /// Ciphertext byte range of chunk `index`.
    pub fn chunk_range(&self, index: u64) -> Result<std::ops::Range<u64>, CryptoError> {
        if index >= self.chunks {
            return Err(CryptoError::OutOfRange);
        }
        let start = PREFIX_LEN as u64 + index * SEALED_CHUNK_SIZE as u64;
        let end = (start + SEALED_CHUNK_SIZE as u64).min(self.total_len);
        Ok(start..end)
    }

    /// Opens chunk `index` in place and returns its plaintext.
    pub fn open_chunk<'a>(&self, index: u64, sealed: &'a mut [u8]) -> Result<&'a [u8], CryptoError> {
        let range = self.chunk_range(index)?;
        if sealed.len() as u64 != range.end - range.start {
            return Err(CryptoError::Truncated);
        }
        let nonce = self.derived.nonce(index)?;
        self.derived
            .key
            .open_in_place(nonce, Aad::empty(), sealed)
            .map(|p| &*p)
            .map_err(|_| CryptoError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    /// The one-shot encryptor and the streaming one agree on the layout at every chunk boundary.
    #[test]
    fn one_shot_encrypt_matches_the_streaming_layout() {
        let key = [9u8; 32];
        for len in [0, 1, 1000, super::CHUNK_SIZE - 1, super::CHUNK_SIZE, super::CHUNK_SIZE + 1, 3 * super::CHUNK_SIZE]
        {
            let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let ct = super::encrypt(&key, b"ctx", &pt).unwrap();
            assert_eq!(ct.len() as u64, super::ciphertext_len(len as u64));
            assert_eq!(super::decrypt(&key, b"ctx", &ct).unwrap(), pt, "len {len}");
            let mut salt = [0u8; super::SALT_LEN];
            salt.copy_from_slice(&ct[..super::SALT_LEN]);
            let (mut enc, prefix) = super::Encryptor::new(&key, salt, b"ctx").unwrap();
            let mut streamed = prefix.to_vec();
            enc.update(&pt, &mut streamed).unwrap();
            enc.finish(&mut streamed).unwrap();
            assert_eq!(streamed, ct, "len {len}");
        }
    }

    use super::*;

    #[test]
    fn lengths_match_the_spec_examples() {
        assert_eq!(ciphertext_len(0), 56 + 16);
        assert_eq!(ciphertext_len(16384), 56 + 16384 + 32);
        assert!(plaintext_len(56 + 16400).is_err(), "cut at a chunk boundary is truncated");
        assert!(plaintext_len(56 + 15).is_err(), "shorter than a tag");
        assert!(plaintext_len(55).is_err());
        assert_eq!(plaintext_len(ciphertext_len(20 * 1024)).ok(), Some(20 * 1024));
    }

    #[test]
    fn counter_is_xored_big_endian_into_the_low_bytes() -> Result<(), CryptoError> {
        let d = derive(&[7u8; 32], &[1u8; SALT_LEN], b"")?;
        let base = d.base_nonce;
        let n = d.nonce(0x01_0203_0405)?;
        let bytes = n.as_ref();
        assert_eq!(&bytes[..7], &base[..7]);
        assert_eq!(bytes[7], base[7] ^ 0x01);
        assert_eq!(bytes[11], base[11] ^ 0x05);
        assert!(d.nonce(MAX_CHUNKS).is_err());
        Ok(())
    }
}
