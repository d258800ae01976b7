//! The container as specified in FORMAT.md: fixed vectors, round-trips, and every tampering the
//! threat model names (bit flips in header, body and tags; truncation at every chunk boundary;
//! chunk reordering; a blob moved between envelopes; the wrong key) must be rejected.

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use sigillum_crypto::container::{
    self, container_len, BlobContext, BlobKind, BlobOpener, BlobSealer, HEADER_LEN, OVERHEAD_PREFIX,
};
use sigillum_crypto::{BlobRandomAccess, CryptoError, Dek, DekId};

const CHUNK: usize = 16384;
const SEALED: usize = CHUNK + 16;

fn ctx(env: u8, kind: &str, version: u32) -> BlobContext {
    BlobContext { envelope_id: [env; 16], kind: BlobKind::new(kind).unwrap(), version }
}

fn seq(from: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| from.wrapping_add(i as u8)).collect()
}

fn fixed(dek: &[u8], dek_id: u8, salt: [u8; 24], c: &BlobContext, pt: &[u8]) -> Vec<u8> {
    let dek = Dek::from_bytes(dek).unwrap();
    let (mut s, mut out) = BlobSealer::with_salt(&dek, DekId([dek_id; 16]), c, salt).unwrap();
    s.update(pt, &mut out).unwrap();
    s.finish(&mut out).unwrap();
    out
}

#[test]
fn format_md_vectors() {
    let v1 = fixed(&seq(0, 32), 0xd0, [0x5a; 24], &ctx(0xe0, "original", 1), b"");
    assert_eq!(hex::encode(&v1), "53474c4d0101d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d05a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a1b4e60507bbe20ed872c998ae0cfdf6414eada8a0681658c5f473011d652eb2cc4700d35fce071d55e4884152088385b");
    let salt2: [u8; 24] = seq(0, 24).try_into().unwrap();
    let v2 = fixed(&seq(0, 32), 0xd0, salt2, &ctx(0xe1, "final", 3), b"Sigillum signed this.");
    assert_eq!(hex::encode(&v2), "53474c4d0101d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0000102030405060708090a0b0c0d0e0f10111213141516175f4b1ae8b935089a16ff9e0ddae6aad8b66cabd1e72bddd6f8069a408ea15c0a4ac0da9674c718c220ae27325a69e33c85dd47f397e11395564dd34bafb000b6e65c7dc2f0");
    let pt3: Vec<u8> = (0..CHUNK + 100).map(|i| (i % 251) as u8).collect();
    let v3 = fixed(&seq(32, 32), 0xd1, [0x11; 24], &ctx(0xe2, "preview-2", 1), &pt3);
    assert_eq!(v3.len(), 16594);
    assert_eq!(hex::encode(Sha256::digest(&v3)), "b4677ac1892696a8acfc36dc33ce47ca2c04b4576fcc410c7d1fc719f0ad194a");
    let dek = Dek::from_bytes(&seq(32, 32)).unwrap();
    assert_eq!(container::open(&dek, DekId([0xd1; 16]), &ctx(0xe2, "preview-2", 1), &v3).unwrap(), pt3);
}

struct Fixture {
    dek: Dek,
    id: DekId,
    ctx: BlobContext,
    pt: Vec<u8>,
    sealed: Vec<u8>,
}

fn fixture(len: usize) -> Fixture {
    let dek = Dek::generate().unwrap();
    let id = DekId::generate().unwrap();
    let ctx = ctx(7, "original", 1);
    let pt: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
    let sealed = container::seal(&dek, id, &ctx, &pt).unwrap();
    Fixture { dek, id, ctx, pt, sealed }
}

fn opens(f: &Fixture, bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    container::open(&f.dek, f.id, &f.ctx, bytes)
}

#[test]
fn every_single_bit_flip_in_header_prefix_and_a_sample_of_body_and_tags_is_rejected() {
    let f = fixture(2 * CHUNK + 10);
    assert_eq!(opens(&f, &f.sealed).unwrap(), f.pt);
    // Every bit of header, salt and commitment, then every 97th byte and every tag byte.
    let mut positions: Vec<usize> = (0..OVERHEAD_PREFIX).collect();
    positions.extend((OVERHEAD_PREFIX..f.sealed.len()).step_by(97));
    for k in 0..3 {
        let tag_start = OVERHEAD_PREFIX + k * SEALED + if k < 2 { CHUNK } else { 10 };
        positions.extend(tag_start..tag_start + 16);
    }
    for pos in positions {
        for bit in 0..8 {
            let mut t = f.sealed.clone();
            t[pos] ^= 1 << bit;
            assert!(opens(&f, &t).is_err(), "flip at byte {pos} bit {bit} accepted");
        }
    }
}

#[test]
fn truncation_at_every_chunk_boundary_and_inside_is_rejected() {
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
        let f = fixture(len);
        let mut cuts: Vec<usize> = (0..=OVERHEAD_PREFIX).collect();
        for k in 0..=len / CHUNK {
            let boundary = OVERHEAD_PREFIX + k * SEALED;
            cuts.extend([boundary, boundary + 1, boundary + 15, boundary + 16, boundary + CHUNK]);
        }
        cuts.push(f.sealed.len() - 1);
        for cut in cuts.into_iter().filter(|&c| c < f.sealed.len()) {
            assert!(opens(&f, &f.sealed[..cut]).is_err(), "len {len}: cut at {cut} accepted");
        }
        assert!(opens(&f, &[&f.sealed[..], b"\0"].concat()).is_err(), "trailing byte accepted");
    }
}

#[test]
fn reordered_and_duplicated_chunks_are_rejected() {
    let f = fixture(3 * CHUNK + 5);
    let chunk = |i: usize| f.sealed[OVERHEAD_PREFIX + i * SEALED..OVERHEAD_PREFIX + (i + 1) * SEALED].to_vec();
    let head = &f.sealed[..OVERHEAD_PREFIX];
    let tail = &f.sealed[OVERHEAD_PREFIX + 3 * SEALED..];
    for order in [[1, 0, 2], [0, 2, 1], [2, 1, 0], [0, 0, 2], [1, 1, 1]] {
        let mut t = head.to_vec();
        for i in order {
            t.extend(chunk(i));
        }
        t.extend_from_slice(tail);
        assert!(opens(&f, &t).is_err(), "order {order:?} accepted");
    }
    // Dropping a whole middle chunk is caught too.
    let mut t = head.to_vec();
    t.extend(chunk(0));
    t.extend(chunk(2));
    t.extend_from_slice(tail);
    assert!(opens(&f, &t).is_err());
}

#[test]
fn a_blob_does_not_open_in_another_place_or_under_another_key() {
    let f = fixture(1000);
    let wrong = |c: BlobContext| container::open(&f.dek, f.id, &c, &f.sealed);
    assert_eq!(wrong(ctx(8, "original", 1)), Err(CryptoError::Commitment), "other envelope");
    assert_eq!(wrong(ctx(7, "final", 1)), Err(CryptoError::Commitment), "other kind");
    assert_eq!(wrong(ctx(7, "original", 2)), Err(CryptoError::Commitment), "other version");
    let other = Dek::generate().unwrap();
    assert_eq!(container::open(&other, f.id, &f.ctx, &f.sealed), Err(CryptoError::Commitment));
    assert_eq!(container::open(&f.dek, DekId::generate().unwrap(), &f.ctx, &f.sealed), Err(CryptoError::WrongDek));
    // Swap: a blob of envelope 8 put in place of envelope 7's blob, both under their own keys.
    let g = container::seal(&other, f.id, &ctx(8, "original", 1), &f.pt).unwrap();
    assert!(opens(&f, &g).is_err());
    let mut bad_magic = f.sealed.clone();
    bad_magic[0] = b'X';
    assert_eq!(opens(&f, &bad_magic), Err(CryptoError::BadHeader("magic")));
}

#[test]
fn opener_keeps_failing_after_an_error_and_releases_only_authenticated_chunks() {
    let f = fixture(2 * CHUNK + 1);
    let mut t = f.sealed.clone();
    t[OVERHEAD_PREFIX + SEALED + 5] ^= 1; // corrupt chunk 1
    let mut o = BlobOpener::new(&f.dek, f.id, &f.ctx);
    let mut out = Vec::new();
    let r = o.update(&t, &mut out);
    assert!(r.is_err());
    assert_eq!(out, f.pt[..CHUNK], "only chunk 0 may be released");
    assert_eq!(o.update(b"", &mut out), Err(CryptoError::Poisoned));
}

#[test]
fn random_access_opens_any_chunk_and_authenticates_length() {
    let f = fixture(5 * CHUNK + 123);
    let ra = BlobRandomAccess::new(&f.dek, f.id, &f.ctx, &f.sealed[..OVERHEAD_PREFIX], f.sealed.len() as u64).unwrap();
    assert_eq!(ra.plaintext_len(), f.pt.len() as u64);
    for i in [5, 0, 3] {
        let r = ra.chunk_range(i).unwrap();
        let mut buf = f.sealed[r.start as usize..r.end as usize].to_vec();
        let pt = ra.open_chunk(i, &mut buf).unwrap();
        assert_eq!(pt, &f.pt[i as usize * CHUNK..(i as usize * CHUNK + pt.len())]);
    }
    // A container cut to a chunk boundary has no valid length.
    assert!(BlobRandomAccess::new(
        &f.dek,
        f.id,
        &f.ctx,
        &f.sealed[..OVERHEAD_PREFIX],
        (OVERHEAD_PREFIX + 5 * SEALED) as u64
    )
    .is_err());
    assert_eq!(HEADER_LEN, 22);
}

#[test]
fn container_buffer_and_opened_container_agree_with_streaming_and_reject_tampering() {
    use sigillum_crypto::{ContainerBuffer, OpenedContainer};
    use std::io::Write;
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 77] {
        let f = fixture(len);
        let mut cb = ContainerBuffer::with_capacity(10);
        for piece in f.pt.chunks(5000) {
            cb.write_all(piece).unwrap();
        }
        assert_eq!(cb.plaintext_len(), len);
        let sealed = cb.seal(&f.dek, f.id, &f.ctx).unwrap();
        assert_eq!(sealed.len() as u64, container_len(len as u64));
        assert_eq!(opens(&f, &sealed).unwrap(), f.pt, "streaming opens the in-place seal");
        let opened = OpenedContainer::open(&f.dek, f.id, &f.ctx, f.sealed.clone()).unwrap();
        assert_eq!(opened.to_vec(), f.pt, "in-place open of the streaming seal");
        assert_eq!(opened.chunks().count(), len / CHUNK + 1);
        for pos in [0, 5, HEADER_LEN + 3, OVERHEAD_PREFIX, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[pos] ^= 1;
            assert!(OpenedContainer::open(&f.dek, f.id, &f.ctx, t).is_err(), "len {len}: flip at {pos} accepted");
        }
        for cut in [OVERHEAD_PREFIX, sealed.len() - 1, OVERHEAD_PREFIX + SEALED] {
            if cut < sealed.len() {
                assert!(OpenedContainer::open(&f.dek, f.id, &f.ctx, sealed[..cut].to_vec()).is_err());
            }
        }
    }
}

#[test]
fn a_reused_allocation_carries_one_document_after_another() {
    use sigillum_crypto::{ContainerBuffer, OpenedContainer};
    let mut buf = Vec::new();
    // A long document first, then shorter ones: nothing of an earlier one may leak into a later.
    for len in [3 * CHUNK + 77, CHUNK + 1, 1, 0] {
        let f = fixture(len);
        let mut cb = ContainerBuffer::reusing(buf, len);
        cb.write_plain(&f.pt);
        let sealed = cb.seal(&f.dek, f.id, &f.ctx).unwrap();
        assert_eq!(sealed.len() as u64, container_len(len as u64));
        assert_eq!(opens(&f, &sealed).unwrap(), f.pt, "len {len}");
        let opened = OpenedContainer::open(&f.dek, f.id, &f.ctx, sealed).unwrap();
        assert_eq!(opened.to_vec(), f.pt);
        buf = opened.into_buffer();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn round_trip_any_length_any_split(len in 0usize..70_000, split in 1usize..40_000, kind in "[a-z][a-z0-9_-]{0,20}", version: u32) {
        let dek = Dek::generate().unwrap();
        let id = DekId::generate().unwrap();
        let c = BlobContext { envelope_id: [3; 16], kind: BlobKind::new(&kind).unwrap(), version };
        let pt: Vec<u8> = (0..len).map(|i| (i ^ (i >> 8)) as u8).collect();
        let (mut s, mut sealed) = BlobSealer::new(&dek, id, &c).unwrap();
        for piece in pt.chunks(split) {
            s.update(piece, &mut sealed).unwrap();
        }
        s.finish(&mut sealed).unwrap();
        prop_assert_eq!(sealed.len() as u64, container_len(len as u64));
        let mut o = BlobOpener::new(&dek, id, &c);
        let mut out = Vec::new();
        for piece in sealed.chunks(split) {
            o.update(piece, &mut out).unwrap();
        }
        o.finish(&mut out).unwrap();
        prop_assert_eq!(out, pt);
    }
}
