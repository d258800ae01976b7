//! One organisation's webhook endpoint that accepts connections and never answers holds at most
//! its share of a node's job lanes (a quarter): the other organisations' envelopes are still
//! sent, signed and completed while every delivery to that endpoint hangs.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::hooks::Tarpit;
use sigillum_testkit::pdf::pdf;
use sigillum_testkit::server::{embedded_env, Server};
use sigillum_testkit::smtp::SmtpCapture;

const PW: &str = "correct horse battery staple";
/// Lanes of the node under test: webhook deliveries get a quarter of them, one place.
const LANES: usize = 4;
const HANGING_WEBHOOKS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_endpoint_holds_only_its_share_of_the_job_lanes() {
    let tarpit = Tarpit::start().await;
    let smtp = SmtpCapture::start();
    let dir = tempfile::tempdir().unwrap();
    let mut env = embedded_env(&dir.path().join("data"));
    env.push(("SIGILLUM_WEBHOOK_ALLOW_PRIVATE".into(), "true".into()));
    env.push(("SIGILLUM_SMTP_URL".into(), smtp.url()));
    env.push(("SIGILLUM_JOB_LANES".into(), LANES.to_string()));
    let server = Server::start(&env, &[]);
    let api = Api::new(&server);

    // Mallory's organisation points six webhooks at the tarpit and sends an envelope: six
    // deliveries, each of which hangs until the client's timeout, then retries.
    let mallory = Auth::Bearer(api.account_with_key("mallory@example.org", PW, "Mallory").await);
    for _ in 0..HANGING_WEBHOOKS {
        let hook = json!({ "url": tarpit.url, "events": ["envelope.sent"] });
        assert_eq!(api.call(Method::POST, "/api/v1/webhooks", &mallory, Some(hook)).await.status, 201);
    }
    let upload = api.upload(&mallory, "Hooked", pdf(1)).await;
    let hooked = upload.body["id"].as_str().unwrap().to_owned();
    let approver = json!({ "name": "Hu", "email": "hu@example.com", "role": "approver", "routing_order": 1 });
    api.call(Method::POST, &format!("/api/v1/envelopes/{hooked}/recipients"), &mallory, Some(approver)).await;
    assert_eq!(api.call(Method::POST, &format!("/api/v1/envelopes/{hooked}/send"), &mallory, None).await.status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tarpit.open() == 0 {
        assert!(Instant::now() < deadline, "no delivery reached the tarpit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Meanwhile Ada's organisation sends, Rita signs, and the envelope completes.
    let ada = Auth::Bearer(api.account_with_key("ada@example.org", PW, "Ada").await);
    let upload = api.upload(&ada, "Lease", pdf(1)).await;
    let id = upload.body["id"].as_str().unwrap().to_owned();
    let rita = json!({ "name": "Rita Signer", "email": "rita@example.com", "role": "signer", "routing_order": 1 });
    let added = api.call(Method::POST, &format!("/api/v1/envelopes/{id}/recipients"), &ada, Some(rita)).await;
    let rid = added.body["id"].as_str().unwrap().to_owned();
    let field =
        json!({ "recipient_id": rid, "kind": "signature", "page": 1, "x": 10, "y": 10, "width": 100, "height": 30 });
    assert_eq!(api.call(Method::POST, &format!("/api/v1/envelopes/{id}/fields"), &ada, Some(field)).await.status, 201);
    assert_eq!(api.call(Method::POST, &format!("/api/v1/envelopes/{id}/send"), &ada, None).await.status, 200);
    let token = smtp.wait_for("rita@example.com", "Lease").await.signing_token().unwrap();
    let path = format!("/api/v1/signing/{token}");
    let consent =
        api.call(Method::POST, &format!("{path}/consent"), &Auth::None, Some(json!({ "accepted": true }))).await;
    assert_eq!(consent.status, 200, "{}", consent.text);
    let signature =
        json!({ "values": {}, "signature": { "kind": "typed", "text": "Rita Signer", "font": "kaushan-script" } });
    let signed = api.call(Method::POST, &format!("{path}/complete"), &Auth::None, Some(signature)).await;
    assert_eq!(signed.status, 200, "{}", signed.text);
    api.wait_status(&ada, &id, "completed").await;

    // All along, the tarpit held at most one delivery at a time: the webhook share of four lanes.
    assert!(tarpit.accepted() >= 1);
    assert_eq!(tarpit.most_at_once(), LANES / 4, "deliveries held at once (the lanes are {LANES})");
    server.kill();
}
