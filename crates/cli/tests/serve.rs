//! `sigillum serve` as a user runs it: a real process on a random loopback port.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sigillum_testkit::server::{embedded_env, Server};

fn env_with(dir: &std::path::Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = embedded_env(&dir.join("data"));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn get_json(s: &Server, path: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = s.client().get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_creates_everything_serves_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&env_with(dir.path(), &[]), &[]);
    let data = dir.path().join("data");
    for p in ["sigillum.db", "blobs", "keyring/keys.json", "keyring/master.key", "tls/cert.pem", "tls/key.pem"] {
        assert!(data.join(p).exists(), "{p} missing after first start");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(s.fingerprint, s.cert_fingerprint_on_disk(), "printed fingerprint is the certificate's");

    let (st, body, headers) = get_json(&s, "/healthz").await;
    assert_eq!((st, body["status"].as_str()), (200, Some("ok")));
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["strict-transport-security"].to_str().unwrap().contains("max-age="));

    let (st, body, _) = get_json(&s, "/readyz").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"], "ready");
    for (check, backend) in [("database", "sqlite"), ("blob_store", "fs"), ("key_manager", "local")] {
        assert_eq!(body["checks"][check]["status"], "ok", "{body}");
        assert_eq!(body["checks"][check]["backend"], backend);
    }
    // Everything embedded: on this node, in the default jurisdiction.
    assert_eq!(body["residency"]["jurisdiction"], "CH", "{body}");
    for endpoint in ["database", "blob_store", "key_manager", "mail", "tsa"] {
        let e = &body["residency"]["endpoints"][endpoint];
        assert_eq!((e["location"].as_str(), e["declared"].as_str()), (Some("CH"), Some("on this node")), "{body}");
    }

    // No scrape token configured: no metrics route at all.
    assert_eq!(get_json(&s, "/metrics").await.0, 404);

    // Unknown routes and wrong methods get the JSON error shape.
    let (st, body, _) = get_json(&s, "/no/such/thing").await;
    assert_eq!(st, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let r = s.client().post(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "method_not_allowed");

    let (status, out, err) = s.terminate();
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(out.contains("Sigillum stopped"));
    assert!(err.contains("SIGTERM received") && err.contains("shutdown complete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_certificate_and_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&env_with(dir.path(), &[]), &[]);
    let fp = s.fingerprint.clone();
    let keyring = std::fs::read(dir.path().join("data/keyring/master.key")).unwrap();
    s.terminate();
    let s = Server::start(&env_with(dir.path(), &[]), &[]);
    assert_eq!(s.fingerprint, fp);
    assert_eq!(std::fs::read(dir.path().join("data/keyring/master.key")).unwrap(), keyring);
    assert_eq!(get_json(&s, "/readyz").await.0, 200);
}

/// An HTTPS client that trusts only the certificate in `pem`.
fn pinned_client(pem: &std::path::Path) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(pem).unwrap()).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&env_with(dir.path(), &[]), &[]);
    let old_client = s.client();
    assert_eq!(old_client.get(s.url("/readyz")).send().await.unwrap().status(), 200);
    std::fs::write(dir.path().join("old.pem"), s.cert_pem()).unwrap();

    // A renewal writes a new key and certificate over the old files.
    let renewal = tempfile::tempdir().unwrap();
    let new = sigillum_edge::TlsMaterial::load_or_generate(None, None, renewal.path(), &[]).unwrap();
    let tls = s.data_dir.join("tls");
    std::fs::copy(renewal.path().join("key.pem"), tls.join("key.pem")).unwrap();
    std::fs::copy(renewal.path().join("cert.pem"), tls.join("cert.pem")).unwrap();
    let new_client = s.client();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while new_client.get(s.url("/readyz")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the renewed certificate was not picked up: {}", s.stderr());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // New handshakes present the new certificate; a client pinned to the old one is refused.
    let fresh_old = pinned_client(&dir.path().join("old.pem"));
    assert!(fresh_old.get(s.url("/readyz")).send().await.is_err());

    // Files that cannot be used (here a truncated certificate) leave the renewed pair in use.
    std::fs::write(tls.join("cert.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    tokio::time::sleep(sigillum_edge::CertReloader::INTERVAL * 2).await;
    let pinned_new = pinned_client(&renewal.path().join("cert.pem"));
    assert_eq!(pinned_new.get(s.url("/readyz")).send().await.unwrap().status(), 200);
    let (_, stdout, _) = s.terminate();
    assert!(
        stdout.contains(&format!("TLS certificate reloaded, SHA-256 fingerprint {}", new.fingerprint())),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_http_listener_only_redirects_to_the_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &env_with(
            dir.path(),
            &[("SIGILLUM_HTTP_REDIRECT_LISTEN", "127.0.0.1:0"), ("SIGILLUM_PUBLIC_URL", "https://sign.example.org")],
        ),
        &[],
    );
    let plain = s
        .stdout_seen
        .iter()
        .find_map(|l| l.split("Plain HTTP on http://").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the redirect listener announces itself")
        .to_owned();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (method, path) in [("GET", "/s/abc?lang=de"), ("POST", "/api/v1/auth/login"), ("GET", "/")] {
        let r = client
            .request(method.parse().unwrap(), format!("http://{plain}{path}"))
            .header("Host", "evil.example")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 308, "{method} {path}");
        // The configured public URL, never the client's Host.
        assert_eq!(r.headers()["location"], format!("https://sign.example.org{path}"));
        assert!(r.text().await.unwrap().is_empty(), "nothing is served without TLS");
    }
    // The HTTPS listener is unaffected.
    assert_eq!(get_json(&s, "/readyz").await.0, 200);
}

fn openssl_handshake(addr: &str, flag: &str) -> bool {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, flag, "-servername", "localhost"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is needed for the TLS version test");
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("BEGIN CERTIFICATE") || text.contains("Cipher is TLS_") || text.contains("New, TLSv1.2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_are_offered() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&env_with(dir.path(), &[]), &[]);
    assert!(openssl_handshake(&s.addr, "-tls1_3"), "TLS 1.3 refused");
    assert!(openssl_handshake(&s.addr, "-tls1_2"), "TLS 1.2 refused");
    assert!(!openssl_handshake(&s.addr, "-tls1_1"), "TLS 1.1 accepted");
    assert!(!openssl_handshake(&s.addr, "-tls1"), "TLS 1.0 accepted");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain =
        reqwest::Client::new().get(format!("http://{}/healthz", s.addr)).timeout(Duration::from_secs(5)).send().await;
    assert!(plain.is_err() || plain.unwrap().status().as_u16() != 200);
    // A TLS 1.2-only client gets through.
    let tls12 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&s.cert_pem()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert_eq!(tls12.get(s.url("/healthz")).send().await.unwrap().status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_the_failing_dependency() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&env_with(dir.path(), &[]), &[]);
    std::fs::remove_dir_all(dir.path().join("data/blobs")).unwrap();
    let (st, body, _) = get_json(&s, "/readyz").await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["blob_store"]["status"], "failing");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["key_manager"]["status"], "ok");
    assert!(!body.to_string().contains(dir.path().to_str().unwrap()), "internal path leaked: {body}");
    assert_eq!(get_json(&s, "/healthz").await.0, 200, "liveness is not readiness");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_stdout_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        ("SIGILLUM_MASTER_KEY", "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2"),
        ("SIGILLUM_STRIPE_SECRET_KEY", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        ("SIGILLUM_STRIPE_WEBHOOK_SECRET", "whsec_doNotLogMe123"),
        ("SIGILLUM_PAYPAL_CLIENT_SECRET", "paypal-s3cr3t-value"),
        ("SIGILLUM_SMTP_URL", "smtps://mailer:sm7p-pa55word@smtp.example.org"),
        ("SIGILLUM_PKCS11_PIN", "pin-24680"),
        ("SIGILLUM_METRICS_TOKEN", "metr1cs-scrape-t0ken"),
    ];
    let s = Server::start(
        &env_with(
            dir.path(),
            &[
                ("SIGILLUM_LOG", "trace"),
                ("SIGILLUM_LOG_FORMAT", "json"),
                ("SIGILLUM_PAYPAL_CLIENT_ID", "paypal-client-id"),
                ("SIGILLUM_PAYPAL_WEBHOOK_ID", "WH-1"),
                (
                    "SIGILLUM_BILLING_PLANS",
                    r#"[{"id":"free","name":"Free"},{"id":"team","name":"Team","stripe_price":"price_1"}]"#,
                ),
            ],
        )
        .into_iter()
        .chain(secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .collect::<Vec<_>>(),
        &[],
    );
    for p in ["/healthz", "/readyz", "/nope"] {
        s.client().get(s.url(p)).send().await.unwrap();
    }
    let scrape = s.client().get(s.url("/metrics")).bearer_auth("metr1cs-scrape-t0ken").send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    let (status, out, err) = s.terminate();
    assert!(status.success());
    assert!(err.contains("<redacted>"), "config view should show secrets as redacted");
    for (name, value) in secrets {
        assert!(!out.contains(value) && !err.contains(value), "{name} leaked into output");
    }
    // The generated keyring used the configured master key: no key file was written.
    assert!(!dir.path().join("data/keyring/master.key").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_returned_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&env_with(dir.path(), &[]), &[]);
    let r = s.client().get(s.url("/healthz")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let r2 = s.client().get(s.url("/healthz")).header("x-request-id", "caller-chosen-42").send().await.unwrap();
    assert_eq!(r2.headers()["x-request-id"], "caller-chosen-42");
    let (_, _, err) = s.terminate();
    let line = err.lines().find(|l| l.contains(&id)).expect("request id in the log");
    let v: Value = serde_json::from_str(line).expect("structured JSON log line");
    assert_eq!(v["span"]["path"], "/healthz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_logged_under_the_request_that_enqueued_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&env_with(dir.path(), &[("SIGILLUM_METRICS_TOKEN", "jobs-scrape-5")]), &[]);
    let api = sigillum_testkit::api::Api::new(&s);
    let key = api.account_with_key("trace@example.com", "a long enough password", "Tracy").await;
    // The upload enqueues the page previews; the job runner renders them.
    let form = reqwest::multipart::Form::new().text("title", "Traced").part(
        "file",
        reqwest::multipart::Part::bytes(sigillum_testkit::pdf::pdf(1))
            .file_name("t.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    );
    let r = s
        .client()
        .post(s.url("/api/v1/envelopes"))
        .bearer_auth(&key)
        .header("x-request-id", "upload-trace-7")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    for i in 0.. {
        let page = s.client().get(s.url(&format!("/api/v1/envelopes/{id}/pages/1.png"))).bearer_auth(&key);
        if page.send().await.unwrap().status() == 200 {
            break;
        }
        assert!(i < 200, "the previews were never rendered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The job's wait (due → taken by a lane) is in the metrics.
    let metrics = s.client().get(s.url("/metrics")).bearer_auth("jobs-scrape-5").send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("sigillum_job_wait_seconds_count{kind=\"previews\"} 1\n"), "{text}");
    assert!(text.contains("sigillum_job_wait_seconds_bucket{le=\"+Inf\",kind=\"previews\"} 1\n"), "{text}");
    let (_, _, err) = s.terminate();
    let done = err
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "job done" && v["span"]["kind"] == "previews")
        .unwrap_or_else(|| panic!("no log of the previews job:\n{err}"));
    assert_eq!(done["span"]["request_id"], "upload-trace-7", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_with_environment_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sigillum.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:1\"\njurisdiction = \"DE\"\n",
            dir.path().join("from-file").display()
        ),
    )
    .unwrap();
    // The file's listen address is overridden by the environment (port 1 would fail).
    let env = vec![("SIGILLUM_LISTEN".to_string(), "127.0.0.1:0".to_string())];
    let s = Server::start(&env, &["--config", cfg.to_str().unwrap()]);
    assert!(dir.path().join("from-file/sigillum.db").exists());
    let (_, _, err) = s.terminate();
    assert!(err.contains(r#"\"jurisdiction\":\"DE\""#), "{err}");
}

#[test]
fn invalid_configuration_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("SIGILLUM_WAF", "sometimes", "SIGILLUM_WAF must be block, detect or off"),
        ("SIGILLUM_DATABASE_URL", "mysql://nope", "opening the database"),
        ("SIGILLUM_KMS", "vault:elsewhere", "opening the key manager"),
        ("SIGILLUM_BLOB_LOCATION", "DE", "SIGILLUM_BLOB_LOCATION is DE, outside SIGILLUM_JURISDICTION CH"),
        ("SIGILLUM_SMTP_LOCATION", "Swiss", "SIGILLUM_SMTP_LOCATION must be an ISO 3166-1 alpha-2 code"),
    ];
    for (var, value, message) in cases {
        let out = Command::new(sigillum_testkit::sigillum_bin())
            .arg("serve")
            .env("SIGILLUM_DATA_DIR", dir.path())
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(message), "{var}={value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_stack_postgres_s3_pkcs11() {
    let dir = tempfile::tempdir().unwrap();
    let hsm = sigillum_testkit::softhsm();
    let db = sigillum_testkit::postgres_database().await;
    let blobs = sigillum_testkit::s3_blob_url();
    let pin = secrecy::ExposeSecret::expose_secret(&hsm.pin).to_owned();
    let s = Server::start(
        &env_with(
            dir.path(),
            &[
                ("SIGILLUM_DATABASE_URL", &db),
                ("SIGILLUM_BLOB_URL", &blobs),
                ("SIGILLUM_KMS", &hsm.kms_spec()),
                ("SIGILLUM_PKCS11_PIN", &pin),
                ("SIGILLUM_DATABASE_LOCATION", "CH"),
            ],
        ),
        &[],
    );
    let (st, body, _) = get_json(&s, "/readyz").await;
    assert_eq!(st, 200, "{body}");
    for (check, backend) in [("database", "postgres"), ("blob_store", "s3"), ("key_manager", "pkcs11")] {
        assert_eq!(body["checks"][check]["backend"], backend, "{body}");
        assert_eq!(body["checks"][check]["status"], "ok", "{body}");
    }
    // External stores: the one declared is shown, the others are reported as undeclared.
    let endpoints = &body["residency"]["endpoints"];
    assert_eq!(endpoints["database"], json!({"location": "CH", "declared": "by the operator"}), "{body}");
    for undeclared in ["blob_store", "key_manager"] {
        assert_eq!(endpoints[undeclared], json!({"location": null, "declared": "not declared"}), "{body}");
    }
    assert!(!dir.path().join("data/sigillum.db").exists(), "no SQLite file when PostgreSQL is configured");
    let (status, out, err) = s.terminate();
    assert!(status.success());
    for (name, text) in [("stdout", &out), ("stderr", &err)] {
        if let Some(at) = text.find(pin.as_str()) {
            let context = text.get(at.saturating_sub(80)..(at + 80).min(text.len())).unwrap_or(text);
            panic!("the PKCS#11 PIN appears in {name}: …{context}…");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&env_with(dir.path(), &[]), &[]);
    let mut roots = rustls::RootCertStore::empty();
    let pem = s.cert_pem();
    use rustls::pki_types::pem::PemObject;
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap();
    // Slowloris: the request line and one header, then silence.
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    tls.flush().await.unwrap();
    let start = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut buf)).await;
    let waited = start.elapsed();
    assert!(read.is_ok(), "connection still open after 30 s");
    assert!(waited >= Duration::from_secs(8) && waited < Duration::from_secs(20), "cut off after {waited:?}");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "an incomplete request was served");
    // The server is unharmed.
    assert_eq!(get_json(&s, "/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_scrape_token_and_name_route_templates_not_paths() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&env_with(dir.path(), &[("SIGILLUM_METRICS_TOKEN", "scrape-me-7f3a")]), &[]);
    let c = s.client();
    for _ in 0..3 {
        assert_eq!(c.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    }
    let id = "0193d2a4-7c1e-7a00-8000-00000000beef";
    assert_eq!(c.get(s.url(&format!("/api/v1/envelopes/{id}"))).send().await.unwrap().status(), 401);
    assert_eq!(c.get(s.url("/no/such/page")).send().await.unwrap().status(), 404);
    // Key-manager work: a readiness check asks it for its health, a timestamp has it sign.
    assert_eq!(c.get(s.url("/readyz")).send().await.unwrap().status(), 200);
    let tsq = sigillum_pdf::tsp::request(&[7u8; 32], &[1u8; 8]).unwrap();
    let tsr =
        c.post(s.url("/tsa")).header("content-type", "application/timestamp-query").body(tsq).send().await.unwrap();
    assert_eq!(tsr.status(), 200);
    assert_eq!(c.get(s.url("/metrics")).send().await.unwrap().status(), 401);
    assert_eq!(c.get(s.url("/metrics")).bearer_auth("scrape-me-7f3b").send().await.unwrap().status(), 401);
    let r = c.get(s.url("/metrics")).bearer_auth("scrape-me-7f3a").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    let counter = |family: &str, labels: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{family}_total{{{labels}}} ")))
            .unwrap_or_else(|| panic!("no {family} counter for {labels}:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let count = |labels: &str| counter("sigillum_http_requests", labels);
    let keys = |labels: &str| counter("sigillum_key_manager_operations", labels);
    assert!(keys(r#"backend="local",operation="health",outcome="ok""#) >= 1);
    assert!(keys(r#"backend="local",operation="sign",outcome="ok""#) >= 1);
    assert!(text.contains(r#"sigillum_key_manager_operation_duration_seconds_count{backend="local",operation="sign"}"#));
    assert!(count(r#"method="GET",route="/healthz",status="200""#) >= 3);
    assert_eq!(count(r#"method="GET",route="/api/v1/envelopes/{id}",status="401""#), 1);
    assert_eq!(count(r#"method="GET",route="unmatched",status="404""#), 1);
    assert!(!text.contains(id) && !text.contains("/no/such/page"), "concrete paths leaked into labels:\n{text}");
    for family in [
        "sigillum_http_request_duration_seconds_bucket{",
        "sigillum_jobs_pending ",
        "sigillum_job_lag_milliseconds ",
        "sigillum_audit_log_size ",
        "sigillum_waf_blocked_total ",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    assert!(text.trim_end().ends_with("# EOF"));
    s.terminate();
}
