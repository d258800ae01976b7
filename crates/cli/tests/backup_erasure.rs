//! Backups and erasure (issue 9, items 4 and 5), as an operator and an owner do them against the
//! real server:
//! - `sigillum backup create` while the server runs, then `restore` into a new database: the
//!   restored node serves the same documents and `sigillum log verify` passes (SQLite and
//!   PostgreSQL + S3);
//! - a database + bucket backup, then an owner erases their organisation
//!   (`DELETE /api/v1/organisation`), then the backup is restored: the organisation's rows are
//!   back, but its documents cannot be decrypted (its key is gone from the key manager), while
//!   another organisation's documents open as before;
//! - a damaged backup, a backup into a database that is not new, and a backup whose blobs are not
//!   in the bucket are refused with a clear message and change nothing.

use std::path::Path;
use std::process::{Command, Output};

use reqwest::Method;
use serde_json::{json, Value};
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::pdf::pdf;
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";

fn cli(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(sigillum_testkit::sigillum_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(
            ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"]
                .iter()
                .filter_map(|k| Some((*k, std::env::var(k).ok()?))),
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn refused(out: &Output, what: &str, message: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} was accepted");
    assert!(err.contains(message), "{what}: expected {message:?} in {err}");
}

async fn download(api: &Api, auth: &Auth, id: &str) -> (u16, Vec<u8>) {
    let mut req = api.client.get(format!("{}/api/v1/envelopes/{id}/document?version=original", api.base));
    match auth {
        Auth::Bearer(k) => req = req.bearer_auth(k),
        Auth::Session { cookie, .. } => req = req.header("cookie", cookie),
        Auth::None => {}
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn with(env: &[(String, String)], pairs: &[(&str, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        env.iter().filter(|(k, _)| !pairs.iter().any(|(p, _)| p == k)).cloned().collect();
    out.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
    out
}

/// Two organisations, each with a document; returns (ada's key, ada's envelope, bob's key, bob's envelope).
async fn two_organisations(api: &Api) -> (String, String, String, String) {
    let ada = api.account_with_key("ada@example.org", PW, "Ada Lovelace").await;
    let bob = api.account_with_key("bob@example.net", PW, "Bob Builder").await;
    let a = api.upload(&Auth::Bearer(ada.clone()), "Ada's merger", pdf(2)).await;
    let b = api.upload(&Auth::Bearer(bob.clone()), "Bob's lease", pdf(1)).await;
    assert_eq!((a.status, b.status), (201, 201));
    (ada, a.body["id"].as_str().unwrap().to_owned(), bob, b.body["id"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_organisation_stays_unreadable_in_a_restored_backup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = embedded_env(&data);
    let server = Server::start(&env, &[]);
    let api = Api::new(&server);
    let (ada, ada_env, bob, bob_env) = two_organisations(&api).await;
    let (status, ada_doc) = download(&api, &Auth::Bearer(ada.clone()), &ada_env).await;
    assert_eq!(status, 200);
    let (_, bob_doc) = download(&api, &Auth::Bearer(bob.clone()), &bob_env).await;

    // Ada takes her data with her first: one archive, checked without the server.
    let ada_auth = Auth::Bearer(ada.clone());
    let export =
        api.client.get(format!("{}/api/v1/organisation/export", api.base)).bearer_auth(&ada).send().await.unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "application/x-tar");
    let archive = export.bytes().await.unwrap();
    let mut files = std::collections::HashMap::new();
    for e in tar::Archive::new(archive.as_ref()).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        files.insert(path, data);
    }
    let doc = |name: &str| files.get(&format!("sigillum-export/envelopes/{ada_env}/{name}")).cloned();
    assert_eq!(doc("original.pdf"), Some(ada_doc.clone()), "{:?}", files.keys());
    assert!(doc("final.pdf").is_none(), "a draft has no final document");
    let envelope: Value = serde_json::from_slice(&doc("envelope.json").unwrap()).unwrap();
    assert_eq!(envelope["title"], "Ada's merger");
    let trail: Value = serde_json::from_slice(&doc("audit-trail.json").unwrap()).unwrap();
    assert!(trail["checkpoint"].as_str().unwrap().contains('\u{2014}'), "a signed checkpoint: {}", trail["checkpoint"]);
    assert!(trail["events"].as_array().unwrap().iter().any(|e| e["event"]["kind"] == "document.uploaded"));
    let about: Value = serde_json::from_slice(&files["sigillum-export/organisation.json"]).unwrap();
    assert_eq!((about["envelopes"].as_u64(), about["organisation"]["name"].as_str()), (Some(1), Some("Ada Lovelace")));
    assert!(!files.keys().any(|k| k.contains(&bob_env)), "only Ada's organisation");
    // Owners only.
    let r = api
        .call(
            Method::POST,
            "/api/v1/members",
            &ada_auth,
            Some(json!({"email": "max@example.org", "name": "Max", "password": PW})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let max = api.login("max@example.org", PW).await;
    assert_eq!(api.call(Method::GET, "/api/v1/organisation/export", &max, None).await.status, 403);

    // The operator's backup while the server runs: the database by `backup create`, the bucket
    // (here the blob directory) by copying it, as an object store's replica would.
    let backup = dir.path().join("nightly.sgb");
    let made = ok(&cli(&env, &["backup", "create", backup.to_str().unwrap()]), "backup create");
    assert!(made["rows"].as_u64().unwrap() > 10 && made["blobs"].as_u64().unwrap() >= 2, "{made}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    let raw = std::fs::read(&backup).unwrap();
    for plain in [&b"Ada's merger"[..], b"ada@example.org", b"Ada Lovelace", b"%PDF"] {
        assert!(
            !raw.windows(plain.len()).any(|w| w == plain),
            "the backup file holds {:?}",
            String::from_utf8_lossy(plain)
        );
    }
    let bucket_copy = dir.path().join("bucket-copy");
    copy_dir(&data.join("blobs"), &bucket_copy);
    // Never overwritten.
    refused(
        &cli(&env, &["backup", "create", backup.to_str().unwrap()]),
        "a second backup onto the first",
        "never overwritten",
    );

    // Ada erases her organisation; the wrong confirmation and a non-owner change nothing.
    let r = api.call(Method::DELETE, "/api/v1/organisation", &max, Some(json!({"confirm": "Ada Lovelace"}))).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = api.call(Method::DELETE, "/api/v1/organisation", &ada_auth, Some(json!({"confirm": "Ada"}))).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("invalid_input")), "{}", r.text);
    assert_eq!(download(&api, &ada_auth, &ada_env).await.0, 200);
    let r = api.call(Method::DELETE, "/api/v1/organisation", &ada_auth, Some(json!({"confirm": "Ada Lovelace"}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(download(&api, &ada_auth, &ada_env).await.0, 401, "her key ended with her organisation");
    assert_eq!(download(&api, &Auth::Bearer(bob.clone()), &bob_env).await, (200, bob_doc.clone()));
    let (_, out, _) = server.terminate();
    let _ = out;
    let verify = cli(&env, &["log", "verify", "--json"]);
    let report = ok(&verify, "log verify after the erasure");
    assert_eq!(report["ok"], true);
    // The erasure is in the log, naming the organisation and how many envelopes went.
    let repo =
        sigillum_store::SqlRepository::connect(&format!("sqlite://{}/sigillum.db", data.display())).await.unwrap();
    let leaves = sigillum_core::ports::AuditStore::leaves_from(&repo, 0, 10_000).await.unwrap();
    let erased: Vec<Value> = leaves
        .iter()
        .map(|l| serde_json::from_slice::<Value>(&l.event).unwrap())
        .filter(|e| e["kind"] == "organisation.erased")
        .collect();
    assert_eq!(erased.len(), 1, "one organisation.erased event");
    assert_eq!(erased[0]["details"]["envelopes"], 1, "{}", erased[0]);
    repo.close().await;

    // Restore the night's backup onto a new node: its own database, the bucket copy, the same
    // key manager (the keyring, where Ada's key is destroyed).
    let restored_data = dir.path().join("restored");
    let restored_env = with(
        &embedded_env(&restored_data),
        &[
            ("SIGILLUM_BLOB_URL", format!("file://{}", bucket_copy.display())),
            ("SIGILLUM_KMS", format!("local:{}", data.join("keyring").display())),
        ],
    );
    // Damaged: one byte changed in the sealed part.
    let mut damaged = raw.clone();
    let at = damaged.len() - 100;
    damaged[at] ^= 1;
    let damaged_file = dir.path().join("damaged.sgb");
    std::fs::write(&damaged_file, &damaged).unwrap();
    refused(
        &cli(&restored_env, &["backup", "restore", damaged_file.to_str().unwrap()]),
        "a damaged backup",
        "damaged or was changed",
    );
    // A bucket without the backup's blobs.
    let empty_bucket =
        with(&restored_env, &[("SIGILLUM_BLOB_URL", format!("file://{}", dir.path().join("empty").display()))]);
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    refused(
        &cli(&empty_bucket, &["backup", "restore", backup.to_str().unwrap()]),
        "a restore without its blobs",
        "does not hold what the backup names",
    );
    let summary = ok(&cli(&restored_env, &["backup", "restore", backup.to_str().unwrap()]), "backup restore");
    assert_eq!(summary["rows"], made["rows"]);
    // Not twice into the same database.
    refused(
        &cli(&restored_env, &["backup", "restore", backup.to_str().unwrap()]),
        "a restore into a used database",
        "not empty",
    );
    let report = ok(&cli(&restored_env, &["log", "verify", "--json"]), "log verify on the restored database");
    assert_eq!(report["ok"], true);

    let restored = Server::start(&restored_env, &[]);
    let api = Api::new(&restored);
    // Bob's document is served as before.
    assert_eq!(download(&api, &Auth::Bearer(bob.clone()), &bob_env).await, (200, bob_doc));
    // Ada's rows are back (her key authenticates again), but nothing of her documents opens.
    let (status, body) = download(&api, &ada_auth, &ada_env).await;
    assert_eq!(status, 410, "an erased organisation's document: {}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "erased");
    assert!(!body.windows(4).any(|w| w == b"%PDF") && body != ada_doc, "document bytes came back");
    let detail = api.call(Method::GET, &format!("/api/v1/envelopes/{ada_env}"), &ada_auth, None).await;
    assert!(!detail.text.contains("Ada's merger"), "the title was decrypted: {}", detail.text);
    let stderr = restored.stderr();
    drop(restored);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_and_s3_deployment_restores_onto_a_fresh_node() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring");
    let shared = |db: String| -> Vec<(String, String)> {
        vec![
            ("SIGILLUM_DATABASE_URL".into(), db),
            ("SIGILLUM_BLOB_URL".into(), sigillum_testkit::s3_blob_url()),
            ("SIGILLUM_KMS".into(), format!("local:{}", keyring.display())),
        ]
    };
    let source = shared(sigillum_testkit::postgres_database().await);
    let env = with(
        &embedded_env(&dir.path().join("node-1")),
        &source.iter().map(|(k, v)| (k.as_str(), v.clone())).collect::<Vec<_>>(),
    );
    let server = Server::start(&env, &[]);
    let api = Api::new(&server);
    let (ada, ada_env, bob, bob_env) = two_organisations(&api).await;
    let (_, ada_doc) = download(&api, &Auth::Bearer(ada.clone()), &ada_env).await;
    // Retention is an organisation setting, in the backup like the rest.
    let ada_auth = Auth::Bearer(ada.clone());
    let org = api.call(Method::GET, "/api/v1/organisation", &ada_auth, None).await;
    assert_eq!(
        (org.status, org.body["name"].as_str(), org.body["retention_days"].clone()),
        (200, Some("Ada Lovelace"), Value::Null)
    );
    for bad in [json!({}), json!({"retention_days": 0}), json!({"retention_days": -3}), json!({"retention_days": "30"})]
    {
        let r = api.call(Method::PATCH, "/api/v1/organisation", &ada_auth, Some(bad.clone())).await;
        assert!(r.status == 422 || r.status == 400, "{bad}: {} {}", r.status, r.text);
    }
    let r = api.call(Method::PATCH, "/api/v1/organisation", &ada_auth, Some(json!({"retention_days": 365}))).await;
    assert_eq!((r.status, r.body["retention_days"].as_u64()), (200, Some(365)), "{}", r.text);
    let backup = dir.path().join("pg.sgb");
    let made = ok(&cli(&env, &["backup", "create", backup.to_str().unwrap()]), "backup create");
    drop(server);

    // A fresh node: new database, same bucket and key manager.
    let fresh_db = sigillum_testkit::postgres_database().await;
    let blob_url = source.iter().find(|(k, _)| k == "SIGILLUM_BLOB_URL").unwrap().1.clone();
    let fresh = with(
        &embedded_env(&dir.path().join("node-2")),
        &[
            ("SIGILLUM_DATABASE_URL", fresh_db),
            ("SIGILLUM_BLOB_URL", blob_url),
            ("SIGILLUM_KMS", format!("local:{}", keyring.display())),
        ],
    );
    let summary = ok(&cli(&fresh, &["backup", "restore", backup.to_str().unwrap()]), "backup restore");
    assert_eq!((summary["rows"].clone(), summary["blobs"].clone()), (made["rows"].clone(), made["blobs"].clone()));
    assert_eq!(ok(&cli(&fresh, &["log", "verify", "--json"]), "log verify")["ok"], true);
    let node = Server::start(&fresh, &[]);
    let api = Api::new(&node);
    assert_eq!(download(&api, &Auth::Bearer(ada.clone()), &ada_env).await, (200, ada_doc));
    assert_eq!(download(&api, &Auth::Bearer(bob.clone()), &bob_env).await.0, 200);
    let org = api.call(Method::GET, "/api/v1/organisation", &Auth::Bearer(ada.clone()), None).await;
    assert_eq!(org.body["retention_days"], 365);
    // The restored node keeps working: a new upload, and its event joins the restored log.
    let r = api.upload(&Auth::Bearer(bob), "After the restore", pdf(1)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    drop(node);
    assert_eq!(ok(&cli(&fresh, &["log", "verify", "--json"]), "log verify after new events")["ok"], true);
}
