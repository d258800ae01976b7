//! Page previews over the API: rendered by the background job after upload, served at two sizes
//! to the sender's organisation and to the envelope's signers, stored encrypted, and refused to
//! everyone else.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::pdf::pdf;
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";

async fn get(api: &Api, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = api.client.get(format!("{}{path}", api.base));
    if let Some(k) = auth {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_are_rendered_in_the_background_and_served_to_the_right_people() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&embedded_env(&data), &[]);
    let api = Api::new(&server);
    let ada_key = api.account_with_key("ada@example.org", PW, "Ada").await;
    let ada = Auth::Bearer(ada_key.clone());
    let eve_key = api.account_with_key("eve@example.net", PW, "Eve").await;

    let id = api.upload(&ada, "Lease", pdf(3)).await.body["id"].as_str().unwrap().to_owned();
    // The job renders them shortly after the upload; until then, 503 with Retry-After.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let r = get(&api, &format!("/api/v1/envelopes/{id}/pages/1.png"), Some(&ada_key)).await;
        if r.status() == 200 {
            break r;
        }
        assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
        assert!(r.headers().contains_key("retry-after"));
        assert!(Instant::now() < deadline, "previews never appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(first.headers()["content-type"], "image/png");
    let large = first.bytes().await.unwrap();
    assert_eq!(png_size(&large), (1000, 1294), "US Letter at 1000 px wide");
    let deadline = Instant::now() + Duration::from_secs(60);
    for page in 1..=3 {
        loop {
            let r = get(&api, &format!("/api/v1/envelopes/{id}/pages/{page}.png?size=thumbnail"), Some(&ada_key)).await;
            if r.status() == 200 {
                assert_eq!(png_size(&r.bytes().await.unwrap()).0, 200);
                break;
            }
            assert!(Instant::now() < deadline, "thumbnail {page} never appeared");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Pages outside the document, bad names and sizes: clear errors.
    for (path, status) in [
        (format!("/api/v1/envelopes/{id}/pages/4.png"), 404),
        (format!("/api/v1/envelopes/{id}/pages/0.png"), 404),
        (format!("/api/v1/envelopes/{id}/pages/one.png"), 404),
        (format!("/api/v1/envelopes/{id}/pages/1.png?size=huge"), 422),
    ] {
        let r = get(&api, &path, Some(&ada_key)).await;
        assert_eq!(r.status().as_u16(), status, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    // Another organisation, and nobody at all: nothing.
    assert_eq!(get(&api, &format!("/api/v1/envelopes/{id}/pages/1.png"), Some(&eve_key)).await.status(), 404);
    assert_eq!(get(&api, &format!("/api/v1/envelopes/{id}/pages/1.png"), None).await.status(), 401);

    // A signer sees the same pages through their link.
    let rid = api
        .call(
            Method::POST,
            &format!("/api/v1/envelopes/{id}/recipients"),
            &ada,
            Some(json!({"name": "Bob", "email": "bob@example.net", "role": "signer", "routing_order": 1})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let f = json!({"recipient_id": rid, "kind": "signature", "page": 1, "x": 72, "y": 600, "width": 200, "height": 40});
    assert_eq!(api.call(Method::POST, &format!("/api/v1/envelopes/{id}/fields"), &ada, Some(f)).await.status, 201);
    assert_eq!(
        api.call(Method::POST, &format!("/api/v1/envelopes/{id}/send"), &ada, Some(json!({}))).await.status,
        200
    );
    let link =
        api.call(Method::POST, &format!("/api/v1/envelopes/{id}/recipients/{rid}/signing-link"), &ada, None).await;
    let url = link.body["url"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap();
    let r = get(&api, &format!("/api/v1/signing/{token}/pages/2.png"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(png_size(&r.bytes().await.unwrap()), (1000, 1294));
    assert_eq!(get(&api, &format!("/api/v1/signing/{token}/pages/9.png"), None).await.status(), 404);

    // Stored encrypted: no PNG signature anywhere in the blob store.
    for entry in walk(&data.join("blobs")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!bytes.windows(8).any(|w| w == b"\x89PNG\r\n\x1a\n"), "{} holds a PNG in the clear", entry.display());
    }
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_the_renderer_refuses_says_so_instead_of_pending_for_ever() {
    use sigillum_testkit::pdf::hostile::{document, stream};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&embedded_env(&dir.path().join("data")), &[]);
    let api = Api::new(&server);
    let key = api.account_with_key("ada@example.org", PW, "Ada").await;
    // A valid one-page PDF whose page draws an image declared 100 000 x 100 000 pixels: more
    // than the renderer's budget, on every attempt.
    let image = stream(
        "/Type /XObject /Subtype /Image /Width 100000 /Height 100000 /ColorSpace /DeviceGray \
         /BitsPerComponent 8 /Filter /DCTDecode",
        &[0xff, 0xd8, 0xff],
    );
    let pdf = document("", "/Resources << /XObject << /Im 5 0 R >> >>", vec![image]);
    let created = api.upload(&Auth::Bearer(key.clone()), "Huge scan", pdf).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let r = get(&api, &format!("/api/v1/envelopes/{id}/pages/1.png"), Some(&key)).await;
        if r.status() != 503 {
            break r;
        }
        assert!(Instant::now() < deadline, "still pending after a minute");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "preview_failed", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("pixels"), "{body}");
    // The envelope says why, and its document is still there to download.
    let detail =
        get(&api, &format!("/api/v1/envelopes/{id}"), Some(&key)).await.json::<serde_json::Value>().await.unwrap();
    assert!(detail["previews_failed"].as_str().unwrap().contains("pixels"), "{detail}");
    assert_eq!(get(&api, &format!("/api/v1/envelopes/{id}/document"), Some(&key)).await.status(), 200);
    server.terminate();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
