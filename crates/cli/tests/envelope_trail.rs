//! An envelope's audit trail over HTTPS, checked as a third party would: every event of upload,
//! download and deletion is there with name, email, IP and device, each inclusion proof verifies
//! with the RFC 9162 verifier against the signed checkpoint, the CSV export carries the same
//! rows, a live SSE watcher sees a new event within a second, and nobody else sees any of it.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;
use sigillum_audit::{verify_checkpoint, verify_inclusion, Event};
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::pdf::pdf;
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";
const CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36";

fn verify_trail(trail: &Value, key: &str) -> Vec<Value> {
    let head = verify_checkpoint(trail["checkpoint"].as_str().unwrap(), key).unwrap();
    assert_eq!(head.size, trail["tree_size"].as_u64().unwrap());
    let events = trail["events"].as_array().unwrap().clone();
    for e in &events {
        let event: Event = serde_json::from_value(e["event"].clone()).unwrap();
        let leaf = sigillum_audit::leaf_hash(&event.canonical_bytes().unwrap());
        assert_eq!(B64.encode(leaf), e["leaf_hash"].as_str().unwrap());
        let proof: Vec<Vec<u8>> =
            e["inclusion_proof"].as_array().unwrap().iter().map(|h| B64.decode(h.as_str().unwrap()).unwrap()).collect();
        verify_inclusion(e["seq"].as_u64().unwrap(), head.size, &leaf, &proof, &head.root).unwrap();
        if !e["disclosed"].is_null() {
            event.check_disclosure(&serde_json::from_value(e["disclosed"].clone()).unwrap()).unwrap();
        }
    }
    events
}

/// Reads the SSE body until `needle` has arrived.
async fn read_until<S>(body: &mut S, seen: &mut String, needle: &str)
where
    S: futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    while !seen.contains(needle) {
        let chunk =
            tokio::time::timeout(Duration::from_secs(5), body.next()).await.expect("sse stalled").unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_trail_json_csv_and_live_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = embedded_env(&dir.path().join("data"));
    env.push(("SIGILLUM_MAX_UPLOAD_MB".into(), "1".into()));
    let server = Server::start(&env, &[]);
    let mut api = Api::new(&server);
    api.client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.cert_pem()).unwrap())
        .tls_built_in_root_certs(false)
        .user_agent(CHROME)
        .build()
        .unwrap();
    let key = api.call(Method::GET, "/log/key", &Auth::None, None).await.text.trim().to_owned();

    api.signup("ada@example.org", PW, "Ada Lovelace").await;
    let ada = api.login("ada@example.org", PW).await;
    let bearer = Auth::Bearer(api.api_key(&ada, "integration").await);

    // Uploads: a real PDF becomes a draft; anything else is refused with a clear code.
    let up = api.upload(&bearer, "Master services agreement", pdf(3)).await;
    assert_eq!(up.status, 201, "{}", up.text);
    assert_eq!((up.body["status"].as_str(), up.body["pages"].as_array().unwrap().len()), (Some("draft"), 3));
    assert_eq!(up.body["pages"][0], serde_json::json!({"width": 612.0, "height": 792.0}));
    let id = up.body["id"].as_str().unwrap().to_owned();
    for (bytes, status, code) in [
        (b"just text".to_vec(), 422, "not_a_pdf"),
        (b"%PDF-1.7\n1 0 obj broken".to_vec(), 422, "damaged_pdf"),
        (vec![b'%'; 2 * 1024 * 1024], 413, "document_too_large"),
    ] {
        let r = api.upload(&bearer, "bad", bytes).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (status, Some(code)), "{}", r.text);
    }
    let listed = api.call(Method::GET, "/api/v1/envelopes", &ada, None).await;
    assert_eq!(listed.body["envelopes"].as_array().unwrap().len(), 1, "refused uploads leave nothing behind");
    let doc = api
        .client
        .get(format!("{}/api/v1/envelopes/{id}/document", api.base))
        .bearer_auth(match &bearer {
            Auth::Bearer(k) => k,
            _ => unreachable!(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(doc.headers()["content-type"], "application/pdf");
    assert_eq!(doc.bytes().await.unwrap().to_vec(), pdf(3));

    // The trail: every step, who, from where, on what, provably in the log.
    let trail = api.call(Method::GET, &format!("/api/v1/envelopes/{id}/events"), &ada, None).await;
    assert_eq!(trail.status, 200, "{}", trail.text);
    let events = verify_trail(&trail.body, &key);
    let kinds: Vec<&str> = events.iter().map(|e| e["event"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["envelope.created", "document.uploaded", "document.downloaded"]);
    let uploaded = &events[1];
    assert_eq!(uploaded["disclosed"]["actor.name"]["value"], "Ada Lovelace");
    assert_eq!(uploaded["disclosed"]["actor.email"]["value"], "ada@example.org");
    assert_eq!(uploaded["disclosed"]["ip"]["value"], "127.0.0.1");
    assert_eq!(uploaded["disclosed"]["user_agent"]["value"], CHROME);
    assert_eq!(uploaded["event"]["actor"]["kind"], "api_key");
    assert_eq!(
        uploaded["event"]["device"],
        serde_json::json!({"browser": "Chrome 121", "kind": "desktop", "os": "Mac OSX 10.15.7"})
    );
    assert_eq!(uploaded["event"]["document_sha256"].as_str().unwrap(), up.body["document_sha256"].as_str().unwrap());
    assert_eq!(uploaded["event"]["details"]["pages"], 3);

    let csv = api.call(Method::GET, &format!("/api/v1/envelopes/{id}/events?format=csv"), &ada, None).await;
    assert_eq!(csv.status, 200);
    assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[2].contains("document.uploaded")
            && lines[2].contains("ada@example.org")
            && lines[2].contains("127.0.0.1"),
        "{}",
        lines[2]
    );

    // Live: a watcher gets the backlog, then a new event within a second of it happening.
    let (cookie, _) = match &ada {
        Auth::Session { cookie, csrf } => (cookie.clone(), csrf.clone()),
        _ => unreachable!(),
    };
    let sse = api
        .client
        .get(format!("{}/api/v1/envelopes/{id}/events/stream", api.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    assert!(sse.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = sse.bytes_stream();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "\"document.downloaded\"").await;
    let start = Instant::now();
    let again = api.call(Method::GET, &format!("/api/v1/envelopes/{id}/document"), &bearer, None).await;
    assert_eq!(again.status, 200);
    read_until(&mut body, &mut seen, "id: 3\n").await;
    let latency = start.elapsed();
    assert!(latency < Duration::from_secs(1), "SSE latency {latency:?}");
    println!("SSE latency {latency:?}");

    // Nobody else sees any of it.
    api.signup("eve@example.net", PW, "Eve").await;
    let eve = api.login("eve@example.net", PW).await;
    for path in [
        format!("/api/v1/envelopes/{id}"),
        format!("/api/v1/envelopes/{id}/events"),
        format!("/api/v1/envelopes/{id}/events?format=csv"),
        format!("/api/v1/envelopes/{id}/events/stream"),
        format!("/api/v1/envelopes/{id}/document"),
    ] {
        let r = api.call(Method::GET, &path, &eve, None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert!(!r.text.contains("ada@example.org"));
    }
    assert_eq!(api.call(Method::DELETE, &format!("/api/v1/envelopes/{id}"), &eve, None).await.status, 404);

    // Deleting crypto-shreds the envelope; the log keeps verifying.
    assert_eq!(api.call(Method::DELETE, &format!("/api/v1/envelopes/{id}"), &ada, None).await.status, 204);
    assert_eq!(api.call(Method::GET, &format!("/api/v1/envelopes/{id}"), &ada, None).await.status, 404);
    drop(body);
    server.terminate();
    let out = std::process::Command::new(sigillum_testkit::sigillum_bin())
        .args(["log", "verify"])
        .env("SIGILLUM_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
