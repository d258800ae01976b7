//! The authorisation matrix: every route, called as anonymous, as another organisation, with a
//! revoked API key, with an ended session, and (for changes) without the CSRF token — and never
//! anyone else's data. Every response also carries the full set of security headers (the test
//! client checks each one). The route list is read from the router's source, so a new route without a
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
    /// The operator's Prometheus scraper (the metrics token; tested in serve.rs).
    Operator,
    /// A payment provider's webhook: no session or key, only the provider's signature (tested
    /// with every signature case in billing.rs).
    Provider,
}

/// Every route: method, path template, access.
const MATRIX: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/metrics", Access::Operator),
    ("GET", "/api/v1/openapi.json", Access::Public),
    ("GET", "/.well-known/security.txt", Access::Public),
    ("GET", "/security-policy", Access::Public),
    ("GET", "/log/checkpoint", Access::Public),
    ("GET", "/log/key", Access::Public),
    ("GET", "/log/proof/inclusion", Access::Public),
    ("GET", "/log/proof/consistency", Access::Public),
    ("GET", "/pki/ca.pem", Access::Public),
    ("GET", "/pki/crl", Access::Public),
    ("POST", "/tsa", Access::Public),
    ("GET", "/api/v1/envelopes/{id}/pages/{page}", Access::Member),
    ("GET", "/api/v1/signing/{token}/pages/{page}", Access::Signer),
    ("POST", "/api/v1/auth/signup", Access::Public),
    ("POST", "/api/v1/auth/login", Access::Public),
    ("GET", "/api/v1/auth/me", Access::Member),
    ("POST", "/api/v1/auth/totp/setup", Access::Member),
    ("POST", "/api/v1/auth/totp/enable", Access::Member),
    ("POST", "/api/v1/members", Access::Member),
    ("GET", "/api/v1/members", Access::Member),
    ("DELETE", "/api/v1/members/{id}", Access::Member),
    ("GET", "/api/v1/organisation", Access::Member),
    ("PATCH", "/api/v1/organisation", Access::Member),
    ("DELETE", "/api/v1/organisation", Access::Member),
    ("GET", "/api/v1/organisation/export", Access::Member),
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
    ("GET", "/api/v1/billing/plans", Access::Public),
    ("GET", "/api/v1/billing", Access::Member),
    ("POST", "/api/v1/billing/checkout", Access::Member),
    ("POST", "/api/v1/billing/portal", Access::Member),
    ("POST", "/api/v1/billing/cancel", Access::Member),
    ("POST", "/webhooks/stripe", Access::Provider),
    ("POST", "/webhooks/paypal", Access::Provider),
    ("GET", "/api/v1/signing/{token}", Access::Signer),
    ("GET", "/api/v1/signing/{token}/document", Access::Signer),
    ("POST", "/api/v1/signing/{token}/consent", Access::Signer),
    ("POST", "/api/v1/signing/{token}/complete", Access::Signer),
    ("POST", "/api/v1/signing/{token}/decline", Access::Signer),
    // Last: the other organisation's session ends here.
    ("POST", "/api/v1/auth/logout", Access::Member),
];

/// The browser UI's routes (HTML pages and static files, not API operations): workspace pages
/// need a session (else they redirect to the login page) and show only the caller's
/// organisation; the signer page is an empty shell whose script uses the signer API above.
const PAGES: &[&str] = &[
    "/",
    "/app",
    "/app/login",
    "/app/signup",
    "/app/envelopes/new",
    "/app/envelopes/{id}",
    "/app/settings",
    "/app/billing",
    "/app/{*rest}",
    "/s/{token}",
    "/static/{name}",
];

/// Paths registered with `.route("…"` anywhere in the web crate.
fn routes_in_source() -> BTreeSet<String> {
    let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/src"));
    let mut out = BTreeSet::new();
    let mut files = Vec::new();
    let mut dirs = vec![dir];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
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
    let matrix: BTreeSet<String> =
        MATRIX.iter().map(|(_, p, _)| p.to_string()).chain(PAGES.iter().map(|p| p.to_string())).collect();
    let source = routes_in_source();
    assert!(source.len() >= 15, "route scan found too little: {source:?}");
    let missing: Vec<_> = source.difference(&matrix).collect();
    assert!(missing.is_empty(), "routes without an authorisation-matrix row: {missing:?}");
}

/// The OpenAPI document (generated by utoipa from the handlers) describes every route of the
/// matrix, which holds every route of the source.
#[test]
fn openapi_documents_every_route() {
    use utoipa::OpenApi;
    let doc = serde_json::to_value(sigillum_web::openapi::ApiDoc::openapi()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    for (method, path, access) in MATRIX {
        let op = &doc["paths"][*path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in the OpenAPI document");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
        let secured = op.get("security").is_some();
        assert_eq!(
            secured,
            matches!(access, Access::Member | Access::Operator),
            "{method} {path}: security must match the matrix"
        );
    }
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, MATRIX.len(), "the document has operations the matrix lacks");

    // An independent validator (openapi-spec-validator, installed by scripts/deps.sh) accepts it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))",
        ])
        .arg(&file)
        .output()
        .expect("python3 with openapi-spec-validator");
    assert!(out.status.success(), "openapi-spec-validator: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_reaches_anyone_elses_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&embedded_env(&dir.path().join("data")), &[]);
    let api = Api::new(&server);
    let doc = api.call(Method::GET, "/api/v1/openapi.json", &Auth::None, None).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["paths"]["/api/v1/envelopes/{id}/send"]["post"].is_object());

    // The victim: Ada, with an envelope and an API key.
    let ada_id = api.signup("ada@example.org", PW, "Ada Lovelace").await["id"].as_str().unwrap().to_owned();
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

    // The workspace pages: another organisation's envelope is a 404 page that names nothing,
    // and without a session every workspace page ends on the login page.
    let page = api.call(Method::GET, &format!("/app/envelopes/{envelope}"), &eve, None).await;
    assert_eq!(page.status, 404, "{}", page.text);
    assert!(!page.text.contains("Ada's secret merger") && !page.text.contains("merger"));
    let own = api.call(Method::GET, &format!("/app/envelopes/{envelope}"), &ada, None).await;
    assert_eq!(own.status, 200);
    assert!(own.text.contains("Ada&#x27;s secret merger") || own.text.contains("Ada's secret merger"));
    for path in ["/app", "/app/settings", "/app/billing", "/app/envelopes/new", &format!("/app/envelopes/{envelope}")] {
        let anon = api.call(Method::GET, path, &Auth::None, None).await;
        assert_eq!(anon.status, 200, "{path}");
        assert!(anon.text.contains("id=\"login\"") && !anon.text.contains("merger"), "{path}: {}", anon.text);
    }
    let dashboard = api.call(Method::GET, "/app", &eve, None).await;
    assert!(!dashboard.text.contains("merger"), "Eve's dashboard lists Ada's envelope");
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
        } else if template.starts_with("/api/v1/members") {
            &ada_id
        } else {
            &envelope
        };
        let path = template.replace("{id}", id).replace("{rid}", &rid).replace("{page}", "1.png");
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
            ("POST", "/api/v1/auth/totp/enable") => Some(json!({"code": "123456"})),
            ("POST", "/api/v1/members") => Some(json!({"email": "x@example.net", "name": "X", "password": PW})),
            ("POST", "/api/v1/webhooks") => Some(json!({"url": "https://evil.example.net/x"})),
            ("POST", "/api/v1/billing/checkout") => Some(json!({"plan": "free", "provider": "stripe"})),
            // Never the right name: the other organisation must not erase its own either.
            ("PATCH", "/api/v1/organisation") => Some(json!({"retention_days": 3650})),
            ("DELETE", "/api/v1/organisation") => Some(json!({"confirm": "not the organisation's name"})),
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
            let path = template.replace("{token}", token).replace("{page}", "1.png");
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
    assert_eq!(checked, MATRIX.iter().filter(|r| matches!(r.2, Access::Member | Access::Signer)).count());

    // And after all that, Ada's things are intact.
    assert_eq!(
        api.call(Method::GET, &format!("/api/v1/envelopes/{envelope}"), &Auth::Bearer(ada_key.clone()), None)
            .await
            .status,
        200
    );
    server.terminate();
}
