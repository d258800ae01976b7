//! Crash safety: a writer process running the real application wiring (the vault over the same
//! adapters `sigillum serve` uses) is killed with SIGKILL in the middle of blob writes and
//! database transactions, several times over the same data. After each kill the data is reopened
//! and checked: everything the writer reported as committed is there and intact, nothing
//! half-written is visible, every envelope key has its key-use record (one transaction), and the
//! database passes its integrity check.
//!
//! A custom harness (`harness = false`): the binary is both the test and, re-executed with
//! `child`, the writer.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sigillum_core::{EnvelopeId, OrgId};

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn size_of(i: u64) -> usize {
    // Mostly small, sometimes several MiB, so kills land inside long writes too.
    if i % 5 == 4 {
        3 * 1024 * 1024 + (i as usize * 7919) % 100_000
    } else {
        1 + (i as usize * 7919) % 300_000
    }
}

fn env_pairs() -> Vec<(String, String)> {
    ["SIGILLUM_DATA_DIR", "SIGILLUM_DATABASE_URL", "SIGILLUM_BLOB_URL"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

fn child() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let data = std::path::PathBuf::from(std::env::var("SIGILLUM_DATA_DIR").unwrap());
        let pairs = env_pairs();
        let extra: Vec<(&str, &str)> =
            pairs.iter().filter(|(k, _)| k != "SIGILLUM_DATA_DIR").map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = common::open(&data, &extra).await;
        let org = match std::env::var("CRASH_ORG").ok().and_then(|o| OrgId::parse(&o)) {
            Some(o) => o,
            None => app.vault.create_organisation("Crash AG").await.unwrap().id,
        };
        println!("ORG {org}");
        let start: u64 = std::env::var("CRASH_START").unwrap().parse().unwrap();
        for i in start.. {
            let env = EnvelopeId::new();
            app.vault.create_envelope_key(org, env).await.unwrap();
            println!("KEY {env} {i}");
            let data = content(i, size_of(i));
            app.vault.put_blob(env, "original", 1, common::body(data)).await.unwrap();
            println!("COMMITTED {env} {i}");
        }
    });
}

struct Committed {
    env: EnvelopeId,
    i: u64,
}

async fn verify(
    stack: &str,
    data: &std::path::Path,
    extra: &[(&str, &str)],
    committed: &[Committed],
    keys_seen: usize,
) -> usize {
    let app = common::open(data, extra).await;
    app.repo.integrity_check().await.unwrap();
    let v = &app.vault;
    for c in committed {
        let got = v
            .read_blob(c.env, "original", 1)
            .await
            .unwrap_or_else(|e| panic!("{stack}: committed blob {} lost: {e}", c.i));
        assert_eq!(Sha256::digest(&got), Sha256::digest(content(c.i, size_of(c.i))), "{stack}: blob {} corrupted", c.i);
    }
    // Every visible record opens; every envelope key came with its key-use record.
    let keys = v.repository().list_envelope_keys(None).await.unwrap();
    assert!(keys.len() >= keys_seen, "{stack}: envelope keys lost");
    let uses = v.repository().list_key_uses(None).await.unwrap();
    for k in &keys {
        assert!(
            uses.iter().any(|u| u.purpose == "wrap" && u.envelope_id == Some(k.envelope_id)),
            "{stack}: envelope key without its key-use record: the transaction was torn"
        );
        for b in v.repository().list_blobs(k.envelope_id).await.unwrap() {
            v.read_blob(k.envelope_id, &b.kind, b.version)
                .await
                .unwrap_or_else(|e| panic!("{stack}: visible blob unreadable: {e}"));
        }
    }
    // No half-written blob is visible to the store under any key.
    for key in v.blob_store().list("").await.unwrap() {
        let size = v.blob_store().size(&key).await.unwrap().unwrap();
        let head = v.blob_store().get_range(&key, 0..22).await.unwrap();
        assert_eq!(&head[..4], b"SGLM", "{stack}: {key} is not a container");
        assert!(
            sigillum_crypto::cobblestone::plaintext_len(size - 22).is_ok(),
            "{stack}: {key} has a truncated length {size}"
        );
    }
    app.repo.close().await;
    keys.len()
}

async fn scenario(stack: &str, data: &std::path::Path, extra: Vec<(String, String)>) -> usize {
    let extra_ref: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut committed: Vec<Committed> = Vec::new();
    let mut org: Option<String> = None;
    let mut next = 0u64;
    let mut keys_seen = 0;
    let mut kills = 0;
    for round in 0..5u64 {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.arg("child")
            .env("SIGILLUM_DATA_DIR", data)
            .env("CRASH_START", next.to_string())
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(o) = &org {
            cmd.env("CRASH_ORG", o);
        }
        let mut ch = cmd.spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        let out = ch.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        // Kill at a varying moment after the writer got going.
        let wait = Duration::from_millis(300 + (round * 433) % 1200);
        let start = Instant::now();
        let mut started = false;
        while !started || start.elapsed() < wait {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(20)) {
                let parts: Vec<&str> = l.split_whitespace().collect();
                match parts.as_slice() {
                    ["ORG", o] => {
                        org = Some(o.to_string());
                        started = true;
                    }
                    ["KEY", ..] => keys_seen += 1,
                    ["COMMITTED", e, i] => {
                        committed.push(Committed { env: EnvelopeId::parse(e).unwrap(), i: i.parse().unwrap() });
                        next = next.max(i.parse::<u64>().unwrap() + 1);
                    }
                    _ => {}
                }
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{stack}: writer never started");
        }
        ch.kill().unwrap(); // SIGKILL
        ch.wait().unwrap();
        kills += 1;
        // Lines already written before the kill count too.
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let parts: Vec<&str> = l.split_whitespace().collect();
            if let ["COMMITTED", e, i] = parts.as_slice() {
                committed.push(Committed { env: EnvelopeId::parse(e).unwrap(), i: i.parse().unwrap() });
                next = next.max(i.parse::<u64>().unwrap() + 1);
            } else if let ["KEY", ..] = parts.as_slice() {
                keys_seen += 1;
            }
        }
        next += 1_000; // fresh content seeds for the next round
        verify(stack, data, &extra_ref, &committed, keys_seen).await;
    }
    assert!(committed.len() >= 5, "{stack}: too few commits to mean anything ({})", committed.len());
    println!("{stack}: {kills} SIGKILLs, {} committed blobs verified, {keys_seen} envelope keys", committed.len());
    committed.len()
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("child") {
        child();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        println!("crash_sqlite_fs: test\ncrash_postgres_s3: test");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut passed = 0;
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        scenario("sqlite+fs", &dir.path().join("data"), vec![]).await;
        passed += 1;
        let dir = tempfile::tempdir().unwrap();
        let db = sigillum_testkit::postgres_database().await;
        let blobs = sigillum_testkit::s3_blob_url();
        scenario(
            "postgres+s3",
            &dir.path().join("data"),
            vec![("SIGILLUM_DATABASE_URL".into(), db), ("SIGILLUM_BLOB_URL".into(), blobs)],
        )
        .await;
        passed += 1;
    });
    println!("crash: {passed} passed, 0 failed");
}
