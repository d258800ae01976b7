//! Complete signing flows through the public API, driven the way a careful client drives them
//! when a node may die under it: a request that fails in transport or with a 5xx is retried,
//! and a step whose effect may already have happened (the answer was lost) is first checked
//! against the server's state. Every client-visible failure is counted.
//!
//! One flow: upload a one-page PDF, add two signers (routing order 1 and 2) with a signature field
//! each, send; then for each signer an embedded signing link, view, consent and complete; then wait
//! until the envelope is `completed`. A draft whose preparation failed half-way is abandoned and
//! the flow starts over with a new upload (a draft is never sent to anyone).
//!
//! How the client learns that an envelope completed: by polling the envelope every 50 ms, or,
//! like an integration that subscribed to `envelope.completed`, from the webhook delivery and then
//! one read that confirms it ([`FlowClient::completions_by_webhook`]). Polling makes the client's
//! own load grow with the time the server takes to finish an envelope, which the benchmark should
//! not count against the deployment that finishes later.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

/// How a call ended.
#[derive(Debug)]
pub enum CallError {
    /// Transport error or 5xx: the request may or may not have taken effect.
    Unavailable(String),
    /// A 4xx: the server refused it.
    Refused(u16, Value),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(e) => write!(f, "unavailable: {e}"),
            Self::Refused(s, b) => write!(f, "{s}: {b}"),
        }
    }
}

/// One envelope a flow sent, with what it needs for the checks afterwards.
#[derive(Debug, Clone)]
pub struct SentEnvelope {
    pub id: String,
    pub title: String,
    /// (recipient id, email)
    pub signers: Vec<(String, String)>,
    /// When the last signature was accepted, and when the client saw `completed`.
    pub last_signed: Instant,
    pub completed_seen: Instant,
}

/// The client of one run: an HTTPS client, the base URL (haproxy), an API key.
pub struct FlowClient {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
    pub pdf: Vec<u8>,
    /// Client-visible failures (transport errors and 5xx answers), each with when it happened.
    pub failures: Mutex<Vec<(Instant, String)>>,
    pub requests: AtomicUsize,
    /// Where `envelope.completed` deliveries arrive, when the client waits for them instead of
    /// polling.
    completions: Option<std::sync::Arc<crate::hooks::HookReceiver>>,
}

const ATTEMPTS: usize = 60;
const PAUSE: Duration = Duration::from_millis(250);

impl FlowClient {
    pub fn new(base: &str, key: &str, pdf: Vec<u8>) -> Self {
        let http = reqwest::Client::builder()
            // haproxy's throwaway certificate; the nodes behind it use the product's TLS.
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base.to_owned(),
            key: key.to_owned(),
            pdf,
            failures: Mutex::new(Vec::new()),
            requests: AtomicUsize::new(0),
            completions: None,
        }
    }

    /// Waits for each envelope's `envelope.completed` webhook delivery at `hooks` (the account
    /// must have subscribed it there), then confirms `completed` with one read.
    pub fn completions_by_webhook(mut self, hooks: std::sync::Arc<crate::hooks::HookReceiver>) -> Self {
        self.completions = Some(hooks);
        self
    }

    fn failed(&self, what: String) {
        if let Ok(mut f) = self.failures.lock() {
            f.push((Instant::now(), what));
        }
    }

    /// One request, no retry.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>, auth: bool) -> Result<Value, CallError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if auth {
            req = req.bearer_auth(&self.key);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let result = async {
            let r = req.send().await.map_err(|e| CallError::Unavailable(e.to_string()))?;
            let status = r.status().as_u16();
            let text = r.text().await.map_err(|e| CallError::Unavailable(e.to_string()))?;
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            match status {
                200..=299 => Ok(body),
                500..=599 => Err(CallError::Unavailable(format!("{status} {text}"))),
                _ => Err(CallError::Refused(status, body)),
            }
        }
        .await;
        if let Err(CallError::Unavailable(e)) = &result {
            self.failed(format!("{method} {path}: {e}"));
        }
        result
    }

    /// A request retried while the cluster is unavailable (for reads and idempotent writes).
    pub async fn retried(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        auth: bool,
    ) -> Result<Value, CallError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match self.call(method.clone(), path, body.clone(), auth).await {
                Err(CallError::Unavailable(e)) => last = Some(e),
                other => return other,
            }
            tokio::time::sleep(PAUSE).await;
        }
        Err(CallError::Unavailable(last.unwrap_or_default()))
    }

    async fn envelope(&self, id: &str) -> Result<Value, CallError> {
        self.retried(Method::GET, &format!("/api/v1/envelopes/{id}"), None, true).await
    }

    /// Uploads, adds the signers and their fields, and sends. `Ok(None)`: a step failed without
    /// a known outcome before the envelope was sent; the draft is left behind.
    async fn prepare(&self, n: usize) -> Result<Option<SentEnvelope>, CallError> {
        let title = format!("Scale-out agreement {n}");
        let form = reqwest::multipart::Form::new().text("title", title.clone()).part(
            "file",
            reqwest::multipart::Part::bytes(self.pdf.clone())
                .file_name("agreement.pdf")
                .mime_str("application/pdf")
                .map_err(|e| CallError::Unavailable(e.to_string()))?,
        );
        self.requests.fetch_add(1, Ordering::Relaxed);
        let created = match self
            .http
            .post(format!("{}/api/v1/envelopes", self.base))
            .bearer_auth(&self.key)
            .multipart(form)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
            Ok(r) if r.status().is_server_error() => {
                self.failed(format!("upload: {}", r.status()));
                return Ok(None);
            }
            Ok(r) => {
                let status = r.status().as_u16();
                return Err(CallError::Refused(status, r.json().await.unwrap_or(Value::Null)));
            }
            Err(e) => {
                self.failed(format!("upload: {e}"));
                return Ok(None);
            }
        };
        let Some(id) = created["id"].as_str().map(str::to_owned) else { return Ok(None) };
        let mut signers = Vec::new();
        for order in [1, 2] {
            let email = format!("s{order}-{n}@example.org");
            let body = json!({"name": format!("Signer {order}-{n}"), "email": email, "role": "signer",
                              "routing_order": order});
            let rid =
                match self.call(Method::POST, &format!("/api/v1/envelopes/{id}/recipients"), Some(body), true).await {
                    Ok(r) => r["id"].as_str().unwrap_or_default().to_owned(),
                    Err(CallError::Unavailable(_)) => return Ok(None),
                    Err(e) => return Err(e),
                };
            let field = json!({"recipient_id": rid, "kind": "signature", "page": 1, "x": 72, "y": 100 * order,
                               "width": 200, "height": 40});
            match self.call(Method::POST, &format!("/api/v1/envelopes/{id}/fields"), Some(field), true).await {
                Ok(_) => {}
                Err(CallError::Unavailable(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
            signers.push((rid, email));
        }
        match self.call(Method::POST, &format!("/api/v1/envelopes/{id}/send"), Some(json!({})), true).await {
            Ok(_) => {}
            // Sent or not? The server knows.
            Err(CallError::Unavailable(_)) => {
                if self.envelope(&id).await?["status"] != "sent" {
                    return Ok(None);
                }
            }
            Err(CallError::Refused(status, body)) => {
                // A POST that a node stored and then died before answering can reach the
                // cluster twice: haproxy tells an HTTP/2 client that a request sent over a reused
                // backend connection which closed without an answer was refused (REFUSED_STREAM),
                // and the client's HTTP stack sends it again. An envelope with a recipient the
                // client added once but the server holds twice is such a draft: leave it behind.
                let held = self.envelope(&id).await?["recipients"].as_array().map_or(0, Vec::len);
                if status == 422 && held > signers.len() {
                    self.failed(format!(
                        "draft {id}: {held} recipients after {} additions (a request sent twice)",
                        signers.len()
                    ));
                    return Ok(None);
                }
                return Err(CallError::Refused(status, json!({"envelope": id, "answer": body})));
            }
        }
        let now = Instant::now();
        Ok(Some(SentEnvelope { id, title, signers, last_signed: now, completed_seen: now }))
    }

    /// The status of recipient `rid` of envelope `id`.
    async fn recipient_status(&self, id: &str, rid: &str) -> Result<String, CallError> {
        let env = self.envelope(id).await?;
        Ok(env["recipients"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["id"] == rid))
            .and_then(|r| r["status"].as_str())
            .unwrap_or_default()
            .to_owned())
    }

    /// One signer: link, view, consent, complete; a lost answer is settled by the recipient's status.
    async fn sign(&self, id: &str, rid: &str) -> Result<(), CallError> {
        for _ in 0..ATTEMPTS {
            let link = match self
                .retried(Method::POST, &format!("/api/v1/envelopes/{id}/recipients/{rid}/signing-link"), None, true)
                .await
            {
                Ok(link) => link,
                // An earlier `complete` whose answer was lost may have been stored after the
                // status read (its node died with the commit in flight): the server knows.
                Err(CallError::Refused(409, body)) => {
                    if self.recipient_status(id, rid).await? == "signed" {
                        return Ok(());
                    }
                    return Err(CallError::Refused(409, body));
                }
                Err(e) => return Err(e),
            };
            let token = link["url"].as_str().and_then(|u| u.rsplit('/').next()).unwrap_or_default().to_owned();
            self.retried(Method::GET, &format!("/api/v1/signing/{token}"), None, false).await?;
            match self
                .retried(
                    Method::POST,
                    &format!("/api/v1/signing/{token}/consent"),
                    Some(json!({"accepted": true})),
                    false,
                )
                .await
            {
                Ok(_) | Err(CallError::Refused(409, _)) => {}
                Err(e) => return Err(e),
            }
            let body = json!({"signature": {"kind": "typed", "text": "Signer"}});
            match self.call(Method::POST, &format!("/api/v1/signing/{token}/complete"), Some(body), false).await {
                Ok(_) => return Ok(()),
                Err(CallError::Unavailable(_)) | Err(CallError::Refused(409, _)) => {
                    if self.recipient_status(id, rid).await? == "signed" {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(PAUSE).await;
        }
        Err(CallError::Unavailable(format!("recipient {rid} of {id} could not sign")))
    }

    /// One complete flow; `deadline` bounds the wait for `completed`.
    pub async fn flow(&self, n: usize, deadline: Duration) -> Result<SentEnvelope, String> {
        let mut env = loop {
            match self.prepare(n).await {
                Ok(Some(e)) => break e,
                Ok(None) => tokio::time::sleep(PAUSE).await,
                Err(e) => return Err(format!("flow {n}: {e}")),
            }
        };
        for (rid, _) in env.signers.clone() {
            self.sign(&env.id, &rid).await.map_err(|e| format!("flow {n} ({}): {e}", env.id))?;
        }
        env.last_signed = Instant::now();
        let until = Instant::now() + deadline;
        if let Some(hooks) = &self.completions {
            let completed = |r: &crate::hooks::Received| {
                r.headers.get("sigillum-event").is_some_and(|e| e == "envelope.completed")
                    && String::from_utf8_lossy(&r.body).contains(&env.id)
            };
            if !hooks.wait_until(completed, until).await {
                return Err(format!("no envelope.completed delivery for {} within {deadline:?}", env.id));
            }
        }
        loop {
            let e = self.envelope(&env.id).await.map_err(|e| format!("flow {n}: {e}"))?;
            if e["status"] == "completed" {
                env.completed_seen = Instant::now();
                return Ok(env);
            }
            if Instant::now() > until {
                return Err(format!("envelope {} did not complete within {deadline:?}: {}", env.id, e["status"]));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The `p`-quantile of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
