//! The edge tier against a real server on loopback: cross-site requests refused while the
//! legitimate same-origin browser flow works, rate limits (a burst above the limit gets 429 with
//! `Retry-After` while another address is unaffected), connection caps, security.txt checked by
//! an independent RFC 9116 validator (`sectxt`), and the embedded-signing frame policy. The
//! security headers of every route are checked by every call of the test client
//! (`sigillum_testkit::api::assert_security_headers`).

use std::io::Read;
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sigillum_testkit::api::{assert_security_headers, Api, Auth};
use sigillum_testkit::server::{embedded_env, Server};

const PW: &str = "correct horse battery staple";
/// The embedded default public URL, whose origin is the only one allowed to change anything.
const OUR_ORIGIN: &str = "https://localhost:8443";

fn start(extra: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = embedded_env(&dir.path().join("data"));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let server = Server::start(&env, &[]);
    (dir, server)
}

/// A client of `server` whose connections come from `ip` (any 127.0.0.0/8 address on Linux).
fn client_from(server: &Server, ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.cert_pem()).unwrap())
        .tls_built_in_root_certs(false)
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

#[tokio::test]
async fn cross_site_requests_are_refused_and_the_same_origin_flow_works() {
    let (_dir, server) = start(&[]);
    let api = Api::new(&server);
    api.signup("ada@example.org", PW, "Ada").await;
    let session = api.login("ada@example.org", PW).await;
    let Auth::Session { cookie, csrf: Some(token) } = &session else { panic!("session") };
    let keys = server.url("/api/v1/api-keys");

    // A form on another site posting to us with the victim's cookie (as old browsers would send it).
    let form = api
        .client
        .post(&keys)
        .header("cookie", cookie)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=stolen")
        .send()
        .await
        .unwrap();
    assert_security_headers("/api/v1/api-keys", form.headers());
    assert_eq!(form.status(), 403);
    let body: serde_json::Value = form.json().await.unwrap();
    assert_eq!(body["error"]["code"], "cross_site_request");

    // A cross-site fetch that even knows the CSRF token.
    let fetch = api
        .client
        .post(&keys)
        .header("cookie", cookie)
        .header("x-csrf-token", token)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "cors")
        .header("origin", "https://evil.example")
        .json(&json!({"name": "stolen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fetch.status(), 403);

    // A browser without Fetch Metadata still sends Origin; a sibling subdomain is another site too.
    for (site, origin, code) in [
        (None, "https://evil.example", "cross_origin_request"),
        (None, "null", "cross_origin_request"),
        (Some("same-site"), "https://app.localhost:8443", "cross_site_request"),
    ] {
        let mut req = api.client.delete(server.url("/api/v1/api-keys/00000000-0000-0000-0000-000000000000"));
        req = req.header("cookie", cookie).header("x-csrf-token", token).header("origin", origin);
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{origin}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{origin}");
    }
    // Nothing was created by any of them.
    let list = api.call(Method::GET, "/api/v1/api-keys", &session, None).await;
    assert_eq!(list.body["api_keys"].as_array().map(Vec::len), Some(0), "{}", list.text);

    // The UI's own request: same origin, cookie and token.
    let ui = api
        .client
        .post(&keys)
        .header("cookie", cookie)
        .header("x-csrf-token", token)
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "cors")
        .header("origin", OUR_ORIGIN)
        .json(&json!({"name": "from the UI"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 201);
    // Same origin without the token is still refused by the token check.
    let no_token = api
        .client
        .post(&keys)
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .header("origin", OUR_ORIGIN)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    // Reading is never refused for its origin (no state changes), API clients send neither header.
    let read = api
        .client
        .get(server.url("/api/v1/auth/me"))
        .header("cookie", cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let key = api.api_key(&session, "integration").await;
    let created = api.call(Method::POST, "/api/v1/api-keys", &Auth::Bearer(key), Some(json!({"name": "k2"}))).await;
    assert_eq!(created.status, 201, "{}", created.text);
}

#[tokio::test]
async fn a_burst_above_the_limit_gets_429_while_another_address_is_served() {
    let (_dir, server) = start(&[("SIGILLUM_RATE_LIMIT_IP", "30/min")]);
    let flooder = client_from(&server, [127, 0, 0, 1]);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..40 {
        let r = flooder.get(server.url("/healthz")).send().await.unwrap();
        assert_security_headers("/healthz", r.headers());
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 30, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10, "{statuses:?}");
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&wait), "one token returns every 2 s: {wait}");

    let neighbour = client_from(&server, [127, 0, 0, 2]);
    let r = neighbour.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "another address has its own bucket");
}

#[tokio::test]
async fn secret_checking_routes_have_a_tight_bucket() {
    let (_dir, server) = start(&[("SIGILLUM_RATE_LIMIT_AUTH", "5/min")]);
    let api = Api::new(&server);
    let login = json!({"email": "nobody@example.org", "password": "wrong password, surely"});
    let mut codes = Vec::new();
    for _ in 0..7 {
        let r = api.call(Method::POST, "/api/v1/auth/login", &Auth::None, Some(login.clone())).await;
        codes.push((r.status, r.body["error"]["code"].as_str().unwrap_or_default().to_owned()));
    }
    assert!(codes[..5].iter().all(|(s, _)| *s == 401), "{codes:?}");
    assert!(codes[5..].iter().all(|(s, c)| *s == 429 && c == "rate_limited"), "{codes:?}");
    // Other routes of the same client are not affected.
    assert_eq!(api.call(Method::GET, "/healthz", &Auth::None, None).await.status, 200);
}

#[tokio::test]
async fn connections_above_the_per_address_cap_are_closed_before_tls() {
    let (_dir, server) = start(&[("SIGILLUM_MAX_CONNECTIONS_PER_IP", "3")]);
    let addr = server.url("").trim_start_matches("https://").to_owned();
    // Three idle connections (no TLS handshake yet: a slowloris) take every slot of 127.0.0.1.
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut fourth = TcpStream::connect(&addr).unwrap();
    fourth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(fourth.read(&mut buf).unwrap_or(0), 0, "the connection over the cap is closed at once");
    // Another address is served meanwhile, and 127.0.0.1 again once its connections end.
    let other = client_from(&server, [127, 0, 0, 3]);
    assert_eq!(other.get(server.url("/healthz")).send().await.unwrap().status(), 200);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let again = client_from(&server, [127, 0, 0, 1]);
    assert_eq!(again.get(server.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn security_txt_is_valid_rfc_9116() {
    let (_dir, server) = start(&[
        ("SIGILLUM_SECURITY_CONTACT", "mailto:security@localhost, https://localhost:8443/report"),
        ("SIGILLUM_SECURITY_LANGUAGES", "en, de"),
    ]);
    let api = Api::new(&server);
    let r = api.call(Method::GET, "/.well-known/security.txt", &Auth::None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines[0], "Contact: mailto:security@localhost");
    assert_eq!(lines[1], "Contact: https://localhost:8443/report");
    assert!(lines.contains(&"Policy: https://localhost:8443/security-policy"), "{}", r.text);
    assert!(lines.contains(&"Preferred-Languages: en, de"), "{}", r.text);
    assert!(lines.contains(&"Canonical: https://localhost:8443/.well-known/security.txt"), "{}", r.text);

    // The independent validator (sectxt, installed by scripts/deps.sh) finds no error.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("security.txt");
    std::fs::write(&file, &r.text).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, json\nfrom sectxt import Parser\n\
             p = Parser(open(sys.argv[1], 'rb').read(), urls='https://localhost:8443/.well-known/security.txt')\n\
             print(json.dumps({'valid': p.is_valid(), 'errors': p.errors, 'recommendations': p.recommendations}))",
        )
        .arg(&file)
        .output()
        .expect("python3 with sectxt");
    assert!(out.status.success(), "sectxt: {}", String::from_utf8_lossy(&out.stderr));
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["errors"], json!([]), "{verdict}");
    let codes: Vec<&str> =
        verdict["recommendations"].as_array().unwrap().iter().filter_map(|r| r["code"].as_str()).collect();
    assert!(!codes.contains(&"long_expiry"), "{verdict}");

    // The policy it points to is served.
    let policy = api.call(Method::GET, "/security-policy", &Auth::None, None).await;
    assert_eq!(policy.status, 200);
    assert!(policy.text.contains("How to report a vulnerability"), "{}", policy.text);
}

#[tokio::test]
async fn only_the_embedded_signing_page_may_be_framed_and_only_by_configured_sites() {
    let (_dir, server) = start(&[("SIGILLUM_FRAME_ANCESTORS", "https://crm.example.com")]);
    let client = server.client();
    let signer = client.get(server.url("/s/not-a-real-token")).send().await.unwrap();
    let csp = signer.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.ends_with("frame-ancestors https://crm.example.com"), "{csp}");
    assert!(signer.headers().get("x-frame-options").is_none());
    let api = client.get(server.url("/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(api.headers()["x-frame-options"], "DENY");
    assert!(api.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));

    // A bad origin list stops the server at start with a clear message.
    let dir = tempfile::tempdir().unwrap();
    let mut env = embedded_env(&dir.path().join("data"));
    env.push(("SIGILLUM_FRAME_ANCESTORS".into(), "http://crm.example.com".into()));
    let out = std::process::Command::new(sigillum_testkit::sigillum_bin())
        .arg("serve")
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGILLUM_FRAME_ANCESTORS"));
}

#[tokio::test]
async fn the_waf_blocks_attacks_with_a_request_id_and_records_them_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&embedded_env(&data), &[]);
    let api = Api::new(&server);
    let key = Auth::Bearer(api.account_with_key("ada@example.org", PW, "Ada").await);
    let attacks: [(Method, &str, Option<serde_json::Value>); 4] = [
        (Method::GET, "/api/v1/envelopes?q=1'%20OR%20'1'='1", None),
        (Method::GET, "/api/v1/envelopes?file=../../../../etc/passwd", None),
        (Method::GET, "/api/v1/envelopes?cmd=;cat%20/etc/passwd", None),
        (Method::POST, "/api/v1/webhooks", Some(json!({"url": "https://hooks.example.com/<script>alert(1)</script>"}))),
    ];
    for (method, path, body) in attacks {
        let r = api.call(method, path, &key, body).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("waf_blocked")), "{path}: {}", r.text);
        let id = r.headers["x-request-id"].to_str().unwrap();
        assert!(r.body["error"]["message"].as_str().unwrap().contains(id), "{}", r.text);
    }
    // The same routes with ordinary input work.
    assert_eq!(api.call(Method::GET, "/api/v1/envelopes?q=O'Brien", &key, None).await.status, 200);
    let ok =
        api.call(Method::POST, "/api/v1/webhooks", &key, Some(json!({"url": "https://hooks.example.com/x"}))).await;
    assert_eq!(ok.status, 201, "{}", ok.text);

    // Each refusal is a waf.blocked event with the rules that matched (recorded just after).
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}/sigillum.db?mode=ro", data.display())).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let events = loop {
        let rows: Vec<(Vec<u8>,)> =
            sqlx::query_as("SELECT event FROM audit_leaves ORDER BY seq").fetch_all(&db).await.unwrap();
        let events: Vec<serde_json::Value> = rows
            .iter()
            .map(|(e,)| serde_json::from_slice::<serde_json::Value>(e).unwrap())
            .filter(|e| e["kind"] == "waf.blocked")
            .collect();
        if events.len() >= 4 || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(events.len(), 4, "{events:?}");
    for e in &events {
        let rules = e["details"]["rule_ids"].as_str().unwrap();
        assert!(rules.split(',').any(|r| r.starts_with("9")), "{e}");
        assert_eq!(e["details"]["blocked"], true, "{e}");
    }
    // SQL injection, path traversal, command injection and XSS rule families all fired.
    let fired: Vec<&str> = events.iter().map(|e| e["details"]["rule_ids"].as_str().unwrap()).collect();
    for family in ["942", "930", "932", "941"] {
        assert!(fired.iter().any(|r| r.split(',').any(|id| id.starts_with(family))), "{family}: {fired:?}");
    }
}
