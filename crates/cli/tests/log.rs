//! The public transparency endpoints and `sigillum log` as a third party uses them: every proof
//! the server hands out verifies with the RFC 9162 verifier against the signed checkpoint, bad
//! requests get JSON errors, nothing personal is published, and `sigillum log verify` tells a
//! sound log from a tampered one by its exit code.

mod common;

use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;
use sigillum_audit::{verify_checkpoint, verify_consistency, verify_inclusion, ActorKind, EventKind};
use sigillum_core::{Actor, ClientInfo, EnvelopeId, NewEvent};
use sigillum_testkit::server::{embedded_env, Server};

fn hashes(v: &Value) -> Vec<Vec<u8>> {
    v["hashes"].as_array().unwrap().iter().map(|h| B64.decode(h.as_str().unwrap()).unwrap()).collect()
}

fn log_cli(data: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(sigillum_testkit::sigillum_bin())
        .arg("log")
        .args(args)
        .env("SIGILLUM_DATA_DIR", data)
        .output()
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_proofs_verify_and_log_verify_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&embedded_env(&data), &[]);
    let http = server.client();
    let get = |path: String| {
        let http = http.clone();
        let url = server.url(&path);
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    let (status, key) = get("/log/key".into()).await;
    assert_eq!(status, 200);
    let key = key.trim().to_owned();
    assert!(key.starts_with("localhost:8443/log+"), "{key}");
    let (_, empty) = get("/log/checkpoint".into()).await;
    assert_eq!(verify_checkpoint(&empty, &key).unwrap().size, 0, "the empty tree is signed at first start");

    // A second process on the same data directory records events (as a second node would).
    let app = common::open(&data, &[]).await;
    let org = app.vault.create_organisation("Acme").await.unwrap();
    let env = EnvelopeId::new();
    app.vault.create_envelope_key(org.id, env).await.unwrap();
    let mut leaves = Vec::new();
    for i in 0..13 {
        let actor = Actor {
            kind: ActorKind::User,
            id: Some("u1".into()),
            name: Some("Ada Sender".into()),
            email: Some("ada@example.org".into()),
        };
        let client = ClientInfo { ip: Some("192.0.2.44".parse().unwrap()), user_agent: Some("curl/8.5".into()) };
        let rec = app.audit.record(NewEvent::new(EventKind::DocumentViewed, Some(env), actor, client)).await.unwrap();
        assert_eq!(rec.seq, i);
        leaves.push(rec.leaf_hash);
    }

    let (status, note) = get("/log/checkpoint".into()).await;
    assert_eq!(status, 200);
    let head = verify_checkpoint(&note, &key).unwrap();
    assert_eq!(head.size, 13);
    for (i, leaf) in leaves.iter().enumerate() {
        let (status, body) = get(format!("/log/proof/inclusion?index={i}&size=13")).await;
        assert_eq!(status, 200);
        assert!(!body.contains("ada@example.org") && !body.contains("192.0.2.44"));
        let proof = hashes(&serde_json::from_str(&body).unwrap());
        verify_inclusion(i as u64, 13, leaf, &proof, &head.root).unwrap();
    }
    // Consistency from every earlier checkpoint the server published to the latest.
    let mut earlier = vec![(13u64, head.root)];
    for size in 1..13u64 {
        let cp = app.audit.checkpoint_at(size).await.unwrap().unwrap();
        let h = verify_checkpoint(&cp.note, &key).unwrap();
        earlier.push((size, h.root));
    }
    for (size, root) in &earlier {
        let (status, body) = get(format!("/log/proof/consistency?from={size}&to=13")).await;
        assert_eq!(status, 200, "{body}");
        verify_consistency(*size, 13, root, &head.root, &hashes(&serde_json::from_str(&body).unwrap())).unwrap();
    }

    for bad in [
        "/log/proof/inclusion?index=13&size=13",
        "/log/proof/inclusion?index=0&size=14",
        "/log/proof/inclusion?index=-1&size=3",
        "/log/proof/inclusion?size=3",
        "/log/proof/consistency?from=0&to=13",
        "/log/proof/consistency?from=5&to=4",
        "/log/proof/consistency?from=5&to=99",
        "/log/proof/consistency?from=x&to=9",
    ] {
        let (status, body) = get(bad.into()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "invalid_proof_request", "{bad}");
    }

    // The CLI on the same database.
    let (code, out) = log_cli(&data, &["checkpoint"]);
    assert_eq!((code, out.as_str()), (0, note.as_str()));
    let kept = dir.path().join("kept.checkpoint");
    std::fs::write(&kept, &note).unwrap();
    let (code, out) = log_cli(&data, &["verify", "--key", &key, "--checkpoint", kept.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit log valid: 13 events"), "{out}");

    // Tamper with one stored event: exit 1 and the leaf named.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}/sigillum.db", data.display())).await.unwrap();
    sqlx::query("UPDATE audit_leaves SET event = CAST(REPLACE(CAST(event AS TEXT), 'document.viewed', 'document.vieweD') AS BLOB) WHERE seq = 4")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (code, out) = log_cli(&data, &["verify", "--json"]);
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["problems"].as_array().unwrap().iter().any(|p| p == "leaf 4: event bytes do not match the leaf hash"),
        "{out}"
    );
    server.terminate();
}
