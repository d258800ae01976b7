//! `sigillum keys status|rotate|rewrap` as an operator runs them, on the local keyring and on a
//! SoftHSM2 token: rotation adds a KEK version, rewrap moves every DEK to it without touching a
//! single blob byte, and documents still open.

mod common;

use std::process::Command;

use serde_json::Value;
use sigillum_core::EnvelopeId;

fn keys(data: &std::path::Path, extra: &[(String, String)], args: &[&str]) -> Value {
    let out = Command::new(sigillum_testkit::sigillum_bin())
        .arg("keys")
        .args(args)
        .env("SIGILLUM_DATA_DIR", data)
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(out.status.success(), "keys {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn scenario(extra: Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = common::open(&data, &pairs).await;
    let org = app.vault.create_organisation("Rotating AG").await.unwrap();
    let env = EnvelopeId::new();
    app.vault.create_envelope_key(org.id, env).await.unwrap();
    let doc = b"%PDF-1.7 contract text".to_vec();
    let rec = app.vault.put_blob(env, "original", 1, common::body(doc.clone())).await.unwrap();
    let before = app.vault.blob_store().get_range(&rec.key, 0..rec.stored_len).await.unwrap();

    let s = keys(&data, &extra, &["status"]);
    let mine: Vec<&Value> = s["keks"].as_array().unwrap().iter().filter(|k| k["key_id"] == org.id.kek_id()).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["deks_wrapped"], 1);
    assert_eq!(s["deks_needing_rewrap"], 0);

    let r = keys(&data, &extra, &["rotate", "--org", &org.id.to_string()]);
    assert_eq!(r["rotated"][0]["version"], 2);
    assert_eq!(keys(&data, &extra, &["status"])["deks_needing_rewrap"], 1);

    let w = keys(&data, &extra, &["rewrap"]);
    assert_eq!(w["rewrapped"], 1);
    // Both operations are in the audit log.
    let leaves = sigillum_core::ports::AuditStore::leaves_from(&app.repo, 0, 1000).await.unwrap();
    let kinds: Vec<String> = leaves
        .iter()
        .map(|l| serde_json::from_slice::<Value>(&l.event).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"key.rotated".to_owned()) && kinds.contains(&"key.used".to_owned()), "{kinds:?}");
    let s = keys(&data, &extra, &["status"]);
    assert_eq!(s["deks_needing_rewrap"], 0);
    let v2 = s["keks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == org.id.kek_id() && k["version"] == 2)
        .unwrap()
        .clone();
    assert_eq!((v2["current"].clone(), v2["deks_wrapped"].clone()), (Value::Bool(true), Value::from(1)));

    let after = app.vault.blob_store().get_range(&rec.key, 0..rec.stored_len).await.unwrap();
    assert_eq!(before, after, "rewrap must not touch blobs");
    assert_eq!(app.vault.read_blob(env, "original", 1).await.unwrap(), doc);
    let uses = app.vault.repository().list_key_uses(Some(env)).await.unwrap();
    assert!(uses.iter().any(|u| u.purpose == "rewrap_unwrap" && u.kek_version == 1));
    assert!(uses.iter().any(|u| u.purpose == "rewrap_wrap" && u.kek_version == 2));
}

#[tokio::test]
async fn rotate_and_rewrap_with_the_local_keyring() {
    scenario(vec![]).await;
}

#[tokio::test]
async fn rotate_and_rewrap_with_softhsm() {
    let hsm = sigillum_testkit::softhsm();
    let pin = secrecy::ExposeSecret::expose_secret(&hsm.pin).to_owned();
    scenario(vec![("SIGILLUM_KMS".into(), hsm.kms_spec()), ("SIGILLUM_PKCS11_PIN".into(), pin)]).await;
}
