//! The whole signing process end to end, against the real server on SQLite and on PostgreSQL:
//! signup → API key → upload → recipients → fields → send → invitation read over SMTP →
//! consent → sign (two signers in sequence) → completed → final PDF, with the audit events of
//! every step (name, email, IP, device) and signed webhook deliveries.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use sigillum_testkit::api::{Api, Auth, Response};
use sigillum_testkit::hooks::HookReceiver;
use sigillum_testkit::pdf::pdf;
use sigillum_testkit::server::{embedded_env, Server};
use sigillum_testkit::smtp::{signature_png, SmtpCapture};

const PW: &str = "correct horse battery staple";
const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// A call as a signer's browser would make it: no credentials but the token in the path.
async fn signer(api: &Api, method: Method, path: &str, body: Option<Value>) -> Response {
    let mut req = api.client.request(method, format!("{}{}", api.base, path)).header("user-agent", CHROME);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Response { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text, headers }
}

fn created(r: &Response, what: &str) -> String {
    assert_eq!(r.status, 201, "{what}: {}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("final.pdf");
    std::fs::write(&f, pdf).unwrap();
    let check = std::process::Command::new("qpdf").arg("--check").arg(&f).output().expect("qpdf (scripts/deps.sh)");
    assert!(check.status.success(), "qpdf --check: {}", String::from_utf8_lossy(&check.stdout));
    let out = std::process::Command::new("pdftotext").arg(&f).arg("-").output().expect("pdftotext (poppler-utils)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn whole_flow(extra_env: Vec<(String, String)>) {
    let smtp = SmtpCapture::start();
    let hooks = HookReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = embedded_env(&dir.path().join("data"));
    env.push(("SIGILLUM_SMTP_URL".into(), smtp.url()));
    env.push(("SIGILLUM_WEBHOOK_ALLOW_PRIVATE".into(), "true".into()));
    env.extend(extra_env);
    let server = Server::start(&env, &[]);
    let api = Api::new(&server);

    // Sender: account, API key, webhook.
    api.signup("sam@example.org", PW, "Sam Sender").await;
    let session = api.login("sam@example.org", PW).await;
    let key = Auth::Bearer(api.api_key(&session, "integration").await);
    let hook = api.call(Method::POST, "/api/v1/webhooks", &key, Some(json!({ "url": hooks.url }))).await;
    assert_eq!(hook.status, 201, "{}", hook.text);
    let secret = hook.body["secret"].as_str().unwrap().strip_prefix("whsec_").unwrap().to_owned();
    let secret = hex::decode(secret).unwrap();

    // Draft: document, two signers in sequence and a cc, their fields.
    let id = created(&api.upload(&key, "Supply agreement", pdf(1)).await, "upload");
    let base = format!("/api/v1/envelopes/{id}");
    let add = |name: &str, email: &str, role: &str, order: u32| json!({ "name": name, "email": email, "role": role, "routing_order": order });
    let ada = created(
        &api.call(
            Method::POST,
            &format!("{base}/recipients"),
            &key,
            Some(add("Ada Lovelace", "ada@example.com", "signer", 1)),
        )
        .await,
        "recipient",
    );
    let bob = created(
        &api.call(
            Method::POST,
            &format!("{base}/recipients"),
            &key,
            // Bob reads his mail in German.
            Some({
                let mut b = add("Bob Byron", "bob@example.com", "signer", 2);
                b["language"] = json!("de");
                b
            }),
        )
        .await,
        "recipient",
    );
    created(
        &api.call(
            Method::POST,
            &format!("{base}/recipients"),
            &key,
            Some(add("Carol Copy 高卡罗", "carol@example.com", "cc", 1)),
        )
        .await,
        "recipient",
    );
    let field = |rid: &str, kind: &str, y: u32, required: bool| json!({ "recipient_id": rid, "kind": kind, "page": 1, "x": 72, "y": y, "width": 200, "height": 30, "required": required });
    let mut fields = std::collections::HashMap::new();
    for (rid, kind, y) in [
        (&ada, "signature", 100),
        (&ada, "name", 140),
        (&ada, "date_signed", 180),
        (&ada, "text", 220),
        (&bob, "signature", 300),
        (&bob, "checkbox", 340),
        (&bob, "email", 380),
    ] {
        let r = api.call(Method::POST, &format!("{base}/fields"), &key, Some(field(rid, kind, y, true))).await;
        fields.insert((rid.clone(), kind), created(&r, "field"));
    }

    // Send.
    let sent = api
        .call(
            Method::POST,
            &format!("{base}/send"),
            &key,
            Some(json!({ "message": "Please sign by Friday.", "expires_in_days": 7 })),
        )
        .await;
    assert_eq!(sent.status, 200, "send: {}", sent.text);
    assert_eq!(sent.body["status"], "sent");
    let again = api.call(Method::POST, &format!("{base}/send"), &key, None).await;
    assert_eq!((again.status, again.body["error"]["code"].as_str()), (409, Some("envelope_not_draft")));

    // Ada is invited; Bob (routing order 2) is not, yet.
    let mail = smtp.wait_for("ada@example.com", "Supply agreement").await;
    assert!(mail.subject.contains("Sam Sender"), "{}", mail.subject);
    assert!(mail.text.contains("Please sign by Friday."));
    let ada_token = mail.signing_token().expect("link in the invitation");
    assert_eq!(ada_token.len(), 43, "256-bit token, base64url");
    assert!(smtp.find("bob@example.com", "").is_none(), "Bob must wait for Ada");

    let view = signer(&api, Method::GET, &format!("/api/v1/signing/{ada_token}"), None).await;
    assert_eq!(view.status, 200, "{}", view.text);
    assert_eq!(view.body["pages"], 1);
    assert_eq!(view.body["envelope"]["title"], "Supply agreement");
    assert_eq!(view.body["recipient"]["email"], "ada@example.com");
    assert_eq!(view.body["recipient"]["status"], "delivered");
    let ada_fields: Vec<&str> =
        view.body["fields"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(ada_fields.len(), 4, "only Ada's fields: {ada_fields:?}");
    for key in ["id", "kind", "page", "x", "y", "width", "height", "required"] {
        assert!(view.body["fields"][0].get(key).is_some(), "field shape lacks {key}");
    }
    assert!(!view.text.contains("bob@example.com"), "a token reaches one recipient only");
    let doc = signer(&api, Method::GET, &format!("/api/v1/signing/{ada_token}/document"), None).await;
    assert_eq!(doc.status, 200);

    // Signing needs consent first; bad input is refused clearly.
    let text_field = &fields[&(ada.clone(), "text")];
    let png = base64::engine::general_purpose::STANDARD.encode(signature_png(300, 100));
    let complete = json!({ "values": { text_field: "Delivery to Zürich" }, "signature": { "kind": "drawn", "png_base64": png }, "locale": "de-CH" });
    let early =
        signer(&api, Method::POST, &format!("/api/v1/signing/{ada_token}/complete"), Some(complete.clone())).await;
    assert_eq!((early.status, early.body["error"]["code"].as_str()), (409, Some("consent_required")), "{}", early.text);
    let no =
        signer(&api, Method::POST, &format!("/api/v1/signing/{ada_token}/consent"), Some(json!({ "accepted": false })))
            .await;
    assert_eq!(no.status, 422);
    let yes =
        signer(&api, Method::POST, &format!("/api/v1/signing/{ada_token}/consent"), Some(json!({ "accepted": true })))
            .await;
    assert_eq!(yes.status, 200, "{}", yes.text);
    let bad_png = json!({ "values": { text_field: "x" }, "signature": { "kind": "drawn", "png_base64": "aGVsbG8=" } });
    let r = signer(&api, Method::POST, &format!("/api/v1/signing/{ada_token}/complete"), Some(bad_png)).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let bad_locale =
        json!({ "values": { text_field: "x" }, "signature": { "kind": "drawn", "png_base64": png }, "locale": "<de>" });
    let r = signer(&api, Method::POST, &format!("/api/v1/signing/{ada_token}/complete"), Some(bad_locale)).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let missing = json!({ "values": {}, "signature": { "kind": "drawn", "png_base64": png } });
    let r = signer(&api, Method::POST, &format!("/api/v1/signing/{ada_token}/complete"), Some(missing)).await;
    assert_eq!(r.status, 422, "required text field: {}", r.text);
    let foreign = json!({ "values": { text_field: "x", fields[&(bob.clone(), "checkbox")].clone(): true }, "signature": { "kind": "drawn", "png_base64": png } });
    let r = signer(&api, Method::POST, &format!("/api/v1/signing/{ada_token}/complete"), Some(foreign)).await;
    assert_eq!(r.status, 422, "another signer's field: {}", r.text);
    let done =
        signer(&api, Method::POST, &format!("/api/v1/signing/{ada_token}/complete"), Some(complete.clone())).await;
    assert_eq!(done.status, 200, "{}", done.text);
    let twice = signer(&api, Method::POST, &format!("/api/v1/signing/{ada_token}/complete"), Some(complete)).await;
    assert_eq!((twice.status, twice.body["error"]["code"].as_str()), (409, Some("recipient_finished")));

    // Now Bob is invited, and signs with a typed signature.
    let bob_mail = smtp.wait_for("bob@example.com", "Supply agreement").await;
    assert!(bob_mail.subject.contains("zu unterzeichnen"), "{}", bob_mail.subject);
    assert!(
        bob_mail.text.contains("Prüfen und unterzeichnen") && bob_mail.text.contains("Guten Tag Bob Byron"),
        "{}",
        bob_mail.text
    );
    let bob_token = bob_mail.signing_token().unwrap();
    assert_ne!(bob_token, ada_token);
    let r =
        signer(&api, Method::POST, &format!("/api/v1/signing/{bob_token}/consent"), Some(json!({ "accepted": true })))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Typed signatures take one of the script faces, and a face only for typing.
    let checkbox = fields[&(bob.clone(), "checkbox")].clone();
    for (signature, wants) in [
        (json!({ "kind": "typed", "text": "Bob Byron", "font": "comic-sans" }), "dancing-script, kaushan-script"),
        (json!({ "kind": "drawn", "png_base64": png, "font": "kaushan-script" }), "for typed signatures"),
    ] {
        let bad = json!({ "values": { checkbox.clone(): true }, "signature": signature });
        let r = signer(&api, Method::POST, &format!("/api/v1/signing/{bob_token}/complete"), Some(bad)).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.body["error"]["message"].as_str().unwrap().contains(wants), "{}", r.text);
    }
    let bob_done = json!({
        "values": { checkbox: true },
        "signature": { "kind": "typed", "text": "Bob Byron", "font": "kaushan-script" }
    });
    let r = signer(&api, Method::POST, &format!("/api/v1/signing/{bob_token}/complete"), Some(bob_done)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Completed: the final document has every value, everyone gets it.
    let detail = api.wait_status(&key, &id, "completed").await;
    let final_sha = detail["final_sha256"].as_str().unwrap().to_owned();
    let original = api.call(Method::GET, &format!("{base}/document?version=original"), &key, None).await;
    let final_doc = api.client.get(format!("{}{base}/document?version=final", api.base)).bearer_auth(match &key {
        Auth::Bearer(k) => k.clone(),
        _ => unreachable!(),
    });
    let final_bytes = final_doc.send().await.unwrap().bytes().await.unwrap().to_vec();
    assert!(final_bytes.starts_with(b"%PDF-"));
    assert_ne!(final_bytes, original.text.as_bytes());
    assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&final_bytes)), final_sha);
    let text = pdftotext(&final_bytes);
    if let Ok(dir) = std::env::var("SIGILLUM_TEST_KEEP_PDF") {
        std::fs::write(std::path::Path::new(&dir).join("final.pdf"), &final_bytes).unwrap();
    }
    // Carol's name in Chinese is drawn in the server's fallback face (Noto Sans CJK).
    for want in ["Ada Lovelace", "Delivery to Z\u{fc}rich", "Bob Byron", "bob@example.com", "Carol Copy 高卡罗"] {
        assert!(text.contains(want), "final PDF lacks {want:?}: {text}");
    }
    // Bob's typed signature is drawn in the face he chose, embedded (poppler's view).
    let fonts_path = std::env::temp_dir().join(format!("sigillum-fonts-{}.pdf", std::process::id()));
    std::fs::write(&fonts_path, &final_bytes).unwrap();
    let fonts = std::process::Command::new("pdffonts").arg(&fonts_path).output().unwrap();
    let _ = std::fs::remove_file(&fonts_path);
    let fonts = String::from_utf8_lossy(&fonts.stdout);
    assert!(fonts.lines().any(|l| l.starts_with("KaushanScript") && l.contains(" yes ")), "{fonts}");
    assert!(fonts.lines().any(|l| l.contains("NotoSansCJK") && l.contains(" yes ")), "{fonts}");
    // Ada signed with locale de-CH: her date field reads DD.MM.YYYY (UTC day of signing).
    let swiss = {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let (y, m, d) = sigillum_testkit::civil_date(secs);
        format!("{d:02}.{m:02}.{y:04}")
    };
    assert!(text.contains(&swiss), "final PDF lacks the de-CH date {swiss}: {text}");
    // The final document is sealed (PAdES B-LTA) and verifies offline against the server's root:
    // with `sigillum verify` and with pyHanko.
    let ca = api.client.get(format!("{}/pki/ca.pem", api.base)).send().await.unwrap().text().await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let (final_path, ca_path) = (files.path().join("final.pdf"), files.path().join("ca.pem"));
    std::fs::write(&final_path, &final_bytes).unwrap();
    std::fs::write(&ca_path, &ca).unwrap();
    let out = std::process::Command::new(sigillum_testkit::sigillum_bin())
        .args(["verify", final_path.to_str().unwrap(), "--trust", ca_path.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "sigillum verify: {report}");
    assert!(report.contains("VALID") && report.contains("PAdES B-LTA"), "{report}");
    assert!(report.contains("every event proven in the log (inclusion proofs): yes"), "{report}");
    // The certificate of completion: who, when, from where, and every event.
    for want in [
        "Certificate of Completion",
        "Ada Lovelace",
        "ada@example.com",
        "127.0.0.1",
        "recipient.signed",
        "consent.given",
        "Data kept in",
        "CH (every store and service",
    ] {
        assert!(text.contains(want), "certificate lacks {want:?}: {text}");
    }
    // The attached trail is checked, and any edit to it is caught.
    let doc = lopdf::Document::load_mem(&final_bytes).unwrap();
    let json = sigillum_pdf::certificate::attached_trail(&doc).expect("audit trail attached");
    assert!(sigillum_pdf::verify::check_trail(&json).ok());
    let mut trail: serde_json::Value = serde_json::from_slice(&json).unwrap();
    trail["events"][1]["event"]["time"] = json!("2020-01-01T00:00:00.000Z");
    let edited = sigillum_pdf::verify::check_trail(&serde_json::to_vec(&trail).unwrap());
    assert!(!edited.leaves_ok && !edited.ok(), "{edited:?}");
    let mut trail: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let who =
        trail["events"].as_array().unwrap().iter().position(|e| e["disclosed"]["actor.name"].is_object()).unwrap();
    trail["events"][who]["disclosed"]["actor.name"]["value"] = json!("Mallory");
    let edited = sigillum_pdf::verify::check_trail(&serde_json::to_vec(&trail).unwrap());
    assert!(!edited.disclosures_ok && !edited.ok(), "{edited:?}");
    let mut tampered = final_bytes.clone();
    tampered[100] ^= 0x01;
    let tampered_path = files.path().join("tampered.pdf");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let out = std::process::Command::new(sigillum_testkit::sigillum_bin())
        .args(["verify", tampered_path.to_str().unwrap(), "--trust", ca_path.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a changed byte must fail verification");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["signatures"][0]["digest_ok"], false);
    let out = std::process::Command::new("pyhanko")
        .args([
            "sign",
            "adesverify",
            "--trust-replace",
            "--trust",
            ca_path.to_str().unwrap(),
            final_path.to_str().unwrap(),
        ])
        .output()
        .expect("pyhanko (scripts/deps.sh)");
    let judged = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && judged.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"),
        "pyHanko: {judged}"
    );
    for (who, subject) in
        [("ada@example.com", "Completed"), ("bob@example.com", "Abgeschlossen"), ("carol@example.com", "Completed")]
    {
        let m = smtp.wait_for(who, subject).await;
        assert!(m.has_attachment("application/pdf", "Supply agreement.pdf"), "{who}: {}", m.raw.len());
    }
    // The signer's link now shows the completed envelope and serves the final document.
    let after = signer(&api, Method::GET, &format!("/api/v1/signing/{ada_token}"), None).await;
    assert_eq!(after.body["envelope"]["status"], "completed");
    let doc = api.client.get(format!("{}/api/v1/signing/{ada_token}/document", api.base)).send().await.unwrap();
    let doc = doc.bytes().await.unwrap();
    assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&doc)), final_sha, "the signer gets the final PDF");

    // The audit trail: every step, with who, from where, on what device.
    let trail = api.call(Method::GET, &format!("{base}/events"), &key, None).await;
    assert_eq!(trail.status, 200);
    let events = trail.body["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"]["kind"].as_str().unwrap()).collect();
    for want in [
        "envelope.created",
        "document.uploaded",
        "recipient.added",
        "field.added",
        "envelope.sent",
        "email.sent",
        "link.opened",
        "document.viewed",
        "consent.given",
        "recipient.signed",
        "envelope.completed",
        "document.downloaded",
    ] {
        assert!(kinds.contains(&want), "no {want} in {kinds:?}");
    }
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(pos("envelope.sent") < pos("consent.given") && pos("consent.given") < pos("recipient.signed"));
    assert!(pos("recipient.signed") < pos("envelope.completed"));
    let signed: Vec<&Value> = events.iter().filter(|e| e["event"]["kind"] == "recipient.signed").collect();
    assert_eq!(signed.len(), 2);
    let first = signed[0];
    assert_eq!(first["event"]["actor"]["kind"], "recipient");
    assert_eq!(first["disclosed"]["actor.name"]["value"], "Ada Lovelace");
    assert_eq!(first["disclosed"]["actor.email"]["value"], "ada@example.com");
    assert_eq!(first["disclosed"]["ip"]["value"], "127.0.0.1");
    assert_eq!(first["disclosed"]["user_agent"]["value"], CHROME);
    assert_eq!(first["event"]["device"]["browser"], "Chrome 120");
    assert_eq!(first["event"]["document_sha256"], detail["document_sha256"]);
    let mailed: Vec<&Value> = events.iter().filter(|e| e["event"]["kind"] == "email.sent").collect();
    assert!(mailed.len() >= 5, "2 invitations + 3 completion mails: {}", mailed.len());
    let completed = events.iter().find(|e| e["event"]["kind"] == "envelope.completed").unwrap();
    assert_eq!(completed["event"]["document_sha256"], final_sha.as_str());

    // Webhooks: sent, two signatures, completed — each signed with the subscription's secret.
    let got = hooks.wait_for(4).await;
    let mut types = Vec::new();
    for d in &got {
        let sig = &d.headers["sigillum-signature"];
        let (t, v1) = sig.split_once(',').unwrap();
        let t = t.strip_prefix("t=").unwrap();
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(&d.body);
        assert_eq!(v1.strip_prefix("v1=").unwrap(), hex::encode(sigillum_crypto::hmac_sha256(&secret, &signed)));
        let body: Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(body["data"]["envelope_id"], id.as_str());
        types.push(body["type"].as_str().unwrap().to_owned());
    }
    for want in ["envelope.sent", "recipient.signed", "envelope.completed"] {
        assert!(types.iter().any(|t| t == want), "no {want} delivery in {types:?}");
    }
    let hook_id = hook.body["id"].as_str().unwrap();
    let log = api.call(Method::GET, &format!("/api/v1/webhooks/{hook_id}/deliveries"), &key, None).await;
    assert!(log.body["deliveries"].as_array().unwrap().iter().any(|d| d["status"] == "delivered"), "{}", log.text);

    // The log still verifies as a whole.
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_flow_on_sqlite() {
    whole_flow(vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_flow_on_postgres() {
    whole_flow(vec![("SIGILLUM_DATABASE_URL".into(), sigillum_testkit::postgres_database().await)]).await;
}

/// Decline, void, access codes and the default outbox (no SMTP configured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decline_void_access_code_and_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&embedded_env(&data), &[]);
    let api = Api::new(&server);
    api.signup("sam@example.org", PW, "Sam Sender").await;
    let s = api.login("sam@example.org", PW).await;

    let draft = |title: &'static str, code: Option<&'static str>| {
        let api = &api;
        let s = s.clone();
        async move {
            let id = created(&api.upload(&s, title, pdf(1)).await, "upload");
            let mut r =
                json!({ "name": "Dee Clines", "email": "dee@example.com", "role": "signer", "routing_order": 1 });
            if let Some(c) = code {
                r["access_code"] = json!(c);
            }
            let rid =
                created(&api.call(Method::POST, &format!("/api/v1/envelopes/{id}/recipients"), &s, Some(r)).await, "r");
            let f = json!({ "recipient_id": rid, "kind": "signature", "page": 1, "x": 10, "y": 10, "width": 100, "height": 30 });
            created(&api.call(Method::POST, &format!("/api/v1/envelopes/{id}/fields"), &s, Some(f)).await, "f");
            (id, rid)
        }
    };

    // A signer without a signature field cannot be sent to.
    let bare = created(&api.upload(&s, "Bare", pdf(1)).await, "upload");
    let r = json!({ "name": "No Field", "email": "nf@example.com", "role": "signer", "routing_order": 1 });
    api.call(Method::POST, &format!("/api/v1/envelopes/{bare}/recipients"), &s, Some(r)).await;
    let r = api.call(Method::POST, &format!("/api/v1/envelopes/{bare}/send"), &s, Some(json!({}))).await;
    assert_eq!(r.status, 422, "{}", r.text);

    // Decline with an access code, through an embedded signing link.
    let (id, rid) = draft("Declined deal", Some("4711-secret")).await;
    let early =
        api.call(Method::POST, &format!("/api/v1/envelopes/{id}/recipients/{rid}/signing-link"), &s, None).await;
    assert_eq!((early.status, early.body["error"]["code"].as_str()), (409, Some("envelope_not_in_progress")));
    assert_eq!(api.call(Method::POST, &format!("/api/v1/envelopes/{id}/send"), &s, None).await.status, 200);
    let link = api.call(Method::POST, &format!("/api/v1/envelopes/{id}/recipients/{rid}/signing-link"), &s, None).await;
    assert_eq!(link.status, 201, "{}", link.text);
    let url = link.body["url"].as_str().unwrap();
    assert!(url.starts_with("https://localhost:8443/s/"), "{url}");
    let token = url.rsplit('/').next().unwrap().to_owned();
    let path = format!("/api/v1/signing/{token}");
    let r = signer(&api, Method::GET, &path, None).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("access_code_required")));
    let wrong = api.client.get(format!("{}{path}", api.base)).header("x-access-code", "nope").send().await.unwrap();
    assert_eq!(wrong.status(), 403);
    let right =
        api.client.get(format!("{}{path}", api.base)).header("x-access-code", "4711-secret").send().await.unwrap();
    assert_eq!(right.status(), 200);
    let decline = api
        .client
        .post(format!("{}{path}/decline", api.base))
        .header("x-access-code", "4711-secret")
        .json(&json!({ "reason": "Wrong delivery address" }))
        .send()
        .await
        .unwrap();
    assert_eq!(decline.status(), 200);
    let d = api.wait_status(&s, &id, "declined").await;
    assert_eq!(d["recipients"][0]["status"], "declined");
    let gone =
        api.client.get(format!("{}{path}", api.base)).header("x-access-code", "4711-secret").send().await.unwrap();
    assert_eq!(gone.status(), 410);
    let trail = api.call(Method::GET, &format!("/api/v1/envelopes/{id}/events"), &s, None).await;
    let declined =
        trail.body["events"].as_array().unwrap().iter().find(|e| e["event"]["kind"] == "recipient.declined").cloned();
    assert_eq!(declined.unwrap()["disclosed"]["note"]["value"], "Wrong delivery address");

    // Void: the invited signer is told, and the link stops working.
    let (id, _) = draft("Voided deal", None).await;
    assert_eq!(api.call(Method::POST, &format!("/api/v1/envelopes/{id}/send"), &s, Some(json!({}))).await.status, 200);
    let outbox = data.join("outbox");
    let read_outbox = || -> Vec<String> {
        std::fs::read_dir(&outbox)
            .map(|d| d.flatten().filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let invitation = loop {
        if let Some(m) = read_outbox().into_iter().find(|m| m.contains("Voided deal") && m.contains("to sign")) {
            break sigillum_testkit::smtp::Mail::parse(m);
        }
        assert!(Instant::now() < deadline, "no invitation in the outbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let token = invitation.signing_token().unwrap();
    let v = api
        .call(Method::POST, &format!("/api/v1/envelopes/{id}/void"), &s, Some(json!({ "reason": "Superseded" })))
        .await;
    assert_eq!((v.status, v.body["status"].as_str()), (200, Some("voided")), "{}", v.text);
    let r = signer(&api, Method::GET, &format!("/api/v1/signing/{token}"), None).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (410, Some("envelope_voided")));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read_outbox().iter().any(|m| m.contains("Voided: ") && m.contains("Superseded")) {
        assert!(Instant::now() < deadline, "no void notice in the outbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again =
        api.call(Method::POST, &format!("/api/v1/envelopes/{id}/void"), &s, Some(json!({ "reason": "x" }))).await;
    assert_eq!((again.status, again.body["error"]["code"].as_str()), (409, Some("envelope_finished")));

    // Unknown and malformed tokens are plain 404s.
    for t in ["x", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "../../etc/passwd"] {
        let r = signer(&api, Method::GET, &format!("/api/v1/signing/{t}"), None).await;
        assert!(r.status == 404, "{t}: {}", r.status);
    }
    server.terminate();
}

/// Work queued in the database survives a crash: the invitation cannot be delivered while the
/// mail server is down, the server is killed (SIGKILL), and after a restart with the mail server
/// up the invitation arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_mail_survives_a_crash() {
    let port = sigillum_testkit::smtp::free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut env = embedded_env(&dir.path().join("data"));
    env.push(("SIGILLUM_SMTP_URL".into(), format!("smtp://127.0.0.1:{port}")));
    let server = Server::start(&env, &[]);
    let api = Api::new(&server);
    api.signup("sam@example.org", PW, "Sam Sender").await;
    let s = api.login("sam@example.org", PW).await;
    let id = created(&api.upload(&s, "Crash-proof deal", pdf(1)).await, "upload");
    let r = json!({ "name": "Rae", "email": "rae@example.com", "role": "signer", "routing_order": 1 });
    let rid = created(&api.call(Method::POST, &format!("/api/v1/envelopes/{id}/recipients"), &s, Some(r)).await, "r");
    let f =
        json!({ "recipient_id": rid, "kind": "signature", "page": 1, "x": 10, "y": 10, "width": 100, "height": 30 });
    created(&api.call(Method::POST, &format!("/api/v1/envelopes/{id}/fields"), &s, Some(f)).await, "f");
    assert_eq!(api.call(Method::POST, &format!("/api/v1/envelopes/{id}/send"), &s, None).await.status, 200);
    // Let the worker try (and fail) at least once, then crash.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();

    let smtp = SmtpCapture::start_on(port);
    let server = Server::start(&env, &[]);
    let mail = smtp.wait_for("rae@example.com", "Crash-proof deal").await;
    let token = mail.signing_token().unwrap();
    let api = Api::new(&server);
    let view = signer(&api, Method::GET, &format!("/api/v1/signing/{token}"), None).await;
    assert_eq!(view.status, 200, "{}", view.text);
    server.terminate();
}

/// A webhook endpoint that fails is retried with backoff until it answers 2xx; the delivery log
/// shows the attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_are_retried() {
    let hooks = HookReceiver::start().await;
    *hooks.status.lock().unwrap() = 500;
    let dir = tempfile::tempdir().unwrap();
    let mut env = embedded_env(&dir.path().join("data"));
    env.push(("SIGILLUM_WEBHOOK_ALLOW_PRIVATE".into(), "true".into()));
    let server = Server::start(&env, &[]);
    let api = Api::new(&server);
    api.signup("sam@example.org", PW, "Sam Sender").await;
    let s = api.login("sam@example.org", PW).await;
    let hook = api
        .call(Method::POST, "/api/v1/webhooks", &s, Some(json!({ "url": hooks.url, "events": ["envelope.sent"] })))
        .await;
    let hook_id = created(&hook, "webhook");
    let bad = api.call(Method::POST, "/api/v1/webhooks", &s, Some(json!({ "url": "ftp://x.example" }))).await;
    assert_eq!(bad.status, 422);
    let id = created(&api.upload(&s, "Hooked", pdf(1)).await, "upload");
    let r = json!({ "name": "Hu", "email": "hu@example.com", "role": "approver", "routing_order": 1 });
    api.call(Method::POST, &format!("/api/v1/envelopes/{id}/recipients"), &s, Some(r)).await;
    assert_eq!(api.call(Method::POST, &format!("/api/v1/envelopes/{id}/send"), &s, None).await.status, 200);
    hooks.wait_for(1).await;
    *hooks.status.lock().unwrap() = 204;
    let got = hooks.wait_for(2).await;
    assert_eq!(got[0].body, got[1].body, "the same delivery again");
    assert_eq!(got[0].headers["sigillum-delivery"], got[1].headers["sigillum-delivery"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = api.call(Method::GET, &format!("/api/v1/webhooks/{hook_id}/deliveries"), &s, None).await;
        let d = &log.body["deliveries"][0];
        if d["status"] == "delivered" {
            assert_eq!((d["attempts"].as_u64(), d["response_status"].as_u64()), (Some(2), Some(204)), "{d}");
            break;
        }
        assert!(Instant::now() < deadline, "{}", log.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Disabled webhooks get nothing more.
    assert_eq!(api.call(Method::DELETE, &format!("/api/v1/webhooks/{hook_id}"), &s, None).await.status, 204);
    let list = api.call(Method::GET, "/api/v1/webhooks", &s, None).await;
    assert_eq!(list.body["webhooks"][0]["active"], false);
    server.terminate();
}
