//! Hostile PDFs through `POST /api/v1/envelopes`: files that would cost unbounded memory or time
//! (decompression bombs, absurd nesting, object floods, circular page trees) and unusable ones
//! (broken, encrypted) are refused with a clear JSON error and leave nothing behind; documents
//! with active content are accepted without it, the sender is told what was removed, the stored
//! original is the sanitised document (what downloads, and what every later step reads), the
//! upload's own hash is kept, and the audit trail records both. The server stays up throughout.

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::pdf::{hostile, pdf};
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";
const MIB: usize = 1024 * 1024;

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A PDF encrypted by qpdf (a real AES-256 security handler, user password `secret`).
fn qpdf_encrypted(dir: &std::path::Path) -> Vec<u8> {
    let (plain, enc) = (dir.join("plain.pdf"), dir.join("encrypted.pdf"));
    std::fs::write(&plain, pdf(1)).unwrap();
    let status = std::process::Command::new("qpdf")
        .args(["--encrypt", "secret", "owner", "256", "--"])
        .arg(&plain)
        .arg(&enc)
        .status()
        .expect("qpdf (apt-get install qpdf)");
    assert!(status.success());
    std::fs::read(enc).unwrap()
}

async fn download(api: &Api, auth: &Auth, id: &str) -> Vec<u8> {
    let Auth::Bearer(key) = auth else { unreachable!() };
    let r = api
        .client
        .get(format!("{}/api/v1/envelopes/{id}/document?version=original", api.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_are_refused_or_defused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&embedded_env(&data), &[]);
    let api = Api::new(&server);
    let ada = Auth::Bearer(api.account_with_key("ada@example.org", PW, "Ada").await);

    // Refused: each with its own code and a message a person can act on.
    let refused: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("flate bomb", hostile::flate_bomb(65 * MIB), 422, "decompression_bomb"),
        ("object stream bomb", hostile::object_stream_bombs(1, 65 * MIB), 422, "decompression_bomb"),
        ("many object streams", hostile::object_stream_bombs(5, 60 * MIB), 422, "decompression_bomb"),
        ("deep nesting", hostile::deep_nesting(10_000), 422, "pdf_too_deep"),
        ("object flood", hostile::many_objects(200_001), 422, "too_many_objects"),
        ("page tree loop", hostile::kids_loop(), 422, "page_tree_loop"),
        ("no cross-reference table", hostile::without_xref(), 422, "damaged_pdf"),
        ("truncated", hostile::truncated(), 422, "damaged_pdf"),
        ("encrypted (stub)", hostile::encrypted(), 422, "encrypted_pdf"),
        ("encrypted (qpdf)", qpdf_encrypted(dir.path()), 422, "encrypted_pdf"),
    ];
    for (what, bytes, status, code) in refused {
        let r = api.upload(&ada, what, bytes).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (status, Some(code)), "{what}: {}", r.text);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.len() > 10 && !message.contains("lopdf"), "{what}: {message}");
    }
    let listed = api.call(Method::GET, "/api/v1/envelopes", &ada, None).await;
    assert_eq!(listed.body["envelopes"], json!([]), "refused uploads leave nothing behind");

    // Accepted without their active content.
    let defused: Vec<(&str, Vec<u8>, Value, &[&str])> = vec![
        (
            "open action script",
            hostile::javascript_open_action(),
            json!([{"kind": "javascript", "count": 2}, {"kind": "open_action", "count": 1}]),
            &["/JavaScript", "/OpenAction"],
        ),
        (
            "additional actions",
            hostile::page_additional_actions(),
            json!([
                {"kind": "javascript", "count": 2},
                {"kind": "additional_actions", "count": 2},
                {"kind": "launch", "count": 1}
            ]),
            &["/JavaScript", "/AA", "/Launch"],
        ),
        (
            "launch link",
            hostile::launch_annotation(),
            json!([{"kind": "javascript", "count": 1}, {"kind": "launch", "count": 1}]),
            &["/Launch", "/JavaScript"],
        ),
        (
            "embedded file",
            hostile::embedded_file(),
            json!([{"kind": "embedded_files", "count": 1}, {"kind": "file_attachment", "count": 1}]),
            &["/EmbeddedFile", "payload.exe"],
        ),
        ("xfa", hostile::xfa_form(), json!([{"kind": "xfa", "count": 1}]), &["/XFA"]),
        (
            "rich media",
            hostile::rich_media_annotation(),
            json!([{"kind": "multimedia", "count": 1}, {"kind": "rich_media", "count": 1}]),
            &["/RichMedia", "/EmbeddedFile", "/JavaScript"],
        ),
    ];
    for (what, bytes, removed, gone) in defused {
        let r = api.upload(&ada, what, bytes.clone()).await;
        assert_eq!(r.status, 201, "{what}: {}", r.text);
        let id = r.body["id"].as_str().unwrap().to_owned();
        assert_eq!(r.body["sanitisation"]["removed"], removed, "{what}");
        assert_eq!(r.body["sanitisation"]["uploaded_sha256"], sha256(&bytes), "{what}");
        let doc = download(&api, &ada, &id).await;
        assert_eq!(r.body["document_sha256"], sha256(&doc), "{what}: the stored original is the sanitised one");
        assert_ne!(sha256(&doc), sha256(&bytes), "{what}");
        assert_eq!(r.body["document_bytes"], doc.len(), "{what}");
        for g in gone {
            assert!(!contains(&doc, g), "{what}: {g} is still in the downloaded original");
        }
        let info = sigillum_pdf::inspect(&doc, &sigillum_pdf::Limits::default()).unwrap();
        assert_eq!(info.pages.len(), 1, "{what}");
        // The detail shows the same, and the trail records the upload's hash and the removals.
        let detail = api.call(Method::GET, &format!("/api/v1/envelopes/{id}"), &ada, None).await;
        assert_eq!(detail.body["sanitisation"]["removed"], removed, "{what}");
        let trail = api.call(Method::GET, &format!("/api/v1/envelopes/{id}/events"), &ada, None).await;
        let uploaded = trail.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"]["kind"] == "document.uploaded")
            .unwrap()
            .clone();
        assert_eq!(uploaded["event"]["document_sha256"], sha256(&doc), "{what}");
        assert_eq!(uploaded["event"]["details"]["uploaded_sha256"], sha256(&bytes), "{what}");
        let logged: Value = serde_json::from_str(uploaded["event"]["details"]["removed"].as_str().unwrap()).unwrap();
        assert_eq!(logged, removed, "{what}");
    }

    // A document signed elsewhere is kept as it is, and the sender is told its signatures will
    // not verify in the final document.
    let signed = hostile::document(
        "/AcroForm << /Fields [6 0 R] >>",
        "",
        vec![
            b"<< /Type /Sig /Filter /Adobe.PPKLite /ByteRange [0 1 2 3] /Contents <3082> >>".to_vec(),
            b"<< /FT /Sig /T (Approval) /V 5 0 R >>".to_vec(),
        ],
    );
    let r = api.upload(&ada, "signed elsewhere", signed.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["sanitisation"]["removed"], json!([{"kind": "invalidated_signatures", "count": 1}]));
    assert_eq!(download(&api, &ada, r.body["id"].as_str().unwrap()).await, signed);

    // A clean document, and links to the web, are kept byte for byte.
    for (what, bytes) in [("clean", pdf(2)), ("web link", hostile::uri_link())] {
        let r = api.upload(&ada, what, bytes.clone()).await;
        assert_eq!(r.status, 201, "{what}: {}", r.text);
        assert_eq!(r.body["sanitisation"], json!({"uploaded_sha256": sha256(&bytes), "removed": []}), "{what}");
        assert_eq!(r.body["document_sha256"], sha256(&bytes));
        assert_eq!(download(&api, &ada, r.body["id"].as_str().unwrap()).await, bytes, "{what}");
    }

    let health = api.client.get(format!("{}/healthz", api.base)).send().await.unwrap();
    assert_eq!(health.status(), 200, "the server survived every upload");
    let (status, _, stderr) = server.terminate();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = status;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_to_the_web_go_too_when_the_operator_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = embedded_env(&dir.path().join("data"));
    env.push(("SIGILLUM_PDF_REMOVE_LINKS".into(), "true".into()));
    let server = Server::start(&env, &[]);
    let api = Api::new(&server);
    let ada = Auth::Bearer(api.account_with_key("ada@example.org", PW, "Ada").await);
    let link = hostile::uri_link();
    let r = api.upload(&ada, "web link", link.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["sanitisation"]["removed"], json!([{"kind": "uri", "count": 1}]), "{}", r.text);
    assert_ne!(r.body["document_sha256"], sha256(&link));
    let kept = download(&api, &ada, r.body["id"].as_str().unwrap()).await;
    assert!(!contains(&kept, "/URI"), "the link action is gone");
    server.terminate();
}
