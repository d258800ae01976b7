//! `cargo run --release --bin bench-storage [-- --check]`
//!
//! Measures, in one run and on this machine:
//! 1. peak RSS while streaming a 200 MiB document through encrypt → blob store → decrypt with the
//!    real application wiring (SQLite, filesystem blobs, local keyring); target < 64 MiB;
//! 2. raw AES-256-GCM throughput of aws-lc-rs (in place, 64 KiB chunks) against the Sigillum
//!    container (Cobblestone-256) sealing and opening a 64 MiB buffer in place; target ratio ≥ 0.90
//!    both ways. The streaming API, which writes into a second buffer, is printed beside it.
//!
//! With `--check` it exits 1 when a target is missed.
#![forbid(unsafe_code)]

use std::time::Instant;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sigillum::app::App;
use sigillum::config::Config;
use sigillum_core::EnvelopeId;
use sigillum_crypto::container::{container_len, BlobContext, BlobKind, BlobOpener, BlobSealer};
use sigillum_crypto::{ContainerBuffer, OpenedContainer};
use sigillum_crypto::{Dek, DekId};

const MIB: usize = 1024 * 1024;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

async fn streaming(total: usize) -> anyhow::Result<(u64, u64, f64)> {
    let dir = tempfile::tempdir()?;
    let dd = dir.path().join("data").display().to_string();
    let cfg = Config::from_sources(None, &move |k| (k == "SIGILLUM_DATA_DIR").then(|| dd.clone()))?;
    let app = App::open(&cfg).await?;
    let org = app.vault.create_organisation("Bench").await?;
    let env = EnvelopeId::new();
    app.vault.create_envelope_key(org.id, env).await?;
    let before = peak_rss_kib();
    let piece = 64 * 1024;
    let mut expected = Sha256::new();
    let pieces = (0..total / piece).map(move |i| {
        let mut b = vec![0u8; piece];
        fill(&mut b, i as u64 + 1);
        Ok::<_, std::io::Error>(Bytes::from(b))
    });
    // Hash what is generated as it flows, without keeping it.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let producer = tokio::spawn(async move {
        for p in pieces.flatten() {
            if tx.send(p).await.is_err() {
                break;
            }
        }
    });
    let hashing = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(|b| {
        expected.update(&b);
        Ok::<_, std::io::Error>(b)
    });
    let start = Instant::now();
    let rec = app.vault.put_blob(env, "original", 1, Box::pin(hashing)).await?;
    producer.await?;
    let mut s = app.vault.open_blob(env, "original", 1).await?;
    let mut got = Sha256::new();
    let mut n = 0u64;
    while let Some(b) = s.next().await {
        let b = b?;
        n += b.len() as u64;
        got.update(&b);
    }
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(n == total as u64 && hex::encode(got.finalize()) == rec.sha256, "round trip mismatch");
    Ok((before, peak_rss_kib(), secs))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Throughput {
    raw_seal: f64,
    raw_open: f64,
    /// Medians of per-round ratios (each round measures both sides back to back).
    seal_ratio: f64,
    open_ratio: f64,
    seal: f64,
    open: f64,
    stream_seal: f64,
    stream_open: f64,
}

const RAW: usize = 64 * 1024;
const ROUNDS: usize = 21;
/// Paired rounds run first and not counted. Right after other work (the CI runs this after the
/// scale-out proof) the first rounds ran slower and unevenly: raw AES-GCM at 8.4 GB/s instead of
/// 10.2, and the container's ratio at 0.87-0.88 in one run against 0.94-0.95 once settled.
const WARMUP_ROUNDS: usize = 8;

fn nonce(i: usize) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&(i as u64).to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Raw AES-256-GCM in place, 64 KiB per call, each chunk followed by room for its tag, laid out
/// in `buf` before timing. Returns (seal, open) seconds and the buffer.
fn raw_round(key: &LessSafeKey, plain: &[u8], mut buf: Vec<u8>) -> anyhow::Result<((f64, f64), Vec<u8>)> {
    buf.clear();
    for p in plain.chunks(RAW) {
        buf.extend_from_slice(p);
        buf.extend_from_slice(&[0u8; 16]);
    }
    let t = Instant::now();
    for (i, c) in buf.chunks_mut(RAW + 16).enumerate() {
        let (body, tag_room) = c.split_at_mut(RAW);
        let tag = key.seal_in_place_separate_tag(nonce(i), Aad::empty(), body).map_err(|_| anyhow::anyhow!("seal"))?;
        tag_room.copy_from_slice(tag.as_ref());
    }
    let seal = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (i, c) in buf.chunks_mut(RAW + 16).enumerate() {
        key.open_in_place(nonce(i), Aad::empty(), c).map_err(|_| anyhow::anyhow!("open"))?;
    }
    Ok(((seal, t.elapsed().as_secs_f64()), buf))
}

/// The container's buffer API: the document written into container layout in `buf` (before
/// timing), then sealed in place, then opened in place. Returns (seal, open) seconds and the buffer.
fn container_round(
    dek: &Dek,
    dek_id: DekId,
    ctx: &BlobContext,
    plain: &[u8],
    buf: Vec<u8>,
) -> anyhow::Result<((f64, f64), Vec<u8>)> {
    let mut cb = ContainerBuffer::reusing(buf, plain.len());
    cb.write_plain(plain);
    let t = Instant::now();
    let sealed = cb.seal(dek, dek_id, ctx)?;
    let seal = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let opened = OpenedContainer::open(dek, dek_id, ctx, sealed)?;
    let open = t.elapsed().as_secs_f64();
    anyhow::ensure!(opened.plaintext_len() == plain.len() as u64, "in-place round trip length");
    anyhow::ensure!(opened.chunks().zip(plain.chunks(16384)).all(|(a, b)| a == b), "in-place round trip mismatch");
    Ok(((seal, open), opened.into_buffer()))
}

/// The streaming API into a second buffer (buffers reused across rounds, so no page faults are
/// timed). Returns (seal, open) seconds.
fn stream_round(
    dek: &Dek,
    dek_id: DekId,
    ctx: &BlobContext,
    plain: &[u8],
    sealed: &mut Vec<u8>,
    opened: &mut Vec<u8>,
) -> anyhow::Result<(f64, f64)> {
    sealed.clear();
    opened.clear();
    let t = Instant::now();
    let (mut s, first) = BlobSealer::new(dek, dek_id, ctx)?;
    sealed.extend_from_slice(&first);
    s.update(plain, sealed)?;
    s.finish(sealed)?;
    let seal = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut o = BlobOpener::new(dek, dek_id, ctx);
    o.update(sealed, opened)?;
    o.finish(opened)?;
    let open = t.elapsed().as_secs_f64();
    anyhow::ensure!(opened.as_slice() == plain, "streaming round trip mismatch");
    Ok((seal, open))
}

fn throughput() -> anyhow::Result<Throughput> {
    let len = 64 * MIB;
    let mut plain = vec![0u8; len];
    fill(&mut plain, 42);
    let key_bytes: [u8; 32] = sigillum_crypto::random_array()?;
    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).map_err(|_| anyhow::anyhow!("key"))?);
    let dek = Dek::from_bytes(&key_bytes)?;
    let dek_id = DekId([7; 16]);
    let ctx = BlobContext { envelope_id: [1; 16], kind: BlobKind::new("original")?, version: 1 };
    let (mut raw, mut cont, mut stream) = (vec![], vec![], vec![]);
    let mut sealed = vec![0u8; container_len(len as u64) as usize];
    let mut opened = vec![0u8; len];
    // Both sides run in one allocation, taking turns, so they meet the same pages, page sizes
    // and cache state: a long-lived buffer and a fresh one differ by several per cent, in either
    // direction depending on the host, which would otherwise decide the ratio.
    let mut shared = Vec::with_capacity(container_len(len as u64) as usize);
    for round in 0..WARMUP_ROUNDS + ROUNDS {
        // Alternate which side goes first, so neither always inherits a warmer cache.
        let (r, c, buf) = if round % 2 == 0 {
            let (r, buf) = raw_round(&raw_key, &plain, shared)?;
            let (c, buf) = container_round(&dek, dek_id, &ctx, &plain, buf)?;
            (r, c, buf)
        } else {
            let (c, buf) = container_round(&dek, dek_id, &ctx, &plain, shared)?;
            let (r, buf) = raw_round(&raw_key, &plain, buf)?;
            (r, c, buf)
        };
        shared = buf;
        let streamed = stream_round(&dek, dek_id, &ctx, &plain, &mut sealed, &mut opened)?;
        if round >= WARMUP_ROUNDS {
            raw.push(r);
            cont.push(c);
            stream.push(streamed);
        }
    }
    let rate =
        |v: &[(f64, f64)], open: bool| median(v.iter().map(|p| len as f64 / if open { p.1 } else { p.0 }).collect());
    let ratio =
        |open: bool| median(raw.iter().zip(&cont).map(|(r, c)| if open { r.1 / c.1 } else { r.0 / c.0 }).collect());
    Ok(Throughput {
        raw_seal: rate(&raw, false),
        raw_open: rate(&raw, true),
        seal_ratio: ratio(false),
        open_ratio: ratio(true),
        seal: rate(&cont, false),
        open: rate(&cont, true),
        stream_seal: rate(&stream, false),
        stream_open: rate(&stream, true),
    })
}

fn main() -> anyhow::Result<()> {
    let check = std::env::args().any(|a| a == "--check");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (before, peak, secs) = rt.block_on(streaming(200 * MIB))?;
    let peak_mib = peak as f64 / 1024.0;
    println!(
        "streaming 200 MiB encrypt -> fs blob store -> decrypt: {secs:.2} s ({:.0} MiB/s end to end)",
        400.0 / secs
    );
    println!("peak RSS {peak_mib:.1} MiB (before streaming {:.1} MiB); target < 64 MiB", before as f64 / 1024.0);
    let t = throughput()?;
    let gb = |x: f64| x / 1e9;
    println!(
        "raw AES-256-GCM (aws-lc-rs, in place, 64 KiB chunks): seal {:.2} GB/s, open {:.2} GB/s",
        gb(t.raw_seal),
        gb(t.raw_open)
    );
    println!(
        "container seal 64 MiB buffer (ContainerBuffer, in place): {:.2} GB/s, ratio {:.3} (median of {ROUNDS} paired rounds)",
        gb(t.seal),
        t.seal_ratio
    );
    println!(
        "container open 64 MiB buffer (OpenedContainer, in place): {:.2} GB/s, ratio {:.3} (median of {ROUNDS} paired rounds)",
        gb(t.open),
        t.open_ratio
    );
    println!(
        "container streaming API into a second buffer: seal {:.2} GB/s ({:.3} of raw), open {:.2} GB/s ({:.3} of raw)",
        gb(t.stream_seal),
        t.stream_seal / t.raw_seal,
        gb(t.stream_open),
        t.stream_open / t.raw_open
    );
    let (enc, dec) = (t.seal_ratio, t.open_ratio);
    let ok_rss = peak_mib < 64.0;
    let ok_ratio = enc >= 0.90 && dec >= 0.90;
    println!(
        "targets: rss {} · throughput ratio {}",
        if ok_rss { "met" } else { "MISSED" },
        if ok_ratio { "met" } else { "MISSED" }
    );
    if check && !(ok_rss && ok_ratio) {
        std::process::exit(1);
    }
    Ok(())
}
