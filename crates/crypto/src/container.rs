//! The Sigillum blob container: a 22-byte header naming the format and the data key, followed by
//! one Cobblestone-256 message whose context binds the blob to `sigillum/v1`, the header, its
//! envelope, its kind and its version. A blob moved to another envelope, relabelled as another
//! kind or version, given another header, or opened with another key fails the key-commitment
//! check before a single chunk is decrypted. See `FORMAT.md`.

use crate::cobblestone::{self, Decryptor, Encryptor, RandomAccess, PREFIX_LEN};
use crate::keys::{Dek, DekId};
use crate::CryptoError;

/// Magic bytes at the start of every container.
pub const MAGIC: [u8; 4] = *b"SGLM";
/// Container format version written by this code.
pub const FORMAT_VERSION: u8 = 1;
/// Cipher suite 1: Cobblestone-256 (HKDF-SHA-512, AES-256-GCM, 16 KiB chunks).
pub const SUITE_COBBLESTONE_256: u8 = 1;
/// Header length: magic, version, suite, DEK id.
pub const HEADER_LEN: usize = 4 + 1 + 1 + 16;
/// Bytes before the first chunk: header plus salt and commitment.
pub const OVERHEAD_PREFIX: usize = HEADER_LEN + PREFIX_LEN;

/// What a blob is (`original`, `sanitised`, `final`, `preview-3`…): bound into the context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobKind(String);

impl BlobKind {
    /// Accepts 1–64 bytes of lowercase ASCII letters, digits, `-` and `_`.
    pub fn new(kind: &str) -> Result<Self, CryptoError> {
        let ok = !kind.is_empty()
            && kind.len() <= 64
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(kind.to_owned()))
        } else {
            Err(CryptoError::Invalid("blob kind"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a blob belongs. Everything here is authenticated through the encryption context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobContext {
    pub envelope_id: [u8; 16],
    pub kind: BlobKind,
    pub version: u32,
}

fn encode_header(dek_id: &DekId) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4] = FORMAT_VERSION;
    h[5] = SUITE_COBBLESTONE_256;
    h[6..].copy_from_slice(&dek_id.0);
    h
}

/// Reads the DEK id from a container header, checking magic, version and suite.
pub fn parse_header(h: &[u8]) -> Result<DekId, CryptoError> {
    if h.len() < HEADER_LEN {
        return Err(CryptoError::Truncated);
    }
    if h[..4] != MAGIC {
        return Err(CryptoError::BadHeader("magic"));
    }
    if h[4] != FORMAT_VERSION {
        return Err(CryptoError::BadHeader("unsupported format version"));
    }
    if h[5] != SUITE_COBBLESTONE_256 {
        return Err(CryptoError::BadHeader("unsupported cipher suite"));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[6..HEADER_LEN]);
    Ok(DekId(id))
}

/// The Cobblestone context: `"sigillum/v1" 0x00 ‖ header ‖ envelope id ‖ len(kind) ‖ kind ‖ version`.
fn context(header: &[u8; HEADER_LEN], ctx: &BlobContext) -> Vec<u8> {
    let mut c = Vec::with_capacity(12 + HEADER_LEN + 16 + 1 + ctx.kind.0.len() + 4);
    c.extend_from_slice(b"sigillum/v1\x00");
    c.extend_from_slice(header);
    c.extend_from_slice(&ctx.envelope_id);
    c.push(ctx.kind.0.len() as u8);
    c.extend_from_slice(ctx.kind.0.as_bytes());
    c.extend_from_slice(&ctx.version.to_be_bytes());
    c
}

/// Total container length for `plaintext_len` bytes.
pub fn container_len(plaintext_len: u64) -> u64 {
    HEADER_LEN as u64 + cobblestone::ciphertext_len(plaintext_len)
}

/// Streaming sealer: write [`BlobSealer::new`]'s prefix, then whatever `update`/`finish` append.
pub struct BlobSealer {
    inner: Encryptor,
}

impl BlobSealer {
    /// Starts a container with a random salt; returns the sealer and the first 78 bytes.
    pub fn new(dek: &Dek, dek_id: DekId, ctx: &BlobContext) -> Result<(Self, Vec<u8>), CryptoError> {
        Self::with_salt(dek, dek_id, ctx, crate::random_array()?)
    }

    /// As [`BlobSealer::new`] with a given salt: only for fixed test vectors. A salt must never
    /// repeat under one DEK.
    #[doc(hidden)]
    pub fn with_salt(
        dek: &Dek,
        dek_id: DekId,
        ctx: &BlobContext,
        salt: [u8; cobblestone::SALT_LEN],
    ) -> Result<(Self, Vec<u8>), CryptoError> {
        let header = encode_header(&dek_id);
        let (inner, prefix) = Encryptor::new(dek.expose_secret(), salt, &context(&header, ctx))?;
        let mut first = Vec::with_capacity(OVERHEAD_PREFIX);
        first.extend_from_slice(&header);
        first.extend_from_slice(&prefix);
        Ok((Self { inner }, first))
    }

    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.inner.update(input, out)
    }

    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.inner.finish(out)
    }
}

/// Seals a whole buffer into a container.
pub fn seal(dek: &Dek, dek_id: DekId, ctx: &BlobContext, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (mut s, first) = BlobSealer::new(dek, dek_id, ctx)?;
    let mut out = Vec::with_capacity(container_len(plaintext.len() as u64) as usize);
    out.extend_from_slice(&first);
    s.update(plaintext, &mut out)?;
    s.finish(&mut out)?;
    Ok(out)
}

/// A document being written straight into container layout: header room, then each 16 KiB of
/// plaintext followed by room for its tag. Sealing then encrypts every chunk where it lies, so a
/// document produced in memory (a sealed final PDF, say) is encrypted without a second buffer and
/// without moving a byte. Implements [`std::io::Write`].
pub struct ContainerBuffer {
    buf: Vec<u8>,
    plaintext_len: usize,
}

impl ContainerBuffer {
    /// An empty document; `capacity_hint` is the expected plaintext size.
    pub fn with_capacity(capacity_hint: usize) -> Self {
        let mut buf = Vec::with_capacity(container_len(capacity_hint as u64) as usize);
        buf.resize(OVERHEAD_PREFIX, 0);
        Self { buf, plaintext_len: 0 }
    }

    /// An empty document written into `buf`'s allocation (its contents are discarded), so one
    /// allocation can carry document after document without new page faults each time.
    pub fn reusing(mut buf: Vec<u8>, capacity_hint: usize) -> Self {
        buf.clear();
        buf.reserve(container_len(capacity_hint as u64) as usize);
        buf.resize(OVERHEAD_PREFIX, 0);
        Self { buf, plaintext_len: 0 }
    }

    /// Appends plaintext.
    pub fn write_plain(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let in_chunk = self.plaintext_len % cobblestone::CHUNK_SIZE;
            let take = (cobblestone::CHUNK_SIZE - in_chunk).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            self.plaintext_len += take;
            data = &data[take..];
            if self.plaintext_len.is_multiple_of(cobblestone::CHUNK_SIZE) {
                self.buf.resize(self.buf.len() + cobblestone::TAG_LEN, 0);
            }
        }
    }

    pub fn plaintext_len(&self) -> usize {
        self.plaintext_len
    }

    /// Seals in place and returns the container bytes.
    pub fn seal(mut self, dek: &Dek, dek_id: DekId, ctx: &BlobContext) -> Result<Vec<u8>, CryptoError> {
        self.buf.resize(container_len(self.plaintext_len as u64) as usize, 0);
        let header = encode_header(&dek_id);
        let salt = crate::random_array()?;
        cobblestone::seal_layout_in_place(
            dek.expose_secret(),
            salt,
            &context(&header, ctx),
            &mut self.buf[HEADER_LEN..],
        )?;
        self.buf[..HEADER_LEN].copy_from_slice(&header);
        Ok(self.buf)
    }
}

impl std::io::Write for ContainerBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.write_plain(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A container opened in its own allocation: every chunk's plaintext authenticated and decrypted
/// where it lay. Read it as chunk slices (zero-copy, e.g. to stream a download) or copy it out.
pub struct OpenedContainer {
    buf: Vec<u8>,
    plaintext_len: u64,
}

impl OpenedContainer {
    /// Opens `container` in place. On failure the bytes are wiped.
    pub fn open(dek: &Dek, dek_id: DekId, ctx: &BlobContext, mut container: Vec<u8>) -> Result<Self, CryptoError> {
        if parse_header(&container)? != dek_id {
            return Err(CryptoError::WrongDek);
        }
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&container[..HEADER_LEN]);
        let plaintext_len =
            cobblestone::open_layout_in_place(dek.expose_secret(), &context(&h, ctx), &mut container[HEADER_LEN..])?;
        Ok(Self { buf: container, plaintext_len })
    }

    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// The plaintext, chunk by chunk, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        cobblestone::chunk_plaintext_ranges(self.plaintext_len)
            .map(move |r| &self.buf[HEADER_LEN + r.start..HEADER_LEN + r.end])
    }

    /// Gives the allocation back (for [`ContainerBuffer::reusing`]). It still holds the
    /// plaintext, laid out in chunks.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// The plaintext as one contiguous vector (one copy).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.plaintext_len as usize);
        for c in self.chunks() {
            out.extend_from_slice(c);
        }
        out
    }
}

/// Streaming opener: releases only authenticated plaintext, and stays failed after an error.
pub struct BlobOpener {
    dek: Dek,
    dek_id: DekId,
    ctx: BlobContext,
    header: Vec<u8>,
    inner: Option<Decryptor>,
    failed: bool,
}

impl BlobOpener {
    /// Prepares to open a container sealed with `dek` (whose id is `dek_id`) for `ctx`.
    pub fn new(dek: &Dek, dek_id: DekId, ctx: &BlobContext) -> Self {
        Self { dek: dek.clone(), dek_id, ctx: ctx.clone(), header: Vec::new(), inner: None, failed: false }
    }

    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if self.failed {
            return Err(CryptoError::Poisoned);
        }
        if self.inner.is_none() {
            let take = (HEADER_LEN - self.header.len()).min(input.len());
            self.header.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.header.len() < HEADER_LEN {
                return Ok(());
            }
            match self.start() {
                Ok(d) => self.inner = Some(d),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        match self.inner.as_mut() {
            Some(d) => d.update(input, out).inspect_err(|_| self.failed = true),
            None => Err(CryptoError::Truncated),
        }
    }

    fn start(&self) -> Result<Decryptor, CryptoError> {
        let id = parse_header(&self.header)?;
        if id != self.dek_id {
            return Err(CryptoError::WrongDek);
        }
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&self.header);
        Decryptor::new(self.dek.expose_secret(), &context(&h, &self.ctx))
    }

    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if self.failed {
            return Err(CryptoError::Poisoned);
        }
        match self.inner {
            Some(d) => d.finish(out),
            None => Err(CryptoError::Truncated),
        }
    }
}

/// Opens a whole container.
pub fn open(dek: &Dek, dek_id: DekId, ctx: &BlobContext, container: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut o = BlobOpener::new(dek, dek_id, ctx);
    let mut out = Vec::with_capacity(container.len());
    o.update(container, &mut out)?;
    o.finish(&mut out)?;
    Ok(out)
}

/// Random access into a container of known total length: map a plaintext offset to a chunk,
/// fetch only that chunk's bytes, and open it.
pub struct BlobRandomAccess {
    inner: RandomAccess,
}

impl BlobRandomAccess {
    /// `first` holds the container's first [`OVERHEAD_PREFIX`] bytes.
    pub fn new(dek: &Dek, dek_id: DekId, ctx: &BlobContext, first: &[u8], total_len: u64) -> Result<Self, CryptoError> {
        if first.len() < OVERHEAD_PREFIX {
            return Err(CryptoError::Truncated);
        }
        let id = parse_header(first)?;
        if id != dek_id {
            return Err(CryptoError::WrongDek);
        }
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&first[..HEADER_LEN]);
        let body_len = total_len.checked_sub(HEADER_LEN as u64).ok_or(CryptoError::Truncated)?;
        let inner =
            RandomAccess::new(dek.expose_secret(), &context(&h, ctx), &first[HEADER_LEN..OVERHEAD_PREFIX], body_len)?;
        Ok(Self { inner })
    }

    pub fn plaintext_len(&self) -> u64 {
        self.inner.plaintext_len()
    }

    pub fn chunk_count(&self) -> u64 {
        self.inner.chunk_count()
    }

    /// Byte range of chunk `index` within the whole container.
    pub fn chunk_range(&self, index: u64) -> Result<std::ops::Range<u64>, CryptoError> {
        let r = self.inner.chunk_range(index)?;
        Ok(r.start + HEADER_LEN as u64..r.end + HEADER_LEN as u64)
    }

    pub fn open_chunk<'a>(&self, index: u64, sealed: &'a mut [u8]) -> Result<&'a [u8], CryptoError> {
        self.inner.open_chunk(index, sealed)
    }
}
