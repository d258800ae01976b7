//! The signer ceremony routes, reached with the signing token from the invitation (or an
//! embedded link). The token in the path is the credential: no cookie is involved, so these
//! routes need no CSRF token. An access code, when the sender set one, travels in
//! `X-Access-Code`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sigillum_core::workflow::CompleteRequest;

use crate::client::Client;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::AppState;

/// Signature PNGs arrive base64-encoded in JSON: room for a 512 KiB image and the values.
const MAX_COMPLETE_BODY: usize = 1024 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/signing/{token}", get(view))
        .route("/api/v1/signing/{token}/document", get(document))
        .route("/api/v1/signing/{token}/consent", post(consent))
        .route(
            "/api/v1/signing/{token}/complete",
            post(complete).layer(axum::extract::DefaultBodyLimit::max(MAX_COMPLETE_BODY)),
        )
        .route("/api/v1/signing/{token}/decline", post(decline))
}

fn access_code(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-access-code").and_then(|v| v.to_str().ok())
}

async fn view(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let v = st.workflow.signer_view(&token, access_code(&headers), &client).await?;
    Ok(Json(serde_json::to_value(v).map_err(|_| ApiError::internal())?))
}

async fn document(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (title, bytes) = st.workflow.signer_document(&token, access_code(&headers), &client).await?;
    Ok(crate::envelopes::pdf_response(&title, bytes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consent {
    accepted: bool,
}

async fn consent(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<Consent>,
) -> Result<Json<Value>, ApiError> {
    st.workflow.consent(&token, access_code(&headers), b.accepted, &client).await?;
    Ok(Json(json!({ "consented": true })))
}

async fn complete(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<CompleteRequest>,
) -> Result<Json<Value>, ApiError> {
    st.workflow.complete(&token, access_code(&headers), b, &client).await?;
    Ok(Json(json!({ "status": "signed" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decline {
    reason: String,
}

async fn decline(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<Decline>,
) -> Result<Response, ApiError> {
    st.workflow.decline(&token, access_code(&headers), &b.reason, &client).await?;
    Ok((StatusCode::OK, Json(json!({ "status": "declined" }))).into_response())
}
