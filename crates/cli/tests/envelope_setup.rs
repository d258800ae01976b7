//! Preparing a draft over the API: recipients (name and email stored sealed) and fields placed on
//! real page geometry; every invalid placement is refused with a clear error; each step is an
//! audit event.

mod common;

use reqwest::Method;
use serde_json::json;
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::pdf::pdf;
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_and_fields_on_a_draft() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&embedded_env(&data), &[]);
    let api = Api::new(&server);
    let ada = Auth::Bearer(api.account_with_key("ada@example.org", PW, "Ada").await);
    let id = api.upload(&ada, "Lease", pdf(2)).await.body["id"].as_str().unwrap().to_owned();
    let other = api.upload(&ada, "Other", pdf(1)).await.body["id"].as_str().unwrap().to_owned();
    let post = |path: String, body: serde_json::Value| {
        let api = &api;
        let ada = &ada;
        async move { api.call(Method::POST, &path, ada, Some(body)).await }
    };

    let rec = |name: &str, email: &str, role: &str, order: u32| json!({"name": name, "email": email, "role": role, "routing_order": order});
    let bob =
        post(format!("/api/v1/envelopes/{id}/recipients"), rec("Bob Tenant", "Bob@Example.net", "signer", 1)).await;
    assert_eq!(bob.status, 201, "{}", bob.text);
    assert_eq!((bob.body["email"].as_str(), bob.body["status"].as_str()), (Some("bob@example.net"), Some("created")));
    assert_eq!(bob.body["language"], "en", "mail in English unless the sender chose another language");
    let bob_id = bob.body["id"].as_str().unwrap().to_owned();
    let carol =
        post(format!("/api/v1/envelopes/{id}/recipients"), rec("Carol Landlord", "carol@example.com", "signer", 2))
            .await;
    let cc = post(format!("/api/v1/envelopes/{id}/recipients"), rec("Dave Agent", "dave@example.com", "cc", 3)).await;
    assert_eq!((carol.status, cc.status), (201, 201));
    let cc_id = cc.body["id"].as_str().unwrap().to_owned();
    let other_rec =
        post(format!("/api/v1/envelopes/{other}/recipients"), rec("Eve", "eve@example.com", "signer", 1)).await;

    for body in [
        rec("Bob", "not-an-email", "signer", 1),
        rec("Bob", "bob@example.net", "witness", 1),
        rec("Bob", "bob@example.net", "signer", 0),
        rec("", "bob@example.net", "signer", 1),
        json!({"name": "Bob", "email": "bob@example.net", "role": "signer", "routing_order": 1, "language": "es"}),
    ] {
        let r = post(format!("/api/v1/envelopes/{id}/recipients"), body.clone()).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("invalid_input")), "{body}");
    }

    let field = |rid: &str, kind: &str, page: u32, x: f64, y: f64, w: f64, h: f64| json!({"recipient_id": rid, "kind": kind, "page": page, "x": x, "y": y, "width": w, "height": h});
    let sig =
        post(format!("/api/v1/envelopes/{id}/fields"), field(&bob_id, "signature", 2, 72.0, 650.0, 200.0, 50.0)).await;
    assert_eq!(sig.status, 201, "{}", sig.text);
    assert_eq!(sig.body["required"], true);
    let date =
        post(format!("/api/v1/envelopes/{id}/fields"), field(&bob_id, "date_signed", 2, 300.0, 650.0, 120.0, 20.0))
            .await;
    assert_eq!(date.status, 201);
    for (body, why) in [
        (field(&bob_id, "signature", 3, 72.0, 72.0, 100.0, 30.0), "no page 3"),
        (field(&bob_id, "signature", 0, 72.0, 72.0, 100.0, 30.0), "pages are 1-based"),
        (field(&bob_id, "signature", 1, 550.0, 72.0, 100.0, 30.0), "beyond the right edge (612)"),
        (field(&bob_id, "signature", 1, 72.0, 780.0, 100.0, 30.0), "beyond the bottom (792)"),
        (field(&bob_id, "signature", 1, -1.0, 72.0, 100.0, 30.0), "negative"),
        (field(&bob_id, "signature", 1, 72.0, 72.0, 1.0, 30.0), "too small"),
        (field(&bob_id, "stamp", 1, 72.0, 72.0, 100.0, 30.0), "unknown kind"),
        (field(&cc_id, "signature", 1, 72.0, 72.0, 100.0, 30.0), "cc fills nothing"),
        (
            field(other_rec.body["id"].as_str().unwrap(), "signature", 1, 72.0, 72.0, 100.0, 30.0),
            "recipient of another envelope",
        ),
        (field("nonsense", "signature", 1, 72.0, 72.0, 100.0, 30.0), "not an id"),
    ] {
        let r = post(format!("/api/v1/envelopes/{id}/fields"), body).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("invalid_input")), "{why}: {}", r.text);
    }

    let detail = api.call(Method::GET, &format!("/api/v1/envelopes/{id}"), &ada, None).await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.body["status"], "draft");
    let names: Vec<&str> =
        detail.body["recipients"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Bob Tenant", "Carol Landlord", "Dave Agent"], "in routing order");
    assert_eq!(detail.body["fields"].as_array().unwrap().len(), 2);
    assert_eq!(detail.body["fields"][0]["page"], 2);

    let trail = api.call(Method::GET, &format!("/api/v1/envelopes/{id}/events"), &ada, None).await;
    let kinds: Vec<&str> =
        trail.body["events"].as_array().unwrap().iter().map(|e| e["event"]["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "envelope.created",
            "document.uploaded",
            "recipient.added",
            "recipient.added",
            "recipient.added",
            "field.added",
            "field.added"
        ]
    );
    server.terminate();

    // Recipients' personal data is not in the database or blobs in clear.
    for f in common::files_under(&data) {
        let bytes = std::fs::read(&f).unwrap();
        for secret in ["bob@example.net", "Carol Landlord", "Lease"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in clear in {}",
                f.display()
            );
        }
    }
}
