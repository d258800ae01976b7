//! `cargo run --release --bin bench-flow [-- --envelopes N --concurrency C]`
//!
//! Runs the real server (release build, embedded defaults: SQLite with durable commits, file
//! blobs, local keyring, mail to the outbox) on loopback TLS, and drives N complete envelopes
//! through the public API, C at a time: upload a one-page PDF, add two signers (routing order 1
//! and 2) with a signature field each, send, then for each signer an embedded signing link,
//! view, consent and complete; then wait until the final document is made (status `completed`).
//!
//! Prints envelopes/s and the p50/p99 latency of the signer `complete` call, and, as a baseline
//! measured in the same run, the p50 of an authenticated `GET /api/v1/auth/me`, with the ratio
//! of the two. These figures are the baseline for later work (issue 4); no target is enforced.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// mimalloc: many threads allocate and free each other's buffers (requests, audit events, SQL
/// rows); it holds up better than the system allocator there (bench-audit).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bench {
    http: reqwest::Client,
    base: String,
    key: String,
    pdf: Vec<u8>,
}

impl Bench {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        auth: bool,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if auth {
            req = req.bearer_auth(&self.key);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// One whole envelope; returns the durations of the two `complete` calls.
    async fn envelope(&self, n: usize) -> anyhow::Result<Vec<Duration>> {
        use reqwest::Method as M;
        let form = reqwest::multipart::Form::new().text("title", format!("Bench agreement {n}")).part(
            "file",
            reqwest::multipart::Part::bytes(self.pdf.clone()).file_name("a.pdf").mime_str("application/pdf")?,
        );
        let r = self.http.post(format!("{}/api/v1/envelopes", self.base)).bearer_auth(&self.key).multipart(form);
        let created: Value = r.send().await?.error_for_status()?.json().await?;
        let id = created["id"].as_str().context("envelope id")?.to_owned();
        let mut signers = Vec::new();
        for order in [1, 2] {
            let r = self
                .call(
                    M::POST,
                    &format!("/api/v1/envelopes/{id}/recipients"),
                    Some(json!({"name": format!("Signer {order}"), "email": format!("s{order}-{n}@example.org"),
                                "role": "signer", "routing_order": order})),
                    true,
                )
                .await?;
            let rid = r["id"].as_str().context("recipient id")?.to_owned();
            self.call(
                M::POST,
                &format!("/api/v1/envelopes/{id}/fields"),
                Some(json!({"recipient_id": rid, "kind": "signature", "page": 1,
                            "x": 72, "y": 100 * order, "width": 200, "height": 40})),
                true,
            )
            .await?;
            signers.push(rid);
        }
        self.call(M::POST, &format!("/api/v1/envelopes/{id}/send"), Some(json!({})), true).await?;
        let mut times = Vec::new();
        for rid in &signers {
            let link = self
                .call(M::POST, &format!("/api/v1/envelopes/{id}/recipients/{rid}/signing-link"), None, true)
                .await?;
            let token = link["url"].as_str().and_then(|u| u.rsplit('/').next()).context("link")?.to_owned();
            self.call(M::GET, &format!("/api/v1/signing/{token}"), None, false).await?;
            self.call(M::POST, &format!("/api/v1/signing/{token}/consent"), Some(json!({"accepted": true})), false)
                .await?;
            let t = Instant::now();
            self.call(
                M::POST,
                &format!("/api/v1/signing/{token}/complete"),
                Some(json!({"signature": {"kind": "typed", "text": "Signer"}})),
                false,
            )
            .await?;
            times.push(t.elapsed());
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let e = self.call(M::GET, &format!("/api/v1/envelopes/{id}"), None, true).await?;
            if e["status"] == "completed" {
                break;
            }
            if Instant::now() > deadline {
                bail!("envelope {id} did not complete");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(times)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let envelopes = arg("--envelopes", 200);
    let concurrency = arg("--concurrency", 8).max(1);
    let dir = tempfile::tempdir()?;
    let server = sigillum::serve::LocalServer::start(&dir.path().join("data")).await?;
    let (http, base) = (server.http.clone(), server.base.clone());
    let key = server.api_key("bench@example.org").await?;
    let bench = Arc::new(Bench { http, base, key, pdf: sigillum::serve::one_page_pdf() });

    // Baseline in the same run: an authenticated read.
    let mut base_times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        bench.call(reqwest::Method::GET, "/api/v1/auth/me", None, true).await?;
        base_times.push(t.elapsed());
    }
    base_times.sort();

    // Warm-up, then the measured run.
    bench.envelope(0).await?;
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (bench, next) = (bench.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n > envelopes {
                    return Ok::<_, anyhow::Error>(times);
                }
                times.extend(bench.envelope(n).await?);
            }
        }));
    }
    let mut complete = Vec::new();
    for w in workers {
        complete.extend(w.await??);
    }
    let elapsed = started.elapsed();
    complete.sort();
    server.stop().await?;

    let per_s = envelopes as f64 / elapsed.as_secs_f64();
    let (p50, p99, base50) = (percentile(&complete, 0.5), percentile(&complete, 0.99), percentile(&base_times, 0.5));
    println!(
        "bench-flow: {envelopes} envelopes (2 signers each), {concurrency} at a time, in {:.1} s",
        elapsed.as_secs_f64()
    );
    println!("  envelopes/s                 {per_s:.1}");
    println!("  signer complete p50         {:.1} ms", p50.as_secs_f64() * 1e3);
    println!("  signer complete p99         {:.1} ms", p99.as_secs_f64() * 1e3);
    println!("  baseline GET /auth/me p50   {:.2} ms", base50.as_secs_f64() * 1e3);
    println!("  ratio complete p50 / baseline p50  {:.1}", p50.as_secs_f64() / base50.as_secs_f64().max(1e-9));
    Ok(())
}
