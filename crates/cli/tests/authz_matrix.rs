//! The authorisation matrix: every route, called as anonymous, as another organisation, with a
//! revoked API key, with an ended session, and (for changes) without the CSRF token — and never
//! anyone else's data. The route list is read from the router's source, so a new route without a
//! row here fails this test.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;
use sigillum_testkit::api::{Api, Auth};
use sigillum_testkit::pdf::pdf;
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Access {
    /// Anyone (health, transparency log, signup, login).
    Public,
    /// A signed-in user or API key; `{id}` resources belong to one organisation.
    Member,
    /// A signer's token (the capability in the path), scoped to one recipient.
    Signer,
}

/// Every route: method, path template, access.
const MATRIX: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/log/checkpoint", Access::Public),
    ("GET", "/log/key", Access::Public),
    ("GET", "/log/proof/inclusion", Access::Public),
    ("GET", "/log/proof/consistency", Access::Public),
    ("POST", "/api/v1/auth/signup", Access::Public),
    ("POST", "/api/v1/auth/login", Access::Public),
    ("GET", "/api/v1/auth/me", Access::Member),
    ("POST", "/api/v1/api-keys", Access::Member),
    ("GET", "/api/v1/api-keys", Access::Member),
    ("DELETE", "/api/v1/api-keys/{id}", Access::Member),
    ("POST", "/api/v1/envelopes", Access::Member),
    ("GET", "/api/v1/envelopes", Access::Member),
    ("GET", "/api/v1/envelopes/{id}", Access::Member),
    ("DELETE", "/api/v1/envelopes/{id}", Access::Member),
    ("POST", "/api/v1/envelopes/{id}/recipients", Access::Member),
    ("POST", "/api/v1/envelopes/{id}/fields", Access::Member),
    ("GET", "/api/v1/envelopes/{id}/document", Access::Member),
    ("GET", "/api/v1/envelopes/{id}/events", Access::Member),
    ("GET", "/api/v1/envelopes/{id}/events/stream", Access::Member),
    ("POST", "/api/v1/envelopes/{id}/send", Access::Member),
    ("POST", "/api/v1/envelopes/{id}/void", Access::Member),
    ("POST", "/api/v1/envelopes/{id}/recipients/{rid}/signing-link", Access::Member),
    ("POST", "/api/v1/webhooks", Access::Member),
    ("GET", "/api/v1/webhooks", Access::Member),
    ("DELETE", "/api/v1/webhooks/{id}", Access::Member),
    ("GET", "/api/v1/webhooks/{id}/deliveries", Access::Member),
    ("GET", "/api/v1/signing/{token}", Access::Signer),
    ("GET", "/api/v1/signing/{token}/document", Access::Signer),
    ("POST", "/api/v1/signing/{token}/consent", Access::Signer),
    ("POST", "/api/v1/signing/{token}/complete", Access::Signer),
    ("POST", "/api/v1/signing/{token}/decline", Access::Signer),
    // Last: the other organisation's session ends here.
    ("POST", "/api/v1/auth/logout", Access::Member),
];

/// Paths registered with `.route("…"` anywhere in the web crate.
fn routes_in_source() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/src");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (at, _) in text.match_indices(".route(") {
            let rest = text[at + 7..].trim_start();
            if let Some(path) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                out.insert(path.to_owned());
            }
        }
    }
    out
}

#[test]
fn every_route_has_a_row() {
    let matrix: BTreeSet<String> = MATRIX.iter().map(|(_, p, _)| p.to_string()).collect();
    let source = routes_in_source();
    assert!(source.len() >= 15, "route scan found too little: {source:?}");
    let missing: Vec<_> = source.difference(&matrix).collect();
    assert!(missing.is_empty(), "routes without an authorisation-matrix row: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_reaches_anyone_elses_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&embedded_env(&dir.path().join("data")), &[]);
    let api = Api::new(&server);

    // The victim: Ada, with an envelope and an API key.
    api.signup("ada@example.org", PW, "Ada Lovelace").await;
    let ada = api.login("ada@example.org", PW).await;
    let ada_key = api.api_key(&ada, "ada's key").await;
    let envelope = api.upload(&ada, "Ada's secret merger", pdf(1)).await.body["id"].as_str().unwrap().to_owned();
    let keys = api.call(Method::GET, "/api/v1/api-keys", &ada, None).await;
    let key_id = keys.body["api_keys"][0]["id"].as_str().unwrap().to_owned();
    let hook =
        api.call(Method::POST, "/api/v1/webhooks", &ada, Some(json!({"url": "https://hooks.example.org/x"}))).await;
    let hook_id = hook.body["id"].as_str().unwrap().to_owned();
    let recipient =
        json!({"name": "Ada's counterparty", "email": "counter@example.org", "role": "signer", "routing_order": 1});
    let rid = api.call(Method::POST, &format!("/api/v1/envelopes/{envelope}/recipients"), &ada, Some(recipient)).await;
    let rid = rid.body["id"].as_str().unwrap().to_owned();

    // The callers that must get nothing of Ada's.
    api.signup("eve@example.net", PW, "Eve").await;
    let eve = api.login("eve@example.net", PW).await;
    let eve_key = Auth::Bearer(api.api_key(&eve, "eve's key").await);
    let revoked = {
        let k = api.api_key(&ada, "to revoke").await;
        let list = api.call(Method::GET, "/api/v1/api-keys", &ada, None).await;
        let id =
            list.body["api_keys"].as_array().unwrap().iter().find(|x| x["name"] == "to revoke").unwrap()["id"].clone();
        assert_eq!(
            api.call(Method::DELETE, &format!("/api/v1/api-keys/{}", id.as_str().unwrap()), &ada, None).await.status,
            204
        );
        Auth::Bearer(k)
    };
    let ended = {
        let s = api.login("ada@example.org", PW).await;
        assert_eq!(api.call(Method::POST, "/api/v1/auth/logout", &s, None).await.status, 204);
        s
    };
    let forged = Auth::Session {
        cookie: "__Host-sigillum_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        csrf: Some("x".into()),
    };

    let secrets = ["Ada's secret merger", "ada@example.org", &ada_key[4..], "counter@example.org", "hooks.example.org"];
    let mut checked = 0;
    for (method, template, access) in MATRIX {
        if *access != Access::Member {
            continue;
        }
        let id = if template.starts_with("/api/v1/api-keys") {
            &key_id
        } else if template.starts_with("/api/v1/webhooks") {
            &hook_id
        } else {
            &envelope
        };
        let path = template.replace("{id}", id).replace("{rid}", &rid);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = match (method.as_str(), *template) {
            ("POST", "/api/v1/api-keys") => Some(json!({"name": "x"})),
            ("POST", "/api/v1/envelopes/{id}/recipients") => {
                Some(json!({"name": "Mallory", "email": "m@example.net", "role": "signer", "routing_order": 1}))
            }
            ("POST", "/api/v1/envelopes/{id}/fields") => Some(json!({
                "recipient_id": "00000000-0000-7000-8000-000000000000", "kind": "signature",
                "page": 1, "x": 10, "y": 10, "width": 100, "height": 30
            })),
            ("POST", "/api/v1/envelopes/{id}/void") => Some(json!({"reason": "x"})),
            ("POST", "/api/v1/webhooks") => Some(json!({"url": "https://evil.example.net/x"})),
            _ => None,
        };
        if method == Method::POST && *template == "/api/v1/envelopes" {
            for who in [&Auth::None, &revoked, &ended, &forged] {
                assert_eq!(api.upload(who, "x", pdf(1)).await.status, 401, "upload as {who:?}");
            }
            assert_eq!(api.upload(&ada.without_csrf(), "x", pdf(1)).await.status, 403, "upload without CSRF");
            checked += 1;
            continue;
        }
        for who in [&Auth::None, &revoked, &ended, &forged] {
            let r = api.call(method.clone(), &path, who, body.clone()).await;
            assert_eq!(r.status, 401, "{method} {path} as {who:?}: {}", r.text);
            assert_eq!(r.body["error"]["code"], "unauthenticated");
        }
        if method != Method::GET {
            let r = api.call(method.clone(), &path, &ada.without_csrf(), body.clone()).await;
            assert_eq!(r.status, 403, "{method} {path} without CSRF: {}", r.text);
        }
        for who in [&eve, &eve_key] {
            let r = api.call(method.clone(), &path, who, body.clone()).await;
            if template.contains("{id}") {
                assert_eq!(r.status, 404, "{method} {path} as the other organisation: {}", r.text);
            } else {
                assert!(r.status < 500, "{method} {path}: {}", r.text);
            }
            for s in secrets {
                assert!(!r.text.contains(s), "{method} {path} leaked {s:?} to the other organisation");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, MATRIX.iter().filter(|r| r.2 == Access::Member).count());

    // Signer routes: the token is the only credential. Unknown, malformed and other
    // envelopes' tokens reach nothing; a session or API key is no substitute for one.
    let signer_body = |template: &str| match template {
        "/api/v1/signing/{token}/consent" => Some(json!({"accepted": true})),
        "/api/v1/signing/{token}/complete" => Some(json!({"values": {}, "signature": {"kind": "typed", "text": "x"}})),
        "/api/v1/signing/{token}/decline" => Some(json!({"reason": "x"})),
        _ => None,
    };
    for (method, template, access) in MATRIX {
        if *access != Access::Signer {
            continue;
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for token in ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "short", envelope.as_str(), rid.as_str()] {
            let path = template.replace("{token}", token);
            for who in [&Auth::None, &ada, &eve_key] {
                let r = api.call(method.clone(), &path, who, signer_body(template)).await;
                assert_eq!(r.status, 404, "{method} {path} as {who:?}: {}", r.text);
                for s in secrets {
                    assert!(!r.text.contains(s), "{method} {path} leaked {s:?}");
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, MATRIX.iter().filter(|r| r.2 != Access::Public).count());

    // And after all that, Ada's things are intact.
    assert_eq!(
        api.call(Method::GET, &format!("/api/v1/envelopes/{envelope}"), &Auth::Bearer(ada_key.clone()), None)
            .await
            .status,
        200
    );
    server.terminate();
}
