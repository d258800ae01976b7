//! A small client for the JSON API of a test server: one call shape for every route and every way
//! of authenticating, so tests (the authorisation matrix above all) read as tables.

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::server::Server;

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Bearer(String),
    /// The session cookie, and the CSRF token to send (or not) with unsafe methods.
    Session {
        cookie: String,
        csrf: Option<String>,
    },
}

impl Auth {
    /// The same session without its CSRF token.
    pub fn without_csrf(&self) -> Auth {
        match self {
            Auth::Session { cookie, .. } => Auth::Session { cookie: cookie.clone(), csrf: None },
            other => other.clone(),
        }
    }
}

pub struct Response {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub headers: HeaderMap,
}

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(server: &Server) -> Self {
        Self { client: server.client(), base: server.url("") }
    }

    pub async fn call(&self, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> Response {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req, auth).await.expect("request")
    }

    pub async fn signup(&self, email: &str, password: &str, name: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/signup",
                &Auth::None,
                Some(json!({ "email": email, "password": password, "name": name })),
            )
            .await;
        assert_eq!(r.status, 201, "signup: {}", r.text);
        r.body
    }

    /// Logs in and returns the session (cookie and CSRF token).
    pub async fn login(&self, email: &str, password: &str) -> Auth {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                &Auth::None,
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        assert_eq!(r.status, 200, "login: {}", r.text);
        let set_cookie = r.headers.get("set-cookie").and_then(|v| v.to_str().ok()).expect("session cookie");
        let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
        Auth::Session { cookie, csrf: r.body["csrf_token"].as_str().map(str::to_owned) }
    }

    /// Creates an API key with `auth` and returns its secret.
    pub async fn api_key(&self, auth: &Auth, name: &str) -> String {
        let r = self.call(Method::POST, "/api/v1/api-keys", auth, Some(json!({ "name": name }))).await;
        assert_eq!(r.status, 201, "api key: {}", r.text);
        r.body["key"].as_str().expect("key").to_owned()
    }

    /// A new account (and organisation) with an API key: signup, login, key; returns the key.
    pub async fn account_with_key(&self, email: &str, password: &str, name: &str) -> String {
        self.signup(email, password, name).await;
        let session = self.login(email, password).await;
        self.api_key(&session, "k").await
    }
}

impl Api {
    /// Uploads `pdf` as a new envelope titled `title`.
    /// Waits (up to 30 s) until the envelope `id` has status `want`; returns its detail.
    pub async fn wait_status(&self, auth: &Auth, id: &str, want: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = self.call(Method::GET, &format!("/api/v1/envelopes/{id}"), auth, None).await;
            if r.body["status"] == want {
                return r.body;
            }
            assert!(std::time::Instant::now() < deadline, "envelope never reached {want}: {}", r.text);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub async fn upload(&self, auth: &Auth, title: &str, pdf: Vec<u8>) -> Response {
        self.try_upload(auth, title, pdf).await.expect("upload")
    }

    /// [`Api::upload`], with transport errors (a killed server) returned instead of panicking.
    pub async fn try_upload(&self, auth: &Auth, title: &str, pdf: Vec<u8>) -> reqwest::Result<Response> {
        let form = reqwest::multipart::Form::new().text("title", title.to_owned()).part(
            "file",
            reqwest::multipart::Part::bytes(pdf).file_name("contract.pdf").mime_str("application/pdf").expect("mime"),
        );
        send(self.client.post(format!("{}/api/v1/envelopes", self.base)).multipart(form), auth).await
    }
}

/// Adds the credentials of `auth` to `req`, sends it and reads the whole response.
async fn send(mut req: reqwest::RequestBuilder, auth: &Auth) -> reqwest::Result<Response> {
    match auth {
        Auth::None => {}
        Auth::Bearer(k) => req = req.bearer_auth(k),
        Auth::Session { cookie, csrf } => {
            req = req.header("cookie", cookie);
            if let Some(t) = csrf {
                req = req.header("x-csrf-token", t);
            }
        }
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    assert_security_headers(r.url().path(), &headers);
    let text = r.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Response { status, body, text, headers })
}

/// Every response of the server, refusals and errors included, carries the edge tier's security
/// headers (checked on every call this client makes, so every route of every test is covered).
pub fn assert_security_headers(path: &str, h: &HeaderMap) {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let hsts = get("strict-transport-security");
    let max_age: u64 =
        hsts.split(';').find_map(|p| p.trim().strip_prefix("max-age=")).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(max_age >= 31_536_000 && hsts.contains("includeSubDomains"), "{path}: HSTS {hsts:?}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{path}");
    assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{path}");
    assert_eq!(get("cross-origin-resource-policy"), "same-origin", "{path}");
    let permissions = get("permissions-policy");
    assert!(permissions.contains("camera=()") && permissions.contains("geolocation=()"), "{path}: {permissions:?}");
    let csp = get("content-security-policy");
    assert!(csp.contains("default-src 'self'") || csp.contains("default-src 'none'"), "{path}: CSP {csp:?}");
    if path.starts_with("/s/") {
        assert!(csp.contains("frame-ancestors"), "{path}: CSP {csp:?}");
    } else {
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: CSP {csp:?}");
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
    }
    // Only public material without document or personal data may be cached.
    let public = path.starts_with("/pki/")
        || path.starts_with("/log/")
        || path == "/.well-known/security.txt"
        || path == "/security-policy";
    if !public {
        assert_eq!(get("cache-control"), "no-store", "{path}: cache-control");
    }
}
