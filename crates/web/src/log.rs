//! The public transparency endpoints (DESIGN §5): the signed checkpoint, the log's verifier key,
//! and RFC 9162 inclusion and consistency proofs. Only hashes and checkpoints, never personal
//! data; anyone may call them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;
use sigillum_core::AuditError;

use crate::error::ApiError;
use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/log/checkpoint", get(checkpoint))
        .route("/log/key", get(key))
        .route("/log/proof/inclusion", get(inclusion))
        .route("/log/proof/consistency", get(consistency))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Proof {
    hashes: Vec<String>,
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_proof_request", m),
            e => {
                tracing::error!(error = %e, "audit log unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "log_unavailable", "the audit log is unavailable")
            }
        }
    }
}

fn text(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], body)
}

#[utoipa::path(get, path = "/log/checkpoint", tag = "transparency", responses((status = 200, description = "the latest signed checkpoint (C2SP tlog-checkpoint in a signed note)", content_type = "text/plain", body = String)))]
async fn checkpoint(State(st): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    Ok(text(st.audit.checkpoint().await?.note))
}

#[utoipa::path(get, path = "/log/key", tag = "transparency", responses((status = 200, description = "the log's Ed25519 verifier key (signed-note format)", content_type = "text/plain", body = String)))]
async fn key(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    text(format!("{}\n", st.audit.verifier_key()))
}

/// Reads a non-negative integer query parameter, with a JSON error naming it otherwise.
fn param(q: &HashMap<String, String>, name: &'static str) -> Result<u64, ApiError> {
    q.get(name).and_then(|v| v.parse().ok()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_proof_request",
            format!("query parameter {name} must be a non-negative integer"),
        )
    })
}

fn proof(hashes: Vec<[u8; 32]>) -> Json<Proof> {
    Json(Proof { hashes: hashes.iter().map(|h| B64.encode(h)).collect() })
}

#[utoipa::path(get, path = "/log/proof/inclusion", tag = "transparency", params(("index" = u64, Query, description = "leaf index"), ("size" = u64, Query, description = "tree size")), responses((status = 200, description = "RFC 9162 inclusion proof, base64 hashes", body = Proof), (status = 400, description = "bad parameters", body = crate::openapi::ErrorBody)))]
async fn inclusion(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Proof>, ApiError> {
    let (index, size) = (param(&q, "index")?, param(&q, "size")?);
    Ok(proof(st.audit.inclusion_proof(index, size).await?))
}

#[utoipa::path(get, path = "/log/proof/consistency", tag = "transparency", params(("from" = u64, Query, description = "older size"), ("to" = u64, Query, description = "newer size")), responses((status = 200, description = "RFC 9162 consistency proof, base64 hashes", body = Proof), (status = 400, description = "bad parameters", body = crate::openapi::ErrorBody)))]
async fn consistency(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Proof>, ApiError> {
    let (from, to) = (param(&q, "from")?, param(&q, "to")?);
    Ok(proof(st.audit.consistency_proof(from, to).await?))
}
