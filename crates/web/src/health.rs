//! `/healthz` (the process answers) and `/readyz` (every dependency answers: database, blob
//! store, key manager), for load balancers and orchestrators. `/readyz` also says which
//! jurisdiction the node keeps data in and where each store and service is.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process is up", body = Object)))]
async fn healthz(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "status": "ok", "version": st.version }))
}

async fn check<E: std::fmt::Display>(
    name: &str,
    backend: &str,
    f: impl Future<Output = Result<(), E>>,
) -> (bool, Value) {
    let start = Instant::now();
    let result = tokio::time::timeout(CHECK_TIMEOUT, f).await;
    let ms = start.elapsed().as_millis() as u64;
    match result {
        Ok(Ok(())) => (true, json!({ "status": "ok", "backend": backend, "latency_ms": ms })),
        Ok(Err(e)) => {
            tracing::warn!(check = name, backend, error = %e, "readiness check failed");
            (false, json!({ "status": "failing", "backend": backend, "latency_ms": ms }))
        }
        Err(_) => {
            tracing::warn!(check = name, backend, "readiness check timed out");
            (false, json!({ "status": "timeout", "backend": backend, "latency_ms": ms }))
        }
    }
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "database, blobs and keys reachable", body = Object), (status = 503, description = "a dependency is down", body = Object)))]
async fn readyz(State(st): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let v = &st.vault;
    let (db, blobs, keys) = tokio::join!(
        check("database", v.repository().backend(), v.repository().health()),
        check("blob_store", v.blob_store().backend(), v.blob_store().health()),
        check("key_manager", v.key_manager().backend(), v.key_manager().health()),
    );
    let ready = db.0 && blobs.0 && keys.0;
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "database": db.1, "blob_store": blobs.1, "key_manager": keys.1 },
        "residency": st.residency,
    });
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}
