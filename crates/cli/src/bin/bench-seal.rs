//! `cargo run --release --bin bench-seal [-- --iterations N --check]`
//!
//! Seals the same 10-page, ~1 MB PDF with the same ECDSA P-256 key and certificate, and (for
//! B-T) the same timestamp authority — the built-in TSA of a Sigillum server running on loopback
//! TLS — twice in one run:
//! - with Sigillum's PAdES code in-process (`sigillum_pdf::pades` + `cms` + `tsp`),
//! - with pyHanko through its Python API, in one interpreter, timing only the signing loop.
//!
//! Prints milliseconds per signature for both at PAdES B-B and B-T and the ratios (pyHanko time /
//! Sigillum time); with `--check` it fails unless Sigillum is at least 10× faster at both levels.
//! It runs `--rounds` rounds (default 5); in each, Sigillum signs `--iterations` times per level
//! and then pyHanko does (its own process per round), so both sides of a round see the machine
//! in the same state. Each time is the median round and each ratio the median of the rounds'
//! paired ratios: one slow round on a shared machine (the B-T figure includes a loopback HTTPS
//! round trip through the server's WAF) does not decide.
//! It also prints how long the previews of a 30-page document take (two sizes per page).
#![forbid(unsafe_code)]

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context};
use sigillum_crypto::ecdsa;
use sigillum_pdf::cms::{self, SignedAttrs, ID_DATA};
use sigillum_pdf::pades::{self, SignatureParams};
use sigillum_pdf::pki::{self, CertInfo, CertRequest, CertRole};
use sigillum_pdf::tsp;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `pages` pages of text, the first carrying an uncompressed image of `image_bytes` noise, so the
/// file is about that large and the digest has real work to do.
fn document(pages: usize, image_bytes: usize) -> Vec<u8> {
    let side = ((image_bytes / 3) as f64).sqrt() as usize;
    let mut noise = vec![0u8; side * side * 3];
    let mut x: u32 = 0x9e37_79b9;
    for b in noise.iter_mut() {
        // xorshift: filler bytes, not cryptography.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(
        format!("<< /Type /Pages /Kids [{}] /Count {pages} /MediaBox [0 0 612 792] >>", kids.join(" ")).into_bytes(),
    );
    let mut img = format!(
        "<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length {} >>\nstream\n",
        noise.len()
    )
    .into_bytes();
    img.extend_from_slice(&noise);
    img.extend_from_slice(b"\nendstream");
    objects.push(img);
    for i in 0..pages {
        let content = if i == 0 {
            "q 400 0 0 400 100 300 cm /Im1 Do Q BT /F1 24 Tf 72 720 Td (Page 1) Tj ET".to_owned()
        } else {
            format!("BT /F1 24 Tf 72 720 Td (Page {}) Tj ET", i + 1)
        };
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /Contents {} 0 R /Resources << /XObject << /Im1 3 0 R >> /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>",
                5 + 2 * i
            )
            .into_bytes(),
        );
        objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).into_bytes());
    }
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

/// The median of `xs` (NaN when empty, which fails the check).
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `rounds a-b`: the fastest and the slowest round, in milliseconds.
fn spread(xs: &[f64]) -> String {
    let (lo, hi) = xs.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    format!("rounds {lo:.2}-{hi:.2}")
}

struct Signer {
    key: ecdsa::P256Pkcs8,
    cert: CertInfo,
}

fn signer() -> anyhow::Result<Signer> {
    let key = ecdsa::generate_p256()?;
    let spki = ecdsa::p256_public_spki(&key.0)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let name = pki::name("CN=Bench Seal,O=Sigillum")?;
    let req = CertRequest {
        role: CertRole::Seal,
        subject: "CN=Bench Seal,O=Sigillum",
        spki_der: &spki,
        issuer: Some((&name, &spki)),
        serial: sigillum_crypto::random_array()?,
        not_before_unix: now - 3600,
        not_after_unix: now + 86_400,
        crl_url: None,
    };
    let tbs = pki::tbs_certificate(&req)?;
    let sig = ecdsa::p256_sign(&key.0, &pki::to_be_signed(&tbs)?)?;
    let cert = CertInfo::parse(&pki::assemble_certificate(tbs, &sig)?)?;
    Ok(Signer { key, cert })
}

/// One Sigillum PAdES signature, with a signature timestamp from `tsa` when given.
async fn sigillum_seal(pdf: &[u8], s: &Signer, tsa: Option<(&reqwest::Client, &str)>) -> anyhow::Result<Vec<u8>> {
    let params = SignatureParams {
        field_name: "Signature1".into(),
        name: "Bench".into(),
        reason: "benchmark".into(),
        location: None,
        signing_time_unix: 1_800_000_000,
        capacity: 8192,
    };
    let prepared = pades::prepare_signature(pdf, &params)?;
    let attrs = SignedAttrs::new(ID_DATA, &prepared.digest(), &s.cert)?;
    let signature = ecdsa::p256_sign(&s.key.0, &attrs.to_be_signed()?)?;
    let mut unsigned = Vec::new();
    if let Some((http, url)) = tsa {
        let req = tsp::request(&sigillum_crypto::sha256(&signature), &sigillum_crypto::random_array()?)?;
        let resp = http
            .post(url)
            .header("content-type", "application/timestamp-query")
            .body(req)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        unsigned.push(cms::signature_timestamp_attribute(&tsp::token_from_response(&resp)?)?);
    }
    let der = cms::signed_data(ID_DATA, None, &s.cert, std::slice::from_ref(&s.cert), attrs, &signature, unsigned)?;
    Ok(prepared.finish(&der)?)
}

const PYHANKO_BENCH: &str = r#"
import io, json, sys, time
from pyhanko.sign import signers
from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

pdf_path, key_path, cert_path, tsa_url, iterations, rounds = sys.argv[1:7]
iterations, rounds = int(iterations), int(rounds)
data = open(pdf_path, 'rb').read()
signer = signers.SimpleSigner.load(key_path, cert_path)
tsa = RequestsHTTPTimeStamper(tsa_url, https=True)
out = {'b_b': [], 'b_t': []}
meta = signers.PdfSignatureMetadata(field_name='Signature1', subfilter=SigSeedSubFilter.PADES, md_algorithm='sha256')
for ts in (None, tsa):  # one warm-up run per level
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(data)), meta, signer=signer, timestamper=ts)
for _ in range(rounds):
    for level, ts in (('b_b', None), ('b_t', tsa)):
        t = time.perf_counter()
        for _ in range(iterations):
            signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(data)), meta, signer=signer, timestamper=ts)
        out[level].append((time.perf_counter() - t) * 1000.0 / iterations)
print(json.dumps(out))
"#;

/// One pyHanko round (its own process: a warm-up signature per level, then `iterations`
/// signatures per level): milliseconds per signature at B-B and B-T.
fn pyhanko_round(files: &std::path::Path, tsa_url: &str, iterations: usize) -> anyhow::Result<[f64; 2]> {
    let out = std::process::Command::new("python3")
        .arg(files.join("bench.py"))
        .arg(files.join("doc.pdf"))
        .arg(files.join("key.pem"))
        .arg(files.join("cert.pem"))
        .arg(tsa_url)
        .arg(iterations.to_string())
        .arg("1")
        .env("REQUESTS_CA_BUNDLE", files.join("tls.pem"))
        .env("NO_PROXY", "localhost")
        .output()
        .context("python3 with pyHanko (scripts/deps.sh)")?;
    if !out.status.success() {
        bail!("pyHanko benchmark failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).context("pyHanko benchmark output")?;
    let level = |name: &str| theirs[name].get(0).and_then(serde_json::Value::as_f64).context("pyHanko round figure");
    Ok([level("b_b")?, level("b_t")?])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations = arg("--iterations", 20).max(1);
    let rounds = arg("--rounds", 5).max(1);
    let check = std::env::args().any(|a| a == "--check");
    let dir = tempfile::tempdir()?;
    let server = sigillum::serve::LocalServer::start(&dir.path().join("data")).await?;
    let http = server.http.clone();
    let tsa_url = format!("{}/tsa", server.base);

    let pdf = document(10, 1024 * 1024);
    let s = signer()?;
    let files = dir.path();
    std::fs::write(files.join("doc.pdf"), &pdf)?;
    std::fs::write(files.join("key.pem"), pki::to_pem("PRIVATE KEY", &s.key.0))?;
    std::fs::write(files.join("cert.pem"), s.cert.pem())?;
    std::fs::write(files.join("tls.pem"), &server.ready.cert_pem)?;
    std::fs::write(files.join("bench.py"), PYHANKO_BENCH)?;
    println!(
        "document: 10 pages, {} bytes; {rounds} rounds of {iterations} signatures per level, median round",
        pdf.len()
    );

    let levels = [None, Some((&http, tsa_url.as_str()))];
    for tsa in levels {
        sigillum_seal(&pdf, &s, tsa).await?; // warm-up
    }
    // Each round times both sides back to back (Sigillum's two levels, then one pyHanko process
    // timing its two levels after its own warm-up), and the ratios are the medians of the
    // rounds' paired ratios: this machine's speed drifts over a run by more than the margin a
    // ratio near its target has, and timing all of one side before all of the other folded that
    // drift into the comparison (one run measured B-T at 10.0x, the next at 15.4x).
    let mut rounds_ms = [Vec::new(), Vec::new()];
    let mut py_rounds = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (level, tsa) in levels.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..iterations {
                let out = sigillum_seal(&pdf, &s, *tsa).await?;
                std::hint::black_box(out);
            }
            rounds_ms[level].push(t.elapsed().as_secs_f64() * 1000.0 / iterations as f64);
        }
        let [bb, bt] = pyhanko_round(files, &tsa_url, iterations)?;
        py_rounds[0].push(bb);
        py_rounds[1].push(bt);
    }
    // What was timed is a real signature: our verifier finds it intact.
    let sample = sigillum_seal(&pdf, &s, Some((&http, tsa_url.as_str()))).await?;
    let report = sigillum_pdf::verify::verify(&sample, std::slice::from_ref(&s.cert), 1_800_000_000)?;
    if !report.signatures.first().is_some_and(|r| r.intact() && r.timestamp.as_ref().is_some_and(|t| t.intact)) {
        bail!("the benchmarked signature does not verify: {report:?}");
    }

    let paired = |level: usize| -> f64 {
        median(&py_rounds[level].iter().zip(&rounds_ms[level]).map(|(py, ours)| py / ours).collect::<Vec<_>>())
    };
    let (r_bb, r_bt) = (paired(0), paired(1));
    for (name, level, ratio) in [("B-B", 0, r_bb), ("B-T", 1, r_bt)] {
        println!(
            "PAdES {name}: sigillum {:.2} ms ({}), pyHanko {:.2} ms ({}), ratio {ratio:.1}x (median of the rounds' \
             paired ratios; target >= 10x)",
            median(&rounds_ms[level]),
            spread(&rounds_ms[level]),
            median(&py_rounds[level]),
            spread(&py_rounds[level])
        );
    }

    let thirty = document(30, 64 * 1024);
    let t = Instant::now();
    let pages = sigillum_pdf::preview::render_pages(&thirty)?;
    let took = t.elapsed();
    println!(
        "previews: 30 pages x 2 sizes in {:.0} ms ({:.1} ms per page)",
        took.as_secs_f64() * 1000.0,
        took.as_secs_f64() * 1000.0 / pages.len().max(1) as f64
    );
    let _ = std::io::stdout().flush();
    server.stop().await?;
    if check && !(r_bb >= 10.0 && r_bt >= 10.0) {
        bail!("target missed: Sigillum must be at least 10x faster than pyHanko at B-B and B-T");
    }
    Ok(())
}
