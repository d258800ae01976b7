//! `cargo run --release --bin bench-edge [-- --seconds N --check]`
//!
//! What the edge costs (issue 7), in one run on this machine, with `wrk` (HTTP/1.1 keep-alive,
//! 2 threads, 16 connections) on loopback TLS:
//! (a) a hello-world route on a bare axum router behind the same TLS settings and accept loop;
//! (b) an authenticated `GET /api/v1/envelopes/{id}` through the whole server with the WAF off;
//! (c) the same with the WAF in `block` mode;
//! (f) `GET /healthz` through the whole server with the WAF off: every layer of (b) (TLS, request
//! ids, metrics, headers, rate limits, cross-site checks) with a handler that reads nothing, so
//! (a), (f) and (b) split (b)'s cost between the edge layers and the authenticated read;
//! and, without the network: (d) libmodsecurity's own cost for that request (the
//! CRS 3.3.4 rule set at paranoia 1, `Waf::inspect`), (e) the cost the WAF layer adds in front of
//! a handler that does nothing (tower `oneshot`, the same request), and their ratio.
//!
//! Targets: b/a ≥ 0.7 (requests/s); e/d ≤ 1.10. With `--check` it exits 1 when one is missed.
//! The targets are checked with keep-alive connections, as API clients and browsers use them:
//! then TLS costs only the record encryption and (a) is about 12 µs a request here. (a) and (b)
//! are also measured with a new TLS connection per request (`Connection: close`), where the
//! handshake dominates as the target's premise ("TLS, limits, headers, auth and the handler are
//! cheap") assumes; that ratio is printed, not checked.
//! `wrk` and the client share the machine's two cores with the server, so the ratios compare
//! like with like; the absolute figures are this machine's.
#![forbid(unsafe_code)]

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use sigillum_edge::waf::{Waf, WafConfig, WafLayer, WafMode, WafRequest};
use sigillum_edge::TlsMaterial;
use sigillum_web::server::{serve, ConnLimits};
use tower::ServiceExt;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Requests/s and p99 latency (ms) from one `wrk` run.
fn wrk(url: &str, headers: &[(&str, &str)], seconds: u64) -> anyhow::Result<(f64, f64)> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c16", &format!("-d{seconds}s"), "--latency"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd.arg(url).output().context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| duration_ms(v.trim()))
        .with_context(|| format!("no 99% latency in wrk's output:\n{text}"))?;
    if text.contains("Non-2xx or 3xx responses") {
        bail!("wrk saw error responses for {url}:\n{text}");
    }
    Ok((rps, p99))
}

/// `1.23ms`, `456.78us`, `1.02s` → milliseconds.
fn duration_ms(v: &str) -> Option<f64> {
    let (num, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e3)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|n| n * factor)
}

/// (a): the bare router on the same TLS configuration and accept loop.
async fn bare_server(dir: &std::path::Path) -> anyhow::Result<std::net::SocketAddr> {
    let tls = TlsMaterial::load_or_generate(None, None, dir, &[])?;
    let (config, _reloader) = tls.server_config()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = Router::new().route("/hello", get(|| async { "hello" }));
    tokio::spawn(serve(listener, config, router, ConnLimits::default(), std::future::pending()));
    Ok(addr)
}

/// An envelope of a new account on `server`, and that account's API key.
async fn seeded(server: &sigillum::serve::LocalServer, email: &str) -> anyhow::Result<(String, String)> {
    let key = server.api_key(email).await?;
    let form = reqwest::multipart::Form::new().text("title", "Bench NDA").part(
        "file",
        reqwest::multipart::Part::bytes(sigillum::serve::one_page_pdf())
            .file_name("nda.pdf")
            .mime_str("application/pdf")?,
    );
    let created: serde_json::Value = server
        .http
        .post(format!("{}/api/v1/envelopes", server.base))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((key, created["id"].as_str().context("envelope id")?.to_owned()))
}

/// The request of (b) and (c), as the WAF sees it.
fn envelope_request(path: &str, key: &str) -> http::Request<Body> {
    http::Request::builder()
        .uri(path)
        .header("host", "localhost")
        .header("user-agent", USER_AGENT)
        .header("accept", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))))
        .body(Body::empty())
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Mean microseconds per call of `f`, after a warm-up of a tenth as many.
fn mean_us(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// (d) and (e): libmodsecurity's cost for the request, and what the layer costs in front of a
/// handler that does nothing (medians), and the median of their paired ratios.
fn waf_costs(path: &str, key: &str) -> anyhow::Result<(f64, f64, f64)> {
    let waf = Waf::load(&WafConfig { mode: WafMode::Block, ..WafConfig::default() })?;
    let auth = format!("Bearer {key}");
    let headers: Vec<(&str, &[u8])> = vec![
        ("host", b"localhost"),
        ("user-agent", USER_AGENT.as_bytes()),
        ("accept", b"application/json"),
        ("authorization", auth.as_bytes()),
    ];
    let request = WafRequest {
        client_ip: [127, 0, 0, 1].into(),
        client_port: 40000,
        server_port: 443,
        method: "GET",
        uri: path,
        http_version: "1.1",
        headers: &headers,
        body: None,
    };
    let verdict = waf.inspect(&request)?;
    if verdict.disruptive || verdict.matched() {
        bail!("the benchmark request matched rules: {verdict:?}");
    }
    // The server's kind of runtime: the layer runs the inspection differently on each kind.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let noop = Router::new().route(path, get(|| async { "" }));
    let guarded = noop.clone().layer(WafLayer::new(waf.clone()));
    // Each call runs as a task on a worker thread, as a request does in the server (code run
    // by `block_on` itself sits outside the workers and would take other paths).
    let call = |router: &Router| {
        let (router, request) = (router.clone(), envelope_request(path, key));
        let _ = runtime.block_on(runtime.spawn(async move {
            let _ = router.oneshot(request).await;
        }));
    };
    // Paired rounds (engine, bare router, layered router back to back), medians of each: the
    // machine's speed drifts by tens of per cent within a run, which a single long pass would
    // fold into the comparison.
    const ROUNDS: usize = 15;
    const N: u32 = 200;
    let (mut engine, mut added) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let e = mean_us(N, || {
            let _ = waf.inspect(&request);
        });
        let bare = mean_us(N, || call(&noop));
        let layered = mean_us(N, || call(&guarded));
        engine.push(e);
        added.push(layered - bare);
    }
    let ratio = median(engine.iter().zip(&added).map(|(e, a)| a / e).collect());
    Ok((median(engine), median(added), ratio))
}

fn main() -> anyhow::Result<()> {
    let check = std::env::args().any(|a| a == "--check");
    let seconds = arg("--seconds", 8);
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let (bare_addr, off, block) = runtime.block_on(async {
        let bare = bare_server(&dir.path().join("bare-tls")).await?;
        let off = sigillum::serve::LocalServer::start_with(&dir.path().join("off"), &[("SIGILLUM_WAF", "off")]).await?;
        let block =
            sigillum::serve::LocalServer::start_with(&dir.path().join("block"), &[("SIGILLUM_WAF", "block")]).await?;
        anyhow::Ok((bare, off, block))
    })?;
    let (off_key, off_env) = runtime.block_on(seeded(&off, "bench-off@example.org"))?;
    let (block_key, block_env) = runtime.block_on(seeded(&block, "bench-block@example.org"))?;

    let ua = ("User-Agent", USER_AGENT);
    let (a_rps, a_p99) = wrk(&format!("https://127.0.0.1:{}/hello", bare_addr.port()), &[ua], seconds)?;
    let envelope = |server: &sigillum::serve::LocalServer, env: &str| {
        format!("https://127.0.0.1:{}/api/v1/envelopes/{env}", server.ready.addr.port())
    };
    let (off_auth, block_auth) = (format!("Bearer {off_key}"), format!("Bearer {block_key}"));
    let (b_rps, b_p99) = wrk(
        &envelope(&off, &off_env),
        &[ua, ("Authorization", &off_auth), ("Accept", "application/json"), ("Host", "localhost")],
        seconds,
    )?;
    let (f_rps, f_p99) = wrk(
        &format!("https://127.0.0.1:{}/healthz", off.ready.addr.port()),
        &[ua, ("Accept", "application/json"), ("Host", "localhost")],
        seconds,
    )?;
    let close = ("Connection", "close");
    let (a_new_rps, _) = wrk(&format!("https://127.0.0.1:{}/hello", bare_addr.port()), &[ua, close], seconds)?;
    let (b_new_rps, _) = wrk(
        &envelope(&off, &off_env),
        &[ua, ("Authorization", &off_auth), ("Accept", "application/json"), ("Host", "localhost"), close],
        seconds,
    )?;
    let (c_rps, c_p99) = wrk(
        &envelope(&block, &block_env),
        &[ua, ("Authorization", &block_auth), ("Accept", "application/json"), ("Host", "localhost")],
        seconds,
    )?;
    let (engine_us, layer_us, ed) = waf_costs(&format!("/api/v1/envelopes/{block_env}"), &block_key)?;

    println!("(a) bare axum hello, same TLS:          {a_rps:>8.0} req/s, p99 {a_p99:.2} ms");
    println!("(f) GET /healthz, full stack, WAF off:  {f_rps:>8.0} req/s, p99 {f_p99:.2} ms");
    println!("(b) GET envelope, full stack, WAF off:  {b_rps:>8.0} req/s, p99 {b_p99:.2} ms");
    println!("(c) GET envelope, full stack, WAF block:{c_rps:>8.0} req/s, p99 {c_p99:.2} ms");
    println!("(d) libmodsecurity per transaction:     {engine_us:>8.0} µs (CRS 3.3.4, paranoia 1)");
    println!("(e) WAF layer in front of a no-op:      {layer_us:>8.0} µs");
    let (ba, ca) = (b_rps / a_rps, c_rps / a_rps);
    println!(
        "ratios: b/a {ba:.2} (target >= 0.70), f/a {:.2}, b/f {:.2}, c/a {ca:.2}, c/b {:.2}, e/d {ed:.2} (target <= 1.10)",
        f_rps / a_rps,
        b_rps / f_rps,
        c_rps / b_rps
    );
    println!(
        "a new TLS connection per request: (a) {a_new_rps:.0} req/s, (b) {b_new_rps:.0} req/s, b/a {:.2} (not checked)",
        b_new_rps / a_new_rps
    );
    // Time per request on the machine (server and wrk together), split by what (b) adds.
    let us = |rps: f64| 1e6 / rps;
    println!(
        "per request: (a) {:.0} µs; edge layers (f - a) +{:.0} µs; authenticated read of the envelope (b - f) +{:.0} µs",
        us(a_rps),
        us(f_rps) - us(a_rps),
        us(b_rps) - us(f_rps)
    );
    let ok = ba >= 0.7 && ed <= 1.10;
    runtime.block_on(async {
        let _ = off.stop().await;
        let _ = block.stop().await;
    });
    if check && !ok {
        eprintln!("bench-edge: a target was missed");
        std::process::exit(1);
    }
    Ok(())
}
