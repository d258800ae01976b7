//! Durability of the audit log under a crash: while clients upload documents (two audited events
//! each), the server is killed with SIGKILL. After a restart the log verifies, and every upload
//! the server acknowledged has both its events in the envelope's trail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::pdf::pdf;
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&embedded_env(&data), &[]);
    let api = Api::new(&server);
    api.signup("ada@example.org", PW, "Ada").await;
    let ada = api.login("ada@example.org", PW).await;
    let key = Auth::Bearer(api.api_key(&ada, "load").await);

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let api = Api { client: api.client.clone(), base: api.base.clone() };
        let key = key.clone();
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let r = tokio::time::timeout(Duration::from_secs(5), api.try_upload(&key, "load", pdf(1))).await;
                match r {
                    Ok(Ok(r)) if r.status == 201 => {
                        acknowledged.lock().unwrap().push(r.body["id"].as_str().unwrap().to_owned());
                    }
                    _ => break,
                }
            }
        }));
    }
    // Let it run, then crash it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill();
    for t in tasks {
        let _ = t.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 5, "only {} uploads before the crash", acknowledged.len());

    let out = std::process::Command::new(sigillum_testkit::sigillum_bin())
        .args(["log", "verify"])
        .env("SIGILLUM_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(out.status.success(), "log verify after SIGKILL: {}", String::from_utf8_lossy(&out.stdout));

    let server = Server::start(&embedded_env(&data), &[]);
    let api = Api::new(&server);
    for id in &acknowledged {
        let trail = api.call(Method::GET, &format!("/api/v1/envelopes/{id}/events"), &key, None).await;
        assert_eq!(trail.status, 200, "acknowledged envelope {id} lost: {}", trail.text);
        let kinds: Vec<&str> =
            trail.body["events"].as_array().unwrap().iter().map(|e| e["event"]["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["envelope.created", "document.uploaded"], "{id}");
    }
    println!("{} acknowledged uploads, all with their events after SIGKILL", acknowledged.len());
    server.terminate();
}
