//! Prometheus metrics (OpenMetrics text) at `GET /metrics`, over the same TLS as everything else
//! and only with the scrape token (`SIGILLUM_METRICS_TOKEN`; unset: the route answers 404, so
//! nothing about the deployment shows). Requests are counted by method, route template (never
//! the concrete path: no ids in labels) and status, with a latency histogram; refusals by the
//! rate limits and the WAF are counted where they happen; key-manager operations are counted and
//! timed by a wrapper around the key manager ([`Metrics::meter_keys`]), so an HSM that slows down
//! or starts failing shows; each job's wait between being due and a node taking it is observed
//! by a wrapper around the job queue ([`Metrics::meter_jobs`]); the job queue's depth and lag and
//! the audit log's size are read at scrape time.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use secrecy::{ExposeSecret, SecretString};
use sigillum_core::ports::{Job, JobStore, NewJob, PendingJob, RepoError};
use sigillum_crypto::{Dek, KekInfo, KekRef, KeyManager, KeyManagerError, SigningKeyInfo, WrappedDek};

use crate::error::ApiError;
use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    bucket: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyOpLabels {
    backend: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyOpTimeLabels {
    backend: &'static str,
    operation: &'static str,
}

type KeyLatencyFamily = Family<KeyOpTimeLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
}

type JobWaitFamily = Family<JobLabels, Histogram, fn() -> Histogram>;

fn job_wait_histogram() -> Histogram {
    // 5 ms (a lane was free) to about 10 min (a backlog, or a dead node's lease).
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 600.0])
}

fn key_latency_histogram() -> Histogram {
    // 50 µs (a local signature) to about 1.6 s (a struggling HSM).
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric of a node, and the token that may read them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    rate_limited: Family<BucketLabels, Counter>,
    waf_blocked: Counter,
    jobs_pending: Gauge,
    job_lag_ms: Gauge,
    audit_log_size: Gauge,
    key_ops: Family<KeyOpLabels, Counter>,
    key_latency: KeyLatencyFamily,
    job_wait: JobWaitFamily,
    token: Option<SecretString>,
}

impl Metrics {
    /// `token`: the bearer token a scraper must send; `None` switches `/metrics` off.
    pub fn new(token: Option<SecretString>) -> Self {
        let mut registry = Registry::with_prefix("sigillum");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by method, route and status", requests.clone());
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register("http_request_duration_seconds", "Time to answer, by method and route", latency.clone());
        let rate_limited = Family::<BucketLabels, Counter>::default();
        registry.register("rate_limited", "Requests refused by a rate limit (429), by bucket", rate_limited.clone());
        let waf_blocked = Counter::default();
        registry.register("waf_blocked", "Requests refused by the web application firewall", waf_blocked.clone());
        let jobs_pending = Gauge::default();
        registry.register("jobs_pending", "Background jobs not done yet (due or scheduled)", jobs_pending.clone());
        let job_lag_ms = Gauge::default();
        registry.register("job_lag_milliseconds", "How late the most overdue due job is", job_lag_ms.clone());
        let audit_log_size = Gauge::default();
        registry.register("audit_log_size", "Events in the audit log (its Merkle tree size)", audit_log_size.clone());
        let key_ops = Family::<KeyOpLabels, Counter>::default();
        registry.register(
            "key_manager_operations",
            "Key-manager operations, by backend, operation and outcome (ok or error)",
            key_ops.clone(),
        );
        let key_latency: KeyLatencyFamily = Family::new_with_constructor(key_latency_histogram);
        registry.register(
            "key_manager_operation_duration_seconds",
            "Time a key-manager operation took, by backend and operation",
            key_latency.clone(),
        );
        let job_wait: JobWaitFamily = Family::new_with_constructor(job_wait_histogram);
        registry.register(
            "job_wait_seconds",
            "How long a job waited between being due and a node taking it, by kind",
            job_wait.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            rate_limited,
            waf_blocked,
            jobs_pending,
            job_lag_ms,
            audit_log_size,
            key_ops,
            key_latency,
            job_wait,
            token,
        }
    }

    /// `keys`, with every operation counted and timed in these metrics.
    pub fn meter_keys(self: &Arc<Self>, keys: Arc<dyn KeyManager>) -> Arc<dyn KeyManager> {
        Arc::new(MeteredKeys { inner: keys, metrics: self.clone() })
    }

    /// `jobs`, with the wait of every job a node takes observed in these metrics.
    pub fn meter_jobs(self: &Arc<Self>, jobs: Arc<dyn JobStore>) -> Arc<dyn JobStore> {
        Arc::new(MeteredJobs { inner: jobs, metrics: self.clone() })
    }

    fn count_key_op<T, E>(&self, backend: &'static str, operation: &'static str, started: Instant, r: &Result<T, E>) {
        let outcome = if r.is_ok() { "ok" } else { "error" };
        self.key_ops.get_or_create(&KeyOpLabels { backend, operation, outcome }).inc();
        self.key_latency
            .get_or_create(&KeyOpTimeLabels { backend, operation })
            .observe(started.elapsed().as_secs_f64());
    }

    pub fn count_rate_limited(&self, bucket: &str) {
        self.rate_limited.get_or_create(&BucketLabels { bucket: bucket.to_owned() }).inc();
    }

    pub fn count_waf_blocked(&self) {
        self.waf_blocked.inc();
    }

    fn allowed(&self, headers: &HeaderMap) -> Option<bool> {
        let token = self.token.as_ref()?;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        Some(constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes()))
    }
}

/// Compares digests, so the time says nothing about where (or whether) the lengths differ.
/// A job queue whose claims observe each job's wait ([`Metrics::meter_jobs`]).
struct MeteredJobs {
    inner: Arc<dyn JobStore>,
    metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl JobStore for MeteredJobs {
    async fn enqueue(&self, jobs: &[NewJob], now_unix_ms: i64) -> Result<(), RepoError> {
        self.inner.enqueue(jobs, now_unix_ms).await
    }
    async fn claim_except(
        &self,
        node: &str,
        now_unix_ms: i64,
        lease_ms: i64,
        excluded: &[&str],
    ) -> Result<Option<Job>, RepoError> {
        let job = self.inner.claim_except(node, now_unix_ms, lease_ms, excluded).await?;
        if let Some(j) = &job {
            let waited = (now_unix_ms - j.run_at_unix_ms).max(0) as f64 / 1000.0;
            self.metrics.job_wait.get_or_create(&JobLabels { kind: j.kind.clone() }).observe(waited);
        }
        Ok(job)
    }
    async fn extend(&self, id: &str, node: &str, until_unix_ms: i64) -> Result<bool, RepoError> {
        self.inner.extend(id, node, until_unix_ms).await
    }
    async fn finish(&self, id: &str, now_unix_ms: i64) -> Result<(), RepoError> {
        self.inner.finish(id, now_unix_ms).await
    }
    async fn fail(&self, id: &str, error: &str, retry_at: Option<i64>, now_unix_ms: i64) -> Result<(), RepoError> {
        self.inner.fail(id, error, retry_at, now_unix_ms).await
    }
    async fn pending_jobs(&self) -> Result<Vec<PendingJob>, RepoError> {
        self.inner.pending_jobs().await
    }
}

/// A key manager whose operations are counted and timed ([`Metrics::meter_keys`]).
struct MeteredKeys {
    inner: Arc<dyn KeyManager>,
    metrics: Arc<Metrics>,
}

impl MeteredKeys {
    async fn timed<T>(
        &self,
        operation: &'static str,
        op: impl std::future::Future<Output = Result<T, KeyManagerError>>,
    ) -> Result<T, KeyManagerError> {
        let started = Instant::now();
        let r = op.await;
        self.metrics.count_key_op(self.inner.backend(), operation, started, &r);
        r
    }
}

#[async_trait::async_trait]
impl KeyManager for MeteredKeys {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ensure_kek(&self, key_id: &str) -> Result<KekRef, KeyManagerError> {
        self.timed("ensure_kek", self.inner.ensure_kek(key_id)).await
    }
    async fn current_kek(&self, key_id: &str) -> Result<Option<KekRef>, KeyManagerError> {
        self.timed("current_kek", self.inner.current_kek(key_id)).await
    }
    async fn rotate_kek(&self, key_id: &str) -> Result<KekRef, KeyManagerError> {
        self.timed("rotate_kek", self.inner.rotate_kek(key_id)).await
    }
    async fn wrap_dek(&self, kek: &KekRef, dek: &Dek) -> Result<WrappedDek, KeyManagerError> {
        self.timed("wrap_dek", self.inner.wrap_dek(kek, dek)).await
    }
    async fn unwrap_dek(&self, wrapped: &WrappedDek) -> Result<Dek, KeyManagerError> {
        self.timed("unwrap_dek", self.inner.unwrap_dek(wrapped)).await
    }
    async fn destroy_kek(&self, key_id: &str) -> Result<(), KeyManagerError> {
        self.timed("destroy_kek", self.inner.destroy_kek(key_id)).await
    }
    async fn list(&self) -> Result<Vec<KekInfo>, KeyManagerError> {
        self.timed("list", self.inner.list()).await
    }
    async fn ensure_signing_key(&self, key_id: &str) -> Result<SigningKeyInfo, KeyManagerError> {
        self.timed("ensure_signing_key", self.inner.ensure_signing_key(key_id)).await
    }
    async fn sign(&self, key_id: &str, message: &[u8]) -> Result<Vec<u8>, KeyManagerError> {
        self.timed("sign", self.inner.sign(key_id, message)).await
    }
    async fn health(&self) -> Result<(), KeyManagerError> {
        self.timed("health", self.inner.health()).await
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    sigillum_crypto::constant_time_eq(&sigillum_crypto::sha256(a), &sigillum_crypto::sha256(b))
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(scrape))
}

/// Counts every request by its route template and times it.
pub async fn record(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let m = &st.metrics;
    let status = response.status().as_u16();
    m.requests.get_or_create(&RequestLabels { method: method.clone(), route: route.clone(), status }).inc();
    m.latency.get_or_create(&RouteLabels { method, route }).observe(started.elapsed().as_secs_f64());
    response
}

#[utoipa::path(get, path = "/metrics", tag = "operations", security(("metrics_token" = [])), responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String), (status = 401, description = "wrong or missing scrape token", body = crate::openapi::ErrorBody), (status = 404, description = "metrics are off (no SIGILLUM_METRICS_TOKEN)", body = crate::openapi::ErrorBody)))]
pub(crate) async fn scrape(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let m = &st.metrics;
    match m.allowed(&headers) {
        None => return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")),
        Some(false) => {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "the metrics need the scrape token"))
        }
        Some(true) => {}
    }
    match st.workflow.job_queue().await {
        Ok((pending, lag_ms)) => {
            m.jobs_pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
            m.job_lag_ms.set(lag_ms);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: job queue unavailable"),
    }
    m.audit_log_size.set(i64::try_from(*st.audit.subscribe().borrow()).unwrap_or(i64::MAX));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &m.registry).map_err(|_| ApiError::internal())?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"s3cret-token", b"s3cret-token"));
        assert!(!constant_time_eq(b"s3cret-token", b"s3cret-tokeN"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret-token"));
        assert!(!constant_time_eq(b"", b"s3cret-token"));
    }
}
