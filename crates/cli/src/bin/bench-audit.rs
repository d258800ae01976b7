//! `cargo run --release --bin bench-audit [-- --check]`
//!
//! Measures, in one run and on this machine, with the embedded SQLite settings (WAL,
//! `synchronous=FULL`: every commit is durable):
//! 1. audit appends: 512 concurrent callers record realistic envelope events through
//!    `AuditLog::record` (commitments, disclosure sealed under the envelope key, group commit,
//!    one signed checkpoint per commit) — events/s and the mean commit size;
//! 2. raw inserts of rows of the same size into a table of the same shape, committed in batches of
//!    that same mean size — rows/s — and the ratio of (1) to (2);
//! 3. inclusion-proof generation in a log of 1 000 000 leaves (mean over 2 000 random proofs).
//!
//! `--appends-only` runs (1) alone, for profiling.
//!
//! (1) and (2) run as nine short paired rounds after a warm-up pair, on one log and one raw table
//! that grow across rounds; the targets are checked on the medians.
//! Targets: ≥ 20 000 events/s, ratio ≥ 0.5, proof < 1 ms. With `--check` it exits 1 when one is missed.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Instant;

use sigillum::app::App;
use sigillum::config::Config;
use sigillum_audit::{ActorKind, Detail, EventDraft, EventKind, LogSigner, Personal};
use sigillum_core::ports::{AuditStore, NewLeaf, SystemClock};
use sigillum_core::{Actor, AuditLog, ClientInfo, EnvelopeId, NewEvent};
use sigillum_store::SqlRepository;

/// The allocator of the `sigillum` binary, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CALLERS: usize = 512;
/// Events of an `--appends-only` run.
const EVENTS: usize = 60_000;
const BIG_LOG: u64 = 1_000_000;
const PROOFS: u64 = 2_000;

fn config(dir: &std::path::Path) -> anyhow::Result<Config> {
    let dd = dir.display().to_string();
    Config::from_sources(None, &move |k| (k == "SIGILLUM_DATA_DIR").then(|| dd.clone()))
}

fn event(env: EnvelopeId, i: usize) -> NewEvent {
    let actor = Actor {
        kind: ActorKind::Recipient,
        id: Some(format!("0195f0a0-0000-7000-8000-{i:012}")),
        name: Some("Maximilian Mustermann".into()),
        email: Some(format!("signer{i}@example.org")),
    };
    let client = ClientInfo {
        ip: Some(std::net::IpAddr::from([203, 0, 113, (i % 250) as u8])),
        user_agent: Some(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
                .into(),
        ),
    };
    NewEvent::new(EventKind::DocumentViewed, Some(env), actor, client)
        .document("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
        .detail("page", Detail::Int((i % 12) as i64 + 1))
}

/// One measurement of the audit path: events/s, mean commit size, mean stored event and
/// disclosure bytes.
struct AuditRound {
    rate: f64,
    batch: f64,
    event_len: usize,
    disclosure_len: usize,
}

/// A server's audit log with envelopes to write to, kept across rounds.
struct AuditRig {
    _dir: tempfile::TempDir,
    app: App,
    envelopes: Vec<EnvelopeId>,
}

impl AuditRig {
    async fn open() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let app = App::open(&config(&dir.path().join("data"))?).await?;
        let org = app.vault.create_organisation("Bench").await?;
        let mut envelopes = Vec::new();
        for _ in 0..64 {
            let env = EnvelopeId::new();
            app.vault.create_envelope_key(org.id, env).await?;
            envelopes.push(env);
        }
        Ok(Self { _dir: dir, app, envelopes })
    }

    /// `CALLERS` concurrent callers record `events` events in all.
    async fn round(&self, events: usize) -> anyhow::Result<AuditRound> {
        let app = &self.app;
        let size_before = app.repo.tree_size().await?;
        let commits_before = app.repo.checkpoints_from(size_before, u32::MAX).await?.len();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CALLERS {
            let log = app.audit.clone();
            let env = self.envelopes[c % self.envelopes.len()];
            tasks.push(tokio::spawn(async move {
                for i in 0..events / CALLERS {
                    log.record(event(env, c * 1000 + i)).await?;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let secs = start.elapsed().as_secs_f64();
        let total = (events / CALLERS) * CALLERS;
        let commits = app.repo.checkpoints_from(size_before, u32::MAX).await?.len() - commits_before;
        let sample = app.repo.leaves_from(size_before, 1000).await?;
        let n = sample.len().max(1);
        Ok(AuditRound {
            rate: total as f64 / secs,
            batch: total as f64 / commits.max(1) as f64,
            event_len: sample.iter().map(|l| l.event.len()).sum::<usize>() / n,
            disclosure_len: sample.iter().map(|l| l.disclosure.as_ref().map_or(0, Vec::len)).sum::<usize>() / n,
        })
    }
}

/// Plain multi-row inserts into a table of the audit leaves' shape, in a database opened with
/// the same settings, kept across rounds.
struct RawRig {
    _dir: tempfile::TempDir,
    repo: SqlRepository,
    seq: i64,
}

impl RawRig {
    async fn open() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let repo = SqlRepository::connect(&format!("sqlite://{}/raw.db", dir.path().display())).await?;
        sqlx::query(
            "CREATE TABLE raw_rows (seq INTEGER PRIMARY KEY, envelope_id TEXT, leaf_hash BLOB NOT NULL, \
             parents BLOB NOT NULL, event BLOB NOT NULL, disclosure BLOB, created_ms BIGINT NOT NULL)",
        )
        .execute(repo.pool())
        .await?;
        Ok(Self { _dir: dir, repo, seq: 0 })
    }

    /// Rows/s for `rows` rows of the given sizes, `batch` rows per commit.
    async fn round(
        &mut self,
        rows: usize,
        batch: usize,
        event_len: usize,
        disclosure_len: usize,
    ) -> anyhow::Result<f64> {
        let pool = self.repo.pool();
        let env = EnvelopeId::new().to_string();
        let (event, disclosure) = (vec![b'x'; event_len], vec![7u8; disclosure_len]);
        let start = Instant::now();
        let mut done = 0;
        while done < rows {
            let n = batch.min(rows - done);
            let mut tx = pool.begin().await?;
            // `?` placeholders, as the audit store uses on SQLite.
            for chunk_start in (0..n).step_by(256) {
                let chunk = 256.min(n - chunk_start);
                let values: Vec<String> = (0..chunk).map(|_| "(?, ?, ?, ?, ?, ?, ?)".to_owned()).collect();
                let sql = format!(
                    "INSERT INTO raw_rows (seq, envelope_id, leaf_hash, parents, event, disclosure, created_ms) \
                     VALUES {}",
                    values.join(", ")
                );
                let mut q = sqlx::query(&sql);
                for _ in 0..chunk {
                    q = q
                        .bind(self.seq)
                        .bind(env.clone())
                        .bind(vec![1u8; 32])
                        .bind(vec![2u8; 32])
                        .bind(event.clone())
                        .bind(disclosure.clone())
                        .bind(self.seq);
                    self.seq += 1;
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            done += n;
        }
        Ok(rows as f64 / start.elapsed().as_secs_f64())
    }
}

/// Mean microseconds per inclusion proof in a log of `BIG_LOG` leaves.
async fn proof_latency() -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let app = App::open(&config(&dir.path().join("data"))?).await?;
    let signer = LogSigner::from_seed("bench/log", &[7u8; 32])?;
    let sign = |size: u64, root: &[u8; 32]| signer.sign(size, root).ok();
    let draft = EventDraft {
        kind: EventKind::DocumentViewed,
        time_unix_ms: 1_795_621_207_123,
        envelope_id: Some(EnvelopeId::new().to_string()),
        actor_kind: ActorKind::Recipient,
        actor_id: Some("r".into()),
        personal: Personal { actor_email: Some("a@example.org".into()), ..Personal::default() },
        device: None,
        document_sha256: None,
        details: Default::default(),
    };
    let mut appended = app.repo.tree_size().await?;
    let mut n = 0u64;
    while appended < BIG_LOG {
        let count = 8192.min(BIG_LOG - appended);
        let leaves: Vec<NewLeaf> = (0..count)
            .map(|_| {
                n += 1;
                let mut d = draft.clone();
                d.details.insert("n".into(), Detail::Int(n as i64));
                let c = d.commit(|| [n as u8; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(NewLeaf {
                    envelope_id: None,
                    leaf_hash: c.leaf_hash,
                    event: c.canonical,
                    disclosure: None,
                    settles_job: None,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        app.repo.append_leaves(leaves, &sign, 0).await?;
        appended += count;
    }
    let log = AuditLog::open(Arc::new(app.repo.clone()), app.vault.clone(), Arc::new(SystemClock), "bench/log").await?;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let start = Instant::now();
    for _ in 0..PROOFS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let proof = log.inclusion_proof(x % BIG_LOG, BIG_LOG).await?;
        anyhow::ensure!((1..=20).contains(&proof.len()), "unexpected proof length {}", proof.len());
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / PROOFS as f64)
}

/// Paired rounds of (audit appends, raw inserts at the same commit size) after one warm-up pair;
/// the targets are checked on the medians. This machine is a VM whose speed drifts by tens of
/// percent from second to second, so the rounds are short and many, and each ratio compares two
/// measurements taken a fraction of a second apart.
const ROUNDS: usize = 9;
const EVENTS_PER_ROUND: usize = 20_480;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let check = std::env::args().any(|a| a == "--check");
    let audit = AuditRig::open().await?;
    if std::env::args().any(|a| a == "--appends-only") {
        let r = audit.round(EVENTS).await?;
        println!("audit appends: {:.0} events/s, mean commit {:.1}", r.rate, r.batch);
        return Ok(());
    }
    let mut raw = RawRig::open().await?;
    let (mut rates, mut ratios) = (Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let a = audit.round(EVENTS_PER_ROUND).await?;
        let raw_rate =
            raw.round(EVENTS_PER_ROUND, a.batch.round().max(1.0) as usize, a.event_len, a.disclosure_len).await?;
        let ratio = a.rate / raw_rate;
        let label = if round == 0 { "warm-up".to_owned() } else { format!("round {round}") };
        println!(
            "{label}: audit appends {:.0} events/s ({CALLERS} callers, mean commit {:.1} events, event {} B + sealed \
             disclosure {} B); raw inserts, same rows and commit size, {raw_rate:.0} rows/s; ratio {ratio:.2}",
            a.rate, a.batch, a.event_len, a.disclosure_len
        );
        if round > 0 {
            rates.push(a.rate);
            ratios.push(ratio);
        }
    }
    let (audit_rate, ratio) = (median(rates), median(ratios));
    println!("audit appends (median of {ROUNDS}): {audit_rate:.0} events/s (target >= 20000)");
    println!("ratio audit/raw (median of {ROUNDS}): {ratio:.2} (target >= 0.50)");
    let proof_us = proof_latency().await?;
    println!("inclusion proof at {BIG_LOG} leaves: {proof_us:.0} µs mean over {PROOFS} (target < 1000 µs)");
    let ok = audit_rate >= 20_000.0 && ratio >= 0.5 && proof_us < 1000.0;
    if check && !ok {
        eprintln!("bench-audit: a target was missed");
        std::process::exit(1);
    }
    Ok(())
}
